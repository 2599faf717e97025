//! What a pipeline benchmark run reports.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: u64,
    pub rows_stored: u64,
    pub files: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub peak_rss_bytes: Option<u64>,
    /// The file-backed part of RSS at the end (the binary's code, shared
    /// libraries): resident memory the pipeline's data does not explain.
    pub mapped_files_rss_bytes: Option<u64>,
}

impl BenchReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "events:        {}", self.events)?;
        writeln!(
            f,
            "rows stored:   {} in {} files ({:.1} MiB)",
            self.rows_stored,
            self.files,
            self.bytes as f64 / 1048576.0
        )?;
        writeln!(f, "elapsed:       {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput:    {:.0} events/s", self.events_per_second())?;
        match self.peak_rss_bytes {
            Some(b) => {
                write!(f, "peak RSS:      {:.1} MB", b as f64 / 1e6)?;
                if let Some(mapped) = self.mapped_files_rss_bytes {
                    write!(
                        f,
                        " (of which mapped files, mostly the binary's code: {:.1} MB at the end)",
                        mapped as f64 / 1e6
                    )?;
                }
                Ok(())
            }
            None => write!(f, "peak RSS:      unavailable on this platform"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_prints_the_figures_the_cli_test_reads() {
        let report = BenchReport {
            events: 2_000,
            rows_stored: 2_000,
            files: 3,
            bytes: 3 * 1048576,
            elapsed: Duration::from_secs(2),
            peak_rss_bytes: Some(100_000_000),
            mapped_files_rss_bytes: Some(40_000_000),
        };
        let text = report.to_string();
        assert!(text.starts_with("events:        2000\n"), "{text}");
        assert!(
            text.contains("rows stored:   2000 in 3 files (3.0 MiB)"),
            "{text}"
        );
        assert!(text.contains("throughput:    1000 events/s"), "{text}");
        assert!(
            text.contains("peak RSS:      100.0 MB (of which mapped files"),
            "{text}"
        );
    }
}
