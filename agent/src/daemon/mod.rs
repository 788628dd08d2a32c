//! The daemon's life cycle: load the configuration and the profile, apply it (enforce mode),
//! watch the managed keys every drift interval, evaluate alerts every alert interval, keep a
//! status file and systemd informed, reload on SIGHUP or when profiles change, and stop
//! cleanly (without rolling back unless configured to).

pub mod alertmanager;
pub mod memory;
pub mod notify;
pub mod run;
pub mod status;
pub mod web;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use crate::base::log::{self, Level};
use crate::base::mode::Mode;
use crate::collect::{Family, MetricType};
use crate::config::Config;
use crate::profile::{resolve, Facts, Library};
use crate::tune::{self, Action, ApplyOptions, Kernel, Netns, Plan, Store};
use crate::watch::alerts::{self, Engine, State, Transition};
use crate::watch::drift::{DriftWatch, Event};
use crate::watch::rules::{self, Evaluator};
use crate::watch::saturation::Saturation;
use crate::watch::snapshot::Snapshot;

/// Where the daemon reads and writes, and what the command line overrides.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub profile: Option<String>,
    pub mode: Option<Mode>,
    pub drift_interval: Option<Duration>,
    pub kernel: Kernel,
    pub store: Store,
    pub library: Library,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub modprobe: String,
}

/// Everything a (re)load produces; replaced as a whole so a failed reload changes nothing.
struct Loaded {
    config: Config,
    profile: String,
    profile_source: &'static str,
    watch: DriftWatch,
    /// The plan as found at (re)load, before any apply.
    plan: Plan,
    /// Where alerts are pushed, if anywhere.
    alertmanager: Option<std::sync::Arc<alertmanager::Client>>,
}

/// The running daemon.
pub struct Daemon {
    settings: Settings,
    loaded: Loaded,
    engine: Engine,
    netns: Netns,
    started: SystemTime,
    reload_error: Option<String>,
    rules: Evaluator,
    saturation: Option<Saturation>,
    listener: web::Listener,
    /// Profile and config files seen at the last (re)load, to notice changes.
    signature: Vec<(PathBuf, SystemTime, u64)>,
    /// Drift ticks run since start: shows the loop keeps its interval (e.g. under HTTP load).
    drift_ticks: u64,
}

fn profile_choice(s: &Settings, cfg: &Config) -> anyhow::Result<(String, &'static str)> {
    if let Some(p) = &s.profile {
        return Ok((p.clone(), "--profile"));
    }
    if let Some(p) = s.store.active_profile()? {
        return Ok((p, "nodetune use"));
    }
    if let Some(p) = &cfg.profile {
        return Ok((p.clone(), "config file"));
    }
    Ok((crate::profile::DEFAULT_PROFILE.to_string(), "default"))
}

fn load(s: &Settings, netns: &Netns) -> anyhow::Result<Loaded> {
    let mut config = Config::load(&s.config_path)?;
    // Built before anything is applied: a wrong CA or secret file fails the (re)load.
    let alertmanager = alertmanager::Client::new(&config.alerts)
        .with_context(|| s.config_path.display().to_string())?
        .map(std::sync::Arc::new);
    if let Some(m) = s.mode {
        config.mode = m;
    }
    if let Some(d) = s.drift_interval {
        config.drift_interval = d;
    }
    let (profile, profile_source) = profile_choice(s, &config)?;
    let facts = Facts::read(&s.kernel.sysctl_root, &s.procfs, &s.sysfs, &s.kernel.root)?;
    let eff = resolve(&s.library, &profile, &facts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = tune::plan(&eff, &s.kernel, netns);
    let mut current = None;
    if config.mode == Mode::Enforce && plan.count(Action::Change) > 0 {
        let opts = ApplyOptions {
            persist: false,
            modprobe: s.modprobe.clone(),
        };
        let outcome = tune::apply(&plan, &s.kernel, &s.store, &opts)?;
        let level = if outcome.ok {
            Level::Notice
        } else {
            Level::Error
        };
        log::log(level, &outcome.message, &[("PROFILE", &profile)]);
        current = Some(tune::plan(&eff, &s.kernel, netns));
    }
    let watched = current.as_ref().unwrap_or(&plan);
    let watch = DriftWatch::new(
        watched,
        config.mode,
        s.kernel.clone(),
        s.store.clone(),
        &s.procfs,
    );
    Ok(Loaded {
        config,
        profile,
        profile_source,
        watch,
        plan,
        alertmanager,
    })
}

fn signature(s: &Settings) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out = Vec::new();
    let mut add = |p: PathBuf| {
        if let Ok(m) = std::fs::metadata(&p) {
            out.push((p, m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        }
    };
    add(s.config_path.clone());
    add(s.store.dir.join("active-profile"));
    for dir in &s.library.dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            paths.into_iter().for_each(&mut add);
        }
    }
    out
}

impl Daemon {
    /// Loads and (in enforce mode) applies; prints the plan. An error here stops the start.
    pub fn start(settings: Settings) -> anyhow::Result<Daemon> {
        let netns = if settings.kernel.sysctl_root == std::path::Path::new("/proc/sys") {
            tune::netns::current()
        } else {
            Netns::host()
        };
        let loaded = load(&settings, &netns)?;
        let engine = Engine::new(loaded.config.alerts.clone());
        let signature = signature(&settings);
        let d = Daemon {
            settings,
            loaded,
            engine,
            netns,
            started: SystemTime::now(),
            reload_error: None,
            rules: Evaluator::default(),
            saturation: None,
            listener: web::Listener::default(),
            signature,
            drift_ticks: 0,
        };
        log::log(
            Level::Notice,
            &format!("started: {}", d.status_line()),
            &[
                ("PROFILE", &d.loaded.profile),
                ("MODE", d.loaded.config.mode.as_str()),
            ],
        );
        Ok(d)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// The Alertmanager client of the configuration in force, if any.
    pub fn alertmanager(&self) -> Option<std::sync::Arc<alertmanager::Client>> {
        self.loaded.alertmanager.clone()
    }

    /// The plan found at the last (re)load, before enforce mode applied it.
    pub fn plan(&self) -> &Plan {
        &self.loaded.plan
    }

    /// Records the configured listen address, before the first bind attempt.
    pub fn set_listen_address(&mut self, address: &str) {
        self.listener.address = address.to_string();
    }

    /// Writes the status file and systemd's STATUS line; while the listen address is busy,
    /// also the textfile handoff.
    pub fn publish(&mut self) {
        self.refresh_handoff();
        if let Err(e) = self.write_status() {
            log::log(Level::Warning, &format!("{e:#}"), &[]);
        }
        let _ = notify::notify(&format!("STATUS={}", self.status_line()));
    }

    /// Reloads configuration and profiles; on any error the old ones stay in force.
    pub fn reload(&mut self, why: &str) -> bool {
        match load(&self.settings, &self.netns) {
            Ok(l) => {
                self.engine.thresholds = l.config.alerts.clone();
                self.loaded = l;
                self.reload_error = None;
                self.signature = signature(&self.settings);
                log::log(
                    Level::Notice,
                    &format!("reloaded ({why}): {}", self.status_line()),
                    &[("PROFILE", &self.loaded.profile)],
                );
                true
            }
            Err(e) => {
                let msg = format!("{e:#}");
                log::log(
                    Level::Error,
                    &format!("reload ({why}) failed, keeping the running configuration: {msg}"),
                    &[("PROFILE", &self.loaded.profile)],
                );
                self.reload_error = Some(msg);
                self.signature = signature(&self.settings);
                false
            }
        }
    }

    /// True when the configuration, the active-profile choice or a profile file changed.
    pub fn files_changed(&self) -> bool {
        signature(&self.settings) != self.signature
    }

    /// One drift tick; logs every event. Returns true when anything changed.
    pub fn drift_tick(&mut self, now: Instant) -> bool {
        self.drift_ticks += 1;
        let events = self.loaded.watch.tick(now);
        let profile = self.loaded.profile.clone();
        for e in &events {
            match e {
                Event::Drifted { key, expected, actual } => log::log(
                    Level::Warning,
                    &format!("drift: {key} is {actual}, profile {profile} wants {expected}"),
                    &[("KEY", key), ("EXPECTED", expected), ("ACTUAL", actual), ("PROFILE", &profile)],
                ),
                Event::Corrected { key, from, to } => log::log(
                    Level::Notice,
                    &format!("corrected: {key} {from} -> {to}"),
                    &[("KEY", key), ("EXPECTED", to), ("ACTUAL", from), ("PROFILE", &profile)],
                ),
                Event::CorrectionFailed { key, error } => log::log(
                    Level::Error,
                    &format!("cannot correct {key}: {error}"),
                    &[("KEY", key), ("PROFILE", &profile)],
                ),
                Event::Fight { key, writer } => log::log(
                    Level::Error,
                    &format!("fight: {key} keeps being changed back; corrections stopped. Likely writer: {writer}"),
                    &[("KEY", key), ("WRITER", writer), ("PROFILE", &profile)],
                ),
                Event::InSync { key } => log::log(
                    Level::Info,
                    &format!("{key} is back in sync"),
                    &[("KEY", key), ("PROFILE", &profile)],
                ),
                Event::PendingApplied { key, value } => log::log(
                    Level::Notice,
                    &format!("module loaded: applied pending {key} = {value}"),
                    &[("KEY", key), ("EXPECTED", value), ("PROFILE", &profile)],
                ),
            }
        }
        !events.is_empty()
    }

    /// Evaluates the alerts on a fresh snapshot; logs every transition and returns the alerts
    /// to push (all firing ones, and those that just resolved).
    pub fn alert_tick(&mut self, snap: Snapshot, now: Instant) -> Vec<alerts::Alert> {
        let sat = Saturation::of(&snap);
        let signals = self.rules.evaluate(
            snap,
            now,
            &sat,
            &self.loaded.watch.states(),
            &self.loaded.profile,
            &self.engine.thresholds,
        );
        self.saturation = Some(sat);
        let transitions = self.engine.update(&signals, now);
        let mut push: Vec<alerts::Alert> = Vec::new();
        for Transition { alert, from } in &transitions {
            let labels: Vec<String> = alert
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let what = match (from, alert.state) {
                (None, _) => "pending",
                (_, State::Firing) => "firing",
                (_, State::Resolved) => "resolved",
                (_, State::Pending) => "pending",
            };
            let level = match alert.state {
                State::Firing => Level::Warning,
                _ => Level::Notice,
            };
            log::log(
                level,
                &format!(
                    "alert {} {what} [{}]: {}. Knob: {}. Remedy: {}",
                    alert.name,
                    labels.join(" "),
                    alert.summary,
                    alert.knob,
                    alert.remedy
                ),
                &[
                    ("ALERT", alert.name),
                    ("STATE", what),
                    ("SEVERITY", alert.severity),
                    ("KNOB", alert.knob),
                    ("REMEDY", alert.remedy),
                ],
            );
            if alert.state == State::Resolved {
                push.push(alert.clone());
            }
        }
        push.extend(
            self.engine
                .active()
                .into_iter()
                .filter(|a| a.state == State::Firing)
                .cloned(),
        );
        push
    }

    /// nodetune's own families for /metrics.
    pub fn families(&self) -> Vec<Family> {
        let mut out = self.loaded.watch.families();
        out.push(self.engine.family());
        if let Some(s) = &self.saturation {
            out.push(s.family());
        }
        out.extend(
            self.rules
                .last()
                .map(rules::input_families)
                .unwrap_or_default(),
        );
        let mut build = Family::new(
            "nodetune_build_info",
            "nodetune's version (always 1).",
            MetricType::Gauge,
        );
        build.push(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        out.push(build);
        let mut reload = Family::new(
            "nodetune_config_last_reload_successful",
            "Whether the last configuration reload succeeded.",
            MetricType::Gauge,
        );
        reload.push(
            &[],
            if self.reload_error.is_some() {
                0.0
            } else {
                1.0
            },
        );
        out.push(reload);
        out.push(Family::single(
            "nodetune_drift_ticks_total",
            "Drift-loop ticks run since start (one per drift interval while the loop keeps time).",
            MetricType::Counter,
            self.drift_ticks as f64,
        ));
        out.extend(self.listener.families());
        out
    }

    /// One line for systemd's STATUS= and logs.
    pub fn status_line(&self) -> String {
        let (ok, bad) = self.loaded.watch.counts();
        let firing = self
            .engine
            .active()
            .iter()
            .filter(|a| a.state == State::Firing)
            .count();
        let mut line = format!(
            "profile {} ({}): {ok}/{} keys in sync, {firing} alert(s) firing",
            self.loaded.profile,
            self.loaded.config.mode.as_str(),
            ok + bad
        );
        if self.listener.waiting() {
            line.push_str(&format!(
                "; metrics not served: {} busy",
                self.listener.address
            ));
        }
        line
    }

    /// Writes the status file for `nodetune status`.
    pub fn write_status(&self) -> anyhow::Result<()> {
        let (in_sync, drifted) = self.loaded.watch.counts();
        let st = status::Status {
            pid: std::process::id(),
            started: alertmanager::rfc3339(self.started),
            updated: alertmanager::rfc3339(SystemTime::now()),
            profile: self.loaded.profile.clone(),
            profile_source: self.loaded.profile_source.into(),
            mode: self.loaded.config.mode.as_str().into(),
            netns: self.netns.label.clone(),
            listen: self.listener.bound.clone(),
            listen_error: self.listener.describe(),
            in_sync,
            drifted,
            keys: self
                .loaded
                .watch
                .states()
                .into_iter()
                .map(|k| status::KeyLine {
                    state: if k.pending {
                        "pending".into()
                    } else if k.fight.is_some() {
                        "fight".into()
                    } else if k.in_sync {
                        "in-sync".into()
                    } else {
                        "drifted".into()
                    },
                    key: k.key,
                    want: k.want,
                    actual: k.actual,
                    drift_total: k.drift_total,
                    corrections_total: k.corrections_total,
                })
                .collect(),
            alerts: self
                .engine
                .active()
                .into_iter()
                .map(|a| status::AlertLine {
                    name: a.name.into(),
                    severity: a.severity.into(),
                    state: if a.state == State::Firing {
                        "firing".into()
                    } else {
                        "pending".into()
                    },
                    labels: a.labels.clone(),
                    summary: a.summary.clone(),
                    knob: a.knob.into(),
                    remedy: a.remedy.into(),
                })
                .collect(),
            reload_error: self.reload_error.clone(),
        };
        status::write(&self.settings.store.dir, &st).context("writing daemon status")
    }

    /// On stop: roll back only when configured to (rollback on stop has caused outages).
    pub fn stop(&mut self) {
        if self.loaded.config.rollback_on_stop {
            match tune::revert(
                &self.settings.kernel,
                &self.settings.store,
                &self.netns.label,
            ) {
                Ok(o) => log::log(Level::Notice, &format!("stopping: {}", o.message), &[]),
                Err(e) => log::log(
                    Level::Error,
                    &format!("stopping: revert failed: {e:#}"),
                    &[],
                ),
            }
        } else {
            log::log(
                Level::Notice,
                "stopping; tuned values stay in place (rollback-on-stop = false)",
                &[],
            );
        }
        let _ = std::fs::remove_file(status::path(&self.settings.store.dir));
        // node_exporter would go on serving a handoff file nobody refreshes.
        if self.listener.waiting() {
            web::withdraw(&self.handoff_dirs());
        }
    }
}
