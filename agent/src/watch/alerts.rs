//! Alert rules over collected samples: each tick, signals are computed from the latest
//! families (rates from the difference with the previous tick), and each alert moves
//! inactive → pending → firing → resolved with a `for` duration and hysteresis.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::collect::{Family, MetricType, Sample, Text};

/// `[alerts]` in nodetune.toml: evaluation, thresholds and durations, and where to push.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Thresholds {
    /// How often counters are collected and alerts evaluated.
    #[serde(deserialize_with = "crate::base::duration::duration")]
    pub interval: Duration,
    /// Alertmanager base URL (http://host:9093) to push alerts to; none by default.
    pub alertmanager_url: Option<String>,
    /// How long a condition must hold before the alert fires.
    #[serde(deserialize_with = "crate::base::duration::duration")]
    pub for_duration: Duration,
    /// How long a condition must be clear before a firing alert resolves.
    #[serde(deserialize_with = "crate::base::duration::duration")]
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
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            interval: Duration::from_secs(15),
            alertmanager_url: None,
            for_duration: Duration::from_secs(60),
            clear_duration: Duration::from_secs(300),
            conntrack_ratio: 0.9,
            ports_ratio: 0.8,
            fd_ratio: 0.8,
            socket_memory_ratio: 0.9,
            listen_queue_ratio: 0.9,
            counter_rate: 0.0,
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

/// A condition detected this tick.
#[derive(Debug, Clone)]
pub struct Signal {
    pub name: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub summary: String,
    /// True while the signal is past its firing threshold.
    pub active: bool,
    /// True while the signal is past its clearing threshold (hysteresis: between the two, a
    /// firing alert keeps firing and an inactive one stays inactive).
    pub held: bool,
}

struct Def {
    name: &'static str,
    severity: &'static str,
    remedy: &'static str,
}

/// Every alert nodetune raises, with its remedy.
const DEFS: &[Def] = &[
    Def { name: "SysctlDrift", severity: "warning", remedy: "a managed key differs from the profile: see who changed it (nodetune status), then `nodetune apply` or update the profile" },
    Def { name: "SysctlFight", severity: "critical", remedy: "another writer keeps resetting the key: remove the sysctl.d line, reconfigure kube-proxy (--conntrack-max-per-core=0) or bpftune, or drop the key from the profile" },
    Def { name: "ThermalThrottling", severity: "critical", remedy: "CPUs or sensors are at their thermal limit: check cooling and fans, power capping, and workload placement" },
    Def { name: "ListenQueueOverflow", severity: "warning", remedy: "accept queues overflow: raise net.core.somaxconn (profile [sysctl]) and the application's listen() backlog, or add workers" },
    Def { name: "SynBacklogPressure", severity: "warning", remedy: "SYN queue full or SYN cookies sent: raise net.ipv4.tcp_max_syn_backlog (and somaxconn)" },
    Def { name: "ConntrackNearFull", severity: "critical", remedy: "the conntrack table is nearly full or dropping: raise [conntrack] max (and buckets = \">=max\")" },
    Def { name: "EphemeralPortPressure", severity: "warning", remedy: "outbound connections approach the ephemeral port range: widen net.ipv4.ip_local_port_range, set net.ipv4.tcp_tw_reuse = 1, reuse connections" },
    Def { name: "FileDescriptorPressure", severity: "warning", remedy: "open files approach fs.file-max: raise [limits] nofile (fs.file-max, LimitNOFILE)" },
    Def { name: "SocketMemoryPressure", severity: "warning", remedy: "TCP memory pressure: raise net.ipv4.tcp_mem, or lower tcp_rmem/tcp_wmem maxima" },
    Def { name: "SoftnetDrops", severity: "warning", remedy: "packets dropped or squeezed in softirq processing: raise net.core.netdev_max_backlog and net.core.netdev_budget, spread IRQs (RPS/RSS)" },
    Def { name: "NicErrors", severity: "warning", remedy: "NIC errors or drops: check the link (cable, optics, duplex) and raise ring sizes (ethtool -G)" },
];

fn def(name: &str) -> &'static Def {
    DEFS.iter().find(|d| d.name == name).unwrap_or(&DEFS[0])
}

/// The names of every alert, for docs and tests.
pub fn names() -> impl Iterator<Item = &'static str> {
    DEFS.iter().map(|d| d.name)
}

type Key = (&'static str, Vec<(String, String)>);

/// Values of the counters rates are computed from, keyed by series.
type Counters = BTreeMap<String, f64>;

/// The alert engine.
pub struct Engine {
    pub thresholds: Thresholds,
    active: BTreeMap<Key, Alert>,
    /// Last time each active alert's condition was clear-enough to count toward resolving.
    clear_since: BTreeMap<Key, Instant>,
    prev: Option<(Instant, Counters)>,
}

fn series_key(f: &Family, labels: &[(Text, String)]) -> String {
    let mut k = f.name.to_string();
    for (n, v) in labels {
        k.push_str(&format!(",{n}={v}"));
    }
    k
}

fn find<'a>(fams: &'a [Family], name: &'a str) -> impl Iterator<Item = &'a crate::collect::Sample> {
    fams.iter()
        .filter(move |f| f.name == name)
        .flat_map(|f| f.samples.iter())
}

fn label<'a>(s: &'a crate::collect::Sample, name: &str) -> &'a str {
    s.labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Counter families whose increase raises an alert: (alert, families, label to split by).
const COUNTER_SIGNALS: &[(&str, &[&str], Option<&str>)] = &[
    (
        "ListenQueueOverflow",
        &[
            "node_netstat_TcpExt_ListenOverflows",
            "node_netstat_TcpExt_ListenDrops",
        ],
        None,
    ),
    (
        "SynBacklogPressure",
        &[
            "node_netstat_TcpExt_SyncookiesSent",
            "node_netstat_TcpExt_TCPReqQFullDrop",
        ],
        None,
    ),
    (
        "SocketMemoryPressure",
        &["node_netstat_TcpExt_TCPMemoryPressures"],
        None,
    ),
    (
        "SoftnetDrops",
        &[
            "node_softnet_dropped_total",
            "node_softnet_times_squeezed_total",
        ],
        None,
    ),
    (
        "ConntrackNearFull",
        &[
            "node_nf_conntrack_stat_drop",
            "node_nf_conntrack_stat_early_drop",
            "node_nf_conntrack_stat_insert_failed",
        ],
        None,
    ),
    (
        "ThermalThrottling",
        &[
            "node_cpu_core_throttles_total",
            "node_cpu_package_throttles_total",
        ],
        None,
    ),
    (
        "NicErrors",
        &[
            "node_network_receive_errs_total",
            "node_network_transmit_errs_total",
            "node_network_receive_drop_total",
            "node_network_transmit_drop_total",
            "node_network_receive_fifo_total",
        ],
        Some("device"),
    ),
];

impl Engine {
    pub fn new(thresholds: Thresholds) -> Engine {
        Engine {
            thresholds,
            active: BTreeMap::new(),
            clear_since: BTreeMap::new(),
            prev: None,
        }
    }

    /// Computes this tick's signals from the families (and the previous tick's counters).
    pub fn signals(&mut self, fams: &[Family], now: Instant) -> Vec<Signal> {
        let t = &self.thresholds;
        let mut out = Vec::new();
        // Counters: remember every series of the counter families, rate against last tick.
        let mut counters = Counters::new();
        for (_, names, _) in COUNTER_SIGNALS {
            for f in fams.iter().filter(|f| names.contains(&f.name.as_ref())) {
                for s in &f.samples {
                    counters.insert(series_key(f, &s.labels), s.value);
                }
            }
        }
        if let Some((then, prev)) = &self.prev {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            for (alert, names, split) in COUNTER_SIGNALS {
                let mut by_label: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
                for f in fams.iter().filter(|f| names.contains(&f.name.as_ref())) {
                    for s in &f.samples {
                        let k = series_key(f, &s.labels);
                        // A counter that went backwards (reset) counts from zero.
                        let inc = match prev.get(&k) {
                            Some(p) if s.value >= *p => s.value - p,
                            Some(_) => s.value,
                            None => 0.0,
                        };
                        let group = split.map(|l| label(s, l).to_string()).unwrap_or_default();
                        let e = by_label.entry(group).or_default();
                        e.0 += inc;
                        if inc > 0.0 && !e.1.iter().any(|n| *n == f.name) {
                            e.1.push(f.name.to_string());
                        }
                    }
                }
                for (group, (inc, which)) in by_label {
                    let rate = inc / secs;
                    let active = inc > 0.0 && rate > t.counter_rate;
                    let labels = match split {
                        Some(l) => vec![(l.to_string(), group)],
                        None => Vec::new(),
                    };
                    out.push(Signal {
                        name: alert,
                        labels,
                        value: rate,
                        summary: if active {
                            format!("{} rising: {rate:.3}/s", which.join(", "))
                        } else {
                            "no increase".into()
                        },
                        active,
                        held: active,
                    });
                }
            }
        }
        self.prev = Some((now, counters));

        // Ratios with hysteresis: fire at the threshold, clear 5 points below it.
        let ratio =
            |name: &'static str, resource: &str, v: Option<f64>, limit: f64, what: String| {
                v.map(|v| Signal {
                    name,
                    labels: vec![("resource".into(), resource.into())],
                    value: v,
                    summary: format!(
                        "{what}: {:.1} % (threshold {:.0} %)",
                        v * 100.0,
                        limit * 100.0
                    ),
                    active: v >= limit,
                    held: v >= limit - 0.05,
                })
            };
        out.extend(ratio(
            "ConntrackNearFull",
            "conntrack",
            saturation(fams, "conntrack"),
            t.conntrack_ratio,
            "conntrack entries / nf_conntrack_max".into(),
        ));
        out.extend(ratio(
            "FileDescriptorPressure",
            "fds",
            saturation(fams, "fds"),
            t.fd_ratio,
            "allocated file handles / fs.file-max".into(),
        ));
        out.extend(ratio(
            "EphemeralPortPressure",
            "ports",
            saturation(fams, "ports"),
            t.ports_ratio,
            "TCP sockets / ip_local_port_range size".into(),
        ));
        out.extend(ratio(
            "SocketMemoryPressure",
            "socket_memory",
            saturation(fams, "socket_memory"),
            t.socket_memory_ratio,
            "TCP memory / tcp_mem maximum".into(),
        ));
        out.extend(ratio(
            "ListenQueueOverflow",
            "listen_queue",
            saturation(fams, "listen_queue"),
            t.listen_queue_ratio,
            "fullest accept queue / its backlog limit".into(),
        ));
        // Temperatures at or past their critical (or max) limit, per sensor.
        for s in find(fams, "node_hwmon_temp_celsius") {
            let (chip, sensor) = (label(s, "chip"), label(s, "sensor"));
            let limit = [
                "node_hwmon_temp_crit_celsius",
                "node_hwmon_temp_max_celsius",
            ]
            .iter()
            .find_map(|n| {
                find(fams, n)
                    .find(|l| label(l, "chip") == chip && label(l, "sensor") == sensor)
                    .map(|l| l.value)
            })
            .filter(|l| *l > 0.0);
            if let Some(limit) = limit {
                out.push(Signal {
                    name: "ThermalThrottling",
                    labels: vec![
                        ("chip".into(), chip.into()),
                        ("sensor".into(), sensor.into()),
                    ],
                    value: s.value,
                    summary: format!("{chip} {sensor} at {:.1} °C (limit {limit:.1} °C)", s.value),
                    active: s.value >= limit,
                    held: s.value >= limit - 5.0,
                });
            }
        }
        // GPU throttle reasons other than idle.
        for s in find(fams, "nodetune_gpu_throttle_active") {
            let reason = label(s, "reason");
            if reason == "gpu_idle" || reason == "applications_clocks_setting" {
                continue;
            }
            out.push(Signal {
                name: "ThermalThrottling",
                labels: vec![
                    ("gpu".into(), label(s, "gpu").into()),
                    ("reason".into(), reason.into()),
                ],
                value: s.value,
                summary: format!("GPU {} throttled: {reason}", label(s, "gpu")),
                active: s.value > 0.0,
                held: s.value > 0.0,
            });
        }
        out
    }

    /// Advances every alert with this tick's signals; returns the transitions.
    pub fn update(&mut self, signals: &[Signal], now: Instant) -> Vec<Transition> {
        let mut seen: Vec<Key> = Vec::new();
        let mut out = Vec::new();
        for s in signals {
            let mut labels = s.labels.clone();
            labels.sort();
            let key: Key = (s.name, labels.clone());
            let exists = self.active.contains_key(&key);
            if !(s.active || (exists && s.held)) {
                continue;
            }
            seen.push(key.clone());
            self.clear_since.remove(&key);
            let d = def(s.name);
            let a = self.active.entry(key).or_insert_with(|| Alert {
                name: d.name,
                severity: d.severity,
                labels,
                state: State::Pending,
                value: s.value,
                summary: s.summary.clone(),
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
            f.samples.push(Sample { labels, value: 1.0 });
        }
        f
    }
}

/// SysctlDrift and SysctlFight signals from the drift watcher's key states.
pub fn drift_signals(states: &[crate::watch::drift::KeyState], profile: &str) -> Vec<Signal> {
    let mut out = Vec::new();
    for k in states.iter().filter(|k| !k.pending) {
        let labels = vec![("key".to_string(), k.key.clone())];
        let actual = k.actual.as_deref().unwrap_or("(missing)");
        match &k.fight {
            Some(writer) => out.push(Signal {
                name: "SysctlFight",
                labels,
                value: k.corrections_total as f64,
                summary: format!(
                    "{} keeps being reset to {actual} (profile {profile} wants {}); likely writer: {writer}",
                    k.key, k.want
                ),
                active: true,
                held: true,
            }),
            None if !k.in_sync => out.push(Signal {
                name: "SysctlDrift",
                labels,
                value: k.drift_total as f64,
                summary: format!("{} is {actual} (profile {profile} wants {})", k.key, k.want),
                active: true,
                held: true,
            }),
            None => {}
        }
    }
    out
}

/// `nodetune_saturation_ratio{resource}` value from the saturation families, if present.
pub fn saturation(fams: &[Family], resource: &str) -> Option<f64> {
    find(fams, "nodetune_saturation_ratio")
        .find(|s| label(s, "resource") == resource)
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(name: &'static str, labels: &[(&'static str, &str)], v: f64) -> Family {
        let mut f = Family::new(name, "", MetricType::Untyped);
        f.push(labels, v);
        f
    }

    fn quick() -> Thresholds {
        Thresholds {
            for_duration: Duration::from_secs(2),
            clear_duration: Duration::from_secs(3),
            ..Thresholds::default()
        }
    }

    #[test]
    fn counter_alert_pending_firing_resolved() {
        let mut e = Engine::new(quick());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut step = |s: u64, v: f64| {
            let f = vec![fam("node_netstat_TcpExt_ListenOverflows", &[], v)];
            let sig = e.signals(&f, at(s));
            e.update(&sig, at(s))
                .into_iter()
                .map(|t| (t.alert.name, t.alert.state))
                .collect::<Vec<_>>()
        };
        assert!(step(0, 10.0).is_empty(), "first tick has no rate");
        assert!(step(1, 10.0).is_empty());
        assert_eq!(step(2, 15.0), vec![("ListenQueueOverflow", State::Pending)]);
        assert!(step(3, 20.0).is_empty());
        assert_eq!(step(4, 25.0), vec![("ListenQueueOverflow", State::Firing)]);
        assert!(step(5, 25.0).is_empty(), "clear, but not for long enough");
        assert!(step(6, 25.0).is_empty());
        assert_eq!(
            step(8, 25.0),
            vec![("ListenQueueOverflow", State::Resolved)]
        );
    }

    #[test]
    fn ratio_hysteresis_and_labels() {
        let mut e = Engine::new(quick());
        let t0 = Instant::now();
        let f = |v: f64| {
            vec![fam(
                "nodetune_saturation_ratio",
                &[("resource", "conntrack")],
                v,
            )]
        };
        let sig = e.signals(&f(0.95), t0);
        let tr = e.update(&sig, t0);
        assert_eq!(
            tr[0].alert.labels,
            vec![("resource".to_string(), "conntrack".to_string())]
        );
        let t = t0 + Duration::from_secs(3);
        let sig = e.signals(&f(0.92), t);
        assert_eq!(e.update(&sig, t)[0].alert.state, State::Firing);
        // 0.87 is below the threshold but above the clearing line: keeps firing.
        let t = t0 + Duration::from_secs(10);
        let sig = e.signals(&f(0.87), t);
        assert!(e.update(&sig, t).is_empty());
        assert_eq!(e.active().len(), 1);
        let fam = e.family();
        assert_eq!(
            fam.samples[0].labels[0],
            ("alertname".into(), "ConntrackNearFull".into())
        );
        // A pending alert that clears before `for` resolves silently.
        let mut e2 = Engine::new(quick());
        let s = e2.signals(&f(0.95), t0);
        e2.update(&s, t0);
        let s = e2.signals(&f(0.1), t0 + Duration::from_secs(1));
        assert!(e2.update(&s, t0 + Duration::from_secs(1)).is_empty());
        assert!(e2.active().is_empty());
    }

    #[test]
    fn hwmon_crit_and_counter_resets() {
        let mut e = Engine::new(quick());
        let t0 = Instant::now();
        let fams = vec![
            fam(
                "node_hwmon_temp_celsius",
                &[("chip", "platform_coretemp_0"), ("sensor", "temp1")],
                100.0,
            ),
            fam(
                "node_hwmon_temp_crit_celsius",
                &[("chip", "platform_coretemp_0"), ("sensor", "temp1")],
                100.0,
            ),
            fam(
                "node_cpu_package_throttles_total",
                &[("package", "0")],
                50.0,
            ),
        ];
        let s = e.signals(&fams, t0);
        let hot: Vec<_> = s.iter().filter(|s| s.active).collect();
        assert_eq!(hot.len(), 1);
        assert!(hot[0].summary.contains("at 100.0 °C (limit 100.0 °C)"));
        let mut later = fams.clone();
        later[2].samples[0].value = 3.0; // reset: counts 3 as the increase
        let s = e.signals(&later, t0 + Duration::from_secs(1));
        let throttle = s.iter().find(|s| s.summary.contains("throttles")).unwrap();
        assert!(throttle.active && (throttle.value - 3.0).abs() < 1e-9);
    }
}
