//! The command line: one file per command group; this file parses and dispatches.

use clap::{Parser, Subcommand};

pub mod alerts;
pub mod common;
pub mod metrics;
pub mod profile;
pub mod recommend;
pub mod run;
pub mod status;
pub mod table;
pub mod tune;

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
    Run(Box<run::Args>),
    /// Print one scrape to stdout.
    Metrics(Box<metrics::Args>),
    /// Inspect and lint profiles.
    Profile(profile::Args),
    /// Show, per key, current -> desired value, scope and why. Changes nothing.
    Plan(tune::PlanArgs),
    /// Apply a profile once, transactionally (rolled back on any failure).
    Apply(tune::ApplyArgs),
    /// Verify the profile is in effect: exit 0 in sync, 2 drifted, 1 error.
    Check(tune::CheckArgs),
    /// Restore the values saved before the first apply.
    Revert(tune::RevertArgs),
    /// Make a profile the active one (persisted in the state directory).
    Use(tune::UseArgs),
    /// The running daemon: profile, mode, keys in sync or drifted, alerts.
    Status(status::Args),
    /// Suggest a profile from host facts, and knobs from live saturation signals.
    Recommend(recommend::Args),
    /// The alert catalogue, and Prometheus rules that compute the same conditions.
    Alerts(alerts::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (nodetune.1 and one per subcommand) into a directory.
    #[command(hide = true)]
    Manpages { dir: std::path::PathBuf },
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::main(args),
        Command::Metrics(args) => metrics::main(args),
        Command::Profile(args) => profile::main(args),
        Command::Plan(args) => tune::plan_main(args),
        Command::Apply(args) => tune::apply_main(args),
        Command::Check(args) => tune::check_main(args),
        Command::Revert(args) => tune::revert_main(args),
        Command::Use(args) => tune::use_main(args),
        Command::Status(args) => status::main(args),
        Command::Recommend(args) => recommend::main(args),
        Command::Alerts(args) => alerts::main(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "nodetune",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            clap_mangen::generate_to(Cli::command(), dir)
                .map(|()| 0)
                .map_err(|e| anyhow::anyhow!("writing man pages to {}: {e}", dir.display()))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nodetune: error: {e:#}");
            1
        }
    }
}
