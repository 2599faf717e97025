//! `vitalflow status --pipeline FILE`: what the checkpoint store says about
//! a pipeline's instances: which writer checkpointed when, which partitions
//! each owns, at what offset and event time, and who owns each partition
//! now (the newest checkpoint with the highest offset, as a takeover reads
//! it).

use anyhow::Context;

use super::args::StatusArgs;
use crate::engine::checkpoint::{CheckpointFiles, WriterStatus, owners, status as read_status};
use crate::spec;

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let spec = spec::load(&args.pipeline)?;
    let Some(location) = spec.checkpoint_location() else {
        println!(
            "pipeline `{}` keeps no checkpoints (no Parquet sink and no checkpoint_dir:)",
            spec.name
        );
        return Ok(());
    };
    let files = CheckpointFiles::open(&location, &spec.checkpoint_store)?;
    let writers = read_status(&files)
        .with_context(|| format!("reading the checkpoints in {}", files.root()))?;
    print!(
        "{}",
        render(&spec.name, &files.root(), &writers, chrono::Utc::now())
    );
    Ok(())
}

fn age(created_at: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match chrono::DateTime::parse_from_rfc3339(created_at) {
        Ok(at) => {
            let seconds = (now - at.with_timezone(&chrono::Utc)).num_seconds().max(0);
            match seconds {
                0..120 => format!("{seconds} s ago"),
                120..7200 => format!("{} min ago", seconds / 60),
                _ => format!("{} h ago", seconds / 3600),
            }
        }
        Err(_) => "at an unknown time".to_string(),
    }
}

fn millis(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "-".to_string(), |t| t.to_rfc3339())
}

fn offset(next: Option<i64>) -> String {
    next.map_or_else(|| "-".to_string(), |o| o.to_string())
}

/// The report, as printed.
fn render(
    pipeline: &str,
    root: &str,
    writers: &[WriterStatus],
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "pipeline {pipeline}: checkpoints in {root}");
    if writers.is_empty() {
        let _ = writeln!(out, "no checkpoint yet");
        return out;
    }
    for w in writers {
        let _ = writeln!(
            out,
            "\nwriter {}: last checkpoint {} ({}), epoch {}, {} file(s)",
            w.writer,
            w.created_at,
            age(&w.created_at, now),
            w.epoch,
            w.published.len()
        );
        for (source, watermark) in &w.watermarks {
            let _ = writeln!(
                out,
                "  source {source}: watermark {}",
                millis(Some(*watermark))
            );
        }
        for (source, entries) in &w.partitions {
            for e in entries {
                let _ = writeln!(
                    out,
                    "  {source} {}/{}: {} next offset {} newest event {} state {}",
                    e.topic,
                    e.partition,
                    if e.owned { "owned" } else { "given up" },
                    offset(e.next_offset),
                    millis(e.newest_event_ms),
                    if e.state.is_empty() {
                        "-".to_string()
                    } else {
                        e.state.keys().cloned().collect::<Vec<_>>().join(",")
                    }
                );
            }
        }
    }
    let owners = owners(writers);
    if !owners.is_empty() {
        let _ = writeln!(out, "\npartitions (the state a takeover restores):");
        for ((source, partition), (w, e)) in &owners {
            let _ = writeln!(
                out,
                "  {source} {}/{}: writer {} ({}), offset {}, checkpoint {}",
                partition.topic,
                partition.partition,
                w.writer,
                if e.owned { "owner" } else { "last owner" },
                offset(e.next_offset),
                age(&w.created_at, now)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::checkpoint::PartitionEntry;
    use std::collections::BTreeMap;

    fn entry(partition: i32, next: i64, owned: bool) -> PartitionEntry {
        PartitionEntry {
            topic: "vitals".into(),
            partition,
            next_offset: Some(next),
            newest_event_ms: Some(1_764_489_600_000),
            state: BTreeMap::from([("per_minute".to_string(), "state-1.arrow".to_string())]),
            owned,
        }
    }

    fn writer(name: &str, at: &str, entries: Vec<PartitionEntry>) -> WriterStatus {
        WriterStatus {
            writer: name.into(),
            manifest: format!("/c/{name}/checkpoint-1.json"),
            epoch: 3,
            created_at: at.into(),
            published: Vec::new(),
            state: BTreeMap::new(),
            partitions: BTreeMap::from([("monitors".to_string(), entries)]),
            watermarks: BTreeMap::new(),
        }
    }

    #[test]
    fn the_owner_of_a_partition_is_the_entry_with_the_highest_offset() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T18:00:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let a = writer(
            "a",
            "2026-11-30T18:00:00Z",
            vec![entry(0, 100, true), entry(1, 50, false)],
        );
        let b = writer("b", "2026-11-30T18:00:20Z", vec![entry(1, 80, true)]);
        let text = render("vitals", "/c", &[a, b], now);
        assert!(
            text.contains("last checkpoint 2026-11-30T18:00:00Z (30 s ago)"),
            "{text}"
        );
        assert!(
            text.contains("monitors vitals/1: given up next offset 50"),
            "{text}"
        );
        assert!(
            text.contains("monitors vitals/0: writer a (owner), offset 100"),
            "{text}"
        );
        assert!(
            text.contains("monitors vitals/1: writer b (owner), offset 80, checkpoint 10 s ago"),
            "{text}"
        );
    }
}
