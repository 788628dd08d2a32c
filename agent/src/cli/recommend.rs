//! `nodetune recommend`: suggest the profile that fixes what the host's counters show, and
//! name each knob with the counter it read and its value.
//!
//! Inputs: two readings of the alert snapshot (`--interval` apart) evaluated by the alert
//! catalogue (what fires or is near now); counter totals that rose at some point before (past
//! overflows and cookies, since boot or since the network namespace was created); processes of
//! this network namespace near their RLIMIT_NOFILE; and the listening sockets, without the
//! ones nodetune's own processes hold (its metrics listener is not a service of the host).
//! Each shipped profile is planned against the host; the one that changes the keys behind the
//! findings wins, the smallest when several do, the host's role breaking ties.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::common::{print_json, Output, Roots};
use crate::collect;
use crate::profile::{resolve, Target};
use crate::tune::{self, Action, Plan};
use crate::watch::alerts::Thresholds;
use crate::watch::rules::{self, Evaluator};
use crate::watch::saturation::Saturation;
use crate::watch::snapshot::{Sampler, Snapshot};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between the two counter readings rates are computed from.
    #[arg(long, default_value = "2s", value_parser = crate::base::duration::parse_duration)]
    pub interval: Duration,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

/// A key behind a finding, as the suggested profile would set it.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct Knob {
    key: String,
    current: Option<String>,
    desired: Option<String>,
    /// The plan's action for it, or "not-in-profile".
    action: String,
    /// All of it in one line, as the table shows it.
    text: String,
}

#[derive(Debug, Serialize)]
struct Finding {
    alert: &'static str,
    labels: Vec<(String, String)>,
    /// "firing" past the threshold now, "near" within reach of it, "past" for counters that
    /// rose before (totals since boot) but not during the interval.
    level: &'static str,
    summary: String,
    /// The counter or gauge read, with its value.
    evidence: String,
    remedy: &'static str,
    knobs: Vec<Knob>,
    #[serde(skip)]
    keys: &'static [&'static str],
}

#[derive(Serialize)]
struct Recommendation {
    profile: String,
    reason: String,
    changes: usize,
    /// Listening TCP ports of the host's services.
    listeners: Vec<u16>,
    /// Listening ports held by nodetune itself, not counted.
    own_listeners: Vec<u16>,
    findings: Vec<Finding>,
}

/// 28232 → "28,232".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One process as /proc shows it.
#[derive(Debug, Clone, PartialEq)]
struct Proc {
    pid: u32,
    comm: String,
    /// Open file descriptors.
    fds: u64,
    /// Soft RLIMIT_NOFILE; None for "unlimited" or unreadable.
    soft_nofile: Option<u64>,
    /// Socket inodes among its descriptors.
    sockets: BTreeSet<u64>,
    /// In the same network namespace as the reader.
    same_netns: bool,
    /// A nodetune process (by its command name or its executable's file name).
    nodetune: bool,
}

/// Reads every process under `procfs` (those that vanish or deny access are skipped).
fn processes(procfs: &Path) -> Vec<Proc> {
    let my_netns = std::fs::read_link(procfs.join("self/ns/net")).ok();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(procfs) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let base = e.path();
        let comm = std::fs::read_to_string(base.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let exe = std::fs::read_link(base.join("exe")).ok();
        let nodetune = comm == "nodetune"
            || exe
                .as_ref()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "nodetune");
        let mut fds = 0;
        let mut sockets = BTreeSet::new();
        for fd in std::fs::read_dir(base.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            fds += 1;
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse().ok())
                {
                    sockets.insert(inode);
                }
            }
        }
        let soft_nofile = std::fs::read_to_string(base.join("limits"))
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse().ok())
            });
        let same_netns = match (&my_netns, std::fs::read_link(base.join("ns/net"))) {
            (Some(me), Ok(it)) => *me == it,
            // Without namespace links (a fixture tree, no access), count it in.
            _ => true,
        };
        out.push(Proc {
            pid,
            comm,
            fds,
            soft_nofile,
            sockets,
            same_netns,
            nodetune,
        });
    }
    out
}

/// Listening TCP sockets as (port, inode) from `<procfs>/net/tcp` and `tcp6`: for a procfs
/// other than the live one (a fixture tree), which sock_diag cannot describe.
fn listeners_from_procfs(procfs: &Path) -> Vec<(u16, u64)> {
    let mut out = Vec::new();
    for f in ["net/tcp", "net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(procfs.join(f)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode; 0A is LISTEN.
            if cols.len() > 9 && cols[3] == "0A" {
                let port = cols[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                if let (Some(port), Ok(inode)) = (port, cols[9].parse()) {
                    out.push((port, inode));
                }
            }
        }
    }
    out
}

/// The alert inputs of this host, read with the collectors' default settings.
fn sampler(roots: &Roots) -> anyhow::Result<Sampler> {
    let opts = collect::Options::from_flags([
        format!("--path.procfs={}", roots.procfs.display()),
        format!("--path.sysfs={}", roots.sysfs.display()),
    ])
    .context("collector settings")?;
    Sampler::new(&opts, &roots.kernel())
}

/// The counters a counter alert reads, with their totals now.
fn counter_totals(alert: &str, s: &Snapshot) -> Vec<(&'static str, u64)> {
    let Some(t) = s.tcp_ext else {
        return Vec::new();
    };
    let list: Vec<(&'static str, Option<u64>)> = match alert {
        "ListenQueueOverflow" => vec![
            ("TcpExt ListenOverflows", t.listen_overflows),
            ("TcpExt ListenDrops", t.listen_drops),
        ],
        "SynBacklogPressure" => vec![
            ("TcpExt SyncookiesSent", t.syncookies_sent),
            ("TcpExt TCPReqQFullDrop", t.req_q_full_drop),
        ],
        "SocketMemoryPressure" => vec![("TcpExt TCPMemoryPressures", t.memory_pressures)],
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn totals_text(totals: &[(&str, u64)]) -> String {
    totals
        .iter()
        .map(|(n, v)| format!("{n} {}", thousands(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The counter or gauge behind a signal, with its value.
fn evidence(alert: &str, labels: &[(String, String)], s: &Snapshot) -> String {
    let resource = labels
        .iter()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str());
    match (alert, resource) {
        ("EphemeralPortPressure", _) => match (s.tcp_sockets, s.limits.port_range) {
            (Some(t), Some((lo, hi))) => format!(
                "TCP sockets {} (TIME_WAIT {}) of {} ephemeral ports ({lo}-{hi})",
                thousands(t.inuse + t.tw),
                thousands(t.tw),
                thousands(hi.saturating_sub(lo) + 1)
            ),
            _ => String::new(),
        },
        ("FileDescriptorPressure", _) => s
            .file_nr
            .map(|f| {
                format!(
                    "file handles {} of fs.file-max {}",
                    thousands(f.allocated as u64),
                    thousands(f.maximum as u64)
                )
            })
            .unwrap_or_default(),
        ("ConntrackNearFull", Some(_)) => s
            .conntrack
            .map(|c| {
                format!(
                    "conntrack entries {} of {}",
                    thousands(c.entries as u64),
                    thousands(c.limit as u64)
                )
            })
            .unwrap_or_default(),
        ("SocketMemoryPressure", Some(_)) => match (s.tcp_sockets, s.limits.tcp_mem) {
            (Some(t), Some(m)) => format!(
                "TCP memory {} of tcp_mem {} pages",
                thousands(t.mem_pages),
                thousands(m[2])
            ),
            _ => String::new(),
        },
        ("ListenQueueOverflow", Some(_)) => s
            .listeners
            .iter()
            .flatten()
            .filter(|l| l.backlog > 0)
            .max_by(|a, b| a.fill().unwrap_or(0.0).total_cmp(&b.fill().unwrap_or(0.0)))
            .map(|l| {
                format!(
                    "accept queue of port {}: {} of {}",
                    l.port,
                    thousands(u64::from(l.queued)),
                    thousands(u64::from(l.backlog))
                )
            })
            .unwrap_or_default(),
        _ => {
            let t = counter_totals(alert, s);
            if t.is_empty() {
                String::new()
            } else {
                format!("{} in total", totals_text(&t))
            }
        }
    }
}

/// The candidates in the order the host's role suggests.
fn role(ports: &BTreeSet<u16>, client: bool) -> (Vec<&'static str>, String) {
    if ports.contains(&443) || ports.contains(&80) {
        (
            vec!["api-gateway", "api-node", "load-generator", "base"],
            "listens on port 80 or 443: an internet-facing gateway".into(),
        )
    } else if !ports.is_empty() {
        let shown: Vec<String> = ports.iter().take(5).map(|p| p.to_string()).collect();
        (
            vec!["api-node", "api-gateway", "load-generator", "base"],
            format!(
                "serves TCP (listening on {}) behind a balancer",
                shown.join(", ")
            ),
        )
    } else if client {
        (
            vec!["load-generator", "api-node", "api-gateway", "base"],
            "no TCP listeners but many outbound connections: a client".into(),
        )
    } else {
        (
            vec!["base", "api-node", "load-generator", "api-gateway"],
            "no TCP listeners found".into(),
        )
    }
}

/// Does the plan change (or, for a host-wide key seen from a namespace, set) the finding's
/// main key, the first of its keys?
fn fixes(plan: &Plan, keys: &[&str]) -> bool {
    let Some(main) = keys.first() else {
        return false;
    };
    plan.items.iter().any(|i| {
        let hit = match &i.target {
            Target::Sysctl(k) => k == main,
            // [limits] nofile: its drop-ins stand with fs.nr_open.
            Target::File(p) => *main == "fs.nr_open" && p.contains("nofile"),
            Target::ModuleParam(..) => false,
        };
        hit && matches!(i.action, Action::Change | Action::OutOfScope)
    })
}

/// Picks the candidate that fixes the most findings, the one with the fewest changes among
/// those, the earlier in `order` on a tie; the first in `order` when none fixes anything.
/// `plans` holds (name, plan) in `order`.
fn choose<'a>(
    plans: &'a [(&'static str, Plan)],
    findings: &[Finding],
) -> Option<&'a (&'static str, Plan)> {
    let score = |p: &Plan| {
        let fixed = findings
            .iter()
            .filter(|f| !f.keys.is_empty() && fixes(p, f.keys))
            .count();
        let changes = p.count(Action::Change) + p.count(Action::OutOfScope);
        (fixed, changes)
    };
    let mut best: Option<(usize, (usize, usize))> = None;
    for (i, c) in plans.iter().enumerate() {
        let s = score(&c.1);
        match best {
            Some((_, b)) if s.0 < b.0 || (s.0 == b.0 && s.1 >= b.1) => {}
            _ => best = Some((i, s)),
        }
    }
    match best {
        Some((i, (fixed, _))) if fixed > 0 => plans.get(i),
        _ => plans.first(),
    }
}

/// The knobs of a finding as the plan sets them.
fn knobs(plan: &Plan, keys: &[&str], roots: &Roots) -> Vec<Knob> {
    let mut out = Vec::new();
    for key in keys {
        let item = plan
            .items
            .iter()
            .find(|i| matches!(&i.target, Target::Sysctl(k) if k == key));
        match item {
            // A key this kernel does not have: nothing to show.
            Some(i) if i.action == Action::Unsupported && i.current.is_none() => {}
            Some(i) => out.push(Knob {
                key: key.to_string(),
                current: i.current.clone(),
                desired: i
                    .desired
                    .clone()
                    .or_else(|| (i.action == Action::OutOfScope).then(|| i.want.clone())),
                action: i.action.as_str().to_string(),
                text: String::new(),
            }),
            None => {
                let current = match roots.kernel().read(&Target::Sysctl(key.to_string())) {
                    Ok(tune::kernel::Current::Value(v)) => {
                        Some(crate::profile::value::normalize(&v))
                    }
                    _ => None,
                };
                if current.is_some() {
                    out.push(Knob {
                        key: key.to_string(),
                        current,
                        desired: None,
                        action: "not-in-profile".into(),
                        text: String::new(),
                    });
                }
            }
        }
    }
    out
}

fn knob_text(k: &Knob) -> String {
    let cur = k.current.as_deref().unwrap_or("-");
    match (&k.desired, k.action.as_str()) {
        (Some(d), "out-of-scope") if k.current.is_none() => {
            format!("{} {d} (host-wide: apply on the host)", k.key)
        }
        (Some(d), "out-of-scope") => {
            format!("{} {cur} -> {d} (host-wide: apply on the host)", k.key)
        }
        (Some(d), _) => format!("{} {cur} -> {d}", k.key),
        (None, "in-sync") => format!("{} {cur} (already set)", k.key),
        (None, a) => format!("{} {cur} ({a})", k.key),
    }
}

pub fn main(a: &Args) -> anyhow::Result<i32> {
    let sampler = sampler(&a.roots)?;
    let mut rules = Evaluator::default();
    let thresholds = Thresholds::default();
    let first = sampler.read();
    let t0 = Instant::now();
    let sat0 = Saturation::of(&first);
    rules.evaluate(first, t0, &sat0, &[], "", &thresholds);
    std::thread::sleep(a.interval);
    let second = sampler.read();
    let procs = processes(&a.roots.procfs);

    // Listeners of the host's services: not nodetune's own (its metrics endpoint).
    let own: BTreeSet<u64> = procs
        .iter()
        .filter(|p| p.nodetune)
        .flat_map(|p| p.sockets.iter().copied())
        .collect();
    let listening: Vec<(u16, u64)> = if a.roots.procfs == Path::new("/proc") {
        second
            .listeners
            .iter()
            .flatten()
            .map(|l| (l.port, u64::from(l.inode)))
            .collect()
    } else {
        listeners_from_procfs(&a.roots.procfs)
    };
    let mut ports = BTreeSet::new();
    let mut own_ports = BTreeSet::new();
    for (port, inode) in listening {
        if own.contains(&inode) {
            own_ports.insert(port);
        } else {
            ports.insert(port);
        }
    }

    // Every signal now, without waiting: anything past its threshold, or within reach.
    let sat = Saturation::of(&second);
    let found = rules.evaluate(second.clone(), t0 + a.interval, &sat, &[], "", &thresholds);
    let mut findings = Vec::new();
    for f in &found {
        let s = &f.signal;
        let near = s.labels.iter().any(|(k, _)| k == "resource") && s.value >= 0.5 && !s.active;
        if !(s.active || near) {
            continue;
        }
        let mut evidence = evidence(f.alert.name, &s.labels, &second);
        if evidence.is_empty() {
            evidence = s.summary.clone();
        }
        findings.push(Finding {
            alert: f.alert.name,
            labels: s.labels.clone(),
            level: if s.active { "firing" } else { "near" },
            summary: s.summary.clone(),
            evidence,
            remedy: f.alert.remedy,
            knobs: Vec::new(),
            keys: f.alert.keys,
        });
    }
    // Counters that rose before the interval: the kernel keeps their totals.
    for name in [
        "ListenQueueOverflow",
        "SynBacklogPressure",
        "SocketMemoryPressure",
    ] {
        if findings.iter().any(|f| f.alert == name) {
            continue;
        }
        let totals = counter_totals(name, &second);
        let Some(def) = rules::def(name).filter(|_| !totals.is_empty()) else {
            continue;
        };
        findings.push(Finding {
            alert: def.name,
            labels: Vec::new(),
            level: "past",
            summary: format!(
                "{} in total (since boot or since this network namespace was created); not rising now",
                totals_text(&totals)
            ),
            evidence: format!("{} in total", totals_text(&totals)),
            remedy: def.remedy,
            knobs: Vec::new(),
            keys: def.keys,
        });
    }
    // Processes of this network namespace near their own open-file limit.
    if let Some(def) = rules::def("FileDescriptorPressure") {
        for p in procs.iter().filter(|p| p.same_netns && !p.nodetune) {
            let Some(soft) = p.soft_nofile.filter(|s| *s > 0) else {
                continue;
            };
            let ratio = p.fds as f64 / soft as f64;
            if ratio < 0.5 {
                continue;
            }
            let evidence = format!(
                "{} (pid {}): {} of {} open files (soft RLIMIT_NOFILE)",
                p.comm,
                p.pid,
                thousands(p.fds),
                thousands(soft)
            );
            findings.push(Finding {
                alert: def.name,
                labels: vec![
                    ("pid".into(), p.pid.to_string()),
                    ("process".into(), p.comm.clone()),
                ],
                level: if ratio >= thresholds.fd_ratio {
                    "firing"
                } else {
                    "near"
                },
                summary: evidence.clone(),
                evidence,
                remedy: "a process is near its open-file limit: raise [limits] nofile (the \
                         service's LimitNOFILE drop-in, systemd's DefaultLimitNOFILE), then \
                         restart the service",
                knobs: Vec::new(),
                keys: &["fs.nr_open"],
            });
        }
    }

    let client = findings.iter().any(|f| f.alert == "EphemeralPortPressure")
        || second.tcp_sockets.is_some_and(|t| t.inuse + t.tw > 1000);
    let (order, role_reason) = role(&ports, client);
    let facts = a.roots.facts()?;
    let netns = a.roots.netns(None)?;
    let kernel = a.roots.kernel();
    let library = a.roots.library();
    let plans: Vec<(&'static str, Plan)> = order
        .iter()
        .filter_map(|n| {
            resolve(&library, n, &facts)
                .ok()
                .map(|eff| (*n, tune::plan(&eff, &kernel, &netns)))
        })
        .collect();
    let chosen = choose(&plans, &findings);
    let (profile, changes) = match chosen {
        Some((n, p)) => (n.to_string(), p.count(Action::Change)),
        None => (order[0].to_string(), 0),
    };
    if let Some((_, plan)) = chosen {
        for f in &mut findings {
            f.knobs = knobs(plan, f.keys, &a.roots);
            // [limits] nofile stands behind fs.nr_open: show the limit it sets.
            if f.keys == ["fs.nr_open"] {
                if let Some(k) = f.knobs.first_mut() {
                    k.key = "[limits] nofile (fs.nr_open, LimitNOFILE drop-ins)".into();
                    k.current = f
                        .labels
                        .iter()
                        .find(|(k, _)| k == "pid")
                        .and_then(|(_, pid)| procs.iter().find(|p| p.pid.to_string() == *pid))
                        .and_then(|p| p.soft_nofile)
                        .map(|s| format!("soft limit {s}"));
                    let want = plan
                        .items
                        .iter()
                        .find(|i| matches!(&i.target, Target::Sysctl(k) if k == "fs.nr_open"));
                    k.desired = want.map(|i| i.want.trim_start_matches(">=").to_string());
                }
            }
            for k in &mut f.knobs {
                k.text = knob_text(k);
            }
        }
    }
    let fixed: Vec<&str> = {
        let mut names: Vec<&str> = Vec::new();
        for f in &findings {
            let fixed_here = chosen.is_some_and(|(_, p)| fixes(p, f.keys));
            if fixed_here && !names.contains(&f.alert) {
                names.push(f.alert);
            }
        }
        names
    };
    let reason = if fixed.is_empty() && profile == "base" {
        format!("{role_reason}: conservative floors only")
    } else if fixed.is_empty() {
        role_reason
    } else {
        format!(
            "fixes what it measured: {}; {role_reason}",
            fixed.join(", ")
        )
    };
    let rec = Recommendation {
        profile,
        reason,
        changes,
        listeners: ports.into_iter().collect(),
        own_listeners: own_ports.into_iter().collect(),
        findings,
    };
    match a.output {
        Output::Json => print_json(&rec)?,
        Output::Table => {
            println!("suggested profile: {} ({})", rec.profile, rec.reason);
            println!(
                "  {} key(s) would change: see `nodetune plan --profile {}`",
                rec.changes, rec.profile
            );
            if rec.findings.is_empty() {
                println!("no saturation signals over {:?}", a.interval);
            }
            for f in &rec.findings {
                let labels: Vec<String> =
                    f.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", labels.join(","))
                };
                println!("{} {}{labels}: {}", f.level, f.alert, f.evidence);
                if f.knobs.is_empty() {
                    if !f.remedy.is_empty() {
                        println!("  remedy: {}", f.remedy);
                    }
                } else {
                    let k: Vec<&str> = f.knobs.iter().map(|k| k.text.as_str()).collect();
                    println!("  knobs: {}", k.join(", "));
                }
            }
            if !rec.own_listeners.is_empty() {
                let p: Vec<String> = rec.own_listeners.iter().map(|p| p.to_string()).collect();
                println!(
                    "(nodetune's own listener on port {} is not counted)",
                    p.join(", ")
                );
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(28232), "28,232");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    /// Processes from a fixture tree: their sockets, descriptors and limits, and which are
    /// nodetune's.
    #[test]
    fn processes_from_procfs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "10/comm", "nginx\n");
        write(
            r,
            "10/limits",
            "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n",
        );
        std::fs::create_dir_all(r.join("10/fd")).unwrap();
        std::os::unix::fs::symlink("socket:[4242]", r.join("10/fd/3")).unwrap();
        std::os::unix::fs::symlink("/dev/null", r.join("10/fd/4")).unwrap();
        write(r, "20/comm", "nodetune\n");
        std::fs::create_dir_all(r.join("20/fd")).unwrap();
        std::os::unix::fs::symlink("socket:[9100]", r.join("20/fd/5")).unwrap();
        write(r, "notapid/comm", "x\n");
        let mut p = processes(r);
        p.sort_by_key(|p| p.pid);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[0].comm.as_str(),
                p[0].fds,
                p[0].soft_nofile,
                p[0].nodetune
            ),
            ("nginx", 2, Some(1024), false)
        );
        assert_eq!(p[0].sockets, BTreeSet::from([4242]));
        assert!(p[1].nodetune);
        assert_eq!(p[1].sockets, BTreeSet::from([9100]));
    }

    #[test]
    fn listeners_from_a_procfs_tree() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "net/tcp",
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n   1: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 77 1 0\n",
        );
        assert_eq!(listeners_from_procfs(d.path()), vec![(443, 4242)]);
    }

    #[test]
    fn role_order_without_own_listeners() {
        let none = BTreeSet::new();
        assert_eq!(role(&none, false).0[0], "base");
        assert_eq!(role(&none, true).0[0], "load-generator");
        assert_eq!(role(&BTreeSet::from([8080]), false).0[0], "api-node");
        assert_eq!(
            role(&BTreeSet::from([443, 8080]), false).0[0],
            "api-gateway"
        );
    }
}
