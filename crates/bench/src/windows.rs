//! The windowed benchmark's pipelines (`vitalflow bench --windows`, `cargo
//! bench --bench windows`): unpaced simulator, many patients -> per-patient
//! event-time windows -> Parquet.
//!
//! Two shapes, run in separate processes so each peak RSS is its own:
//! - `ward` (default): per patient, the shipped 1-minute risk windows (the
//!   NEWS2 UDF plugin, a join with the static patients table, the diabetes
//!   model as a SQL function) and the 10 s / 1 min hopping view.
//! - `count`: a 1-second tumbling count per patient, the job Arroyo's own
//!   benchmark runs (the bar for the window engine on this machine).

use std::path::Path;

use crate::sql_block;

pub const RISK_SQL: &str = include_str!("../../../sql/patient_risk.sql");
pub const ROLLING_SQL: &str = include_str!("../../../sql/vitals_rolling.sql");
const COUNT_SQL: &str = "SELECT patient_id, w.end AS window_end, readings FROM (SELECT patient_id, tumble(interval '1 second') AS w, count(*) AS readings FROM monitors GROUP BY patient_id, w)";

/// Which windowed job to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Ward,
    Count,
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ward" => Ok(Shape::Ward),
            "count" => Ok(Shape::Count),
            other => Err(format!("unknown bench shape `{other}` (ward, count)")),
        }
    }
}

fn sink(name: &str, input: &str, output: &Path) -> String {
    let time = if name == "counts" {
        "window_end"
    } else {
        "window_start"
    };
    format!(
        "  {name}:
    kind: parquet
    input: {input}
    path: \"{}\"
    partition_by_date: {time}
    sort_by: [patient_id, {time}]
",
        output.join(name).display()
    )
}

/// The pipeline for `shape`. `repo`: the vitalflow repository, whose UDF
/// plugins (`udfs/`), model (`models/`) and patients table (`config/`) the
/// `ward` shape loads.
pub fn pipeline_yaml(
    shape: Shape,
    events: u64,
    patients: u32,
    output: &Path,
    repo: &Path,
) -> String {
    // Ward: one reading per patient per second. Count: ten, so each
    // 1-second window aggregates several events per key.
    let interval = match shape {
        Shape::Ward => "1s",
        Shape::Count => "100ms",
    };
    let transforms = match shape {
        Shape::Ward => format!(
            "  patient_risk:\n    sql: |\n{}  rolling:\n    sql: |\n{}",
            sql_block(RISK_SQL),
            sql_block(ROLLING_SQL)
        ),
        Shape::Count => format!("  counts:\n    sql: |\n{}", sql_block(COUNT_SQL)),
    };
    let sinks = match shape {
        Shape::Ward => {
            sink("patient_risk", "patient_risk", output) + &sink("rolling", "rolling", output)
        }
        Shape::Count => sink("counts", "counts", output),
    };
    let root = repo.display();
    let scoring = match shape {
        Shape::Ward => format!(
            "udfs: [\"{root}/udfs/news2\", \"{root}/udfs/news2_missing\"]
models:
  diabetes_risk: {{ path: \"{root}/models/diabetes_rf.onnx\" }}
tables:
  patients: {{ path: \"{root}/config/patients.csv\" }}
"
        ),
        Shape::Count => String::new(),
    };
    format!(
        "name: bench-windows
{scoring}sources:
  monitors:
    kind: simulator
    patients: {patients}
    interval: {interval}
    pacing: unpaced
    limit: {events}
    start: \"2026-01-01T00:00:00Z\"
    event_time: {{ column: ts, max_delay: 5s }}
transforms:
{transforms}sinks:
{sinks}  late:
    kind: parquet
    input: monitors_late_events
    path: \"{}\"
",
        output.join("late").display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_unknown_ones_are_named() {
        assert_eq!("ward".parse(), Ok(Shape::Ward));
        assert_eq!("count".parse(), Ok(Shape::Count));
        assert_eq!(
            "bogus".parse::<Shape>(),
            Err("unknown bench shape `bogus` (ward, count)".to_string())
        );
    }

    #[test]
    fn the_ward_shape_loads_the_repository_plugins_and_the_count_shape_does_not() {
        let (out, repo) = (Path::new("/o"), Path::new("/repo"));
        let ward = pipeline_yaml(Shape::Ward, 10, 2, out, repo);
        assert!(ward.contains("udfs: [\"/repo/udfs/news2\""), "{ward}");
        assert!(ward.contains("path: \"/o/patient_risk\""), "{ward}");
        assert!(ward.contains("interval: 1s\n"), "{ward}");
        let count = pipeline_yaml(Shape::Count, 10, 2, out, repo);
        assert!(!count.contains("udfs:"), "{count}");
        assert!(
            count.contains("sort_by: [patient_id, window_end]"),
            "{count}"
        );
        assert!(count.contains("interval: 100ms\n"), "{count}");
    }
}
