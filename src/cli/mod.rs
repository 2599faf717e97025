//! The `vitalflow` command line: one function per subcommand.

mod args;
pub mod bench;
mod compact;
mod query;
mod run;
mod serve;
mod signal;
mod simulate;
mod status;
mod token;
mod validate;

pub use args::{Cli, Command, DEFAULT_PIPELINE};

/// The async runtime `command` runs on.
///
/// `vitalflow query` is one short process: its blocking pool does little
/// more than read local files (DataFusion's local object store reads on
/// it), and tokio's default starts a thread per concurrent read (a count
/// over a week of the sink's files started 12 threads in all, now 6:
/// `scripts/query-startup.sh`), which cost more to start than the reads
/// themselves. Other commands keep tokio's default.
pub fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(command, Command::Query(_)) {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        builder.max_blocking_threads(QUERY_BLOCKING_THREADS_PER_CORE * cores);
    }
    builder.enable_all().build()
}

/// Blocking threads per core for `vitalflow query` (local file reads).
const QUERY_BLOCKING_THREADS_PER_CORE: usize = 2;

/// Whether `command` ends the process once its output is written, with
/// nothing left to flush or release (see `main`).
pub fn ends_at_output(command: &Command) -> bool {
    matches!(command, Command::Query(_))
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => run::up(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Validate(args) => validate::validate(args).await,
        Command::Query(args) => query::query(args).await,
        Command::Status(args) => status::status(args),
        Command::Compact(args) => compact::compact(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Simulate(args) => simulate::simulate(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Token(command) => token::token(command),
    }
}
