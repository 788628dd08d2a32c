//! The alert catalogue: one table holds every alert nodetune raises — its name, severity, the
//! knob that fixes it, its runbook text, and for each of its conditions both how the engine
//! evaluates it on a [`Snapshot`] and the PromQL that computes the same condition from the
//! exported metrics. The engine, `nodetune alerts list`, the shipped Prometheus rules
//! (`nodetune alerts rules`) and the table in docs/alerts.md all come from here; tests check
//! the shipped files against it and run both sides on the same inputs.
//!
//! Counter conditions compare two consecutive snapshots: the per-second increase of any one
//! counter above the threshold (a counter that went backwards counts from zero). PromQL's
//! `irate` computes the same thing between the last two scrapes. Ratio conditions fire at
//! their threshold and clear 5 points below it; the PromQL keeps an alert that is already
//! pending or firing (its `ALERTS` series) in that band.

use std::time::Instant;

use super::alerts::{Signal, Thresholds};
use super::drift::KeyState;
use super::saturation::Saturation;
use super::snapshot::Snapshot;
use crate::collect::{gpu, Family, MetricType};

/// Where an alert's conditions are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On each host by nodetune, and by the shipped Prometheus rules.
    Host,
    /// Only by Prometheus, across hosts (the agent is down, drift on many hosts).
    Fleet,
}

/// One alert of the catalogue.
pub struct AlertDef {
    pub name: &'static str,
    pub severity: &'static str,
    pub scope: Scope,
    /// The knob (profile key or action) that fixes it, in one line.
    pub knob: &'static str,
    /// The profile keys that knob is made of (`recommend` looks for a profile that sets them;
    /// `fs.nr_open` stands for `[limits] nofile`); empty where no key fixes it.
    pub keys: &'static [&'static str],
    /// Runbook text: what to do when it fires.
    pub remedy: &'static str,
    pub conditions: &'static [Condition],
}

/// One way an alert can fire. Each yields signals with its own label set, on the engine and
/// in Prometheus alike.
pub struct Condition {
    /// The condition in words (docs, `nodetune alerts list`).
    pub signal: &'static str,
    /// Labels fixed for this condition (added to every signal and to the Prometheus rule).
    pub labels: &'static [(&'static str, &'static str)],
    /// The engine's evaluation; `None` for fleet rules.
    eval: Option<fn(&Eval) -> Vec<Signal>>,
    /// The PromQL computing the same condition.
    promql: fn(&Query) -> String,
    /// The Prometheus rule's summary annotation.
    pub summary: &'static str,
}

/// What a condition is evaluated on.
pub struct Eval<'a> {
    pub now: &'a Snapshot,
    /// The previous tick's snapshot (counters need two readings).
    pub prev: Option<&'a Snapshot>,
    /// Seconds between the two.
    pub secs: f64,
    pub sat: &'a Saturation,
    pub keys: &'a [KeyState],
    pub profile: &'a str,
    pub t: &'a Thresholds,
}

/// What the PromQL is generated with.
pub struct Query<'a> {
    pub t: &'a Thresholds,
    /// Matchers added to every selector, e.g. `job="nodetune"` (may be empty).
    pub selector: &'a str,
    /// The `irate` range: at least two scrape intervals.
    pub window: &'a str,
    /// The alert being generated (for its own `ALERTS` series).
    pub alert: &'a str,
    pub labels: &'a [(&'static str, &'static str)],
}

impl Query<'_> {
    /// `name{selector,extra}`.
    fn m(&self, name: &str, extra: &str) -> String {
        let inner: Vec<&str> = [self.selector, extra]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if inner.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", inner.join(","))
        }
    }

    /// `irate(name{…}[window]) > rate`.
    fn rising(&self, name: &str, rate: f64) -> String {
        format!(
            "irate({}[{}]) > {}",
            self.m(name, ""),
            self.window,
            num(rate)
        )
    }

    /// `expr >= T or (expr >= T - 0.05 and on(instance, job[, extra]) ALERTS{…})`.
    fn ratio(&self, expr: &str, threshold: f64) -> String {
        self.with_hysteresis(expr, threshold, threshold - 0.05, &[])
    }

    fn with_hysteresis(&self, expr: &str, fire: f64, hold: f64, on: &[&str]) -> String {
        let mut matchers = vec![format!("alertname=\"{}\"", self.alert)];
        matchers.extend(self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
        let mut on_labels = vec!["instance", "job"];
        on_labels.extend_from_slice(on);
        format!(
            "{expr} >= {} or ({expr} >= {} and on ({}) ALERTS{{{}}})",
            num(fire),
            num(hold),
            on_labels.join(", "),
            matchers.join(",")
        )
    }
}

/// A threshold as PromQL writes it (no trailing zeros).
fn num(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Per-second increase of a counter between two readings; a counter that went backwards
/// (reset) counts from zero, as PromQL's rate functions do.
fn rate(prev: Option<u64>, now: Option<u64>, secs: f64) -> Option<f64> {
    let (p, n) = (prev?, now?);
    let inc = if n >= p { n - p } else { n };
    Some(inc as f64 / secs)
}

/// A counter read from a snapshot, with the names it has in summaries and in PromQL.
struct Counter {
    /// As the kernel names it (summaries).
    name: &'static str,
    /// The exported family Prometheus reads it from.
    metric: &'static str,
    get: fn(&Snapshot) -> Option<u64>,
}

/// Fires when any of the counters rises faster than `limit` per second.
fn counters_rising(e: &Eval, counters: &[Counter], limit: f64) -> Vec<Signal> {
    let Some(prev) = e.prev else {
        return Vec::new();
    };
    let mut rising = Vec::new();
    let mut top = 0.0f64;
    for c in counters {
        if let Some(r) = rate((c.get)(prev), (c.get)(e.now), e.secs) {
            top = top.max(r);
            if r > limit {
                rising.push(format!("{} {r:.3}/s", c.name));
            }
        }
    }
    let active = !rising.is_empty();
    vec![Signal {
        labels: Vec::new(),
        value: top,
        summary: if active {
            format!("rising: {}", rising.join(", "))
        } else {
            "no increase".into()
        },
        active,
        held: active,
    }]
}

fn counters_promql(q: &Query, counters: &[Counter], limit: f64) -> String {
    counters
        .iter()
        .map(|c| q.rising(c.metric, limit))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A ratio signal: fires at `limit`, clears 5 points below it.
fn ratio(value: Option<f64>, limit: f64, what: &str) -> Vec<Signal> {
    value
        .map(|v| Signal {
            labels: Vec::new(),
            value: v,
            summary: format!(
                "{what}: {:.1} % (threshold {:.0} %)",
                v * 100.0,
                limit * 100.0
            ),
            active: v >= limit,
            held: v >= limit - 0.05,
        })
        .into_iter()
        .collect()
}

const LISTEN_COUNTERS: &[Counter] = &[
    Counter {
        name: "TcpExt ListenOverflows",
        metric: "node_netstat_TcpExt_ListenOverflows",
        get: |s| s.tcp_ext?.listen_overflows,
    },
    Counter {
        name: "TcpExt ListenDrops",
        metric: "node_netstat_TcpExt_ListenDrops",
        get: |s| s.tcp_ext?.listen_drops,
    },
];

const SYN_COUNTERS: &[Counter] = &[
    Counter {
        name: "TcpExt SyncookiesSent",
        metric: "node_netstat_TcpExt_SyncookiesSent",
        get: |s| s.tcp_ext?.syncookies_sent,
    },
    Counter {
        name: "TcpExt TCPReqQFullDrop",
        // Not among node_exporter's default netstat fields: the daemon exports it.
        metric: "nodetune_netstat_TcpExt_TCPReqQFullDrop",
        get: |s| s.tcp_ext?.req_q_full_drop,
    },
];

const TCP_MEMORY_COUNTERS: &[Counter] = &[Counter {
    name: "TcpExt TCPMemoryPressures",
    metric: "nodetune_netstat_TcpExt_TCPMemoryPressures",
    get: |s| s.tcp_ext?.memory_pressures,
}];

const CONNTRACK_COUNTERS: &[Counter] = &[
    Counter {
        name: "conntrack drop",
        metric: "node_nf_conntrack_stat_drop",
        get: |s| s.conntrack?.drop(),
    },
    Counter {
        name: "conntrack early_drop",
        metric: "node_nf_conntrack_stat_early_drop",
        get: |s| s.conntrack?.early_drop(),
    },
    Counter {
        name: "conntrack insert_failed",
        metric: "node_nf_conntrack_stat_insert_failed",
        get: |s| s.conntrack?.insert_failed(),
    },
];

fn sum_u64(it: impl Iterator<Item = u64>) -> u64 {
    it.fold(0u64, u64::wrapping_add)
}

const CORE_THROTTLES: &[Counter] = &[Counter {
    name: "core throttles",
    metric: "node_cpu_core_throttles_total",
    get: |s| Some(sum_u64(s.throttles.as_ref()?.cores.values().copied())),
}];

const PACKAGE_THROTTLES: &[Counter] = &[Counter {
    name: "package throttles",
    metric: "node_cpu_package_throttles_total",
    get: |s| Some(sum_u64(s.throttles.as_ref()?.packages.values().copied())),
}];

const SOFTNET_DROPPED: &[Counter] = &[Counter {
    name: "softnet dropped",
    metric: "node_softnet_dropped_total",
    get: |s| {
        Some(sum_u64(
            s.softnet.as_ref()?.iter().map(|r| u64::from(r.dropped())),
        ))
    },
}];

const SOFTNET_SQUEEZED: &[Counter] = &[Counter {
    name: "softnet times_squeezed",
    metric: "node_softnet_times_squeezed_total",
    get: |s| {
        Some(sum_u64(
            s.softnet
                .as_ref()?
                .iter()
                .map(|r| u64::from(r.times_squeezed())),
        ))
    },
}];

/// Counters summed over a label (CPUs, cores) in PromQL as in the engine.
fn summed_rising(q: &Query, metric: &str, by: &str, limit: f64) -> String {
    format!(
        "sum without ({by}) (irate({}[{}])) > {}",
        q.m(metric, ""),
        q.window,
        num(limit)
    )
}

/// NIC errors: per device and direction, bad packets / packets over the last tick.
fn nic_ratio(e: &Eval, transmit: bool) -> Vec<Signal> {
    let (Some(prev), Some(now)) = (e.prev, e.now.nics.as_ref()) else {
        return Vec::new();
    };
    let Some(before) = prev.nics.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in now {
        let Some(p) = before.iter().find(|p| p.device == n.device) else {
            continue;
        };
        let r = |f: fn(&crate::collect::netdev::Nic) -> u64| {
            rate(Some(f(p)), Some(f(n)), e.secs).unwrap_or(0.0)
        };
        let (bad, packets) = if transmit {
            (
                r(|n| n.transmit_errs) + r(|n| n.transmit_drop),
                r(|n| n.transmit_packets),
            )
        } else {
            (
                r(|n| n.receive_errs) + r(|n| n.receive_drop) + r(|n| n.receive_fifo),
                r(|n| n.receive_packets),
            )
        };
        // 0/0 is no signal; errors with no packets at all are as bad as it gets.
        let ratio = bad / packets;
        if ratio.is_nan() {
            continue;
        }
        let active = ratio > e.t.nic_error_ratio;
        out.push(Signal {
            labels: vec![("device".into(), n.device.clone())],
            value: ratio,
            summary: format!(
                "{} {}: {bad:.1} bad packets/s of {packets:.1}/s ({:.2} %, threshold {:.2} %)",
                n.device,
                if transmit { "transmit" } else { "receive" },
                ratio * 100.0,
                e.t.nic_error_ratio * 100.0
            ),
            active,
            held: active,
        });
    }
    out
}

fn nic_promql(q: &Query, transmit: bool) -> String {
    let dir = if transmit { "transmit" } else { "receive" };
    let bad: &[&str] = if transmit {
        &["errs", "drop"]
    } else {
        &["errs", "drop", "fifo"]
    };
    let rate = |what: &str| {
        format!(
            "irate({}[{}])",
            q.m(&format!("node_network_{dir}_{what}_total"), ""),
            q.window
        )
    };
    let sum: Vec<String> = bad.iter().map(|b| rate(b)).collect();
    format!(
        "({}) / {} > {}",
        sum.join(" + "),
        rate("packets"),
        num(q.t.nic_error_ratio)
    )
}

/// Temperatures at or past their `crit` limit, else their `max`; clear 5 °C below.
fn temperatures(e: &Eval) -> Vec<Signal> {
    let mut out = Vec::new();
    for t in e.now.temps.iter().flatten() {
        let Some(limit) = [t.crit, t.max].into_iter().flatten().find(|l| *l > 0.0) else {
            continue;
        };
        out.push(Signal {
            labels: vec![
                ("chip".into(), t.chip.clone()),
                ("sensor".into(), t.sensor.clone()),
            ],
            value: t.celsius,
            summary: format!(
                "{} {} at {:.1} °C (limit {limit:.1} °C)",
                t.chip, t.sensor, t.celsius
            ),
            active: t.celsius >= limit,
            held: t.celsius >= limit - 5.0,
        });
    }
    out
}

fn temperatures_promql(q: &Query) -> String {
    let over = format!(
        "({} - on (instance, job, chip, sensor) ({} > 0 or {} > 0))",
        q.m("node_hwmon_temp_celsius", ""),
        q.m("node_hwmon_temp_crit_celsius", ""),
        q.m("node_hwmon_temp_max_celsius", "")
    );
    q.with_hysteresis(&over, 0.0, -5.0, &["chip", "sensor"])
}

fn gpu_throttling(e: &Eval) -> Vec<Signal> {
    let mut out = Vec::new();
    for r in e.now.gpus.iter().flatten() {
        for reason in gpu::throttling(r) {
            out.push(Signal {
                labels: vec![
                    ("gpu".into(), r.index.to_string()),
                    ("reason".into(), reason.into()),
                ],
                value: 1.0,
                summary: format!("GPU {} throttled: {reason}", r.index),
                active: true,
                held: true,
            });
        }
    }
    out
}

fn drifted(e: &Eval) -> Vec<Signal> {
    e.keys
        .iter()
        .filter(|k| !k.pending && !k.in_sync && k.fight.is_none())
        .map(|k| Signal {
            labels: vec![("key".into(), k.key.clone())],
            value: k.drift_total as f64,
            summary: format!(
                "{} is {} (profile {} wants {})",
                k.key,
                k.actual.as_deref().unwrap_or("(missing)"),
                e.profile,
                k.want
            ),
            active: true,
            held: true,
        })
        .collect()
}

fn fights(e: &Eval) -> Vec<Signal> {
    e.keys
        .iter()
        .filter(|k| !k.pending)
        .filter_map(|k| {
            let writer = k.fight.as_ref()?;
            Some(Signal {
                labels: vec![("key".into(), k.key.clone())],
                value: k.corrections_total as f64,
                summary: format!(
                    "{} keeps being reset to {} (profile {} wants {}); likely writer: {writer}",
                    k.key,
                    k.actual.as_deref().unwrap_or("(missing)"),
                    e.profile,
                    k.want
                ),
                active: true,
                held: true,
            })
        })
        .collect()
}

/// Every alert nodetune knows, host alerts first.
pub const CATALOGUE: &[AlertDef] = &[
    AlertDef {
        name: "SysctlDrift",
        severity: "warning",
        scope: Scope::Host,
        knob: "the drifted key: `nodetune apply`, or enforce mode",
        keys: &[],
        remedy: "a managed key differs from the profile: see who changed it (nodetune status, nodetune plan lists sysctl.d conflicts), then `nodetune apply` or update the profile",
        conditions: &[Condition {
            signal: "a managed key no longer satisfies the profile (and no other writer is fighting over it)",
            labels: &[],
            eval: Some(drifted),
            promql: |q| {
                format!(
                    "{} == 0 and {} == 0 and {} == 0",
                    q.m("nodetune_key_in_sync", ""),
                    q.m("nodetune_key_pending", ""),
                    q.m("nodetune_key_fight", "")
                )
            },
            summary: "{{ $labels.key }} drifted from the profile on {{ $labels.instance }}",
        }],
    },
    AlertDef {
        name: "SysctlFight",
        severity: "critical",
        scope: Scope::Host,
        knob: "one owner per key: the sysctl.d line, kube-proxy --conntrack-max-per-core=0, bpftune, or the profile",
        keys: &[],
        remedy: "another writer keeps resetting the key: remove the sysctl.d line, reconfigure kube-proxy (--conntrack-max-per-core=0) or bpftune, or drop the key from the profile",
        conditions: &[Condition {
            signal: "in enforce mode a key was changed back 3 times within 120 s after correction; corrections stop",
            labels: &[],
            eval: Some(fights),
            promql: |q| format!("{} == 1", q.m("nodetune_key_fight", "")),
            summary: "another writer keeps resetting {{ $labels.key }} on {{ $labels.instance }}",
        }],
    },
    AlertDef {
        name: "ThermalThrottling",
        severity: "critical",
        scope: Scope::Host,
        knob: "cooling, power capping, workload placement",
        keys: &[],
        remedy: "CPUs or sensors are at their thermal limit: check cooling and fans, power capping, and workload placement",
        conditions: &[
            Condition {
                signal: "CPU core throttle counters rising",
                labels: &[("source", "cpu_core")],
                eval: Some(|e| counters_rising(e, CORE_THROTTLES, e.t.counter_rate)),
                promql: |q| summed_rising(q, "node_cpu_core_throttles_total", "package, core", q.t.counter_rate),
                summary: "CPU cores of {{ $labels.instance }} are thermally throttled",
            },
            Condition {
                signal: "CPU package throttle counters rising",
                labels: &[("source", "cpu_package")],
                eval: Some(|e| counters_rising(e, PACKAGE_THROTTLES, e.t.counter_rate)),
                promql: |q| summed_rising(q, "node_cpu_package_throttles_total", "package", q.t.counter_rate),
                summary: "CPU packages of {{ $labels.instance }} are thermally throttled",
            },
            Condition {
                signal: "a hwmon temperature at or above its crit limit (else max); clears 5 °C below",
                labels: &[("source", "hwmon")],
                eval: Some(temperatures),
                promql: temperatures_promql,
                summary: "{{ $labels.chip }} {{ $labels.sensor }} on {{ $labels.instance }} is at its temperature limit",
            },
            Condition {
                signal: "an NVIDIA GPU holds its clocks down for a reason other than idle or application clocks (gpu feature)",
                labels: &[("source", "gpu")],
                eval: Some(gpu_throttling),
                promql: |q| {
                    format!(
                        "max without (uuid, name) ({}) > 0",
                        q.m(
                            "nodetune_gpu_throttle_active",
                            "reason!~\"gpu_idle|applications_clocks_setting\""
                        )
                    )
                },
                summary: "GPU {{ $labels.gpu }} of {{ $labels.instance }} is throttled: {{ $labels.reason }}",
            },
        ],
    },
    AlertDef {
        name: "ListenQueueOverflow",
        severity: "warning",
        scope: Scope::Host,
        knob: "net.core.somaxconn (profile [sysctl]) and the application's listen() backlog",
        keys: &["net.core.somaxconn"],
        remedy: "accept queues overflow: raise net.core.somaxconn (profile [sysctl]) and the application's listen() backlog, or add workers",
        conditions: &[
            Condition {
                signal: "TcpExt ListenOverflows or ListenDrops rising",
                labels: &[],
                eval: Some(|e| counters_rising(e, LISTEN_COUNTERS, e.t.counter_rate)),
                promql: |q| counters_promql(q, LISTEN_COUNTERS, q.t.counter_rate),
                summary: "accept queues overflow on {{ $labels.instance }}",
            },
            Condition {
                signal: "the fullest accept queue at listen-queue-ratio of its backlog limit (sock_diag, listening sockets)",
                labels: &[("resource", "listen_queue")],
                eval: Some(|e| ratio(e.sat.listen_queue, e.t.listen_queue_ratio, "fullest accept queue / its backlog limit")),
                promql: |q| q.ratio(&q.m("nodetune_saturation_ratio", "resource=\"listen_queue\""), q.t.listen_queue_ratio),
                summary: "an accept queue on {{ $labels.instance }} is {{ $value | humanizePercentage }} full",
            },
        ],
    },
    AlertDef {
        name: "SynBacklogPressure",
        severity: "warning",
        scope: Scope::Host,
        knob: "net.core.somaxconn and the listen() backlog (they cap the SYN queue while tcp_syncookies = 1); net.ipv4.tcp_max_syn_backlog only without cookies",
        keys: &["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"],
        remedy: "SYN queue full or SYN cookies sent: raise net.core.somaxconn and the application's listen() backlog, which cap the SYN queue while tcp_syncookies = 1 (keep it); net.ipv4.tcp_max_syn_backlog is the limit only with tcp_syncookies = 0",
        conditions: &[Condition {
            signal: "TcpExt SyncookiesSent or TCPReqQFullDrop rising",
            labels: &[],
            eval: Some(|e| counters_rising(e, SYN_COUNTERS, e.t.counter_rate)),
            promql: |q| counters_promql(q, SYN_COUNTERS, q.t.counter_rate),
            summary: "the SYN queue overflows on {{ $labels.instance }}",
        }],
    },
    AlertDef {
        name: "ConntrackNearFull",
        severity: "critical",
        scope: Scope::Host,
        knob: "[conntrack] max (with buckets = \">=max\")",
        keys: &["net.netfilter.nf_conntrack_max"],
        remedy: "the conntrack table is nearly full or dropping: raise [conntrack] max (and buckets = \">=max\")",
        conditions: &[
            Condition {
                signal: "conntrack entries / nf_conntrack_max at conntrack-ratio",
                labels: &[("resource", "conntrack")],
                eval: Some(|e| ratio(e.sat.conntrack, e.t.conntrack_ratio, "conntrack entries / nf_conntrack_max")),
                promql: |q| {
                    let expr = format!(
                        "({} / {})",
                        q.m("node_nf_conntrack_entries", ""),
                        q.m("node_nf_conntrack_entries_limit", "")
                    );
                    q.ratio(&expr, q.t.conntrack_ratio)
                },
                summary: "conntrack table {{ $value | humanizePercentage }} full on {{ $labels.instance }}",
            },
            Condition {
                signal: "conntrack drop, early_drop or insert_failed rising",
                labels: &[],
                eval: Some(|e| counters_rising(e, CONNTRACK_COUNTERS, e.t.counter_rate)),
                promql: |q| counters_promql(q, CONNTRACK_COUNTERS, q.t.counter_rate),
                summary: "conntrack drops connections on {{ $labels.instance }}",
            },
        ],
    },
    AlertDef {
        name: "EphemeralPortPressure",
        severity: "warning",
        scope: Scope::Host,
        knob: "net.ipv4.ip_local_port_range, net.ipv4.tcp_tw_reuse = 1",
        keys: &["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"],
        remedy: "outbound connections approach the ephemeral port range: widen net.ipv4.ip_local_port_range, set net.ipv4.tcp_tw_reuse = 1, reuse connections",
        conditions: &[Condition {
            signal: "TCP sockets (in use + TIME_WAIT) / the size of ip_local_port_range at ports-ratio",
            labels: &[("resource", "ports")],
            eval: Some(|e| ratio(e.sat.ports, e.t.ports_ratio, "TCP sockets / ip_local_port_range size")),
            promql: |q| q.ratio(&q.m("nodetune_saturation_ratio", "resource=\"ports\""), q.t.ports_ratio),
            summary: "ephemeral ports {{ $value | humanizePercentage }} used on {{ $labels.instance }}",
        }],
    },
    AlertDef {
        name: "FileDescriptorPressure",
        severity: "warning",
        scope: Scope::Host,
        knob: "[limits] nofile (fs.file-max, LimitNOFILE)",
        keys: &["fs.file-max", "fs.nr_open"],
        remedy: "open files approach fs.file-max: raise [limits] nofile (fs.file-max, LimitNOFILE)",
        conditions: &[Condition {
            signal: "allocated file handles / fs.file-max at fd-ratio",
            labels: &[("resource", "fds")],
            eval: Some(|e| ratio(e.sat.fds, e.t.fd_ratio, "allocated file handles / fs.file-max")),
            promql: |q| {
                let expr = format!(
                    "({} / {})",
                    q.m("node_filefd_allocated", ""),
                    q.m("node_filefd_maximum", "")
                );
                q.ratio(&expr, q.t.fd_ratio)
            },
            summary: "file handles {{ $value | humanizePercentage }} of fs.file-max on {{ $labels.instance }}",
        }],
    },
    AlertDef {
        name: "SocketMemoryPressure",
        severity: "warning",
        scope: Scope::Host,
        knob: "net.ipv4.tcp_mem, or lower tcp_rmem/tcp_wmem maxima",
        keys: &["net.ipv4.tcp_mem"],
        remedy: "TCP memory pressure: raise net.ipv4.tcp_mem, or lower tcp_rmem/tcp_wmem maxima",
        conditions: &[
            Condition {
                signal: "TcpExt TCPMemoryPressures rising",
                labels: &[],
                eval: Some(|e| counters_rising(e, TCP_MEMORY_COUNTERS, e.t.counter_rate)),
                promql: |q| counters_promql(q, TCP_MEMORY_COUNTERS, q.t.counter_rate),
                summary: "TCP entered memory pressure on {{ $labels.instance }}",
            },
            Condition {
                signal: "TCP memory (sockstat mem, pages) / the third tcp_mem field at socket-memory-ratio",
                labels: &[("resource", "socket_memory")],
                eval: Some(|e| ratio(e.sat.socket_memory, e.t.socket_memory_ratio, "TCP memory / tcp_mem maximum")),
                promql: |q| q.ratio(&q.m("nodetune_saturation_ratio", "resource=\"socket_memory\""), q.t.socket_memory_ratio),
                summary: "TCP memory at {{ $value | humanizePercentage }} of tcp_mem on {{ $labels.instance }}",
            },
        ],
    },
    AlertDef {
        name: "SoftnetDrops",
        severity: "warning",
        scope: Scope::Host,
        knob: "net.core.netdev_max_backlog, net.core.netdev_budget",
        keys: &["net.core.netdev_max_backlog", "net.core.netdev_budget"],
        remedy: "packets dropped or squeezed in softirq processing: raise net.core.netdev_max_backlog and net.core.netdev_budget, spread IRQs (RPS/RSS)",
        conditions: &[
            Condition {
                signal: "softnet dropped rising (all CPUs): packets lost at a full backlog",
                labels: &[("counter", "dropped")],
                eval: Some(|e| counters_rising(e, SOFTNET_DROPPED, e.t.counter_rate)),
                promql: |q| summed_rising(q, "node_softnet_dropped_total", "cpu", q.t.counter_rate),
                summary: "softnet drops packets on {{ $labels.instance }}",
            },
            Condition {
                signal: "softnet times_squeezed above softnet-squeeze-rate per second (all CPUs)",
                labels: &[("counter", "times_squeezed")],
                eval: Some(|e| counters_rising(e, SOFTNET_SQUEEZED, e.t.softnet_squeeze_rate)),
                promql: |q| summed_rising(q, "node_softnet_times_squeezed_total", "cpu", q.t.softnet_squeeze_rate),
                summary: "softnet processing runs out of budget on {{ $labels.instance }}",
            },
        ],
    },
    AlertDef {
        name: "NicErrors",
        severity: "warning",
        scope: Scope::Host,
        knob: "the link (cable, optics, duplex) and ring sizes (ethtool -G)",
        keys: &[],
        remedy: "NIC errors or drops: check the link (cable, optics, duplex) and raise ring sizes (ethtool -G)",
        conditions: &[
            Condition {
                signal: "per device, received errors + drops + FIFO overruns / packets above nic-error-ratio",
                labels: &[("direction", "receive")],
                eval: Some(|e| nic_ratio(e, false)),
                promql: |q| nic_promql(q, false),
                summary: "{{ $labels.device }} on {{ $labels.instance }} loses {{ $value | humanizePercentage }} of received packets",
            },
            Condition {
                signal: "per device, transmit errors + drops / packets above nic-error-ratio",
                labels: &[("direction", "transmit")],
                eval: Some(|e| nic_ratio(e, true)),
                promql: |q| nic_promql(q, true),
                summary: "{{ $labels.device }} on {{ $labels.instance }} loses {{ $value | humanizePercentage }} of transmitted packets",
            },
        ],
    },
    AlertDef {
        name: "NodetuneDown",
        severity: "warning",
        scope: Scope::Fleet,
        knob: "systemctl status nodetune; journalctl -u nodetune",
        keys: &[],
        remedy: "Prometheus cannot scrape nodetune: check the service (systemctl status nodetune; journalctl -u nodetune) and the network path",
        conditions: &[Condition {
            signal: "the nodetune target is down",
            labels: &[],
            eval: None,
            promql: |q| format!("{} == 0", q.m("up", "")),
            summary: "nodetune on {{ $labels.instance }} is not scraped",
        }],
    },
    AlertDef {
        name: "NodetuneReloadFailed",
        severity: "warning",
        scope: Scope::Fleet,
        knob: "/etc/nodetune/nodetune.toml or the profile; then systemctl reload nodetune",
        keys: &[],
        remedy: "nodetune rejected its new configuration and runs the old one: nodetune status shows why; fix the file, then systemctl reload nodetune",
        conditions: &[Condition {
            signal: "the last configuration reload failed",
            labels: &[],
            eval: None,
            promql: |q| format!("{} == 0", q.m("nodetune_config_last_reload_successful", "")),
            summary: "nodetune on {{ $labels.instance }} rejected its new configuration and runs the old one",
        }],
    },
    AlertDef {
        name: "SysctlDriftAcrossFleet",
        severity: "critical",
        scope: Scope::Fleet,
        knob: "the fleet-wide writer (config management, image, orchestrator), or the profile",
        keys: &[],
        remedy: "a fleet-wide writer (config management, image, orchestrator) changed the key on many hosts: fix that source or the profile",
        conditions: &[Condition {
            signal: "a key drifted on more than 10 % of the hosts that manage it",
            labels: &[],
            eval: None,
            promql: |q| {
                format!(
                    "count by (key) ({} == 0 and {} == 0) > 0.1 * count by (key) ({})",
                    q.m("nodetune_key_in_sync", ""),
                    q.m("nodetune_key_pending", ""),
                    q.m("nodetune_key_in_sync", "")
                )
            },
            summary: "{{ $labels.key }} drifted on {{ $value }} hosts (over 10 % of the fleet)",
        }],
    },
];

/// The counters the Prometheus rules read that node_exporter's default
/// `--collector.netstat.fields` leaves out: the daemon exports them from the snapshot its own
/// rules read.
pub fn input_families(snap: &Snapshot) -> Vec<Family> {
    let mut out = Vec::new();
    for (c, help) in [
        (&SYN_COUNTERS[1], "Statistic TcpExtTCPReqQFullDrop (SYNs dropped at a full SYN queue), as nodetune's alert rules read it."),
        (&TCP_MEMORY_COUNTERS[0], "Statistic TcpExtTCPMemoryPressures (times TCP entered memory pressure), as nodetune's alert rules read it."),
    ] {
        if let Some(v) = (c.get)(snap) {
            out.push(Family::single(c.metric, help, MetricType::Counter, v as f64));
        }
    }
    out
}

/// The catalogue entry of an alert.
pub fn def(name: &str) -> Option<&'static AlertDef> {
    CATALOGUE.iter().find(|d| d.name == name)
}

impl Condition {
    /// This condition's PromQL.
    pub fn promql(&self, q: &Query) -> String {
        (self.promql)(q)
    }
}

/// Evaluates the host alerts each tick; keeps the previous snapshot for counter rates.
#[derive(Default)]
pub struct Evaluator {
    prev: Option<(Instant, Snapshot)>,
}

/// A signal from the catalogue: the alert it belongs to, with the condition's fixed labels
/// added.
#[derive(Debug, Clone)]
pub struct Found {
    pub alert: &'static AlertDef,
    pub signal: Signal,
}

impl std::fmt::Debug for AlertDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Evaluator {
    /// Every host condition's signals for this snapshot (counters against the last one).
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        snap: Snapshot,
        at: Instant,
        sat: &Saturation,
        keys: &[KeyState],
        profile: &str,
        t: &Thresholds,
    ) -> Vec<Found> {
        let prev = self.prev.as_ref();
        let e = Eval {
            now: &snap,
            prev: prev.map(|(_, s)| s),
            secs: prev
                .map(|(then, _)| at.duration_since(*then).as_secs_f64())
                .unwrap_or(1.0)
                .max(1e-3),
            sat,
            keys,
            profile,
            t,
        };
        let mut out = Vec::new();
        for d in CATALOGUE {
            for c in d.conditions {
                let Some(eval) = c.eval else { continue };
                for mut s in eval(&e) {
                    s.labels
                        .extend(c.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                    s.labels.sort();
                    out.push(Found {
                        alert: d,
                        signal: s,
                    });
                }
            }
        }
        self.prev = Some((at, snap));
        out
    }

    /// The last snapshot evaluated.
    pub fn last(&self) -> Option<&Snapshot> {
        self.prev.as_ref().map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::collect::{conntrack, hwmon, listen_queue, netdev, netstat};
    use crate::watch::alerts::{Engine, State};

    fn quick() -> Thresholds {
        Thresholds {
            for_duration: Duration::from_secs(2),
            clear_duration: Duration::from_secs(3),
            ..Thresholds::default()
        }
    }

    /// Runs snapshots through the evaluator and the engine, one second apart; returns the
    /// transitions of each tick as (alert, labels, state).
    struct Run {
        rules: Evaluator,
        engine: Engine,
        t0: Instant,
    }

    type Seen = Vec<(&'static str, Vec<(String, String)>, State)>;

    impl Run {
        fn new() -> Run {
            Run {
                rules: Evaluator::default(),
                engine: Engine::new(quick()),
                t0: Instant::now(),
            }
        }

        fn tick(&mut self, secs: u64, snap: Snapshot) -> Seen {
            let at = self.t0 + Duration::from_secs(secs);
            let sat = Saturation::of(&snap);
            let t = self.engine.thresholds.clone();
            let found = self.rules.evaluate(snap, at, &sat, &[], "p", &t);
            self.engine
                .update(&found, at)
                .into_iter()
                .map(|t| (t.alert.name, t.alert.labels, t.alert.state))
                .collect()
        }
    }

    fn overflows(n: u64) -> Snapshot {
        Snapshot {
            tcp_ext: Some(netstat::TcpExt {
                listen_overflows: Some(n),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn counter_alert_pending_firing_resolved() {
        let mut r = Run::new();
        let name = |s: Seen| s.into_iter().map(|(n, _, st)| (n, st)).collect::<Vec<_>>();
        assert!(
            r.tick(0, overflows(10)).is_empty(),
            "first tick has no rate"
        );
        assert!(r.tick(1, overflows(10)).is_empty());
        assert_eq!(
            name(r.tick(2, overflows(15))),
            [("ListenQueueOverflow", State::Pending)]
        );
        assert!(r.tick(3, overflows(20)).is_empty());
        assert_eq!(
            name(r.tick(4, overflows(25))),
            [("ListenQueueOverflow", State::Firing)]
        );
        assert!(
            r.tick(5, overflows(25)).is_empty(),
            "clear, not for long enough"
        );
        assert!(r.tick(6, overflows(25)).is_empty());
        assert_eq!(
            name(r.tick(8, overflows(25))),
            [("ListenQueueOverflow", State::Resolved)]
        );
        // A reset counts from zero: 3 new overflows.
        assert_eq!(
            name(r.tick(9, overflows(3))),
            [("ListenQueueOverflow", State::Pending)]
        );
    }

    fn listeners(queued: u32) -> Snapshot {
        Snapshot {
            listeners: Some(vec![listen_queue::Listener {
                port: 8080,
                queued,
                backlog: 100,
                inode: 0,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn a_full_accept_queue_fires_listen_queue_overflow() {
        // The half of ListenQueueOverflow that could never fire while it looked for a series
        // nobody produced.
        let mut r = Run::new();
        let t = r.tick(0, listeners(95));
        assert_eq!(
            t,
            [(
                "ListenQueueOverflow",
                vec![("resource".into(), "listen_queue".into())],
                State::Pending
            )]
        );
        assert_eq!(r.tick(2, listeners(91))[0].2, State::Firing);
        // 87 % is below the threshold but above the clearing line: keeps firing.
        assert!(r.tick(10, listeners(87)).is_empty());
        assert_eq!(r.engine.active().len(), 1);
        // Below the line for the clear duration: resolved.
        assert!(r.tick(11, listeners(10)).is_empty());
        assert_eq!(r.tick(14, listeners(10))[0].2, State::Resolved);
        // A pending alert that clears before `for` resolves silently.
        let mut r = Run::new();
        r.tick(0, listeners(100));
        assert!(r.tick(1, listeners(0)).is_empty());
        assert!(r.engine.active().is_empty());
    }

    #[test]
    fn conntrack_ratio_and_counters_are_two_instances() {
        let snap = |entries: f64, drop: u64| {
            let mut stats = [0u64; 17];
            stats[10] = drop;
            Snapshot {
                conntrack: Some(conntrack::Table {
                    entries,
                    limit: 1000.0,
                    stats: Some(stats),
                }),
                ..Default::default()
            }
        };
        let mut r = Run::new();
        assert_eq!(r.tick(0, snap(950.0, 0)).len(), 1);
        let t = r.tick(1, snap(950.0, 5));
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].0, t[0].1.is_empty()), ("ConntrackNearFull", true));
        assert_eq!(r.engine.active().len(), 2);
    }

    #[test]
    fn temperatures_at_crit_then_max_with_hysteresis() {
        let snap = |c: f64, crit: Option<f64>| Snapshot {
            temps: Some(vec![hwmon::Temp {
                chip: "platform_coretemp_0".into(),
                sensor: "temp1".into(),
                celsius: c,
                crit,
                max: Some(90.0),
            }]),
            ..Default::default()
        };
        let mut r = Run::new();
        assert!(r.tick(0, snap(99.0, Some(100.0))).is_empty());
        let t = r.tick(1, snap(100.0, Some(100.0)));
        assert_eq!(
            t[0].1,
            vec![
                ("chip".to_string(), "platform_coretemp_0".to_string()),
                ("sensor".to_string(), "temp1".to_string()),
                ("source".to_string(), "hwmon".to_string())
            ]
        );
        assert!(r.tick(2, snap(96.0, Some(100.0))).is_empty(), "held");
        assert_eq!(r.engine.active().len(), 1);
        // Without crit, max is the limit.
        let mut r = Run::new();
        assert_eq!(r.tick(0, snap(90.0, None)).len(), 1);
    }

    fn nic(rx_packets: u64, rx_errs: u64) -> Snapshot {
        Snapshot {
            nics: Some(vec![netdev::Nic {
                device: "eth0".into(),
                receive_packets: rx_packets,
                receive_errs: rx_errs,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn nic_errors_fire_on_the_error_ratio_not_on_any_error() {
        let mut r = Run::new();
        r.tick(0, nic(0, 0));
        // 5 errors in 1000 packets: 0.5 %, below 1 %.
        assert!(r.tick(1, nic(1000, 5)).is_empty());
        // 50 in 1000: 5 %.
        let t = r.tick(2, nic(2000, 55));
        assert_eq!(
            t[0].1,
            vec![
                ("device".to_string(), "eth0".to_string()),
                ("direction".to_string(), "receive".to_string())
            ]
        );
        // Errors while no packet gets through at all.
        let mut r = Run::new();
        r.tick(0, nic(10, 0));
        assert_eq!(r.tick(1, nic(10, 3)).len(), 1);
        // Nothing moved: no signal.
        let mut r = Run::new();
        r.tick(0, nic(10, 3));
        assert!(r.tick(1, nic(10, 3)).is_empty());
    }

    #[test]
    fn drift_and_fight_from_key_states() {
        let key = |in_sync, fight: Option<&str>| KeyState {
            key: "net.core.somaxconn".into(),
            want: "4096".into(),
            actual: Some("128".into()),
            in_sync,
            pending: false,
            drift_total: 1,
            corrections_total: 3,
            fight: fight.map(String::from),
        };
        let t = Thresholds::default();
        let sat = Saturation::default();
        let mut ev = Evaluator::default();
        let active =
            |f: Vec<Found>| -> Vec<Found> { f.into_iter().filter(|f| f.signal.active).collect() };
        let found = active(ev.evaluate(
            Snapshot::default(),
            Instant::now(),
            &sat,
            &[key(false, None)],
            "api-node",
            &t,
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].alert.name, "SysctlDrift");
        assert_eq!(
            found[0].signal.summary,
            "net.core.somaxconn is 128 (profile api-node wants 4096)"
        );
        let found = active(ev.evaluate(
            Snapshot::default(),
            Instant::now(),
            &sat,
            &[key(false, Some("/etc/sysctl.d/99-x.conf"))],
            "api-node",
            &t,
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].alert.name, "SysctlFight");
        assert!(found[0]
            .signal
            .summary
            .ends_with("likely writer: /etc/sysctl.d/99-x.conf"));
        assert!(active(ev.evaluate(
            Snapshot::default(),
            Instant::now(),
            &sat,
            &[key(true, None)],
            "p",
            &t
        ))
        .is_empty());
    }

    #[test]
    fn every_alert_has_conditions_and_host_alerts_evaluate() {
        for d in CATALOGUE {
            assert!(!d.conditions.is_empty(), "{}", d.name);
            for c in d.conditions {
                assert_eq!(c.eval.is_some(), d.scope == Scope::Host, "{}", d.name);
            }
        }
        assert_eq!(def("NicErrors").map(|d| d.severity), Some("warning"));
    }
}
