//! Link options for the `vitalflow` binary.
//!
//! On Linux with glibc (2.36 or later, as in the runtime image
//! `debian:bookworm-slim`), relative relocations are packed (`DT_RELR`):
//! the binary's ~330,000 of them took a 7.8 MB table that the dynamic loader
//! read at every start, a third of a `vitalflow query 'SELECT 1'`'s CPU time
//! (`perf record`), and its pages counted in every command's peak RSS.
//!
//! Release builds for x86_64 Linux, which rustc links with its own `lld`
//! (the default since Rust 1.90), place first in `.text` the functions a
//! one-shot `vitalflow query` executes (`link/order-query.txt`), then
//! those a pipeline run executes besides (`link/order-pipeline.txt`); both
//! are written by `scripts/symbol-order.sh`. The kernel maps a binary's
//! pages 64 KiB at a time around each fault, so a query's ~6 MB of executed
//! code, spread over 133 MB, put ~60 MB of the binary in its RSS; packed,
//! it maps ~14 MB (README "Binary"). Names the files list that a build
//! lacks (a debug build, an upgraded dependency) are skipped without a
//! warning. `VITALFLOW_NO_SYMBOL_ORDER=1` turns it off, e.g. for a linker
//! other than lld.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/order-query.txt");
    println!("cargo:rerun-if-changed=link/order-pipeline.txt");
    println!("cargo:rerun-if-env-changed=VITALFLOW_NO_SYMBOL_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    if var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("PROFILE") == "release"
        && var("VITALFLOW_NO_SYMBOL_ORDER").is_empty()
    {
        let dir = Path::new(&var("CARGO_MANIFEST_DIR")).join("link");
        let order = PathBuf::from(var("OUT_DIR")).join("symbol-order.txt");
        let files = [dir.join("order-query.txt"), dir.join("order-pipeline.txt")];
        if let Err(e) = concatenate(&files, &order) {
            panic!("the symbol order for the linker: {e}");
        }
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// The lines of `files` in turn, each name once (its first place), into `to`.
fn concatenate(files: &[PathBuf], to: &Path) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut out = String::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        for name in text.lines().filter(|l| !l.is_empty()) {
            if seen.insert(name.to_string()) {
                out.push_str(name);
                out.push('\n');
            }
        }
    }
    std::fs::write(to, out).map_err(|e| format!("writing {}: {e}", to.display()))
}
