//! The report: one Markdown table row per scenario (failures on the defaults and after the
//! profile, the alert and when it came, whether `recommend` named the knob), the details of
//! every run below it, and the same as JSON.

use serde::Serialize;

use crate::client::Tail;
use crate::nodetune::AlertLine;
use crate::scenario::{Row, Run};

/// Where and how the lab ran.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub kernel: String,
    pub cpus: usize,
    pub nginx: String,
    pub date: String,
    pub command: String,
    pub size: String,
    /// /proc/loadavg at the start and the end: other work on the machine makes figures noisy.
    pub load_start: String,
    pub load_end: String,
    pub seconds: f64,
}

/// One scenario's outcome: its row, or why it could not run.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Row(Box<Row>),
    Failed { id: String, error: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub meta: Meta,
    pub scenarios: Vec<Entry>,
}

/// 28232 → "28,232".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in microseconds, as people read it.
pub fn dur(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn tail(t: &Tail) -> Option<String> {
    Some(format!(
        "p50 {} / p99 {} / p99.9 {}",
        dur(t.p50_us?),
        dur(t.p99_us?),
        dur(t.p999_us?)
    ))
}

/// Alerts other than drift (the daemon audits the profile, so on the defaults every key of
/// it has drifted by design).
fn saturation_alerts(run: &Run) -> Vec<&AlertLine> {
    run.alerts
        .iter()
        .filter(|a| a.alert != "SysctlDrift" && a.state == "firing")
        .collect()
}

/// The row's alert on a run, timed against the load's start and its first failure.
fn alert_cell(row: &Row, run: &Run) -> String {
    let fired = saturation_alerts(run);
    let Some(name) = &row.alert else {
        return if fired.is_empty() {
            "none expected; none fired".into()
        } else {
            fired
                .iter()
                .map(|a| format!("{} (+{:.1} s)", a.alert, a.at_s))
                .collect::<Vec<_>>()
                .join(", ")
        };
    };
    let Some(a) = fired.iter().find(|a| &a.alert == name) else {
        return format!("{name} did not fire");
    };
    let when = match run.client.first_error_s {
        Some(e) if a.at_s < e => format!("{:.1} s before the first failure", e - a.at_s),
        Some(e) => format!("{:.1} s after the first failure", a.at_s - e),
        None => format!("+{:.1} s into the load", a.at_s),
    };
    let knob = if row.knobs.iter().any(|k| a.text.contains(k.as_str())) {
        "naming the knob"
    } else {
        "WITHOUT naming the knob"
    };
    format!("{name} fired {when}, {knob}")
}

fn recommend_cell(row: &Row, run: &Run) -> String {
    let Some(r) = &run.recommend else {
        return "not run".into();
    };
    let named: Vec<&String> = r
        .knobs
        .iter()
        .filter(|k| row.knobs.iter().any(|want| k.starts_with(want.as_str())))
        .collect();
    if named.is_empty() {
        format!("did not name it (suggested {})", r.profile)
    } else {
        let mut seen: Vec<&str> = Vec::new();
        for k in &named {
            if !seen.contains(&k.as_str()) {
                seen.push(k);
            }
        }
        format!("yes: {} (suggested {})", seen.join(", "), r.profile)
    }
}

/// The headline figure of a run: its failures, with the biggest errno.
fn failures_cell(run: &Run) -> String {
    if run.label == "not run" {
        return "not run".into();
    }
    let mut s = thousands(run.failures);
    if let Some((what, n)) = run.client.errors.iter().max_by_key(|(_, n)| **n) {
        if run.failures > 0 && *n as u64 == run.failures {
            s.push_str(&format!(" ({what})"));
        }
    }
    s
}

fn secondary(run: &Run) -> String {
    let mut parts = Vec::new();
    if let Some(mb) = run.mbytes_per_s {
        parts.push(format!("{mb:.1} MB/s"));
    }
    if run.request.n > 0 {
        if let Some(p99) = run.request.p99_us {
            parts.push(format!("request p99 {}", dur(p99)));
        }
    } else if let Some(p99) = run.connect.p99_us {
        parts.push(format!("connect p99 {}", dur(p99)));
    }
    if run.client.behind > 0 {
        parts.push(format!(
            "{} connections behind schedule",
            thousands(run.client.behind as u64)
        ));
    }
    parts.push(format!("{:.1} s", run.client.elapsed_s));
    parts.join(", ")
}

fn settings(run: &Run) -> String {
    run.settings
        .iter()
        .map(|(k, v)| {
            format!(
                "`{}` {v}",
                k.trim_start_matches("net.ipv4.")
                    .trim_start_matches("net.core.")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown report.
pub fn markdown(r: &Report) -> String {
    let m = &r.meta;
    let mut out = String::new();
    out.push_str(&format!(
        "Kernel {}, {} vCPU, nginx {} (1 worker), {}; `{}` ({} form, {:.0} s). \
         Load average {} at the start, {} at the end.\n\n",
        m.kernel, m.cpus, m.nginx, m.date, m.command, m.size, m.seconds, m.load_start, m.load_end
    ));
    out.push_str("| # | scenario | failures counted | kernel defaults | after the profile | alert on the defaults | `recommend` named the knob before the apply |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for e in &r.scenarios {
        match e {
            Entry::Row(row) => out.push_str(&format!(
                "| {} | {} | {} | {} failures; {} | {} failures; {} | {} | {} |\n",
                row.id,
                row.title,
                row.failures,
                failures_cell(&row.defaults),
                secondary(&row.defaults),
                failures_cell(&row.tuned),
                secondary(&row.tuned),
                alert_cell(row, &row.defaults),
                recommend_cell(row, &row.defaults),
            )),
            Entry::Failed { id, error } => {
                out.push_str(&format!("| {id} | could not run: {error} | | | | | |\n"))
            }
        }
    }
    for e in &r.scenarios {
        let Entry::Row(row) = e else { continue };
        out.push_str(&format!("\n### {}. {}\n\n", row.id, row.title));
        out.push_str(&format!(
            "Load: {}. Profile: `{}`, applied to the {} namespace, which the daemon (audit \
             mode) watches. Failures: {}.\n\n",
            row.load,
            row.profile,
            serde_json::to_value(row.side)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            row.failures
        ));
        for run in [&row.defaults, &row.tuned] {
            if run.label == "not run" {
                continue;
            }
            out.push_str(&format!("- **{}**: {}\n", run.label, settings(run)));
            if let Some(a) = &run.apply {
                out.push_str(&format!("  - `{a}`\n"));
            }
            let c = &run.client;
            let errors: Vec<String> = c
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
                .collect();
            out.push_str(&format!(
                "  - client: {} connections, {} complete, {} responses in {:.2} s{}\n",
                thousands(c.attempts as u64),
                thousands(c.ok as u64),
                thousands(c.responses as u64),
                c.elapsed_s,
                if errors.is_empty() {
                    "; no errors".to_string()
                } else {
                    format!(
                        "; errors: {}{}",
                        errors.join(", "),
                        c.first_error_s
                            .map(|s| format!(" (first at +{s:.2} s)"))
                            .unwrap_or_default()
                    )
                }
            ));
            if let Some(t) = tail(&run.connect) {
                out.push_str(&format!("  - connect latency {t}\n"));
            }
            if let Some(t) = tail(&run.connect_call) {
                out.push_str(&format!(
                    "  - time inside connect() (the kernel's source-port search) {t}\n"
                ));
            }
            if c.behind > 0 {
                out.push_str(&format!(
                    "  - the client fell behind its schedule: {} connections never opened\n",
                    thousands(c.behind as u64)
                ));
            }
            if let Some(t) = tail(&run.request) {
                out.push_str(&format!("  - request latency {t}\n"));
            }
            if let Some(mb) = run.mbytes_per_s {
                out.push_str(&format!(
                    "  - throughput {mb:.2} MB/s, {:.1} responses/s, server retransmitted {} segments\n",
                    run.responses_per_s,
                    thousands(run.retrans_segs)
                ));
            }
            let server: Vec<String> = run
                .server
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v)))
                .collect();
            out.push_str(&format!("  - server: {}\n", server.join(", ")));
            let alerts: Vec<String> = saturation_alerts(run)
                .iter()
                .map(|a| {
                    format!(
                        "{} at +{:.1} s: {}",
                        a.alert,
                        a.at_s,
                        a.text.trim_start_matches("[]: ")
                    )
                })
                .collect();
            let drift = run
                .alerts
                .iter()
                .filter(|a| a.alert == "SysctlDrift" && a.state == "firing")
                .count();
            out.push_str(&format!(
                "  - alerts: {}{}\n",
                if alerts.is_empty() {
                    "none".to_string()
                } else {
                    alerts.join("; ")
                },
                if drift > 0 {
                    format!(
                        " (and SysctlDrift for the {drift} keys the audited profile would change)"
                    )
                } else {
                    String::new()
                }
            ));
            if run.softnet_dropped > 0 {
                out.push_str(&format!(
                    "  - host-wide softnet drops during the run: {}\n",
                    thousands(run.softnet_dropped)
                ));
            }
            if let Some(rec) = &run.recommend {
                out.push_str(&format!(
                    "  - `nodetune recommend`: {} ({}); {}\n",
                    rec.profile,
                    rec.reason,
                    if rec.findings.is_empty() {
                        "no findings".to_string()
                    } else {
                        format!(
                            "{}; knobs: {}",
                            rec.findings.join("; "),
                            rec.knobs.join(", ")
                        )
                    }
                ));
            }
            for n in &run.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        for n in &row.notes {
            out.push_str(&format!("\nNote: {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(thousands(35000), "35,000");
        assert_eq!(dur(42), "42 µs");
        assert_eq!(dur(11_586), "11.6 ms");
        assert_eq!(dur(1_446_075), "1.45 s");
    }
}
