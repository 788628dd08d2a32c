//! `nodetune recommend`: suggest a profile from host facts, and the knobs that firing or
//! near-firing alerts point at, from two collections of the live counters.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::common::{print_json, Output, Roots};
use crate::collect::{self, Family};
use crate::profile::resolve;
use crate::tune::{self, Action};
use crate::watch::alerts::{Engine, Thresholds};
use crate::watch::saturation;

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

#[derive(Serialize)]
struct Finding {
    alert: &'static str,
    labels: Vec<(String, String)>,
    /// "firing" when past the threshold now, "near" when within reach of it.
    level: &'static str,
    summary: String,
    remedy: &'static str,
}

#[derive(Serialize)]
struct Recommendation {
    profile: String,
    reason: String,
    changes: usize,
    findings: Vec<Finding>,
}

/// Local TCP ports in LISTEN state, from /proc/net/tcp and tcp6.
fn listening_ports(procfs: &Path) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for f in ["net/tcp", "net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(procfs.join(f)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Columns: sl local_address rem_address st ...; state 0A is LISTEN.
            if cols.len() > 3 && cols[3] == "0A" {
                if let Some(port) = cols[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.insert(port);
                }
            }
        }
    }
    ports
}

fn sample(fams: &[Family], name: &str) -> Option<f64> {
    fams.iter()
        .find(|f| f.name == name)
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
}

/// Collects the counters alert rules read, with the collectors' default settings.
fn collect_counters(roots: &Roots) -> Vec<Family> {
    let flags = [
        format!("--path.procfs={}", roots.procfs.display()),
        format!("--path.sysfs={}", roots.sysfs.display()),
    ];
    let Ok(opts) = collect::Options::from_flags(flags) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in [
        "netstat",
        "sockstat",
        "conntrack",
        "filefd",
        "softnet",
        "netdev",
        "hwmon",
        "cpu",
    ] {
        if let Some(e) = collect::ALL.iter().find(|e| e.name == name) {
            if let Ok(c) = (e.build)(&opts) {
                let mut fams = Vec::new();
                if c.collect(&mut fams).is_ok() {
                    out.extend(fams);
                }
            }
        }
    }
    out
}

pub fn main(a: &Args) -> anyhow::Result<i32> {
    let ports = listening_ports(&a.roots.procfs);
    let first = collect_counters(&a.roots);
    let t0 = Instant::now();
    std::thread::sleep(a.interval);
    let second = collect_counters(&a.roots);
    let tcp_inuse = sample(&second, "node_sockstat_TCP_inuse").unwrap_or(0.0);

    let (profile, reason) = if ports.contains(&443) || ports.contains(&80) {
        (
            "api-gateway",
            "listens on port 80 or 443: an internet-facing gateway".to_string(),
        )
    } else if !ports.is_empty() {
        let shown: Vec<String> = ports.iter().take(5).map(|p| p.to_string()).collect();
        (
            "api-node",
            format!(
                "serves TCP (listening on {}) behind a balancer",
                shown.join(", ")
            ),
        )
    } else if tcp_inuse > 1000.0 {
        (
            "load-generator",
            format!("no listeners but {tcp_inuse} TCP sockets in use: a client"),
        )
    } else {
        (
            "base",
            "no TCP listeners found: conservative floors only".to_string(),
        )
    };

    // Evaluate every signal without waiting: anything past its threshold, or within reach.
    let kernel = a.roots.kernel();
    let mut engine = Engine::new(Thresholds {
        for_duration: Duration::ZERO,
        ..Thresholds::default()
    });
    let with_sat = |mut f: Vec<Family>| {
        let s = saturation::family(&f, &kernel);
        f.push(s);
        f
    };
    engine.signals(&with_sat(first), t0);
    let signals = engine.signals(&with_sat(second), t0 + a.interval);
    let mut findings = Vec::new();
    for s in &signals {
        let near = s.labels.iter().any(|(k, _)| k == "resource") && s.value >= 0.5 && !s.active;
        if !(s.active || near) {
            continue;
        }
        let d = engine.update(std::slice::from_ref(s), t0 + a.interval);
        let remedy = d.first().map(|t| t.alert.remedy).unwrap_or("");
        findings.push(Finding {
            alert: s.name,
            labels: s.labels.clone(),
            level: if s.active { "firing" } else { "near" },
            summary: s.summary.clone(),
            remedy,
        });
    }
    let facts = a.roots.facts()?;
    let changes = resolve(&a.roots.library(), profile, &facts)
        .map(|eff| tune::plan(&eff, &kernel, &tune::Netns::host()).count(Action::Change))
        .unwrap_or(0);
    let rec = Recommendation {
        profile: profile.into(),
        reason,
        changes,
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
                println!(
                    "{} {} [{}]: {}",
                    f.level,
                    f.alert,
                    labels.join(","),
                    f.summary
                );
                if !f.remedy.is_empty() {
                    println!("  knob: {}", f.remedy);
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn listening_ports_from_proc_net_tcp() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(
            d.path().join("net/tcp"),
            "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 00000000:01BB 00000000:0000 0A 00000000:00000000\n   1: 0100007F:1F90 0100007F:A000 01 00000000:00000000\n",
        )
        .unwrap();
        let p = super::listening_ports(d.path());
        assert_eq!(p.into_iter().collect::<Vec<_>>(), vec![443]);
    }
}
