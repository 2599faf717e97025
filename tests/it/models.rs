//! The shipped diabetes model against its reference fixtures (all 768 rows),
//! and the load/input errors a deployer or client can run into.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vitalflow::models::{ModelError, RiskModel, expected_value};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn onnx_path() -> PathBuf {
    models_dir().join("diabetes_rf.onnx")
}

struct Row {
    raw: Vec<f64>,
    proba: f64,
    proba_f32: f64,
    shap: Vec<f64>,
    risk_level: String,
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// (base_value, rows) of `models/fixtures/reference.json`.
fn fixture() -> (f64, Vec<Row>) {
    let text = std::fs::read_to_string(models_dir().join("fixtures/reference.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let rows = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Row {
            raw: floats(&r["raw"]),
            proba: r["proba"].as_f64().unwrap(),
            proba_f32: r["proba_f32_tree_order"].as_f64().unwrap(),
            shap: floats(&r["shap"]),
            risk_level: r["risk_level"].as_str().unwrap().to_owned(),
        })
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 768);
    (json["base_value"].as_f64().unwrap(), rows)
}

#[test]
fn batch_predictions_match_sklearn_and_the_f32_tree_order_sum() {
    let model = RiskModel::load(&onnx_path()).unwrap();
    let (_, rows) = fixture();
    let batch: Vec<f64> = rows.iter().flat_map(|r| r.raw.iter().copied()).collect();
    let p = model.predict(&batch).unwrap(); // one tract run for all 768 rows
    assert_eq!(p.len(), rows.len());
    // The tree path reproduces tract's f32 accumulation bit for bit.
    assert_eq!(model.predict_trees(&batch).unwrap(), p);
    for (i, (row, &p)) in rows.iter().zip(&p).enumerate() {
        assert!(
            (p - row.proba).abs() < 1e-5,
            "row {i}: {p} vs sklearn {}",
            row.proba
        );
        assert!(
            (p - row.proba_f32).abs() < 1e-6,
            "row {i}: {p} vs f32 tree-order {}",
            row.proba_f32
        );
        assert_eq!(model.metadata().risk_level(p), row.risk_level, "row {i}");
        // The parsed trees (used by TreeSHAP) agree with tract.
        let scaled = model.metadata().scale(&row.raw);
        let trees = model.ensemble().predict_row(&scaled);
        assert!(
            (trees - p).abs() < 1e-6,
            "row {i}: trees {trees} vs tract {p}"
        );
    }
}

#[test]
fn explanations_match_the_shap_fixture_and_add_up() {
    let model = RiskModel::load(&onnx_path()).unwrap();
    let (base, rows) = fixture();
    assert!((model.base_value() - base).abs() < 1e-6);
    assert!((expected_value(model.ensemble()) - base).abs() < 1e-6);
    for (i, row) in rows.iter().enumerate() {
        let e = model.explain(&row.raw).unwrap();
        assert!((e.base_value - base).abs() < 1e-6);
        assert!((e.probability - row.proba_f32).abs() < 1e-6, "row {i}");
        assert_eq!(e.contributions.len(), 8);
        for (j, (got, want)) in e.contributions.iter().zip(&row.shap).enumerate() {
            assert!(
                (got - want).abs() < 1e-6,
                "row {i} feature {j}: {got} vs {want}"
            );
        }
        let total = e.base_value + e.contributions.iter().sum::<f64>();
        assert!(
            (total - e.probability).abs() < 1e-6,
            "row {i}: base + Σ shap = {total}, p = {}",
            e.probability
        );
    }
}

#[test]
fn the_precomputed_explainer_equals_algorithm_2_and_the_shap_fixture_in_batches() {
    let model = RiskModel::load(&onnx_path()).unwrap();
    assert!(
        model.has_fast_explainer(),
        "the shipped forest fits the tables"
    );
    let (_, rows) = fixture();
    let raw: Vec<f64> = rows.iter().flat_map(|r| r.raw.clone()).collect();
    let batch = model.explain_batch(&raw).unwrap();
    assert_eq!(batch.len(), rows.len());
    let scaled = model.metadata().scale(&raw);
    let mut max_vs_algorithm_2 = 0f64;
    for (i, ((row, e), x)) in rows
        .iter()
        .zip(&batch)
        .zip(scaled.chunks_exact(8))
        .enumerate()
    {
        let reference = vitalflow::models::shap_values(model.ensemble(), x);
        for (j, ((got, want), shap)) in e
            .contributions
            .iter()
            .zip(&reference)
            .zip(&row.shap)
            .enumerate()
        {
            max_vs_algorithm_2 = max_vs_algorithm_2.max((got - want).abs());
            assert!(
                (got - shap).abs() < 1e-6,
                "row {i} feature {j}: {got} vs shap's {shap}"
            );
        }
        assert_eq!(e.probability, model.explain(&row.raw).unwrap().probability);
    }
    assert!(max_vs_algorithm_2 < 1e-12, "{max_vs_algorithm_2}");
}

#[test]
fn concurrent_callers_share_one_model() {
    let model = std::sync::Arc::new(RiskModel::load(&onnx_path()).unwrap());
    let (_, rows) = fixture();
    let rows = std::sync::Arc::new(rows);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (model, rows) = (model.clone(), rows.clone());
            std::thread::spawn(move || {
                for row in rows.iter().skip(t).step_by(4).take(50) {
                    let p = model.predict(&row.raw).unwrap()[0];
                    assert!((p - row.proba_f32).abs() < 1e-6);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// A temp dir holding a copy of the shipped ONNX file and a sidecar edited by `edit`.
fn model_with_sidecar(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("m.onnx");
    std::fs::copy(onnx_path(), &onnx).unwrap();
    let text = std::fs::read_to_string(models_dir().join("diabetes_rf.json")).unwrap();
    let mut sidecar: Value = serde_json::from_str(&text).unwrap();
    edit(&mut sidecar);
    std::fs::write(dir.path().join("m.json"), sidecar.to_string()).unwrap();
    (dir, onnx)
}

#[test]
fn a_sidecar_with_seven_features_is_a_clear_mismatch() {
    let (_dir, onnx) = model_with_sidecar(|s| {
        s["feature_names"].as_array_mut().unwrap().pop();
        s["scaler"]["mean"].as_array_mut().unwrap().pop();
        s["scaler"]["scale"].as_array_mut().unwrap().pop();
        s["feature_ranges"].as_object_mut().unwrap().remove("Age");
    });
    let err = RiskModel::load(&onnx).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Mismatch { .. }), "{msg}");
    assert!(msg.contains("m.onnx") && msg.contains("m.json"), "{msg}");
    assert!(
        msg.contains("8 features wide") && msg.contains("7 features"),
        "{msg}"
    );
}

#[test]
fn renamed_features_are_a_mismatch() {
    let (_dir, onnx) = model_with_sidecar(|s| {
        s["feature_names"][0] = "Pregnant".into();
        let ranges = s["feature_ranges"].as_object_mut().unwrap();
        let r = ranges.remove("Pregnancies").unwrap();
        ranges.insert("Pregnant".into(), r);
    });
    let msg = RiskModel::load(&onnx).unwrap_err().to_string();
    assert!(msg.contains("feature names differ"), "{msg}");
    assert!(msg.contains("Pregnant"), "{msg}");
}

#[test]
fn a_sidecar_from_another_training_run_is_a_mismatch() {
    let (_dir, onnx) = model_with_sidecar(|s| {
        s["onnx_sha256"] = "00".repeat(32).into();
    });
    let err = RiskModel::load(&onnx).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("onnx_sha256") && msg.contains(&"00".repeat(32)),
        "{msg}"
    );
}

#[test]
fn a_missing_sidecar_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("lonely.onnx");
    std::fs::copy(onnx_path(), &onnx).unwrap();
    let err = RiskModel::load(&onnx).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().join("lonely.json").display().to_string()),
        "{msg}"
    );
}

#[test]
fn a_garbage_onnx_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("garbage.onnx");
    std::fs::write(&onnx, b"this is not a protobuf \xff\xff\xff\xff").unwrap();
    let sidecar = models_dir().join("diabetes_rf.json");
    let err = RiskModel::load_with_sidecar(&onnx, &sidecar).unwrap_err();
    assert!(matches!(err, ModelError::Onnx { .. }), "{err}");
    assert!(
        err.to_string().contains(&onnx.display().to_string()),
        "{err}"
    );

    let missing = dir.path().join("missing.onnx");
    let err = RiskModel::load_with_sidecar(&missing, &sidecar).unwrap_err();
    assert!(err.to_string().contains("missing.onnx"), "{err}");
}

#[test]
fn short_rows_and_nans_are_invalid_input() {
    let model = RiskModel::load(&onnx_path()).unwrap();
    let row = [6.0, 148.0, 72.0, 35.0, 0.0, 33.6, 0.627, 50.0];
    for bad in [&row[..7], &[f64::NAN; 8][..]] {
        assert!(matches!(
            model.predict(bad),
            Err(ModelError::InvalidInput(_))
        ));
        assert!(matches!(
            model.explain(bad),
            Err(ModelError::InvalidInput(_))
        ));
    }
    let mut nan_bmi = row;
    nan_bmi[5] = f64::NAN;
    let err = model.predict(&nan_bmi).unwrap_err().to_string();
    assert!(err.contains("BMI is NaN"), "{err}");
}

/// The model as a SQL function, with either evaluator, gives the fixture's
/// probabilities for a whole batch in one call; NULL features score NULL.
#[tokio::test]
async fn the_model_as_a_sql_function_scores_batches_with_either_runtime() {
    use std::sync::Arc;

    use arrow::array::{Array, Float64Array, RecordBatch};
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::prelude::SessionContext;
    use vitalflow::models::{ModelFunction, ModelRuntime};

    let (_, rows) = fixture();
    let rows = &rows[..40];
    let model = Arc::new(RiskModel::load(&onnx_path()).unwrap());
    let names = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];
    let columns: Vec<(&str, Arc<dyn Array>)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut values: Vec<Option<f64>> = rows.iter().map(|r| Some(r.raw[i])).collect();
            if i == 1 {
                values.push(None); // one more row with a missing glucose
            } else {
                values.push(Some(rows[0].raw[i]));
            }
            (
                *name,
                Arc::new(Float64Array::from(values)) as Arc<dyn Array>,
            )
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    for runtime in [ModelRuntime::Trees, ModelRuntime::Tract] {
        let ctx = SessionContext::new();
        ctx.register_udf(ScalarUDF::new_from_impl(ModelFunction::new(
            "risk",
            model.clone(),
            runtime,
        )));
        ctx.register_batch("features", batch.clone()).unwrap();
        let out = ctx
            .sql("SELECT risk(f0, f1, f2, f3, f4, f5, f6, f7) FROM features")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let scores: Vec<Option<f64>> = out
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(scores.len(), rows.len() + 1);
        for (row, score) in rows.iter().zip(&scores) {
            assert!(
                (score.unwrap() - row.proba_f32).abs() < 1e-6,
                "{runtime:?}: {score:?} vs {}",
                row.proba_f32
            );
        }
        assert_eq!(scores[rows.len()], None, "a NULL feature scores NULL");
    }
    // Wrong arity is a planning error naming the features.
    let ctx = SessionContext::new();
    ctx.register_udf(ScalarUDF::new_from_impl(ModelFunction::new(
        "risk",
        model,
        ModelRuntime::Trees,
    )));
    let error = ctx
        .sql("SELECT risk(1.0, 2.0)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("takes the model's 8 features") && error.contains("Glucose"),
        "{error}"
    );
}
