//! `nodetune status`: the running daemon's profile, mode, keys and alerts.

use super::common::{print_json, Output, Roots};
use super::table;
use crate::daemon::status;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

/// Exit 0 when the daemon runs, 3 when it does not (as LSB status commands do).
pub fn main(a: &Args) -> anyhow::Result<i32> {
    let store = a.roots.store();
    let Some(s) = status::read(&store.dir)? else {
        match a.output {
            Output::Json => println!("{{\"running\": false}}"),
            Output::Table => {
                println!(
                    "daemon: not running (no live status in {})",
                    status::path(&store.dir).display()
                );
                let active = store.active_profile()?;
                println!(
                    "active profile: {} ({})",
                    a.roots.profile_name(None)?,
                    if active.is_some() {
                        "nodetune use"
                    } else {
                        "default"
                    }
                );
                println!("run `nodetune check` for a one-off verification");
            }
        }
        return Ok(3);
    };
    match a.output {
        Output::Json => print_json(&s)?,
        Output::Table => {
            println!("daemon: running (pid {}, since {})", s.pid, s.started);
            println!(
                "profile: {} (from {}), mode {}, namespace {}",
                s.profile, s.profile_source, s.mode, s.netns
            );
            if !s.listen.is_empty() {
                println!("metrics: {}", s.listen.join(", "));
            }
            if let Some(e) = &s.listen_error {
                println!("{e}");
            }
            println!("keys: {} in sync, {} drifted", s.in_sync, s.drifted);
            if let Some(e) = &s.reload_error {
                println!("last reload FAILED (old configuration still running): {e}");
            }
            println!();
            let rows: Vec<Vec<String>> = s
                .keys
                .iter()
                .map(|k| {
                    vec![
                        k.key.clone(),
                        k.want.clone(),
                        k.actual.clone().unwrap_or_else(|| "-".into()),
                        k.state.clone(),
                        k.drift_total.to_string(),
                        k.corrections_total.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["KEY", "WANT", "ACTUAL", "STATE", "DRIFTS", "CORRECTIONS"],
                    &rows
                )
            );
            println!();
            if s.alerts.is_empty() {
                println!("alerts: none");
            } else {
                let rows: Vec<Vec<String>> = s
                    .alerts
                    .iter()
                    .map(|a| {
                        let labels: Vec<String> =
                            a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        vec![
                            a.name.clone(),
                            a.state.clone(),
                            a.severity.clone(),
                            labels.join(","),
                            format!("{} Knob: {}. Remedy: {}", a.summary, a.knob, a.remedy),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["ALERT", "STATE", "SEVERITY", "LABELS", "SUMMARY"], &rows)
                );
            }
        }
    }
    Ok(0)
}
