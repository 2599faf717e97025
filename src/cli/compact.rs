//! `vitalflow compact`: merge the closed days of a pipeline's local,
//! date-partitioned Parquet datasets (see `sinks::parquet::compact`).

use std::time::SystemTime;

use anyhow::Context;

use super::args::CompactArgs;
use crate::sinks::SinkConfig;
use crate::sinks::parquet::compact::{CompactionPolicy, Compactor, DayCompacted};
use crate::spec;

pub async fn compact(args: CompactArgs) -> anyhow::Result<()> {
    let spec = spec::load(&args.pipeline)?;
    let policy = CompactionPolicy {
        quiet: args.quiet,
        open_day_files: args.open_day_files,
        memory: (args.memory_mib as usize) << 20,
    };
    for name in &args.sinks {
        anyhow::ensure!(
            spec.sinks
                .iter()
                .any(|s| &s.name == name && matches!(s.config, SinkConfig::Parquet(_))),
            "pipeline `{}` has no Parquet sink `{name}`",
            spec.name
        );
    }
    let (mut compacted, mut failed) = (0, 0);
    for sink in &spec.sinks {
        let SinkConfig::Parquet(config) = &sink.config else {
            continue;
        };
        let named = args.sinks.contains(&sink.name);
        if !args.sinks.is_empty() && !named {
            continue;
        }
        let compactor = match Compactor::new(&sink.name, config, policy) {
            Ok(compactor) => compactor,
            // Asked for by name: say why not. Otherwise skip it quietly.
            Err(e) if named => return Err(e.into()),
            Err(e) => {
                tracing::info!("{e}");
                continue;
            }
        };
        let done = match args.day {
            Some(day) => compactor
                .compact_day(day)
                .await
                .map(|d| d.map(|d| vec![Ok(d)])),
            None => compactor.compact_closed_days(SystemTime::now()).await,
        }
        .with_context(|| format!("compacting sink `{}`", sink.name))?;
        let Some(done) = done else {
            println!(
                "{}: skipped ({})",
                sink.name,
                if args.day.is_some() {
                    "another compaction is running, or the day has fewer than two files"
                } else {
                    "another compaction of this dataset is running"
                }
            );
            continue;
        };
        if done.is_empty() {
            println!("{}: no closed day to compact", sink.name);
        }
        for day in &done {
            match day {
                Ok(day) => {
                    println!("{}: {}", sink.name, describe(day));
                    compacted += 1;
                }
                Err(e) => {
                    println!("{}: failed: {}", sink.name, crate::common::ErrorChain(e));
                    failed += 1;
                }
            }
        }
    }
    println!("{compacted} day(s) compacted");
    anyhow::ensure!(
        failed == 0,
        "{failed} day(s) could not be compacted (left as they were)"
    );
    Ok(())
}

fn describe(d: &DayCompacted) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut line = format!(
        "date={} {} files ({:.1} MiB) -> {} file(s) ({:.1} MiB), {} rows, {:.1} s",
        d.day,
        d.files_in,
        mib(d.bytes_in),
        d.files_out,
        mib(d.bytes_out),
        d.rows,
        d.elapsed.as_secs_f64()
    );
    if d.late_files > 0 {
        line += &format!(
            "; {} file(s) published meanwhile kept beside it",
            d.late_files
        );
    }
    line
}
