//! One scrape: run the enabled collectors, each on its own long-lived worker thread with a
//! deadline, and add node_exporter's `node_scrape_collector_duration_seconds` and
//! `node_scrape_collector_success`. A collector that hangs (a stuck sensor read) is abandoned
//! for this scrape and reported with success 0; while it stays stuck, later scrapes skip it at
//! once instead of queueing behind it, so a hung read costs one blocked thread, not one per
//! scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::collect::{self, Family, MetricType, Options};

type Outcome = (bool, Vec<Family>, Duration);

struct Worker {
    name: &'static str,
    jobs: mpsc::Sender<mpsc::SyncSender<Outcome>>,
    /// Milliseconds since `epoch` when the running job started; 0 when idle.
    busy_since: Arc<AtomicU64>,
}

/// The collectors, built once at start (they cache what never changes).
pub struct Scraper {
    workers: Vec<Worker>,
    timeout: Duration,
    epoch: Instant,
}

impl Scraper {
    pub fn new(opts: &Options) -> anyhow::Result<Scraper> {
        let epoch = Instant::now();
        let mut workers = Vec::new();
        for name in opts.enabled() {
            let entry = collect::ALL
                .iter()
                .find(|e| e.name == name)
                .with_context(|| format!("unknown collector {name}"))?;
            let c =
                (entry.build)(opts).with_context(|| format!("setting up the {name} collector"))?;
            let (tx, rx) = mpsc::channel::<mpsc::SyncSender<Outcome>>();
            let busy_since = Arc::new(AtomicU64::new(0));
            let busy = busy_since.clone();
            std::thread::Builder::new()
                .name(format!("collect-{name}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    for reply in rx {
                        busy.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
                        let start = Instant::now();
                        let mut fams = Vec::new();
                        let ok = c.collect(&mut fams).is_ok();
                        busy.store(0, Ordering::SeqCst);
                        // The scrape may have given up waiting: nobody to tell then.
                        let _ = reply.send((ok, fams, start.elapsed()));
                    }
                })
                .with_context(|| format!("starting the {name} collector thread"))?;
            workers.push(Worker {
                name,
                jobs: tx,
                busy_since,
            });
        }
        Ok(Scraper {
            workers,
            timeout: opts.timeout,
            epoch,
        })
    }

    /// Names of the enabled collectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.workers.iter().map(|w| w.name).collect()
    }

    /// Runs the collectors accepted by `keep`, in parallel, each within the timeout; a failing,
    /// hung or timed-out collector contributes only its success=0 series.
    pub fn scrape(&self, keep: &dyn Fn(&str) -> bool) -> Vec<Family> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut duration = Family::new(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        let mut success = Family::new(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        let mut pending = Vec::new();
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        for w in self.workers.iter().filter(|w| keep(w.name)) {
            let since = w.busy_since.load(Ordering::SeqCst);
            let stuck =
                since != 0 && now_ms.saturating_sub(since) > self.timeout.as_millis() as u64;
            let (tx, rx) = mpsc::sync_channel(1);
            if stuck || w.jobs.send(tx).is_err() {
                duration.push(&[("collector", w.name)], 0.0);
                success.push(&[("collector", w.name)], 0.0);
                continue;
            }
            pending.push((w.name, rx));
        }
        let mut out = Vec::new();
        for (name, rx) in pending {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok((ok, fams, took)) => {
                    if ok {
                        out.extend(fams);
                    }
                    duration.push(&[("collector", name)], took.as_secs_f64());
                    success.push(&[("collector", name)], if ok { 1.0 } else { 0.0 });
                }
                Err(_) => {
                    duration.push(&[("collector", name)], start.elapsed().as_secs_f64());
                    success.push(&[("collector", name)], 0.0);
                }
            }
        }
        out.push(duration);
        out.push(success);
        out
    }
}
