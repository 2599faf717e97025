//! The history benchmark: the dashboard's trend endpoint over ~20M stored
//! readings (see `vitalflow_bench::history`), through the real server
//! (HTTP, a viewer's token, the bounded query session) on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use vitalflow_bench::history::{Compaction, DAY, HistoryReport, Latencies, dataset_yaml};
use vitalflow_bench::{BenchReport, memory};

use crate::auth::{Authenticator, Role, Sessions, TokensFile, tokens};
use crate::engine::{self, RunOptions};
use crate::query::{QueryLimits, QuerySession, datasets_of};
use crate::server::{self, AppState};
use crate::sinks::parquet::compact::{CompactionPolicy, Compactor};
use crate::spec;

/// The server's default query limits (`--query-memory`, `--query-threads`).
const LIMITS: QueryLimits = QueryLimits {
    memory: Some(512 << 20),
    threads: 2,
};

/// Build the dataset in `work`, then time `requests` whole-day trends of
/// random patients, and as many raw reads of a patient-day.
pub async fn run(patients: u32, requests: usize, work: &Path) -> anyhow::Result<HistoryReport> {
    let yaml = dataset_yaml(patients, &work.join("vitals"));
    let planned = engine::plan(spec::parse(&yaml, &work.join("history-bench.yaml"))?).await?;
    let summary = engine::run(&planned, CancellationToken::new(), RunOptions::default()).await?;
    let (rows_stored, files, bytes) = summary.sinks.iter().fold((0, 0, 0), |(r, f, b), (_, s)| {
        (r + s.rows, f + s.files, b + s.bytes)
    });
    let dataset = BenchReport {
        events: summary.records_in(),
        rows_stored,
        files,
        bytes,
        elapsed: summary.elapsed,
        peak_rss_bytes: memory::peak_rss_bytes(),
        mapped_files_rss_bytes: memory::mapped_files_rss_bytes(),
    };
    let datasets = datasets_of(&planned)?;
    let session = QuerySession::with_limits(&datasets, LIMITS).await?;
    let raw_session = QuerySession::with_limits(&datasets, LIMITS).await?;
    let readings_only: Vec<_> = datasets
        .iter()
        .filter(|d| d.name == "vitals")
        .cloned()
        .collect();
    let no_rollup = QuerySession::with_limits(&readings_only, LIMITS).await?;

    let tokens_file = work.join("tokens.yaml");
    let token = tokens::create(&tokens_file, "bench", [Role::Viewer].into_iter().collect())?;
    let stop = CancellationToken::new();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for datasets in [session, no_rollup] {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        bases.push(format!("http://{}", listener.local_addr()?));
        let auth = Authenticator {
            tokens: Some(TokensFile::open(&tokens_file)?),
            oidc: None,
            sessions: Sessions::new(Duration::from_secs(3600)),
            insecure: false,
        };
        let state = AppState::new(Err("no model in this benchmark".into()))
            .with_auth(auth)
            .with_datasets(Ok(datasets));
        servers.push(tokio::spawn(server::serve(listener, state, stop.clone())));
    }

    let http = reqwest::Client::new();
    let from = format!("{DAY}T00:00:00Z");
    let to = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d")?
        .succ_opt()
        .context("the day after the dataset's")?
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    let trends = Trends {
        http: &http,
        bases: &bases,
        token: &token,
        from: &from,
        to: &to,
        patients,
    };
    let (endpoint, endpoint_no_rollup, max_points, readings_per_answer) =
        trends.time(requests).await?;
    let mut rng = rand::rng();
    let mut raw = Latencies::default();
    let mut raw_rows = 0;
    for i in 0..requests + 3 {
        let id = trends.patient(rng.random_range(1..=patients));
        let sql = format!(
            "SELECT * FROM vitals WHERE patient_id = '{id}' AND date = '{DAY}' \
             AND ts >= TIMESTAMP '{from}' AND ts < TIMESTAMP '{to}'"
        );
        let started = Instant::now();
        let (_, batches) = crate::query::run_sql(&raw_session.ctx, &sql).await?;
        let took = started.elapsed();
        raw_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        if i >= 3 {
            raw.0.push(took);
        }
    }
    // What the compactor does once the day has closed: one sorted file
    // per dataset instead of one per checkpoint. The servers stay up (their
    // next listing sees the swapped directories).
    let mut compaction = Vec::new();
    for sink in &planned.spec.sinks {
        let crate::sinks::SinkConfig::Parquet(config) = &sink.config else {
            continue;
        };
        // Datasets not partitioned by date (`late`) have no day to close.
        let Ok(compactor) = Compactor::new(&sink.name, config, CompactionPolicy::default()) else {
            continue;
        };
        let day = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d")?;
        if let Some(done) = compactor.compact_day(day).await? {
            compaction.push(Compaction {
                dataset: sink.name.clone(),
                files_in: done.files_in,
                files_out: done.files_out,
                rows: done.rows,
                elapsed: done.elapsed,
            });
        }
    }
    let (compacted, compacted_no_rollup, _, _) = trends.time(requests).await?;
    stop.cancel();
    for served in servers {
        served.await??;
    }
    Ok(HistoryReport {
        dataset,
        patients,
        endpoint,
        endpoint_no_rollup,
        max_points,
        readings_per_answer,
        raw,
        raw_rows,
        compaction,
        compacted,
        compacted_no_rollup,
    })
}

/// Whole-day trend requests for random patients to the two servers (with
/// and without the rollup), alternating.
struct Trends<'a> {
    http: &'a reqwest::Client,
    bases: &'a [String],
    token: &'a str,
    from: &'a str,
    to: &'a str,
    patients: u32,
}

impl Trends<'_> {
    /// The simulator's id of patient `i` (`P00042`).
    fn patient(&self, i: u32) -> String {
        let width = self.patients.to_string().len().max(5);
        format!("P{i:0width$}")
    }

    /// `requests` timed to each server after three untimed ones (first
    /// listing, first file footers): latencies with and without the
    /// rollup, the most points an answer had, and readings per answer.
    async fn time(&self, requests: usize) -> anyhow::Result<(Latencies, Latencies, usize, u64)> {
        let mut rng = rand::rng();
        let mut endpoint = Latencies::default();
        let mut endpoint_no_rollup = Latencies::default();
        let (mut max_points, mut readings_per_answer) = (0, 0);
        for i in 0..2 * (requests + 3) {
            let id = self.patient(rng.random_range(1..=self.patients));
            let base = &self.bases[i % 2];
            let url = format!(
                "{base}/api/patients/{id}/history?from={}&to={}",
                self.from, self.to
            );
            let started = Instant::now();
            let response = self.http.get(&url).bearer_auth(self.token).send().await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await?;
            let took = started.elapsed();
            anyhow::ensure!(status.is_success(), "{url}: HTTP {status}: {body}");
            let points = body["t"].as_array().map_or(0, Vec::len);
            let readings: u64 = body["readings"]
                .as_array()
                .map_or(0, |r| r.iter().filter_map(serde_json::Value::as_u64).sum());
            anyhow::ensure!(
                points <= 500 && readings == vitalflow_bench::history::READINGS_PER_PATIENT,
                "{id}: {points} points summarising {readings} readings"
            );
            max_points = max_points.max(points);
            readings_per_answer = readings;
            if i >= 6 {
                if i % 2 == 0 {
                    endpoint.0.push(took);
                } else {
                    endpoint_no_rollup.0.push(took);
                }
            }
        }
        Ok((
            endpoint,
            endpoint_no_rollup,
            max_points,
            readings_per_answer,
        ))
    }
}
