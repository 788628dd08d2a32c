//! The daemon's mode: what it does about the profile (set in nodetune.toml or with --mode).

use serde::Deserialize;

/// What the daemon does about the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Apply the profile at start and correct drift.
    Enforce,
    /// Report drift only; never write.
    Audit,
    /// Neither apply nor watch.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }
}
