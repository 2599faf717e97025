//! The layers of `src/`: the README's layout table, `src/lib.rs` and the
//! real imports must agree, and a module may import only modules of a
//! lower layer. The README's table is the source of truth (its `layer`
//! column); this test fails when code and map drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `src/<module>/` rows of the README's layout table, with their layer.
fn layers_in_readme() -> BTreeMap<String, u32> {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table = readme
        .split("## Layout")
        .nth(1)
        .expect("the README has a `## Layout` section");
    let mut layers = BTreeMap::new();
    for line in table.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | layer | path | what |
        let (Some(layer), Some(path)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for module in path
            .split(',')
            .filter_map(|p| p.trim().trim_matches('`').strip_prefix("src/"))
            .filter_map(|p| p.strip_suffix('/'))
        {
            layers.insert(module.to_string(), layer);
        }
    }
    assert!(
        !layers.is_empty(),
        "no `| layer | src/x/ |` rows in the README"
    );
    layers
}

/// The modules `src/lib.rs` declares.
fn modules_in_lib() -> BTreeSet<String> {
    std::fs::read_to_string("src/lib.rs")
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

/// Every `.rs` file of a top-level module (`src/m.rs` or `src/m/**`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let file = Path::new("src").join(format!("{module}.rs"));
    if file.exists() {
        return vec![file];
    }
    walkdir::WalkDir::new(Path::new("src").join(module))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect()
}

/// The top-level modules a file names: `crate::x`, `$crate::x`,
/// `crate::{x, y::z}`, and `super::x` from a module's root file. Comment
/// lines are skipped (a doc link is not a dependency).
fn imports_of(path: &Path, is_module_root: bool) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut prefixes = vec!["crate::"];
        if is_module_root {
            prefixes.push("super::");
        }
        for prefix in prefixes {
            for (at, _) in line.match_indices(prefix) {
                // `$crate::` is `crate::`; `foo_crate::` or `xsuper::` is not.
                let before = line[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &line[at + prefix.len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|item| item.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or(""),
                    ],
                };
                found.extend(
                    names
                        .into_iter()
                        .filter(|n| !n.is_empty())
                        .map(|n| (number + 1, n.to_string())),
                );
            }
        }
    }
    found
}

#[test]
fn the_readme_layout_table_lib_rs_and_the_source_tree_name_the_same_modules() {
    let readme: BTreeSet<String> = layers_in_readme().into_keys().collect();
    let lib = modules_in_lib();
    let on_disk: BTreeSet<String> = std::fs::read_dir("src")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            (p.is_dir() || p.extension().is_some_and(|e| e == "rs")).then_some(name)
        })
        .filter(|n| n != "lib" && n != "main")
        .collect();
    assert_eq!(lib, on_disk, "src/lib.rs and the directories of src/");
    assert_eq!(readme, lib, "the README's layout table and src/lib.rs");
}

#[test]
fn modules_import_only_lower_layers() {
    let layers = layers_in_readme();
    let mut violations = Vec::new();
    for (module, layer) in &layers {
        for file in files_of(module) {
            let is_root = file.ends_with(format!("{module}/mod.rs"))
                || file.ends_with(format!("{module}.rs"));
            for (line, target) in imports_of(&file, is_root) {
                if &target == module {
                    continue;
                }
                // Names that are not modules: crate-root macros and items.
                let Some(&target_layer) = layers.get(&target) else {
                    continue;
                };
                if target_layer >= *layer {
                    violations.push(format!(
                        "{}:{line}: `{module}` (layer {layer}) imports `{target}` (layer {target_layer})",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a module may import only modules of a lower layer (README, Layout):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mod.rs");
    std::fs::write(
        &file,
        "use crate::engine::plan;\nuse crate::{sinks, sources::Offsets};\n\
         // crate::server in a comment\nlet x = $crate::common::read_kind();\n\
         use super::query;\nlet y = my_crate::cli;\n",
    )
    .unwrap();
    let names: Vec<String> = imports_of(&file, true)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, ["engine", "sinks", "sources", "common", "query"]);
}

/// Telemetry goes through internal events: only `events.rs` modules call
/// the metrics macros (clippy's `disallowed-macros` in clippy.toml says the
/// same; this test keeps it true where clippy is not run).
#[test]
fn only_events_modules_call_the_metrics_macros() {
    let mut offenders = Vec::new();
    for entry in walkdir::WalkDir::new("src") {
        let path = entry.unwrap().into_path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("events.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if ["counter!", "gauge!", "histogram!"]
                .iter()
                .any(|m| line.contains(&format!("metrics::{m}")))
            {
                offenders.push(format!(
                    "{}:{}: {}",
                    path.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "emit an internal event (a struct in the component's events.rs) instead:\n{}",
        offenders.join("\n")
    );
}
