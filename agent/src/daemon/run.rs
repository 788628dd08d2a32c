//! The daemon's event loop on the current-thread runtime: drift ticks, alert ticks (the
//! collection they read runs on the collectors' worker pool, awaited), the release of start-up
//! code pages after the first one, profile-file polling (and, on the same tick, giving memory
//! back after bursts), SIGHUP reloads, watchdog pings, and a clean stop on SIGTERM or SIGINT.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{interval, MissedTickBehavior};

use super::{memory, notify, Daemon};
use crate::base::log;
use crate::watch::snapshot::Sampler;
use log::Level;

/// How often profile directories and the config file are checked for changes.
const FILE_POLL: Duration = Duration::from_secs(5);

fn lock(d: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    // A panic while holding the lock must not take the daemon down with it.
    d.lock().unwrap_or_else(|p| p.into_inner())
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut i = interval(every);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

fn publish(d: &mut Daemon) {
    d.publish();
}

fn release_startup_code() {
    match memory::release_startup_code() {
        Ok(kb) => log::log(
            Level::Info,
            &format!("start-up done: released {kb} kB of code pages"),
            &[("RELEASED_KB", &kb.to_string())],
        ),
        Err(e) => log::log(Level::Info, &format!("start-up code pages kept: {e}"), &[]),
    }
}

/// The signals the loop answers. Installed before anything tells the outside world the daemon
/// is up (the status file, the bound port): a SIGHUP's default action would kill it.
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; call inside the runtime.
    pub fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }
}

/// Runs until SIGTERM or SIGINT. Call once the endpoint is listening: READY=1 is sent first.
pub async fn run(
    daemon: Arc<Mutex<Daemon>>,
    sampler: Sampler,
    signals: Signals,
) -> anyhow::Result<()> {
    let Signals {
        mut hup,
        mut term,
        mut int,
    } = signals;
    let (mut drift_every, mut alert_every) = {
        let d = lock(&daemon);
        (d.config().drift_interval, d.config().alerts.interval)
    };
    let mut drift = ticker(drift_every);
    let mut alerts = ticker(alert_every);
    let mut files = ticker(FILE_POLL);
    let mut watchdog = ticker(
        notify::watchdog_period()
            .map(|p| p / 2)
            .unwrap_or(Duration::from_secs(3600)),
    );
    {
        let mut d = lock(&daemon);
        publish(&mut d);
        let _ = notify::notify(&format!("READY=1\nSTATUS={}", d.status_line()));
    }
    // Start-up is over once the first alert tick (at once) has run every collector: their
    // one-off set-up is done and the pool's threads exist.
    let mut started = false;
    let mut trimmer = memory::Trimmer::new();
    loop {
        let mut reloaded = false;
        tokio::select! {
            _ = drift.tick() => {
                let mut d = lock(&daemon);
                if d.drift_tick(Instant::now()) {
                    publish(&mut d);
                }
            }
            _ = alerts.tick() => {
                let snap = sampler.read_async().await;
                let (push, am) = {
                    let mut d = lock(&daemon);
                    let push = d.alert_tick(snap, Instant::now());
                    publish(&mut d);
                    (push, d.alertmanager())
                };
                if let Some(am) = am {
                    let instance = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
                    // Only queues: each Alertmanager's own task delivers and retries.
                    am.push(&push, &instance);
                }
                if !started {
                    started = true;
                    release_startup_code();
                    trimmer.tick();
                }
            }
            _ = files.tick() => {
                if started {
                    trimmer.tick();
                }
                let mut d = lock(&daemon);
                if d.files_changed() {
                    reloaded = d.reload("configuration or profile files changed");
                    publish(&mut d);
                }
            }
            _ = hup.recv() => {
                let mut d = lock(&daemon);
                let _ = notify::notify("RELOADING=1");
                reloaded = d.reload("SIGHUP");
                publish(&mut d);
                let _ = notify::notify("READY=1");
            }
            _ = watchdog.tick() => {
                let _ = notify::notify("WATCHDOG=1");
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        if reloaded {
            let d = lock(&daemon);
            let (de, ae) = (d.config().drift_interval, d.config().alerts.interval);
            if de != drift_every {
                drift_every = de;
                drift = ticker(de);
            }
            if ae != alert_every {
                alert_every = ae;
                alerts = ticker(ae);
            }
        }
    }
    let _ = notify::notify("STOPPING=1");
    lock(&daemon).stop();
    Ok(())
}
