//! [`ModelMetadata`]: the model's sidecar JSON (`diabetes_rf.json`), parsed and validated.
//!
//! The ONNX file holds only the forest; everything needed around it lives in
//! the sidecar: feature order, the `StandardScaler` parameters (scaling is done
//! here, not in the graph, because tract has no `ai.onnx.ml.Scaler`), valid
//! input ranges, class labels, the decision threshold and risk bands. Parsing
//! validates the sidecar on its own; agreement with the ONNX file is checked
//! by [`RiskModel::load`](super::RiskModel::load).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::error::SidecarError;

/// Everything the sidecar says about the model, in feature order.
///
/// Build it with [`ModelMetadata::from_file`] or [`ModelMetadata::from_json`],
/// which validate it; the fields are public for reading (e.g. a `/model`
/// endpoint serializes this struct).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelMetadata {
    /// `model_name` in the sidecar, e.g. `diabetes-rf`.
    pub name: String,
    /// Model version, e.g. `diabetes-rf-1-c52065b59378`.
    pub version: String,
    /// Feature names, in the column order the model expects.
    pub feature_names: Vec<String>,
    /// `StandardScaler` parameters (f64, one per feature).
    pub scaler: Scaler,
    /// Valid raw-input ranges, one per feature, in feature order.
    pub feature_ranges: Vec<FeatureRange>,
    /// `[negative, positive]` class labels.
    pub class_labels: [i64; 2],
    /// A row is positive iff `p > decision_threshold` (strict, like sklearn).
    pub decision_threshold: f64,
    /// Contiguous, ascending bands on `p`; the last one is open-ended.
    pub risk_bands: Vec<RiskBand>,
    /// The TreeSHAP expected value computed at training time, if recorded.
    pub shap_base_value: Option<f64>,
    /// SHA-256 of the ONNX file as recorded at export (required: without
    /// it a modified or swapped model would load silently).
    pub onnx_sha256: String,
    /// Held-out metrics, passed through as-is.
    pub metrics: serde_json::Value,
}

/// `scaled[j] = (raw[j] - mean[j]) / scale[j]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

/// The accepted range of one raw feature (inclusive).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureRange {
    pub name: String,
    pub min: f64,
    pub max: f64,
    pub unit: String,
    /// The feature is a count and must be a whole number.
    pub integer: bool,
    pub note: String,
}

impl FeatureRange {
    /// `min <= value <= max`, and a whole number if the feature is an integer.
    /// False for NaN.
    pub fn contains(&self, value: f64) -> bool {
        self.min <= value && value <= self.max && (!self.integer || value.fract() == 0.0)
    }
}

/// One risk band: `min_inclusive <= p < max_exclusive` (`None` = no upper bound).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskBand {
    pub level: String,
    pub min_inclusive: f64,
    pub max_exclusive: Option<f64>,
}

/// The sidecar as written by `models/train.py` (only the keys used here).
#[derive(Deserialize)]
struct Sidecar {
    model_name: String,
    version: String,
    feature_names: Vec<String>,
    scaler: Scaler,
    feature_ranges: HashMap<String, RawRange>,
    class_labels: Vec<i64>,
    positive_class_index: usize,
    decision_threshold: f64,
    risk_bands: Vec<RiskBand>,
    #[serde(default)]
    shap_base_value: Option<f64>,
    #[serde(default)]
    onnx_sha256: Option<String>,
    #[serde(default)]
    metrics: serde_json::Value,
}

#[derive(Deserialize)]
struct RawRange {
    min: f64,
    max: f64,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    integer: bool,
    #[serde(default)]
    note: String,
}

impl ModelMetadata {
    /// Read and validate a sidecar file.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parse and validate sidecar JSON; `path` is only used in error messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let invalid = |problem: SidecarError| ModelError::Sidecar {
            path: path.to_path_buf(),
            problem,
        };
        let raw: Sidecar = serde_json::from_str(text).map_err(|e| invalid(e.into()))?;
        Self::validate(raw).map_err(invalid)
    }

    fn validate(raw: Sidecar) -> Result<Self, SidecarError> {
        let n = raw.feature_names.len();
        if n == 0 {
            return Err(SidecarError::Invalid("feature_names is empty".into()));
        }
        let mut seen = HashSet::new();
        for name in &raw.feature_names {
            if name.is_empty() {
                return Err(SidecarError::Invalid(
                    "feature_names contains an empty name".into(),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(SidecarError::Invalid(format!(
                    "feature_names lists {name:?} twice"
                )));
            }
        }

        for (key, values) in [("mean", &raw.scaler.mean), ("scale", &raw.scaler.scale)] {
            if values.len() != n {
                return Err(SidecarError::Inconsistent(format!(
                    "scaler.{key} has {} values for {n} features",
                    values.len()
                )));
            }
            if let Some(j) = values.iter().position(|v| !v.is_finite()) {
                return Err(SidecarError::Invalid(format!(
                    "scaler.{key}[{j}] is not finite"
                )));
            }
        }
        if let Some(j) = raw.scaler.scale.iter().position(|&s| s == 0.0) {
            return Err(SidecarError::Invalid(format!("scaler.scale[{j}] is 0")));
        }
        let onnx_sha256 = raw.onnx_sha256.clone().ok_or(SidecarError::Missing {
            key: "onnx_sha256",
            why: "the sidecar must name the SHA-256 of the ONNX file it \
                  describes (models/train.py writes it), or a modified model would load unnoticed",
        })?;
        if onnx_sha256.len() != 64 || !onnx_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SidecarError::Invalid(format!(
                "onnx_sha256 must be 64 hexadecimal digits, found {:?}",
                onnx_sha256.chars().take(80).collect::<String>()
            )));
        }

        let mut ranges = raw.feature_ranges;
        let mut feature_ranges = Vec::with_capacity(n);
        for name in &raw.feature_names {
            let r = ranges.remove(name).ok_or_else(|| {
                SidecarError::Inconsistent(format!(
                    "feature_ranges has no entry for feature {name:?}"
                ))
            })?;
            if !(r.min.is_finite() && r.max.is_finite() && r.min <= r.max) {
                return Err(SidecarError::Invalid(format!(
                    "feature_ranges.{name}: need finite min <= max, got {}..{}",
                    r.min, r.max
                )));
            }
            feature_ranges.push(FeatureRange {
                name: name.clone(),
                min: r.min,
                max: r.max,
                unit: r.unit,
                integer: r.integer,
                note: r.note,
            });
        }
        if !ranges.is_empty() {
            let mut extra: Vec<_> = ranges.into_keys().collect();
            extra.sort();
            return Err(SidecarError::Inconsistent(format!(
                "feature_ranges has entries for unknown features {extra:?}"
            )));
        }

        let class_labels: [i64; 2] = raw.class_labels.as_slice().try_into().map_err(|_| {
            SidecarError::Invalid(format!(
                "class_labels must hold exactly 2 labels (binary classifier), got {:?}",
                raw.class_labels
            ))
        })?;
        if class_labels[0] == class_labels[1] {
            return Err(SidecarError::Invalid(format!(
                "class_labels are not distinct: {class_labels:?}"
            )));
        }
        // The positive class is read from column 1 of `probabilities`.
        if raw.positive_class_index != 1 {
            return Err(SidecarError::Invalid(format!(
                "positive_class_index must be 1 (column 1 of `probabilities`), got {}",
                raw.positive_class_index
            )));
        }
        if !(0.0..=1.0).contains(&raw.decision_threshold) {
            return Err(SidecarError::Invalid(format!(
                "decision_threshold must be in [0, 1], got {}",
                raw.decision_threshold
            )));
        }
        validate_bands(&raw.risk_bands)?;
        if let Some(b) = raw.shap_base_value
            && !b.is_finite()
        {
            return Err(SidecarError::Invalid(
                "shap_base_value is not finite".into(),
            ));
        }

        Ok(ModelMetadata {
            name: raw.model_name,
            version: raw.version,
            feature_names: raw.feature_names,
            scaler: raw.scaler,
            feature_ranges,
            class_labels,
            decision_threshold: raw.decision_threshold,
            risk_bands: raw.risk_bands,
            shap_base_value: raw.shap_base_value,
            onnx_sha256,
            metrics: raw.metrics,
        })
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The risk level of probability `p`: the band with
    /// `min_inclusive <= p < max_exclusive`. Bands are validated to be
    /// contiguous from `<= 0` upwards with an open last band, so every
    /// `p >= 0` has one; a NaN falls through to the last (highest) band, the
    /// side that draws attention rather than hides it.
    pub fn risk_level(&self, p: f64) -> &str {
        self.risk_bands
            .iter()
            .find(|b| b.max_exclusive.is_none_or(|max| p < max))
            .or(self.risk_bands.last())
            .map_or("", |b| b.level.as_str())
    }

    /// The predicted class label for probability `p` (`p > decision_threshold`
    /// is positive; a tie goes to the negative class, as in sklearn).
    pub fn label(&self, p: f64) -> i64 {
        self.class_labels[usize::from(p > self.decision_threshold)]
    }

    /// Standardize raw features for the forest.
    ///
    /// `raw` is one or more rows, row-major, `n_features` values each; value
    /// `k` uses the parameters of feature `k % n_features`. The arithmetic is
    /// f64 `(x - mean) / scale` — subtract, then divide, exactly like sklearn's
    /// `StandardScaler`, not a multiply by a reciprocal — and only the result
    /// is cast to f32. The forest's f32 thresholds were fitted to sklearn's
    /// values: scaling in f32 (or multiplying by `1/scale`) moves inputs by an
    /// ulp or more and flips about 11 % of split decisions on the reference data.
    pub fn scale(&self, raw: &[f64]) -> Vec<f32> {
        let params = self.scaler.mean.iter().zip(&self.scaler.scale).cycle();
        raw.iter()
            .zip(params)
            .map(|(&x, (&mean, &scale))| ((x - mean) / scale) as f32)
            .collect()
    }
}

/// Bands must be non-empty, start at or below 0, be contiguous and ascending,
/// and end with an open band.
fn validate_bands(bands: &[RiskBand]) -> Result<(), SidecarError> {
    let Some(first) = bands.first() else {
        return Err(SidecarError::Invalid("risk_bands is empty".into()));
    };
    // (JSON has no NaN: serde_json only yields finite numbers here.)
    if first.min_inclusive > 0.0 {
        return Err(SidecarError::Invalid(format!(
            "risk_bands must start at or below 0, the first starts at {}",
            first.min_inclusive
        )));
    }
    for (i, band) in bands.iter().enumerate() {
        if band.level.is_empty() {
            return Err(SidecarError::Invalid(format!(
                "risk_bands[{i}] has an empty level"
            )));
        }
        let last = i + 1 == bands.len();
        match (band.max_exclusive, bands.get(i + 1)) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(SidecarError::Inconsistent(format!(
                    "risk_bands[{i}] ({}) has no upper bound but is not the last band",
                    band.level
                )));
            }
            (Some(_), None) if last => {
                return Err(SidecarError::Invalid(format!(
                    "the last risk band ({}) must have max_exclusive null",
                    band.level
                )));
            }
            (Some(max), next) => {
                if max <= band.min_inclusive {
                    return Err(SidecarError::Invalid(format!(
                        "risk_bands[{i}] ({}) is empty: {}..{max}",
                        band.level, band.min_inclusive
                    )));
                }
                if let Some(next) = next
                    && next.min_inclusive != max
                {
                    return Err(SidecarError::Inconsistent(format!(
                        "risk_bands[{i}] ends at {max} but risk_bands[{}] starts at {}",
                        i + 1,
                        next.min_inclusive
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/diabetes_rf.json")
    }

    fn shipped_json() -> serde_json::Value {
        let text = std::fs::read_to_string(sidecar_path()).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn parse(v: &serde_json::Value) -> Result<ModelMetadata, ModelError> {
        ModelMetadata::from_json(&v.to_string(), Path::new("test.json"))
    }

    #[test]
    fn shipped_sidecar_parses_in_feature_order() {
        let m = ModelMetadata::from_file(&sidecar_path()).unwrap();
        assert_eq!(m.name, "diabetes-rf");
        assert_eq!(m.n_features(), 8);
        assert_eq!(m.feature_names[1], "Glucose");
        let names: Vec<_> = m.feature_ranges.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, m.feature_names);
        assert_eq!(m.feature_ranges[7].min, 1.0);
        assert!(m.feature_ranges[0].integer);
        assert_eq!(m.class_labels, [0, 1]);
        assert_eq!(m.risk_bands.len(), 3);
        assert!(m.metrics.get("roc_auc").is_some());
    }

    #[test]
    fn risk_levels_and_labels_follow_the_bands() {
        let m = ModelMetadata::from_file(&sidecar_path()).unwrap();
        assert_eq!(m.risk_level(0.0), "low");
        assert_eq!(m.risk_level(0.2999999), "low");
        assert_eq!(m.risk_level(0.3), "moderate");
        assert_eq!(m.risk_level(0.5999999), "moderate");
        assert_eq!(m.risk_level(0.6), "high");
        assert_eq!(m.risk_level(1.0), "high");
        assert_eq!(m.risk_level(f64::NAN), "high");
        assert_eq!(m.label(0.5), 0);
        assert_eq!(m.label(0.5000001), 1);
    }

    #[test]
    fn scaling_is_f64_subtract_then_divide_for_every_row() {
        let m = ModelMetadata::from_file(&sidecar_path()).unwrap();
        let raw = [6.0, 148.0, 72.0, 35.0, 0.0, 33.6, 0.627, 50.0];
        // Fixture row 0's `scaled`, cast to f32.
        let want = [
            0.658558315372278f64,
            0.8590733327636633,
            0.13906136695856502,
            0.8977254360616801,
            -0.7307663598585351,
            0.2070933691821045,
            0.45320462252872856,
            1.4067857574777791,
        ]
        .map(|v| v as f32);
        let two_rows: Vec<f64> = raw.iter().chain(raw.iter()).copied().collect();
        let got = m.scale(&two_rows);
        assert_eq!(&got[..8], &want);
        assert_eq!(&got[8..], &want);
    }

    #[test]
    fn feature_range_contains() {
        let m = ModelMetadata::from_file(&sidecar_path()).unwrap();
        let preg = &m.feature_ranges[0];
        assert!(preg.contains(0.0) && preg.contains(20.0));
        assert!(!preg.contains(2.5) && !preg.contains(21.0) && !preg.contains(f64::NAN));
        assert!(m.feature_ranges[5].contains(33.6));
    }

    #[test]
    fn invalid_sidecars_are_rejected_with_a_reason() {
        let base = shipped_json();
        type Mutate = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Mutate)> = vec![
            (
                "scaler.mean has 7",
                Box::new(|v| {
                    v["scaler"]["mean"].as_array_mut().unwrap().pop();
                }),
            ),
            (
                "no entry for feature \"Age\"",
                Box::new(|v| {
                    v["feature_ranges"].as_object_mut().unwrap().remove("Age");
                }),
            ),
            (
                "exactly 2 labels",
                Box::new(|v| v["class_labels"] = serde_json::json!([0, 1, 2])),
            ),
            (
                "positive_class_index must be 1",
                Box::new(|v| v["positive_class_index"] = serde_json::json!(0)),
            ),
            (
                "max_exclusive null",
                Box::new(|v| v["risk_bands"][2]["max_exclusive"] = serde_json::json!(1.0)),
            ),
            (
                "starts at 0.35",
                Box::new(|v| v["risk_bands"][1]["min_inclusive"] = serde_json::json!(0.35)),
            ),
            (
                "lists \"Glucose\" twice",
                Box::new(|v| v["feature_names"][0] = serde_json::json!("Glucose")),
            ),
            (
                "onnx_sha256 is missing",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("onnx_sha256");
                }),
            ),
            (
                "64 hexadecimal digits",
                Box::new(|v| v["onnx_sha256"] = serde_json::json!("abc")),
            ),
            (
                "missing field `scaler`",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("scaler");
                }),
            ),
        ];
        for (want, mutate) in cases {
            let mut v = base.clone();
            mutate(&mut v);
            let err = parse(&v).unwrap_err().to_string();
            assert!(err.contains("test.json"), "{err}");
            assert!(err.contains(want), "expected {want:?} in {err}");
        }
    }

    /// Every scaler value is read exactly as written: the same f64 as
    /// Rust's correctly rounded `str::parse`. An approximate JSON number
    /// parser reads some of these 17-digit values one bit off, which moves
    /// a scaled feature across a split threshold for inputs near it.
    #[test]
    fn scaler_values_are_read_exactly() {
        let text = std::fs::read_to_string(sidecar_path()).unwrap();
        let m = ModelMetadata::from_file(&sidecar_path()).unwrap();
        for (key, parsed) in [("mean", &m.scaler.mean), ("scale", &m.scaler.scale)] {
            let start = text.find(&format!("\"{key}\": [")).unwrap();
            let body = &text[start..];
            let body = &body[body.find('[').unwrap() + 1..body.find(']').unwrap()];
            let written: Vec<f64> = body
                .split(',')
                .map(|n| n.trim().parse::<f64>().unwrap())
                .collect();
            assert_eq!(written.len(), parsed.len(), "{key}");
            for (j, (w, p)) in written.iter().zip(parsed.iter()).enumerate() {
                assert_eq!(
                    w.to_bits(),
                    p.to_bits(),
                    "scaler.{key}[{j}]: {w:?} read as {p:?}"
                );
            }
        }
    }
}
