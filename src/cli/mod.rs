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
