//! The metrics listener as the daemon runs it. A listen address that cannot be bound (most
//! often node_exporter still on :9100) does not stop the daemon: tuning, drift enforcement and
//! alerts go on, the bind is retried every [`RETRY`], and the state shows in `nodetune status`,
//! the journal, systemd's STATUS line and the `nodetune_web_*` metrics. Meanwhile nodetune's
//! own families are handed to node_exporter's textfile collector (`[web]
//! textfile-handoff-dirs`), so the scrape Prometheus already has on that port carries them.
//! Once the address frees up (node_exporter stopped), nodetune binds it, withdraws the handoff
//! file and serves everything itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;

use crate::base::log::{self, Level};
use crate::collect::{Family, MetricType};
use crate::expose::encode::{encode, normalize, Format};
use crate::expose::http::{self, Endpoint};
use crate::tune::kernel::write_file_atomically;

use super::Daemon;

/// How often a busy listen address is tried again: one bind(2) call, so cheap, and short
/// enough that stopping node_exporter hands the port over within seconds.
pub const RETRY: Duration = Duration::from_secs(5);

/// The file written in each handoff directory (node_exporter reads `*.prom`).
pub const HANDOFF_FILE: &str = "nodetune.prom";

/// The endpoint's listener: bound, or waiting for its address.
#[derive(Debug, Clone, Default)]
pub struct Listener {
    /// The configured address (`:9100`).
    pub address: String,
    /// Local addresses once bound; empty while waiting.
    pub bound: Vec<String>,
    /// The last bind error while waiting.
    pub error: Option<String>,
    /// When the first failed attempt of the current wait happened.
    pub waiting_since: Option<SystemTime>,
    /// Failed bind attempts since start.
    pub failures: u64,
    /// Handoff files written at the last publish.
    pub handoff: Vec<PathBuf>,
}

impl Listener {
    pub fn waiting(&self) -> bool {
        self.bound.is_empty() && self.error.is_some()
    }

    /// `nodetune_web_listening` and `nodetune_web_bind_failures_total`.
    pub fn families(&self) -> Vec<Family> {
        if self.address.is_empty() {
            return Vec::new();
        }
        let labels = [("address", self.address.as_str())];
        let mut up = Family::new(
            "nodetune_web_listening",
            "1 when the metrics endpoint is bound to its listen address, 0 while the address is busy and the bind is retried.",
            MetricType::Gauge,
        );
        up.push(&labels, if self.bound.is_empty() { 0.0 } else { 1.0 });
        let mut failures = Family::new(
            "nodetune_web_bind_failures_total",
            "Failed attempts to bind the listen address (busy, e.g. node_exporter on the same port).",
            MetricType::Counter,
        );
        failures.push(&labels, self.failures as f64);
        vec![up, failures]
    }

    /// What the status line and `nodetune status` say while waiting.
    pub fn describe(&self) -> Option<String> {
        let err = self.error.as_ref().filter(|_| self.bound.is_empty())?;
        let handoff = if self.handoff.is_empty() {
            "no textfile handoff directory exists".to_string()
        } else {
            let files: Vec<String> = self
                .handoff
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            format!(
                "nodetune_* metrics handed to node_exporter in {}",
                files.join(", ")
            )
        };
        Some(format!(
            "metrics not served: {err}; retrying every {}s; {handoff}",
            RETRY.as_secs()
        ))
    }
}

/// Writes the families, in the text format, to `DIR/nodetune.prom` in each directory that
/// exists (node_exporter's package creates its own); returns the files written.
pub fn hand_off(dirs: &[PathBuf], fams: Vec<Family>) -> Vec<PathBuf> {
    let mut text = String::new();
    encode(&normalize(fams), Format::Text, &mut text);
    let mut written = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let path = dir.join(HANDOFF_FILE);
        match write_file_atomically(&path, text.as_bytes()) {
            Ok(()) => written.push(path),
            Err(e) => log::log(
                Level::Warning,
                &format!("textfile handoff: {e:#}"),
                &[("PATH", &path.display().to_string())],
            ),
        }
    }
    written
}

/// Removes the handoff files (nodetune serves its metrics itself from now on).
pub fn withdraw(dirs: &[PathBuf]) {
    for path in dirs.iter().map(|d| d.join(HANDOFF_FILE)) {
        match std::fs::remove_file(&path) {
            Ok(()) => log::log(
                Level::Info,
                &format!("removed textfile handoff {}", path.display()),
                &[],
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::log(
                Level::Warning,
                &format!("removing textfile handoff {}: {e}", path.display()),
                &[],
            ),
        }
    }
}

fn lock(d: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves when shutdown is requested, or never if the sender is gone.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One bind attempt, recorded in the daemon (which logs it and publishes the state).
pub async fn attempt(listen: &str, daemon: &Mutex<Daemon>) -> Option<Vec<TcpListener>> {
    match http::bind(listen).await {
        Ok(listeners) => {
            let addrs: Vec<String> = listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| a.to_string())
                .collect();
            lock(daemon).listener_bound(addrs);
            Some(listeners)
        }
        Err(e) => {
            lock(daemon).listener_failed(&format!("{e:#}"));
            None
        }
    }
}

/// Serves on `first` (the result of the first [`attempt`], made before the daemon reports
/// READY) or, while that failed, retries every [`RETRY`] until bound; serves until `stop`.
pub async fn serve(
    listen: String,
    first: Option<Vec<TcpListener>>,
    ep: Arc<Endpoint>,
    daemon: Arc<Mutex<Daemon>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut bound = first;
    loop {
        if let Some(listeners) = bound {
            http::serve(listeners, ep, stop).await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = stopped(&mut stop) => return,
        }
        bound = attempt(&listen, &daemon).await;
    }
}

impl Daemon {
    /// The listen address is bound: log it, withdraw any handoff file, publish.
    pub fn listener_bound(&mut self, addrs: Vec<String>) {
        let waited = self.listener.waiting();
        log::log(
            Level::Notice,
            &if waited {
                format!(
                    "listen address {} is free now: serving metrics on {} after {} failed attempt(s)",
                    self.listener.address,
                    addrs.join(", "),
                    self.listener.failures
                )
            } else {
                format!("serving metrics on {}", addrs.join(", "))
            },
            &[("LISTEN", &self.listener.address)],
        );
        withdraw(&self.handoff_dirs());
        self.listener.bound = addrs;
        self.listener.error = None;
        self.listener.waiting_since = None;
        self.listener.handoff.clear();
        self.publish();
    }

    /// A bind attempt failed: keep running; log when the reason changes; hand the metrics off.
    pub fn listener_failed(&mut self, error: &str) {
        self.listener.failures += 1;
        if self.listener.error.as_deref() != Some(error) {
            self.listener.error = Some(error.to_string());
            self.listener
                .waiting_since
                .get_or_insert_with(SystemTime::now);
            self.refresh_handoff();
            let hint = if error.contains("in use") {
                "another exporter (node_exporter?) holds the port: to let nodetune serve there, stop it (systemctl disable --now prometheus-node-exporter) or set [web] listen-address"
            } else {
                "check [web] listen-address"
            };
            log::log(
                Level::Warning,
                &format!(
                    "{}. Tuning, drift enforcement and alerts go on; {hint}",
                    self.listener.describe().unwrap_or_default()
                ),
                &[("LISTEN", &self.listener.address)],
            );
        }
        self.publish();
    }

    /// The configured handoff directories.
    pub fn handoff_dirs(&self) -> Vec<PathBuf> {
        self.config()
            .web
            .textfile_handoff_dirs
            .iter()
            .map(PathBuf::from)
            .collect()
    }

    /// Rewrites the handoff files while waiting for the listen address.
    pub fn refresh_handoff(&mut self) {
        if self.listener.waiting() {
            let dirs = self.handoff_dirs();
            self.listener.handoff = hand_off(&dirs, self.families());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoff_writes_only_existing_directories_and_withdraws() {
        let d = tempfile::tempdir().unwrap();
        let here = d.path().join("textfile");
        std::fs::create_dir(&here).unwrap();
        let missing = d.path().join("missing");
        let l = Listener {
            address: ":9100".into(),
            error: Some("Address already in use".into()),
            failures: 3,
            ..Default::default()
        };
        let written = hand_off(&[here.clone(), missing.clone()], l.families());
        assert_eq!(written, vec![here.join(HANDOFF_FILE)]);
        assert!(!missing.exists());
        let text = std::fs::read_to_string(here.join(HANDOFF_FILE)).unwrap();
        assert!(
            text.contains("nodetune_web_listening{address=\":9100\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("nodetune_web_bind_failures_total{address=\":9100\"} 3\n"),
            "{text}"
        );
        withdraw(std::slice::from_ref(&here));
        assert!(!here.join(HANDOFF_FILE).exists());
    }

    #[test]
    fn describe_only_while_waiting() {
        let mut l = Listener {
            address: ":9100".into(),
            error: Some("listening on [::]:9100: Address in use".into()),
            ..Default::default()
        };
        let s = l.describe().unwrap();
        assert!(
            s.contains("not served: listening on [::]:9100: Address in use"),
            "{s}"
        );
        assert!(s.contains("no textfile handoff directory exists"), "{s}");
        l.bound = vec!["[::]:9100".into()];
        assert_eq!(l.describe(), None);
    }
}
