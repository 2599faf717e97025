//! The throughput benchmark's pipeline (`vitalflow bench`, `cargo bench
//! --bench pipeline`): unpaced simulator -> the shipped scoring SQL
//! (projection, filter, CASE-heavy NEWS2 sub-scores) -> date-partitioned
//! Parquet.

use std::path::Path;

/// The shipped per-reading scoring transform, the same file the default
/// pipeline runs.
pub const SCORING_SQL: &str = include_str!("../../../sql/vitals_scored.sql");

/// [`SCORING_SQL`] as the body of a `sql: |` block of a transform (six
/// spaces in), for the benchmarks' pipeline YAML.
pub fn scoring_sql_block() -> String {
    crate::sql_block(SCORING_SQL)
}

/// The benchmark pipeline as YAML: what a user would write for the same job.
pub fn pipeline_yaml(events: u64, patients: u32, output: &Path) -> String {
    format!(
        "name: bench
sources:
  monitors:
    kind: simulator
    patients: {patients}
    pacing: unpaced
    limit: {events}
    start: \"2026-01-01T00:00:00Z\"
{}",
        scored_vitals_yaml(output, "")
    )
}

/// What every scoring benchmark ends with, from `transforms:` on: the
/// shipped scoring SQL over `monitors` and the `vitals` sink writing it
/// date-partitioned and sorted to `output`; `sink_extra` is more of the
/// sink's keys (4 spaces in, one per line). Other sinks may follow.
pub fn scored_vitals_yaml(output: &Path, sink_extra: &str) -> String {
    format!(
        "transforms:
  scored:
    sql: |
{sql}
sinks:
  vitals:
    kind: parquet
    input: scored
    path: \"{}\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
{sink_extra}",
        output.display(),
        sql = scoring_sql_block(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scoring_sql_is_indented_under_its_transform() {
        let yaml = pipeline_yaml(1_000, 5, Path::new("/tmp/out"));
        assert!(yaml.contains("    limit: 1000\n"), "{yaml}");
        assert!(yaml.contains("    path: \"/tmp/out\"\n"), "{yaml}");
        let block = scoring_sql_block();
        assert!(yaml.contains(&block));
        assert!(block.lines().all(|l| l.starts_with("      ")));
        assert_eq!(block.lines().count(), SCORING_SQL.lines().count());
    }
}
