//! `nodetune alerts`: the alert catalogue, as a table (`list`) and as Prometheus alerting
//! rules (`rules`) that compute the same conditions from the exported metrics. The shipped
//! `packaging/prometheus/nodetune-rules.yml` and the table in docs/alerts.md are this
//! command's output with its defaults (a test keeps them so).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{self, Config};
use crate::watch::alerts::Thresholds;
use crate::watch::rules::{Query, Scope, CATALOGUE};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every alert: severity, where it is evaluated, what fires it and the knob that fixes it.
    List {
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: ListFormat,
    },
    /// Prometheus alerting rules computing the same conditions as the daemon, with the
    /// thresholds and durations of a configuration file's [alerts] (default: built in).
    Rules {
        /// Matchers added to every selector, so the rules read nodetune's targets only.
        #[arg(long, default_value = "job=\"nodetune\"")]
        selector: String,
        /// Range for irate(): at least two scrape intervals.
        #[arg(long, default_value = "2m")]
        window: String,
        /// Configuration whose [alerts] thresholds and durations the rules use.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    /// The table of docs/alerts.md.
    Markdown,
}

pub fn main(a: &Args) -> anyhow::Result<i32> {
    match &a.command {
        Command::List { output } => {
            print!("{}", list(*output)?);
            Ok(0)
        }
        Command::Rules {
            selector,
            window,
            config,
        } => {
            let thresholds = match config {
                Some(p) => Config::load(p)?.alerts,
                None => Config::parse("builtin:nodetune.toml", config::DEFAULT)?.alerts,
            };
            print!("{}", rules(&thresholds, selector, window));
            Ok(0)
        }
    }
}

fn scope(s: Scope) -> &'static str {
    match s {
        Scope::Host => "host",
        Scope::Fleet => "fleet",
    }
}

/// The catalogue in the chosen format.
pub fn list(format: ListFormat) -> anyhow::Result<String> {
    Ok(match format {
        ListFormat::Table => {
            let rows: Vec<Vec<String>> = CATALOGUE
                .iter()
                .flat_map(|d| {
                    d.conditions.iter().map(move |c| {
                        vec![
                            d.name.to_string(),
                            d.severity.to_string(),
                            scope(d.scope).to_string(),
                            c.signal.to_string(),
                        ]
                    })
                })
                .collect();
            super::table::render(&["ALERT", "SEVERITY", "SCOPE", "FIRES WHEN"], &rows)
        }
        ListFormat::Json => {
            let all: Vec<serde_json::Value> = CATALOGUE
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "name": d.name,
                        "severity": d.severity,
                        "scope": scope(d.scope),
                        "knob": d.knob,
                        "remedy": d.remedy,
                        "conditions": d.conditions.iter().map(|c| serde_json::json!({
                            "signal": c.signal,
                            "labels": c.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&all)? + "\n"
        }
        ListFormat::Markdown => {
            let mut s = String::from(
                "| alert | severity | scope | fires when | knob |\n|---|---|---|---|---|\n",
            );
            for d in CATALOGUE {
                let when: Vec<String> = d.conditions.iter().map(|c| c.signal.into()).collect();
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    d.name,
                    d.severity,
                    scope(d.scope),
                    when.join("; or "),
                    d.knob
                ));
            }
            s
        }
    })
}

/// A duration as Prometheus writes it (`90s`, `5m`, `1h`).
fn prom_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s > 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else if d.subsec_millis() == 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A YAML single-quoted scalar: PromQL's double quotes stay as they are.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How long a fleet rule's condition must hold: these watch many hosts, not one tick.
fn fleet_for(name: &str) -> &'static str {
    match name {
        "SysctlDriftAcrossFleet" => "10m",
        _ => "5m",
    }
}

/// The Prometheus rules file.
pub fn rules(t: &Thresholds, selector: &str, window: &str) -> String {
    let mut out = String::from(
        "# Prometheus alerting rules generated from nodetune's alert catalogue by\n\
         # `nodetune alerts rules` (docs/alerts.md). The nodetune-host group computes the same\n\
         # conditions the daemon evaluates on each host, with its default thresholds, `for` and\n\
         # clear durations (keep_firing_for); nodetune-fleet adds views across hosts.\n\
         # Regenerate for other thresholds or job names:\n\
         #   nodetune alerts rules --config /etc/nodetune/nodetune.toml --selector 'job=\"node\"'\n\
         groups:\n",
    );
    for (group, want) in [
        ("nodetune-host", Scope::Host),
        ("nodetune-fleet", Scope::Fleet),
    ] {
        out.push_str(&format!("  - name: {group}\n    rules:\n"));
        for d in CATALOGUE.iter().filter(|d| d.scope == want) {
            for c in d.conditions {
                let query = Query {
                    t,
                    selector,
                    window,
                    alert: d.name,
                    labels: c.labels,
                };
                out.push_str(&format!("      - alert: {}\n", d.name));
                out.push_str(&format!("        expr: {}\n", q(&c.promql(&query))));
                match d.scope {
                    Scope::Host => {
                        out.push_str(&format!(
                            "        for: {}\n        keep_firing_for: {}\n",
                            prom_duration(t.for_duration),
                            prom_duration(t.clear_duration)
                        ));
                    }
                    Scope::Fleet => {
                        out.push_str(&format!("        for: {}\n", fleet_for(d.name)));
                    }
                }
                out.push_str(&format!(
                    "        labels:\n          severity: {}\n",
                    d.severity
                ));
                for (k, v) in c.labels {
                    out.push_str(&format!("          {k}: {v}\n"));
                }
                out.push_str(&format!(
                    "        annotations:\n          summary: {}\n          knob: {}\n          remedy: {}\n",
                    q(c.summary),
                    q(d.knob),
                    q(d.remedy)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_prometheus_writes_them() {
        assert_eq!(prom_duration(Duration::from_secs(60)), "1m");
        assert_eq!(prom_duration(Duration::from_secs(300)), "5m");
        assert_eq!(prom_duration(Duration::from_secs(90)), "90s");
        assert_eq!(prom_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn every_condition_becomes_a_rule_with_the_selector() {
        let text = rules(&Thresholds::default(), "job=\"nodetune\"", "2m");
        let n: usize = CATALOGUE.iter().map(|d| d.conditions.len()).sum();
        assert_eq!(text.matches("      - alert: ").count(), n);
        // Every selector carries the job matcher.
        for line in text.lines().filter(|l| l.trim_start().starts_with("expr:")) {
            assert!(line.contains("job=\"nodetune\""), "{line}");
        }
        assert!(text.contains("keep_firing_for: 5m"));
        let bare = rules(&Thresholds::default(), "", "2m");
        assert!(bare.contains("irate(node_netstat_TcpExt_ListenOverflows[2m]) > 0"));
    }
}
