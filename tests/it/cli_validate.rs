//! `vitalflow validate`: every invalid-pipeline case gives its clear error.
//!
//! Cases are golden files in `tests/pipelines/invalid/`; each starts with
//! `# expect: <text>` lines that must all appear in the error.

use std::path::Path;
use std::process::Command;

use vitalflow::{engine, spec};

use super::support::binary;

async fn validate(path: &Path) -> Result<usize, String> {
    let spec = spec::load(path).map_err(|e| e.to_string())?;
    let planned = engine::plan(spec).await.map_err(|e| e.to_string())?;
    Ok(planned.tables.len())
}

fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_invalid_case_fails_with_its_message() {
    let mut cases: Vec<_> = std::fs::read_dir("tests/pipelines/invalid")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "golden cases went missing");
    let mut failures = Vec::new();
    for case in &cases {
        let expected = expectations(case);
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            case.display()
        );
        match validate(case).await {
            Ok(_) => failures.push(format!("{}: validated but should fail", case.display())),
            Err(message) => {
                for want in &expected {
                    if !message.contains(want.as_str()) {
                        failures.push(format!(
                            "{}: error does not mention `{want}`:\n    {message}",
                            case.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn shipped_pipelines_are_valid() {
    for entry in std::fs::read_dir("pipelines").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            validate(&path)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// `vitalflow query` plans a pipeline for its tables' schemas only: they
/// must be exactly those of the plan a run uses, nullability and metadata
/// included, for every shipped pipeline; and a transform planned that way
/// cannot be started by mistake.
#[tokio::test]
async fn schemas_only_planning_gives_the_schemas_of_a_full_plan() {
    let mut compared = 0;
    for entry in std::fs::read_dir("pipelines").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let full = engine::plan(spec::load(&path).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schemas = engine::plan_to(spec::load(&path).unwrap(), engine::Depth::Schemas)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(schemas.tables, full.tables, "{}", path.display());
        for transform in &schemas.transforms {
            let full_plan = full.transform(transform.name()).unwrap();
            assert_eq!(
                transform.plan.output_schema(),
                full_plan.plan.output_schema(),
                "{}: {}",
                path.display(),
                transform.name()
            );
            if full_plan.plan.state_key_columns().is_none() && transform.plan.start().is_err() {
                compared += 1;
            }
        }
    }
    // The shipped pipelines have four stateless SQL transforms.
    assert!(
        compared >= 4,
        "stateless transforms planned for their schema only: {compared}"
    );
}

#[test]
fn cli_reports_each_file_and_exits_non_zero() {
    let output = Command::new(binary())
        .args([
            "validate",
            "pipelines/vitals.yaml",
            "tests/pipelines/invalid/unknown_column.yaml",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stdout.contains("pipelines/vitals.yaml: ok"), "{stdout}");
    assert!(
        stderr.contains("unknown_column.yaml") && stderr.contains("hart_rate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 pipeline file(s) invalid"),
        "{stderr}"
    );

    let ok = Command::new(binary())
        .args(["validate", "pipelines/vitals.yaml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test]
async fn environment_variables_fill_deploy_specific_values() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: env\nsources:\n  monitors:\n    kind: simulator\nsinks:\n  out:\n    kind: parquet\n    input: monitors\n    path: ${VITALFLOW_TEST_DIR_FOR_ENV:-fallback}/vitals\n  topic:\n    kind: kafka\n    input: monitors\n    brokers: ${VITALFLOW_TEST_BROKERS_FOR_ENV:-localhost:9092}\n    topic: ${VITALFLOW_TEST_TOPIC_FOR_ENV:-scored}\n";
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, yaml).unwrap();
    let spec = spec::load(&path).unwrap();
    let vitalflow::sinks::SinkConfig::Parquet(config) = &spec.sinks[0].config else {
        panic!("a parquet sink")
    };
    assert_eq!(config.path.as_str(), "fallback/vitals");
    let vitalflow::sinks::SinkConfig::Kafka(config) = &spec.sinks[1].config else {
        panic!("a kafka sink")
    };
    assert_eq!(config.brokers.as_str(), "localhost:9092");
    assert_eq!(config.topic.as_str(), "scored");
}
