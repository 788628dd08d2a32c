//! The command line: one file per command; this file parses and dispatches.

use clap::{Parser, Subcommand};

pub mod metrics;
pub mod run;

#[derive(Debug, Parser)]
#[command(
    name = "nodetune",
    version,
    about = "Kernel tuning, node metrics and saturation alerts for Linux API servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: metrics endpoint, profile enforcement, drift and alert loop.
    Run(run::Args),
    /// Print one scrape to stdout.
    Metrics(metrics::Args),
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::main(args),
        Command::Metrics(args) => metrics::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nodetune: error: {e:#}");
            1
        }
    }
}
