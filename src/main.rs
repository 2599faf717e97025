//! The `vitalflow` binary: parse the command line, run it, turn the error
//! chain into a message and an exit code. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;
use vitalflow::cli::{self, Cli};
use vitalflow::telemetry;

/// mimalloc returns freed memory promptly; glibc malloc's RSS grew with
/// the length of the stream (fragmentation across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log);
    let ends_at_output = cli::ends_at_output(&cli.command);
    let runtime = match cli::runtime(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) if ends_at_output => {
            // A query's rows are written and flushed: the process ends
            // without tearing down its runtime and session first, which
            // only hands memory back page by page to an exiting process
            // (a few ms of a ~40 ms query, `vitalflow bench --query`).
            std::process::exit(0)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line, each cause once.
            eprintln!("error: {}", vitalflow::common::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `vitalflow query ... | head` closing the pipe early is not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
