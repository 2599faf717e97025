//! Raw YAML structs -> [`PipelineSpec`]. Every cross-key check lives here.

use std::collections::HashSet;
use std::path::Path;

use super::raw::{RawPipeline, RawTransform};
use super::{PipelineSpec, SinkSpec, SourceSpec, SpecError, TransformSpec};
use crate::common::Spanned;

/// Read and validate a pipeline file.
pub fn load(path: &Path) -> Result<PipelineSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validate pipeline YAML text; `path` names it in errors and anchors
/// relative paths (SQL files).
pub fn parse(text: &str, path: &Path) -> Result<PipelineSpec, SpecError> {
    let raw: RawPipeline = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        SpecError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: clean_message(&e.to_string()),
            snippet: snippet(text, line),
        }
    })?;
    from_raw(raw, path)
}

/// `\n  7 |     patients: lots` for line 7, or nothing. Error messages end
/// up in logs: a line that may hold a secret (anything under `properties:`
/// or `store:`, or a key that names a password, secret, token or
/// credential) is shown with its value replaced by `<redacted>`.
fn snippet(text: &str, line: u64) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(index) = line.checked_sub(1).map(|i| i as usize) else {
        return String::new();
    };
    match lines.get(index) {
        Some(source) if !source.trim().is_empty() => {
            let shown = if may_hold_secret(&lines, index) {
                redact_value(source)
            } else {
                source.to_string()
            };
            format!("\n  {line} | {shown}")
        }
        _ => String::new(),
    }
}

/// Keys whose values are never shown.
const SECRET_BLOCKS: [&str; 2] = ["properties", "store"];
const SECRET_WORDS: [&str; 6] = ["password", "secret", "token", "credential", "sasl", "key"];

/// Whether line `index` is inside a `properties:`/`store:` block or is a
/// sensitive key itself (judged by indentation, which is how YAML nests).
fn may_hold_secret(lines: &[&str], index: usize) -> bool {
    let key_of = |l: &str| {
        l.trim_start()
            .trim_start_matches("- ")
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\''])
            .to_ascii_lowercase()
    };
    let own = key_of(lines[index]);
    if SECRET_WORDS.iter().any(|w| own.contains(w)) || lines[index].contains("{") {
        // Flow mappings (`store: {secret_access_key: ...}`) hide keys inside.
        return true;
    }
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut level = indent(lines[index]);
    for l in lines[..index].iter().rev() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if indent(l) < level {
            level = indent(l);
            if SECRET_BLOCKS.contains(&key_of(l).as_str()) {
                return true;
            }
        }
    }
    false
}

/// `    sasl.password: hunter2` -> `    sasl.password: <redacted>`.
fn redact_value(source: &str) -> String {
    match source.split_once(':') {
        Some((key, value)) if !value.trim().is_empty() => format!("{key}: <redacted>"),
        Some((key, _)) => format!("{key}:"),
        None => "<redacted>".to_string(),
    }
}

/// serde-saphyr renders `error: line L column C: message` and a code
/// snippet; our error already names file, line and column, so keep the
/// message itself.
fn clean_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let without_prefix = first.strip_prefix("error: ").unwrap_or(first);
    match without_prefix.strip_prefix("line ") {
        Some(rest) => match rest.split_once(": ") {
            Some((position, message)) if position.contains("column") => message.to_string(),
            _ => without_prefix.to_string(),
        },
        None => without_prefix.to_string(),
    }
}

fn from_raw(raw: RawPipeline, path: &Path) -> Result<PipelineSpec, SpecError> {
    let name = raw.name.value.trim().to_string();
    if name.is_empty() {
        return Err(SpecError::invalid(
            path,
            "name",
            raw.name.referenced.line(),
            "pipeline name must not be empty",
        ));
    }
    if raw.sources.is_empty() {
        return Err(SpecError::invalid(
            path,
            "sources",
            0,
            "a pipeline needs at least one source",
        ));
    }
    if raw.sinks.is_empty() {
        return Err(SpecError::invalid(
            path,
            "sinks",
            0,
            "a pipeline needs at least one sink",
        ));
    }

    let mut tables: HashSet<String> = HashSet::new();
    let mut sources = Vec::new();
    for (source_name, config) in raw.sources {
        let line = config.referenced.line();
        check_identifier(path, "sources", &source_name, line)?;
        tables.insert(source_name.clone());
        if config.value.dead_letter_schema().is_some() {
            tables.insert(crate::sources::dead_letter_table(&source_name));
        }
        if config.value.event_time().is_some() {
            tables.insert(crate::sources::late_events_table(&source_name));
        }
        config
            .value
            .validate()
            .map_err(|msg| SpecError::invalid(path, format!("sources.{source_name}"), line, msg))?;
        sources.push(SourceSpec {
            name: source_name,
            line,
            config: config.value,
        });
    }

    let base = path.parent().unwrap_or(Path::new("."));
    let mut static_tables = Vec::new();
    for (table_name, table) in raw.tables {
        let line = table.referenced.line();
        check_identifier(path, "tables", &table_name, line)?;
        if !tables.insert(table_name.clone()) {
            return Err(SpecError::invalid(
                path,
                format!("tables.{table_name}"),
                line,
                format!(
                    "the name `{table_name}` is already used by a source; table names must be unique"
                ),
            ));
        }
        static_tables.push(super::StaticTableSpec {
            name: table_name,
            line,
            path: base.join(&table.value.path.0),
        });
    }
    let mut models = Vec::new();
    for (model_name, model) in raw.models {
        let line = model.referenced.line();
        check_identifier(path, "models", &model_name, line)?;
        models.push(super::ModelSpec {
            name: model_name,
            line,
            path: base.join(&model.value.path.0),
            sidecar: model.value.sidecar.map(|s| base.join(&s.0)),
            runtime: model.value.runtime,
        });
    }

    let mut transforms = Vec::new();
    for (transform_name, raw_transform) in raw.transforms {
        let line = raw_transform.referenced.line();
        check_identifier(path, "transforms", &transform_name, line)?;
        if !tables.insert(transform_name.clone()) {
            return Err(SpecError::invalid(
                path,
                format!("transforms.{transform_name}"),
                line,
                format!(
                    "the name `{transform_name}` is already used by a source or table; table names must be unique"
                ),
            ));
        }
        let mut raw_transform = raw_transform.value;
        if let Some(alert) = raw_transform.alert.take() {
            if raw_transform.sql.is_some() || raw_transform.sql_file.is_some() {
                return Err(SpecError::invalid(
                    path,
                    format!("transforms.{transform_name}"),
                    line,
                    "give either `alert` or SQL (`sql` / `sql_file`), not both",
                ));
            }
            alert.validate().map_err(|message| {
                SpecError::invalid(
                    path,
                    format!("transforms.{transform_name}.alert"),
                    line,
                    message,
                )
            })?;
            transforms.push(TransformSpec {
                name: transform_name,
                line,
                sql: String::new(),
                origin: format!("alert at line {line}"),
                alert: Some(alert),
            });
            continue;
        }
        let (sql, origin) = read_sql(path, &transform_name, line, raw_transform)?;
        transforms.push(TransformSpec {
            name: transform_name,
            line,
            sql,
            origin,
            alert: None,
        });
    }

    let mut sinks = Vec::new();
    let mut sink_names = HashSet::new();
    for (sink_name, config) in raw.sinks {
        let line = config.referenced.line();
        check_identifier(path, "sinks", &sink_name, line)?;
        sink_names.insert(sink_name.clone());
        let input = config.value.input().clone();
        let input_line = match input.referenced.line() {
            0 => line,
            l => l,
        };
        if static_tables.iter().any(|t| t.name == input.value) {
            return Err(SpecError::invalid(
                path,
                format!("sinks.{sink_name}.input"),
                input_line,
                format!(
                    "`{}` is a static table (read once, never changes); a sink writes a source or a transform",
                    input.value
                ),
            ));
        }
        if !tables.contains(&input.value) {
            let mut known: Vec<_> = tables.iter().map(String::as_str).collect();
            known.sort_unstable();
            return Err(SpecError::invalid(
                path,
                format!("sinks.{sink_name}.input"),
                input_line,
                format!(
                    "table `{}` does not exist; sources and transforms are: {}",
                    input.value,
                    known.join(", ")
                ),
            ));
        }
        config
            .value
            .validate()
            .map_err(|msg| SpecError::invalid(path, format!("sinks.{sink_name}"), line, msg))?;
        sinks.push(SinkSpec {
            name: sink_name,
            line,
            input: input.value,
            config: config.value,
        });
    }

    let checkpoint_dir = raw
        .checkpoint_dir
        .map(|dir| crate::storage::Location::parse(dir.as_str(), Path::new(".")))
        .transpose()
        .map_err(|e| SpecError::invalid(path, "checkpoint_dir", 0, e))?;
    let checkpoint_store: std::collections::BTreeMap<String, String> = raw
        .checkpoint_store
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().to_string()))
        .collect();
    match checkpoint_dir.as_ref().and_then(|l| l.as_remote()) {
        Some(remote) => crate::storage::store::check_settings(remote.kind, &checkpoint_store)
            .map_err(|e| SpecError::invalid(path, "checkpoint_store", 0, e))?,
        None if !checkpoint_store.is_empty() => {
            return Err(SpecError::invalid(
                path,
                "checkpoint_store",
                0,
                "settings for an object store, but `checkpoint_dir` is not an s3:// or hdfs:// location",
            ));
        }
        None => {}
    }

    Ok(PipelineSpec {
        name,
        path: path.to_path_buf(),
        sources,
        transforms,
        sinks,
        checkpoint_dir,
        checkpoint_store,
        checkpoint_retention: raw
            .checkpoint_retention
            .map_or(std::time::Duration::from_secs(7 * 24 * 3600), |d| d.0),
        udfs: raw
            .udfs
            .into_iter()
            .map(|u| super::UdfSpec {
                dir: path.parent().unwrap_or(Path::new(".")).join(&u.value.0),
                line: u.referenced.line(),
            })
            .collect(),
        models,
        tables: static_tables,
    })
}

fn read_sql(
    path: &Path,
    transform: &str,
    line: u64,
    raw: RawTransform,
) -> Result<(String, String), SpecError> {
    let key = format!("transforms.{transform}");
    match (raw.sql, raw.sql_file) {
        (Some(sql), None) => {
            let origin = format!("inline SQL at line {}", sql.referenced.line());
            check_not_blank(path, &key, &sql)?;
            Ok((sql.value, origin))
        }
        (None, Some(file)) => {
            let base = path.parent().unwrap_or(Path::new("."));
            let sql_path = base.join(&file.value);
            let sql = std::fs::read_to_string(&sql_path).map_err(|source| SpecError::SqlFile {
                path: path.to_path_buf(),
                key: format!("{key}.sql_file"),
                line: file.referenced.line(),
                sql_file: sql_path.clone(),
                source,
            })?;
            if sql.trim().is_empty() {
                return Err(SpecError::invalid(
                    path,
                    format!("{key}.sql_file"),
                    file.referenced.line(),
                    format!("SQL file {} is empty", sql_path.display()),
                ));
            }
            Ok((sql, sql_path.display().to_string()))
        }
        (Some(_), Some(_)) => Err(SpecError::invalid(
            path,
            key,
            line,
            "give either `sql` or `sql_file`, not both",
        )),
        (None, None) => Err(SpecError::invalid(
            path,
            key,
            line,
            "a transform needs `sql` (inline), `sql_file` or `alert`",
        )),
    }
}

fn check_not_blank(path: &Path, key: &str, sql: &Spanned<String>) -> Result<(), SpecError> {
    if sql.value.trim().is_empty() {
        return Err(SpecError::invalid(
            path,
            format!("{key}.sql"),
            sql.referenced.line(),
            "SQL is empty",
        ));
    }
    Ok(())
}

/// Table and sink names become SQL identifiers and directory names, so keep
/// them to lower-case ASCII letters, digits and `_`, starting with a letter.
fn check_identifier(path: &Path, section: &str, name: &str, line: u64) -> Result<(), SpecError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SpecError::invalid(
            path,
            format!("{section}.{name}"),
            line,
            format!(
                "`{name}` is not a valid name: use lower-case letters, digits and `_`, starting with a letter"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_never_show_values_that_may_be_secrets() {
        let yaml = "name: x\nsources:\n  k:\n    kind: kafka\n    properties:\n      sasl.username: svc\n      ssl.key.password: hunter2\n    topic: t\nsinks:\n  s:\n    store: {secret_access_key: hunter2}\n    path: data\n";
        for line in [6, 7, 11] {
            let shown = snippet(yaml, line);
            assert!(
                !shown.contains("hunter2") && !shown.contains("svc"),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert!(snippet(yaml, 8).contains("topic: t"));
        assert!(snippet(yaml, 12).contains("path: data"));
    }
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use proptest::prelude::*;

    /// Lines built from pipeline keys and values, indented at random: text
    /// that looks like a pipeline often enough to reach the validator.
    fn yamlish() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("name"),
            Just("sources"),
            Just("transforms"),
            Just("sinks"),
            Just("kind"),
            Just("simulator"),
            Just("kafka"),
            Just("parquet"),
            Just("input"),
            Just("path"),
            Just("sql"),
            Just("schema"),
            Just("event_time"),
            Just("patients"),
            Just("topic"),
            Just("m"),
            Just("s"),
            Just("t"),
            Just("- name"),
            Just("type"),
            Just("roll"),
        ];
        let value = prop_oneof![
            Just(""),
            Just("x"),
            Just("1"),
            Just("-5"),
            Just("500ms"),
            Just("SELECT * FROM m"),
            Just("{a: 1}"),
            Just("[1, 2]"),
            Just("${X:-d}"),
            Just("'q"),
            Just("\"q"),
            Just("&a"),
            Just("*a"),
            Just("!!binary AA"),
            Just("~"),
            Just("1e999"),
            Just("timestamp"),
        ];
        proptest::collection::vec((0usize..4, key, value), 0..16).prop_map(|lines| {
            lines
                .into_iter()
                .map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(indent)))
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, max_shrink_time: 10_000, ..Default::default() })]

        /// Any text is a pipeline or an error that names the file; never a
        /// panic.
        #[test]
        fn arbitrary_text_is_a_pipeline_or_a_clear_error(text in "\\PC{0,300}") {
            if let Err(e) = parse(&text, Path::new("fuzz.yaml")) {
                prop_assert!(e.to_string().contains("fuzz.yaml"), "{}", e);
            }
        }

        #[test]
        fn pipeline_shaped_text_is_a_pipeline_or_a_clear_error(text in yamlish()) {
            if let Err(e) = parse(&text, Path::new("fuzz.yaml")) {
                prop_assert!(e.to_string().contains("fuzz.yaml"), "{}", e);
            }
        }
    }
}
