//! The running daemon's state, written to `STATE_DIR/daemon.json` whenever it changes, for
//! `nodetune status` (and `nodetune use`, which signals the daemon to reload).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::tune::kernel::write_file_atomically;

/// One alert as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertLine {
    pub name: String,
    pub severity: String,
    pub state: String,
    pub labels: Vec<(String, String)>,
    pub summary: String,
    /// The knob that fixes it (absent in status files of older versions).
    #[serde(default)]
    pub knob: String,
    pub remedy: String,
}

/// One managed key as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyLine {
    pub key: String,
    pub want: String,
    pub actual: Option<String>,
    pub state: String,
    pub drift_total: u64,
    pub corrections_total: u64,
}

/// The whole status document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub pid: u32,
    pub started: String,
    pub updated: String,
    pub profile: String,
    pub profile_source: String,
    pub mode: String,
    pub netns: String,
    pub listen: Vec<String>,
    /// Why the metrics are not served (the listen address is busy and retried), if so.
    #[serde(default)]
    pub listen_error: Option<String>,
    pub in_sync: usize,
    pub drifted: usize,
    pub keys: Vec<KeyLine>,
    pub alerts: Vec<AlertLine>,
    /// Why the last reload was refused (the old configuration kept running), if it was.
    pub reload_error: Option<String>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("daemon.json")
}

pub fn write(state_dir: &Path, status: &Status) -> anyhow::Result<()> {
    let data = serde_json::to_vec_pretty(status).context("encoding status")?;
    write_file_atomically(&path(state_dir), &data)
}

/// The status of a running daemon; `None` when none runs (no file, or its process is gone).
pub fn read(state_dir: &Path) -> anyhow::Result<Option<Status>> {
    let p = path(state_dir);
    let data = match std::fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", p.display())),
    };
    let s: Status =
        serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))?;
    let alive = std::fs::read_to_string(format!("/proc/{}/comm", s.pid))
        .map(|c| c.trim() == "nodetune")
        .unwrap_or(false);
    Ok(alive.then_some(s))
}

/// Asks the running daemon to reload (SIGHUP); false when none runs.
pub fn signal_reload(state_dir: &Path) -> anyhow::Result<bool> {
    let Some(s) = read(state_dir)? else {
        return Ok(false);
    };
    let pid = nix::unistd::Pid::from_raw(s.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
        .with_context(|| format!("signalling nodetune daemon (pid {})", s.pid))?;
    Ok(true)
}
