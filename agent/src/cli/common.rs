//! Flags shared by the tuning commands, and building what they work on from them.

use std::path::PathBuf;

use anyhow::Context;

use crate::profile::{Facts, Library};
use crate::tune::{netns, Kernel, Netns, Store};

/// `--log.level` and `--log.format`, as node_exporter has them (`nodetune run`, `metrics`).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(
        long = "log.level",
        value_enum,
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub level: crate::base::log::Threshold,
    /// Output format of log messages on stderr [default: logfmt; under systemd, native
    /// journal fields unless this is given].
    #[arg(long = "log.format", value_enum, value_name = "FORMAT")]
    pub format: Option<crate::base::log::Format>,
}

impl LogArgs {
    /// Puts the settings in force for the rest of the process.
    pub fn init(&self) {
        crate::base::log::init(self.level, self.format);
    }
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// Where nodetune reads and writes. Defaults are the real host; tests point them at temporary
/// trees.
#[derive(Debug, Clone, clap::Args)]
pub struct Roots {
    /// Root of the sysctl tree.
    #[arg(
        long = "sysctl-root",
        env = "NODETUNE_SYSCTL_ROOT",
        default_value = "/proc/sys",
        value_name = "DIR"
    )]
    pub sysctl_root: PathBuf,
    /// procfs mountpoint (host facts: memory, CPUs).
    #[arg(
        long = "path.procfs",
        env = "NODETUNE_PROCFS",
        default_value = "/proc",
        value_name = "DIR"
    )]
    pub procfs: PathBuf,
    /// sysfs mountpoint (module parameters, CPU list).
    #[arg(
        long = "path.sysfs",
        env = "NODETUNE_SYSFS",
        default_value = "/sys",
        value_name = "DIR"
    )]
    pub sysfs: PathBuf,
    /// Root for configuration files read and written (/etc/sysctl.d, systemd drop-ins, profiles).
    #[arg(
        long = "root",
        env = "NODETUNE_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// State directory (saved originals, active profile) [default: ROOT/var/lib/nodetune].
    #[arg(long = "state-dir", env = "NODETUNE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Extra profile directory; its profiles override those of the same name elsewhere.
    #[arg(long = "profile-dir", env = "NODETUNE_PROFILE_DIR", value_name = "DIR")]
    pub profile_dir: Option<PathBuf>,
}

impl Roots {
    pub fn library(&self) -> Library {
        let mut dirs = vec![
            self.root.join("usr/share/nodetune/profiles"),
            self.root.join("etc/nodetune/profiles.d"),
        ];
        dirs.extend(self.profile_dir.clone());
        Library::new(dirs)
    }

    pub fn store(&self) -> Store {
        Store::new(
            self.state_dir
                .clone()
                .unwrap_or_else(|| self.root.join("var/lib/nodetune")),
        )
    }

    pub fn kernel(&self) -> Kernel {
        Kernel {
            sysctl_root: self.sysctl_root.clone(),
            sysfs: self.sysfs.clone(),
            root: self.root.clone(),
        }
    }

    pub fn facts(&self) -> anyhow::Result<Facts> {
        Facts::read(&self.sysctl_root, &self.procfs, &self.sysfs, &self.root)
            .context("reading host facts")
    }

    /// The profile to use: the flag, else the one chosen with `nodetune use`, else `base`.
    pub fn profile_name(&self, flag: Option<&str>) -> anyhow::Result<String> {
        if let Some(p) = flag {
            return Ok(p.to_string());
        }
        Ok(self
            .store()
            .active_profile()?
            .unwrap_or_else(|| crate::profile::DEFAULT_PROFILE.to_string()))
    }

    /// Enters `--netns` if given and says which namespace the commands work in. A namespace
    /// is only detected for the live /proc/sys: a stand-in sysctl root describes a host.
    pub fn netns(&self, flag: Option<&str>) -> anyhow::Result<Netns> {
        let live = self.sysctl_root == std::path::Path::new("/proc/sys");
        if let Some(spec) = flag {
            if !live {
                anyhow::bail!(
                    "--netns works on the live /proc/sys, not on --sysctl-root {}",
                    self.sysctl_root.display()
                );
            }
            netns::enter(spec)?;
        }
        if !live {
            return Ok(Netns::host());
        }
        Ok(netns::current())
    }
}

/// Flags of plan, apply and check.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Profile name [default: the one chosen with `nodetune use`, else base].
    #[arg(long, short = 'p')]
    pub profile: Option<String>,
    /// Work inside this network namespace (an `ip netns` name or a path such as
    /// /proc/PID/ns/net); global keys are listed as out of scope there.
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("encoding JSON")?
    );
    Ok(())
}
