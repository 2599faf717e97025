//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::query::OutputFormat;
use crate::telemetry::LogFormat;

/// The pipeline `up`, `query` and friends use when none is named.
pub const DEFAULT_PIPELINE: &str = "pipelines/vitals.yaml";

#[derive(Debug, Parser)]
#[command(
    name = "vitalflow",
    version,
    about = "Real-time patient vital-signs pipeline"
)]
pub struct Cli {
    /// Log output: human text or JSON lines (on stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `warn,vitalflow=debug`.
    #[arg(long, global = true, env = "VITALFLOW_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the whole system on the embedded default: simulator -> pipeline -> Parquet.
    Up(UpArgs),
    /// Run one pipeline until its sources end or Ctrl-C.
    Run(RunArgs),
    /// Check pipeline files (keys, types, SQL files, SQL plans, sink inputs) without running them.
    Validate(ValidateArgs),
    /// Run SQL over the stored datasets of a pipeline.
    Query(QueryArgs),
    /// Show a pipeline's checkpoints: instances, the partitions each owns, offsets, ages.
    Status(StatusArgs),
    /// Merge each closed day of a pipeline's Parquet datasets into one file sorted by `sort_by`.
    Compact(CompactArgs),
    /// Serve the dashboard, the REST API (predict, explain), its OpenAPI docs and metrics.
    Serve(ServeArgs),
    /// Publish the simulated ward to Kafka as JSON, keyed by patient.
    Simulate(SimulateArgs),
    /// Measure throughput and peak memory of simulator -> SQL -> Parquet.
    Bench(BenchArgs),
    /// API tokens: create one (printed once; only its hash is stored), list them.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for NAME with ROLEs and add its hash to the tokens file.
    Create {
        /// Who or what holds it (`prometheus`, `ward-app`, `j.smith`).
        #[arg(long)]
        name: String,
        /// Its roles; repeat for several.
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<crate::auth::Role>,
        #[arg(long, env = "VITALFLOW_TOKENS", default_value = DEFAULT_TOKENS)]
        tokens: PathBuf,
        /// Write the token to this file (mode 0644, for a scraper's
        /// `credentials_file`) instead of printing it.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Succeed without creating anything when NAME already has a token
        /// and `--output` exists (one-shot set-up containers).
        #[arg(long, requires = "output")]
        if_absent: bool,
    },
    /// List the tokens file's principals and roles.
    List {
        #[arg(long, env = "VITALFLOW_TOKENS", default_value = DEFAULT_TOKENS)]
        tokens: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Kafka brokers, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "localhost:9092")]
    pub brokers: String,
    /// Topic to publish to.
    #[arg(long, default_value = "vitals")]
    pub topic: String,
    /// Simulated patients.
    #[arg(long, default_value_t = 50)]
    pub patients: u32,
    /// Time between two readings of one patient (the original: 500ms).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Messages per second over the whole ward (overrides `--interval`:
    /// each patient then reports every `patients / rate` seconds).
    #[arg(long, conflicts_with = "unpaced")]
    pub rate: Option<f64>,
    /// Publish as fast as the broker takes it (event times stay on the
    /// simulated clock).
    #[arg(long)]
    pub unpaced: bool,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Random seed; same seed, same readings.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Message format: `json` (one record), `fhir` (a transaction Bundle of
    /// vital-sign Observations) or `hl7v2` (an ORU^R01 as monitor gateways
    /// send it). Read them with the source's `format:` of the same name.
    #[arg(long, default_value = "json", value_parser = parse_format)]
    pub format: crate::interop::Format,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Retention of the topic if it has to be created.
    #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
    pub retention: std::time::Duration,
    /// Never create the topic.
    #[arg(long)]
    pub no_create_topic: bool,
    /// librdkafka property, `key=value` (TLS, SASL, tuning); repeatable.
    #[arg(long = "property", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
}

fn parse_property(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got `{raw}`"))
}

/// The model the server loads when none is named.
pub const DEFAULT_MODEL: &str = "models/diabetes_rf.onnx";

#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "VITALFLOW_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// ONNX risk model; its sidecar `.json` sits next to it.
    #[arg(long, env = "VITALFLOW_MODEL", default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// The tokens file `serve` and `up` read, and `token create` writes.
pub const DEFAULT_TOKENS: &str = "config/tokens.yaml";

/// Who may use the server, over what (see the README's access section).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Access control")]
pub struct AccessArgs {
    /// API tokens file (principals, roles, SHA-256 of each token). If it
    /// does not exist and no OIDC provider is configured, the first start
    /// creates it with one admin token and prints a login URL once.
    #[arg(long, env = "VITALFLOW_TOKENS", default_value = DEFAULT_TOKENS)]
    pub tokens: PathBuf,
    /// OpenID Connect settings (YAML: issuer, audience, jwks, algorithms,
    /// roles_claim, ...): bearer JWTs from the hospital's identity provider.
    #[arg(long, env = "VITALFLOW_OIDC")]
    pub oidc: Option<PathBuf>,
    /// Serve without any credential, everyone as admin. Loopback addresses
    /// only; logged loudly. For demos, never for patient data.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// How long a browser session lasts.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub session_ttl: std::time::Duration,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, env = "VITALFLOW_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "VITALFLOW_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The audit trail's dataset (a local directory), queryable as table
    /// `audit` by admins.
    #[arg(long, env = "VITALFLOW_AUDIT_DIR", default_value = "data/audit")]
    pub audit_dir: PathBuf,
    /// Publish the audit trail's open file this often: the most a `kill -9`
    /// can lose (SIGTERM and Ctrl-C lose nothing).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub audit_flush: std::time::Duration,
    /// Alert acknowledgements made on the dashboard (a local directory),
    /// queryable as table `alert_acks`.
    #[arg(long, env = "VITALFLOW_ACKS_DIR", default_value = "data/alert_acks")]
    pub acks_dir: PathBuf,
}

/// What clients may take from the server (see the README's server section).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Server limits")]
pub struct LimitArgs {
    /// `/api/query`: cancel a query after this long (503).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub query_timeout: std::time::Duration,
    /// `/api/query`: queries running at once; more get 429.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub query_concurrency: u32,
    /// `/api/query`: how long a query waits for a free slot before the 429.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub query_queue_wait: std::time::Duration,
    /// `/api/query`: memory all running queries share; sorts, aggregations
    /// and joins spill to disk beyond it where they can, others fail (422).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub query_memory: u64,
    /// `/api/query`: threads of the query runtime (kept apart from the
    /// pipeline's and the server's).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub query_threads: u32,
    /// `/api/query`: JSON rows returned at most, in bytes; the result is
    /// cut there (`truncated`, with the reason).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub query_max_bytes: u64,
    /// `/api/query`: requests per second per client (429 beyond the burst).
    #[arg(long, default_value_t = 1.0, value_parser = parse_rate)]
    pub query_rate: f64,
    /// `/api/query`: requests a client may send at once before the rate applies.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub query_burst: u32,
    /// `/predict`, `/predict/batch`, `/explain`: requests per second per
    /// client (an integration service calls these far more often than a
    /// person; the limit keeps one client from starving the others).
    #[arg(long, default_value_t = 1000.0, value_parser = parse_rate)]
    pub model_rate: f64,
    /// Model routes: requests a client may send at once before the rate applies.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub model_burst: u32,
    /// Open `/api/stream` connections (dashboards); more get 503.
    #[arg(long, default_value_t = 64)]
    pub max_streams: usize,
    /// Close a connection that sends no complete request head within this
    /// long, idle keep-alive connections included.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// Every route but the stream: read the body and answer within this long (503).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: std::time::Duration,
}

impl LimitArgs {
    pub fn server_limits(&self) -> crate::server::ServerLimits {
        use crate::server::Rate;
        crate::server::ServerLimits {
            query_timeout: self.query_timeout,
            query_concurrency: self.query_concurrency as usize,
            query_queue_wait: self.query_queue_wait,
            query_max_bytes: self.query_max_bytes as usize,
            sse_subscribers: self.max_streams,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            model_rate: Rate {
                per_second: self.model_rate,
                burst: self.model_burst,
            },
            query_rate: Rate {
                per_second: self.query_rate,
                burst: self.query_burst,
            },
            ..Default::default()
        }
    }

    pub fn query_limits(&self) -> crate::query::QueryLimits {
        crate::query::QueryLimits {
            memory: Some(self.query_memory as usize),
            threads: self.query_threads as usize,
        }
    }
}

fn parse_size(raw: &str) -> Result<u64, String> {
    raw.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size `{raw}`: {e} (write e.g. `512MiB`)"))
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "invalid rate `{raw}`: requests per second, a number above 0 (e.g. `0.5`, `20`)"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Pipeline whose stored datasets `/api/query` reads.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pub pipeline: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Pipeline file to run.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pub pipeline: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// Stop after this long (e.g. `30s`, `5m`), flushing everything.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline files.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The pipeline whose checkpoint directory to read.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pub pipeline: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The pipeline whose Parquet sinks' datasets to compact.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pub pipeline: PathBuf,
    /// Only these sinks (repeat for several); every local, date-partitioned one if absent.
    #[arg(long = "sink")]
    pub sinks: Vec<String>,
    /// Compact this day (YYYY-MM-DD) now, closed or not, instead of every closed day.
    #[arg(long)]
    pub day: Option<chrono::NaiveDate>,
    /// A past day is closed once none of its files changed for this long.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub quiet: std::time::Duration,
    /// Also merge today's files older than `--quiet` once this many are
    /// not merged yet (0: only closed days).
    #[arg(long, default_value_t = 0)]
    pub open_day_files: usize,
    /// Memory the merge sort may hold before it spills to disk, in MiB
    /// (at least 16, as `compact.memory`: room for a batch of every file).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=1 << 30))]
    pub memory_mib: u64,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement. Tables: every sink of the pipeline by name, and `vitals`.
    pub sql: String,
    /// Pipeline whose sinks are the tables.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pub pipeline: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Extra table as NAME=LOCATION (a Parquet dataset directory).
    #[arg(long = "table", value_parser = parse_table)]
    pub tables: Vec<(String, String)>,
}

fn parse_table(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(n, l)| (n.trim().to_string(), l.trim().to_string()))
        .filter(|(n, l)| !n.is_empty() && !l.is_empty())
        .ok_or_else(|| format!("expected NAME=LOCATION, got `{raw}`"))
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events to push through the pipeline.
    #[arg(long, default_value_t = 50_000_000)]
    pub events: u64,
    /// Simulated patients [default: 50; 10,000 with `--windows`].
    #[arg(long)]
    pub patients: Option<u32>,
    /// Output directory (a fresh temporary directory if absent; removed afterwards).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Compare the Parquet sink writing to the local disk and to an S3
    /// server on loopback (s3s-fs, started for the run), same data.
    #[arg(long, conflicts_with = "windows")]
    pub storage: bool,
    /// The dashboard's trend endpoint over ~20M stored readings (patients
    /// x 24 h at 1 reading/s; `--patients`, default 232): p50/p95 of one
    /// patient's day downsampled to <= 500 points, beside a raw read.
    #[arg(long, conflicts_with_all = ["windows", "storage", "soak"])]
    pub history: bool,
    /// Analyst queries over a week of 1,000 patients' vitals (20M rows)
    /// through `vitalflow query` and, if installed, DuckDB's CLI on the same
    /// files: time and peak RSS per query, side by side.
    #[arg(long, conflicts_with_all = ["windows", "storage", "soak", "history"])]
    pub query: bool,
    /// Run a windowed job instead: `ward` (per-patient 1-minute risk
    /// windows with the NEWS2 UDF plugin, a join and the model, plus 10 s /
    /// 1 min hopping windows) or `count` (a 1-second tumbling count per
    /// patient, Arroyo's benchmark job).
    #[arg(long, value_name = "SHAPE", conflicts_with = "soak")]
    pub windows: Option<vitalflow_bench::windows::Shape>,
    /// Soak the Kafka pipeline for this long (e.g. `30m`): a steady rate
    /// with 1 % malformed records and a reading from the year 9999 every
    /// minute; prints whether every record is accounted for and RSS over
    /// time. Needs `--brokers`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "brokers", conflicts_with = "storage")]
    pub soak: Option<std::time::Duration>,
    /// Kafka brokers for `--soak`.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Records per second for `--soak`.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
}

fn parse_format(text: &str) -> Result<crate::interop::Format, String> {
    match text {
        "json" => Ok(crate::interop::Format::Json),
        "fhir" => Ok(crate::interop::Format::Fhir),
        "hl7v2" => Ok(crate::interop::Format::Hl7v2),
        other => Err(format!("`{other}` is not json, fhir or hl7v2")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_limits_are_flags_of_serve_and_up() {
        let cli = Cli::try_parse_from([
            "vitalflow",
            "up",
            "--query-timeout",
            "5s",
            "--query-memory",
            "64MiB",
            "--query-max-bytes",
            "1MiB",
            "--query-rate",
            "0.5",
            "--max-streams",
            "3",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        let limits = up.server.limits.server_limits();
        assert_eq!(limits.query_timeout, std::time::Duration::from_secs(5));
        assert_eq!(limits.query_max_bytes, 1 << 20);
        assert_eq!(limits.query_rate.per_second, 0.5);
        assert_eq!(limits.sse_subscribers, 3);
        assert_eq!(up.server.limits.query_limits().memory, Some(64 << 20));

        let defaults = Cli::try_parse_from(["vitalflow", "serve"]).unwrap();
        let Command::Serve(serve) = defaults.command else {
            panic!("not serve")
        };
        // The flags' defaults are the server's.
        assert_eq!(
            serve.server.limits.server_limits(),
            crate::server::ServerLimits::default()
        );

        for bad in [
            ["--query-rate", "0"],
            ["--query-memory", "lots"],
            ["--query-concurrency", "0"],
        ] {
            let error = Cli::try_parse_from(["vitalflow", "serve", bad[0], bad[1]]).unwrap_err();
            assert!(error.to_string().contains(bad[0]), "{error}");
        }
    }
}
