//! `cargo bench --bench explain`: exact TreeSHAP for the shipped forest,
//! Algorithm 2 (per-node path weights), the per-leaf tables (as before)
//! and the tables of merged subtrees built at load
//! (`models::fast_treeshap`), one row at a time and in a batch, over the 768 rows of `models/fixtures/reference.json`, in one
//! run; and how exact each is against the `shap` package's values in that
//! fixture. `VITALFLOW_BENCH_ROUNDS` (default 20) passes over the rows;
//! `VITALFLOW_BENCH_UNIT_BITS` the largest unit (default: the server's).

use std::time::{Duration, Instant};

use vitalflow::models::fast_treeshap::DEFAULT_UNIT_BITS;
use vitalflow::models::{FastTreeShap, RiskModel, shap_values};
use vitalflow_bench::env_or;

fn main() -> anyhow::Result<()> {
    let rounds = env_or("VITALFLOW_BENCH_ROUNDS", 20usize);
    // The largest unit (tests); the server uses the default.
    let unit_bits = env_or("VITALFLOW_BENCH_UNIT_BITS", DEFAULT_UNIT_BITS);
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
    let fast = FastTreeShap::with_unit_bits(ensemble, unit_bits)
        .expect("the shipped forest fits the tables");
    let build = build.elapsed();
    let per_leaf = FastTreeShap::with_unit_bits(ensemble, 0).expect("per-leaf tables fit");
    let count = rows.len() * rounds;

    // Alternate the kinds round by round, so drift hits all alike.
    let (mut algorithm_2, mut leaf_tables, mut tables, mut batch) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut sink = 0.0;
    for _ in 0..rounds {
        let t = Instant::now();
        for x in scaled.chunks_exact(n) {
            sink += shap_values(ensemble, x)[0];
        }
        algorithm_2 += t.elapsed();
        let t = Instant::now();
        for x in scaled.chunks_exact(n) {
            sink += per_leaf.shap_values(x)[0];
        }
        leaf_tables += t.elapsed();
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
    let mut vs_shap_leaf = 0f64;
    for (x, want) in scaled.chunks_exact(n).zip(&expected) {
        let a2 = shap_values(ensemble, x);
        let f = fast.shap_values(x);
        let l = per_leaf.shap_values(x);
        for j in 0..n {
            vs_shap_a2 = vs_shap_a2.max((a2[j] - want[j]).abs());
            vs_shap_leaf = vs_shap_leaf.max((l[j] - want[j]).abs());
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
    let units = fast.units();
    println!(
        "per-leaf tables: {} rows read per explanation, {} floats ({:.1} MiB)",
        leaves,
        per_leaf.table_entries(),
        per_leaf.table_entries() as f64 * 8.0 / 1048576.0,
    );
    println!(
        "unit tables (subtrees of up to {} tests): {units} rows read per explanation, {} floats ({:.1} MiB), built in {:.1} ms at load",
        unit_bits,
        fast.table_entries(),
        fast.table_entries() as f64 * 8.0 / 1048576.0,
        build.as_secs_f64() * 1e3
    );
    println!(
        "Algorithm 2 (per row):       {:8.2} µs per explanation",
        per(algorithm_2)
    );
    println!(
        "per-leaf tables (per row):   {:8.2} µs per explanation",
        per(leaf_tables)
    );
    println!(
        "unit tables (per row):       {:8.2} µs per explanation",
        per(tables)
    );
    println!(
        "unit tables (batch of {}):  {:8.2} µs per explanation",
        rows.len(),
        per(batch)
    );
    println!(
        "speed-up over Algorithm 2: per-leaf {:.1}x, units {:.1}x per row, {:.1}x in a batch; units over per-leaf {:.2}x",
        per(algorithm_2) / per(leaf_tables),
        per(algorithm_2) / per(tables),
        per(algorithm_2) / per(batch),
        per(leaf_tables) / per(tables)
    );
    println!(
        "exactness, max |difference| over {} values: units vs shap {:.2e}, per-leaf vs shap {:.2e}, Algorithm 2 vs shap {:.2e}, units vs Algorithm 2 {:.2e} (required: <= 1e-6 vs shap)",
        rows.len() * n,
        vs_shap_fast,
        vs_shap_leaf,
        vs_shap_a2,
        fast_vs_a2
    );
    anyhow::ensure!(
        vs_shap_fast <= 1e-6 && vs_shap_leaf <= 1e-6,
        "the tables are not exact"
    );
    Ok(())
}
