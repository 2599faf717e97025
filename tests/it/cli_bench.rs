//! `vitalflow bench`: the figures it prints describe the run it did.

use super::support::*;

fn bench(args: &[&str]) -> (bool, String, String) {
    run_binary(["--log", "warn", "bench"].iter().chain(args))
}

/// The number after `label` on its line of the report.
fn figure(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` in:\n{report}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in `{line}`"))
}

#[test]
fn pipeline_bench_stores_every_event_and_reports_memory() {
    let (ok, out, err) = bench(&["--events", "30000"]);
    assert!(ok, "{err}");
    assert_eq!(figure(&out, "events:"), 30_000);
    assert_eq!(figure(&out, "rows stored:"), 30_000);
    assert!(out.contains("events/s"), "{out}");
    assert!(
        out.contains("peak RSS:") && out.contains("mapped files"),
        "{out}"
    );
}

/// 10 patients x 3,000 readings 100 ms apart: 300 one-second windows each.
#[test]
fn windowed_count_bench_closes_every_window() {
    let (ok, out, err) = bench(&[
        "--windows",
        "count",
        "--events",
        "30000",
        "--patients",
        "10",
    ]);
    assert!(ok, "{err}");
    assert_eq!(figure(&out, "events:"), 30_000);
    assert_eq!(figure(&out, "rows stored:"), 3_000);
}

#[test]
fn bad_bench_arguments_are_named() {
    let (ok, _, err) = bench(&["--windows", "bogus"]);
    assert!(!ok);
    assert!(
        err.contains("unknown bench shape `bogus` (ward, count)"),
        "{err}"
    );
    let (ok, _, err) = bench(&["--windows", "count", "--storage"]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}
