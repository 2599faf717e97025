//! `cargo bench --bench explain`: exact TreeSHAP for the shipped forest,
//! Algorithm 2 (per-node path weights, as before) against the per-leaf
//! tables built at load (`models::fast_treeshap`), one row at a time and in
//! a batch, over the 768 rows of `models/fixtures/reference.json`, in one
//! run; and how exact each is against the `shap` package's values in that
//! fixture. `VITALFLOW_BENCH_ROUNDS` (default 20) passes over the rows.

use std::time::{Duration, Instant};

use vitalflow::models::{FastTreeShap, RiskModel, shap_values};
use vitalflow_bench::env_or;

fn main() -> anyhow::Result<()> {
    let rounds = env_or("VITALFLOW_BENCH_ROUNDS", 20usize);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let model = RiskModel::load(&dir.join("diabetes_rf.onnx"))?;
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("fixtures/reference.json"),
    )?)?;
    let rows = fixture["rows"].as_array().expect("rows");
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    let raw: Vec<f64> = rows.iter().flat_map(|r| floats(&r["raw"])).collect();
    let expected: Vec<Vec<f64>> = rows.iter().map(|r| floats(&r["shap"])).collect();
    let n = model.n_features();
    let scaled = model.metadata().scale(&raw);
    let ensemble = model.ensemble();
    let build = Instant::now();
    let fast = FastTreeShap::new(ensemble).expect("the shipped forest fits the tables");
    let build = build.elapsed();
    let count = rows.len() * rounds;

    // Alternate the kinds round by round, so drift hits all alike.
    let (mut algorithm_2, mut tables, mut batch) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut sink = 0.0;
    for _ in 0..rounds {
        let t = Instant::now();
        for x in scaled.chunks_exact(n) {
            sink += shap_values(ensemble, x)[0];
        }
        algorithm_2 += t.elapsed();
        let t = Instant::now();
        for x in scaled.chunks_exact(n) {
            sink += fast.shap_values(x)[0];
        }
        tables += t.elapsed();
        let t = Instant::now();
        sink += fast.shap_values_batch(&scaled, n)[0][0];
        batch += t.elapsed();
    }
    std::hint::black_box(sink);

    let (mut vs_shap_a2, mut vs_shap_fast, mut fast_vs_a2) = (0f64, 0f64, 0f64);
    for (x, want) in scaled.chunks_exact(n).zip(&expected) {
        let a2 = shap_values(ensemble, x);
        let f = fast.shap_values(x);
        for j in 0..n {
            vs_shap_a2 = vs_shap_a2.max((a2[j] - want[j]).abs());
            vs_shap_fast = vs_shap_fast.max((f[j] - want[j]).abs());
            fast_vs_a2 = fast_vs_a2.max((f[j] - a2[j]).abs());
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
    let leaves: usize = ensemble
        .trees()
        .iter()
        .map(|t| (0..t.len()).filter(|&i| t.is_leaf(i)).count())
        .sum();
    println!(
        "explain bench: {} trees, {leaves} leaves, depth {}, {} rows x {rounds} rounds",
        ensemble.trees().len(),
        ensemble.max_depth(),
        rows.len()
    );
    println!(
        "tables: {} floats ({:.1} MiB), built in {:.1} ms at load",
        fast.table_entries(),
        fast.table_entries() as f64 * 8.0 / 1048576.0,
        build.as_secs_f64() * 1e3
    );
    println!(
        "Algorithm 2 (per row):     {:8.2} µs per explanation",
        per(algorithm_2)
    );
    println!(
        "tables (per row):          {:8.2} µs per explanation",
        per(tables)
    );
    println!(
        "tables (batch of {}):     {:8.2} µs per explanation",
        rows.len(),
        per(batch)
    );
    println!(
        "speed-up: {:.1}x per row, {:.1}x in a batch",
        per(algorithm_2) / per(tables),
        per(algorithm_2) / per(batch)
    );
    println!(
        "exactness, max |difference| over {} values: tables vs shap {:.2e}, Algorithm 2 vs shap {:.2e}, tables vs Algorithm 2 {:.2e} (required: <= 1e-6 vs shap)",
        rows.len() * n,
        vs_shap_fast,
        vs_shap_a2,
        fast_vs_a2
    );
    anyhow::ensure!(vs_shap_fast <= 1e-6, "the tables are not exact");
    Ok(())
}
