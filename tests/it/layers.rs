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

/// Library code (everything under `src/` but the binary's edge, `src/cli/`
/// and `src/main.rs`) reports failures as its layer's typed `thiserror`
/// enum: no `anyhow`, no `Result<_, String>`. Unit-test modules (from the
/// file's first `#[cfg(test)]`) and comments are not checked.
#[test]
fn library_errors_are_typed() {
    // Paths (a file, or a folder ending in `/`) not converted yet, and why.
    // An entry that no longer has a finding fails the test: remove it.
    const NOT_YET: &[(&str, &str)] = &[
        // State, not an error: the public reason `/health` and the 503
        // answers show for a model or datasets that did not load (the
        // detailed cause is logged where loading fails).
        (
            "src/server/state.rs",
            "String: model/datasets load results kept as state for /health",
        ),
    ];
    let mut findings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new("src") {
        let path = entry.unwrap().into_path();
        let name = path.to_string_lossy().replace('\\', "/");
        if !name.ends_with(".rs") || name.starts_with("src/cli/") || name == "src/main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            if code.contains("anyhow") || returns_string_error(code) {
                findings
                    .entry(name.clone())
                    .or_default()
                    .push(format!("{}: {}", n + 1, code));
            }
        }
    }
    let allowed = |file: &str| {
        NOT_YET.iter().any(|(p, _)| {
            if p.ends_with('/') {
                file.starts_with(p)
            } else {
                file == *p
            }
        })
    };
    let offending: Vec<String> = findings
        .iter()
        .filter(|(file, _)| !allowed(file))
        .map(|(file, lines)| format!("{file}:\n    {}", lines.join("\n    ")))
        .collect();
    assert!(
        offending.is_empty(),
        "library code must return its layer's typed error (a thiserror enum), \
         not anyhow or String; anyhow belongs in src/cli/ only:\n{}",
        offending.join("\n")
    );
    let stale: Vec<&str> = NOT_YET
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !p.ends_with('/') && !findings.contains_key(*p) && Path::new(p).exists())
        .collect();
    assert!(
        stale.is_empty(),
        "no longer needed in NOT_YET, remove: {stale:?}"
    );
}

/// Whether `line` names a `Result<..., String>` (the last type argument at
/// the top level of a `Result<...>` is `String`).
fn returns_string_error(line: &str) -> bool {
    let mut rest = line;
    while let Some(at) = rest.find("Result<") {
        let args = &rest[at + "Result<".len()..];
        let (mut depth, mut last_comma, mut end) = (1usize, None, None);
        let bytes = args.as_bytes();
        for (i, c) in args.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' if i > 0 && bytes[i - 1] == b'-' => {}
                '>' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                ',' if depth == 1 => last_comma = Some(i),
                _ => {}
            }
        }
        if let (Some(comma), Some(end)) = (last_comma, end)
            && args[comma + 1..end].trim() == "String"
        {
            return true;
        }
        rest = args;
    }
    false
}

#[test]
fn the_error_type_scanner_sees_string_errors() {
    assert!(returns_string_error("fn f() -> Result<(), String> {"));
    assert!(returns_string_error(
        "pub model: Result<Arc<LoadedModel>, String>,"
    ));
    assert!(returns_string_error(
        "f: impl Fn(u8) -> Result<Vec<u8>, String>) -> Result<(), E>"
    ));
    assert!(!returns_string_error(
        "fn f() -> Result<String, EnvError> {"
    ));
    assert!(!returns_string_error("fn f() -> Result<(String, u8), E> {"));
    assert!(!returns_string_error("fn f() -> std::io::Result<String> {"));
}
