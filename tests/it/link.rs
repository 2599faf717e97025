//! `link/order-query.txt` and `link/order-pipeline.txt`, the order build.rs
//! gives the linker for the functions a query, then a pipeline run,
//! executes. lld skips a line naming no symbol without a word (build.rs
//! silences its warnings, as a debug build or an upgraded dependency lacks
//! many), so a file it cannot use would lose the layout silently: these
//! checks keep each in the one form lld reads, and keep the binary built
//! with the same dependency features as the tests and benches, whose
//! function names the files list.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::Command;

/// The names `path` lists, after checking each line is one linker symbol.
fn symbols(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("the symbol order (scripts/symbol-order.sh)");
    let mut seen = HashSet::new();
    let lines = text.strip_suffix('\n').unwrap_or(&text);
    for (n, line) in lines.split('\n').enumerate() {
        let at = format!("{path}:{}", n + 1);
        assert!(!line.is_empty(), "{at}: an empty line");
        assert!(
            !line.contains(char::is_whitespace) && !line.contains('#'),
            "{at}: `{line}` is not one symbol (a demangled name, a comment or a CR?)"
        );
        assert!(seen.insert(line), "{at}: `{line}` listed twice");
    }
    lines.split('\n').map(String::from).collect()
}

/// Rust's mangled names: legacy `_ZN...E` and v0 `_R...`; C's are plain.
fn is_rust(name: &str) -> bool {
    name.starts_with("_ZN") || name.starts_with("_R")
}

#[test]
fn the_symbol_orders_are_one_linker_symbol_per_line_and_reach_the_engine() {
    let query = symbols("link/order-query.txt");
    let rust = query.iter().filter(|s| is_rust(s)).count();
    // The order has to reach past std and the allocator into the engine,
    // and the C the query runs (mimalloc, zstd).
    assert!(
        rust > 5_000,
        "only {rust} Rust functions in the query's order"
    );
    assert!(
        query.iter().any(|s| s.contains("10datafusion")),
        "no DataFusion function in the query's order"
    );
    assert!(
        query.iter().any(|s| !is_rust(s)),
        "no C function in the query's order"
    );

    let pipeline = symbols("link/order-pipeline.txt");
    assert!(
        pipeline.iter().any(|s| s.contains("ArrowWriter")),
        "the pipeline's order lacks the Parquet writer"
    );
}

/// Each package `cargo tree` lists over `edges`, with the feature lists it
/// is built with (a package built for the host and for the target twice).
fn features(edges: &str) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--prefix", "none"])
        .args(["-e", edges, "-f", "{p}|{f}"])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -e {edges}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).expect("UTF-8").lines() {
        let line = line.trim_end_matches(" (*)");
        if let Some((package, features)) = line.split_once('|') {
            let package = package.split(" (").next().unwrap_or(package);
            packages
                .entry(package.trim().to_string())
                .or_default()
                .insert(features.trim().to_string());
        }
    }
    packages
}

/// Cargo.toml names the features the dev-dependencies turn on in crates
/// the binary also uses; a new dev-dependency (or a dependency's upgrade)
/// can add one, and `cargo build --release` would then build the engine a
/// second time, with names the symbol order lacks.
#[test]
fn the_binary_is_built_with_the_dependency_features_of_the_tests() {
    let binary = features("normal,build");
    let tests = features("normal,build,dev");
    assert!(binary.contains_key("datafusion v55.2.0"), "{binary:?}");
    let differ: Vec<String> = binary
        .iter()
        .filter_map(|(package, built)| {
            let with_tests = tests.get(package)?;
            (built != with_tests).then(|| format!("{package}: {built:?} vs {with_tests:?}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the tests build these with other features than the binary does; name \
         the missing ones in Cargo.toml (\"Feature unification by hand\"):\n{}",
        differ.join("\n")
    );
}
