//! The alert engine's state machine: each tick the catalogue's conditions
//! ([`super::rules`]) give signals, and each alert instance (name + labels) moves
//! inactive → pending → firing → resolved with a `for` duration, a clear duration and
//! hysteresis. Also the `[alerts]` settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::rules::Found;
use crate::collect::{Family, MetricType, Sample, Text};

/// `[alerts]` in nodetune.toml: evaluation, thresholds and durations, and where to push.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Thresholds {
    /// How often counters are collected and alerts evaluated.
    #[serde(deserialize_with = "crate::base::duration::duration")]
    pub interval: Duration,
    /// One Alertmanager base URL (http://host:9093) to push alerts to; none by default. The
    /// same as `[alerts.alertmanager] urls = [URL]`.
    pub alertmanager_url: Option<String>,
    /// Several Alertmanagers, TLS and authentication (`[alerts.alertmanager]`).
    pub alertmanager: Alertmanager,
    /// How long a condition must hold before the alert fires ("0s": on the first tick).
    #[serde(deserialize_with = "crate::base::duration::duration_or_zero")]
    pub for_duration: Duration,
    /// How long a condition must be clear before a firing alert resolves ("0s": at once).
    #[serde(deserialize_with = "crate::base::duration::duration_or_zero")]
    pub clear_duration: Duration,
    /// conntrack entries / max that fires ConntrackNearFull (clears 5 points lower).
    pub conntrack_ratio: f64,
    /// TCP sockets / ephemeral port range size that fires EphemeralPortPressure.
    pub ports_ratio: f64,
    /// allocated / maximum file handles that fires FileDescriptorPressure.
    pub fd_ratio: f64,
    /// TCP memory / the tcp_mem maximum that fires SocketMemoryPressure.
    pub socket_memory_ratio: f64,
    /// Fullest accept queue / its backlog limit that fires ListenQueueOverflow.
    pub listen_queue_ratio: f64,
    /// Per-second rate of a counter above which the counter alerts fire (0: any increase).
    pub counter_rate: f64,
    /// Bad packets / packets of a NIC direction above which NicErrors fires (node-mixin's 1 %).
    pub nic_error_ratio: f64,
    /// softnet time squeezes per second (all CPUs) above which SoftnetDrops fires.
    pub softnet_squeeze_rate: f64,
}

/// `[alerts.alertmanager]`: where alerts are pushed and how. Every alert goes to each URL, as
/// Prometheus sends to every Alertmanager of an HA cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Alertmanager {
    /// Base URLs, `http://` or `https://`, with an optional path prefix.
    pub urls: Vec<String>,
    /// PEM file of the CA(s) that sign the Alertmanagers' certificates, instead of the
    /// system's CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and its key (PEM), for Alertmanagers that require mTLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the server certificates are checked against, when not the URL's host.
    pub server_name: Option<String>,
    /// Basic authentication: the user, and a file holding the password.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A file holding a bearer token (`Authorization: Bearer …`).
    pub bearer_token_file: Option<PathBuf>,
    /// Longest one delivery attempt may take.
    #[serde(deserialize_with = "crate::base::duration::duration")]
    pub timeout: Duration,
}

impl Default for Alertmanager {
    fn default() -> Self {
        Alertmanager {
            urls: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            username: None,
            password_file: None,
            bearer_token_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Thresholds {
    /// Every Alertmanager URL configured (`alertmanager-url` and `[alerts.alertmanager] urls`).
    pub fn alertmanager_urls(&self) -> Vec<String> {
        self.alertmanager_url
            .iter()
            .chain(&self.alertmanager.urls)
            .cloned()
            .collect()
    }

    /// Settings that cannot work together, as (key, what to do).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let am = &self.alertmanager;
        if self.alertmanager_url.is_some() && !am.urls.is_empty() {
            return Err((
                "alertmanager-url",
                "is also given as [alerts.alertmanager] urls: list every URL in urls".into(),
            ));
        }
        if am.cert_file.is_some() != am.key_file.is_some() {
            return Err((
                if am.cert_file.is_some() {
                    "cert-file"
                } else {
                    "key-file"
                },
                "a client certificate needs both cert-file and key-file".into(),
            ));
        }
        if am.username.is_some() != am.password_file.is_some() {
            return Err((
                if am.username.is_some() {
                    "username"
                } else {
                    "password-file"
                },
                "basic authentication needs both username and password-file".into(),
            ));
        }
        if am.username.is_some() && am.bearer_token_file.is_some() {
            return Err((
                "bearer-token-file",
                "choose basic authentication (username, password-file) or a bearer token, not both"
                    .into(),
            ));
        }
        if am.timeout.is_zero() {
            return Err(("timeout", "must be longer than 0s".into()));
        }
        Ok(())
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            interval: Duration::from_secs(15),
            alertmanager_url: None,
            alertmanager: Alertmanager::default(),
            for_duration: Duration::from_secs(60),
            clear_duration: Duration::from_secs(300),
            conntrack_ratio: 0.9,
            ports_ratio: 0.8,
            fd_ratio: 0.8,
            socket_memory_ratio: 0.9,
            listen_queue_ratio: 0.9,
            counter_rate: 0.0,
            nic_error_ratio: 0.01,
            softnet_squeeze_rate: 10.0,
        }
    }
}

/// An alert's life-cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

/// One alert instance.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub name: &'static str,
    pub severity: &'static str,
    /// Distinguishing labels (device, key, resource), sorted.
    pub labels: Vec<(String, String)>,
    pub state: State,
    /// The signal's value when last evaluated.
    pub value: f64,
    pub summary: String,
    /// The knob that fixes it (from the catalogue).
    pub knob: &'static str,
    pub remedy: &'static str,
    #[serde(skip)]
    pub since: Instant,
    /// Wall-clock start (for Alertmanager).
    pub started: SystemTime,
}

/// An alert moving to a new state (logged and pushed).
#[derive(Debug, Clone)]
pub struct Transition {
    pub alert: Alert,
    pub from: Option<State>,
}

/// A condition evaluated this tick.
#[derive(Debug, Clone)]
pub struct Signal {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub summary: String,
    /// True while the signal is past its firing threshold.
    pub active: bool,
    /// True while the signal is past its clearing threshold (hysteresis: between the two, a
    /// firing alert keeps firing and an inactive one stays inactive).
    pub held: bool,
}

type Key = (&'static str, Vec<(String, String)>);

/// The alert engine.
pub struct Engine {
    pub thresholds: Thresholds,
    active: BTreeMap<Key, Alert>,
    /// Last time each active alert's condition was clear-enough to count toward resolving.
    clear_since: BTreeMap<Key, Instant>,
}

impl Engine {
    pub fn new(thresholds: Thresholds) -> Engine {
        Engine {
            thresholds,
            active: BTreeMap::new(),
            clear_since: BTreeMap::new(),
        }
    }

    /// Advances every alert with this tick's signals; returns the transitions.
    pub fn update(&mut self, found: &[Found], now: Instant) -> Vec<Transition> {
        let mut seen: Vec<Key> = Vec::new();
        let mut out = Vec::new();
        for Found {
            alert: d,
            signal: s,
        } in found
        {
            let mut labels = s.labels.clone();
            labels.sort();
            let key: Key = (d.name, labels.clone());
            let exists = self.active.contains_key(&key);
            if !(s.active || (exists && s.held)) {
                continue;
            }
            seen.push(key.clone());
            self.clear_since.remove(&key);
            let a = self.active.entry(key).or_insert_with(|| Alert {
                name: d.name,
                severity: d.severity,
                labels,
                state: State::Pending,
                value: s.value,
                summary: s.summary.clone(),
                knob: d.knob,
                remedy: d.remedy,
                since: now,
                started: SystemTime::now(),
            });
            a.value = s.value;
            if s.active {
                a.summary = s.summary.clone();
            }
            if !exists {
                out.push(Transition {
                    alert: a.clone(),
                    from: None,
                });
            }
            if a.state == State::Pending
                && now.duration_since(a.since) >= self.thresholds.for_duration
            {
                a.state = State::Firing;
                out.push(Transition {
                    alert: a.clone(),
                    from: Some(State::Pending),
                });
            }
        }
        let gone: Vec<Key> = self
            .active
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for k in gone {
            let clear = *self.clear_since.entry(k.clone()).or_insert(now);
            let Some(a) = self.active.get(&k) else {
                continue;
            };
            let resolve = a.state == State::Pending
                || now.duration_since(clear) >= self.thresholds.clear_duration;
            if resolve {
                if let Some(mut a) = self.active.remove(&k) {
                    self.clear_since.remove(&k);
                    let from = a.state;
                    a.state = State::Resolved;
                    if from == State::Firing {
                        out.push(Transition {
                            alert: a,
                            from: Some(from),
                        });
                    }
                }
            }
        }
        out
    }

    /// Alerts pending or firing now.
    pub fn active(&self) -> Vec<&Alert> {
        self.active.values().collect()
    }

    /// `nodetune_alert{alertname,severity,state,…}` = 1 for every pending or firing alert.
    pub fn family(&self) -> Family {
        let mut f = Family::new(
            "nodetune_alert",
            "Alerts raised by nodetune: 1 per pending or firing alert.",
            MetricType::Gauge,
        );
        for a in self.active.values() {
            let state = if a.state == State::Firing {
                "firing"
            } else {
                "pending"
            };
            let mut labels: Vec<(Text, String)> = vec![
                ("alertname".into(), a.name.to_string()),
                ("severity".into(), a.severity.to_string()),
                ("state".into(), state.to_string()),
            ];
            for (k, v) in &a.labels {
                labels.push((k.clone().into(), v.clone()));
            }
            f.samples.push(Sample {
                labels: labels.into(),
                value: 1.0,
            });
        }
        f
    }
}
