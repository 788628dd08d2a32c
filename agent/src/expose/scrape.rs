//! One scrape: run the enabled collectors on a small shared worker pool with a deadline, and
//! add node_exporter's `node_scrape_collector_duration_seconds` and
//! `node_scrape_collector_success`.
//!
//! Why a pool and not a thread per collector: a scrape then costs a couple of thread wake-ups
//! instead of one per collector, and the endpoint and the alert rules share the same few
//! threads. A collector that hangs (a stuck sensor read) is abandoned for this scrape and
//! reported with success 0; the worker it holds no longer counts, so the pool starts one
//! replacement, and while the collector stays stuck later scrapes skip it at once. A hung read
//! therefore costs one blocked thread, never one per scrape.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::collect::{self, Collector, Family, MetricType, Options};

type Outcome = (bool, Vec<Family>, Duration);
type Job = Box<dyn FnOnce() + Send>;

/// Milliseconds since the process-wide epoch, plus one so that 0 can mean "not running".
fn now_mark() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// True when a run that started at `mark` (0: none running) has lasted longer than `limit`.
fn overdue(mark: u64, limit: Duration) -> bool {
    let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    mark != 0 && now_mark().saturating_sub(mark) > limit
}

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    /// One entry per worker thread alive: when its current job started (0 when idle).
    workers: Vec<Arc<AtomicU64>>,
    /// A worker busy for longer than this is stuck (the collectors' timeout).
    stuck_after: Duration,
}

/// The process-wide worker pool: `live` workers that are not stuck, plus any stuck ones.
struct Pool {
    state: Mutex<PoolState>,
    wake: Condvar,
    live: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking job cannot poison the pool for everyone else.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    fn get() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            state: Mutex::new(PoolState {
                jobs: VecDeque::new(),
                idle: 0,
                workers: Vec::new(),
                stuck_after: Duration::MAX,
            }),
            wake: Condvar::new(),
            // As many workers as cores: more only adds context switches.
            live: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 8),
        })
    }

    /// Queues jobs; wakes idle workers, and starts workers while fewer than `live` are not
    /// stuck (busy for longer than `stuck_after`).
    fn submit(&'static self, jobs: Vec<Job>, stuck_after: Duration) {
        let n = jobs.len();
        let mut st = lock(&self.state);
        st.jobs.extend(jobs);
        st.stuck_after = stuck_after;
        let wake = n.min(st.idle);
        let healthy = st
            .workers
            .iter()
            .filter(|w| !overdue(w.load(Ordering::Relaxed), stuck_after))
            .count();
        let spawn = (n - wake).min(self.live.saturating_sub(healthy));
        for _ in 0..spawn {
            let busy = Arc::new(AtomicU64::new(0));
            let mine = busy.clone();
            let started = std::thread::Builder::new()
                .name("collect".into())
                .stack_size(256 * 1024)
                .spawn(move || self.work(&mine));
            match started {
                Ok(_) => st.workers.push(busy),
                Err(e) => crate::daemon::log::log(
                    crate::daemon::log::Level::Error,
                    &format!("starting a collector thread: {e}"),
                    &[],
                ),
            }
        }
        drop(st);
        for _ in 0..wake {
            self.wake.notify_one();
        }
    }

    fn work(&self, busy: &AtomicU64) {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.jobs.pop_front() {
                busy.store(now_mark(), Ordering::Relaxed);
                drop(st);
                job();
                busy.store(0, Ordering::Relaxed);
                st = lock(&self.state);
                // A replacement was started while this worker was stuck: leave once enough
                // others are healthy.
                let limit = st.stuck_after;
                let healthy_others = st
                    .workers
                    .iter()
                    .filter(|w| !std::ptr::eq(&***w, busy))
                    .filter(|w| !overdue(w.load(Ordering::Relaxed), limit))
                    .count();
                if healthy_others >= self.live && st.jobs.is_empty() {
                    st.workers.retain(|w| !std::ptr::eq(&**w, busy));
                    return;
                }
                continue;
            }
            st.idle += 1;
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
        }
    }
}

struct Slot {
    name: &'static str,
    collector: Arc<dyn Collector>,
    /// When the run that is being watched started; 0 when none runs.
    running_since: Arc<AtomicU64>,
}

/// The results of one scrape, filled in by the workers.
struct Pending {
    results: Mutex<Results>,
    done: Condvar,
}

struct Results {
    outcomes: Vec<Option<Outcome>>,
    finished: usize,
    expected: usize,
    /// Set by an async waiter; the worker that finishes the last job sends on it.
    wake: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A scrape whose jobs are queued or running.
pub struct Running<'a> {
    chosen: Vec<&'a Slot>,
    skipped: Vec<bool>,
    pending: Arc<Pending>,
    start: Instant,
    deadline: Instant,
}

/// The collectors, built once at start (they cache what never changes).
pub struct Scraper {
    slots: Vec<Slot>,
    timeout: Duration,
}

impl Scraper {
    pub fn new(opts: &Options) -> anyhow::Result<Scraper> {
        let mut slots = Vec::new();
        for name in opts.enabled() {
            let entry = collect::ALL
                .iter()
                .find(|e| e.name == name)
                .with_context(|| format!("unknown collector {name}"))?;
            let c =
                (entry.build)(opts).with_context(|| format!("setting up the {name} collector"))?;
            slots.push(Slot {
                name,
                collector: Arc::from(c),
                running_since: Arc::new(AtomicU64::new(0)),
            });
        }
        Ok(Scraper {
            slots,
            timeout: opts.timeout,
        })
    }

    /// Names of the enabled collectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.name).collect()
    }

    /// Runs the collectors accepted by `keep`, in parallel, each within the timeout; a failing,
    /// hung or timed-out collector contributes only its success=0 series. Blocks the caller.
    pub fn scrape(&self, keep: &dyn Fn(&str) -> bool) -> Vec<Family> {
        let run = self.start(keep);
        let results = {
            let r = lock(&run.pending.results);
            let wait = run.deadline.saturating_duration_since(Instant::now());
            let (mut r, _) = run
                .pending
                .done
                .wait_timeout_while(r, wait, |r| r.finished < r.expected)
                .unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut r.outcomes)
        };
        run.finish(results)
    }

    /// The same as [`Scraper::scrape`] without blocking a thread while the collectors run:
    /// the endpoint awaits this on its event loop.
    pub fn scrape_async(
        &self,
        keep: &dyn Fn(&str) -> bool,
    ) -> impl std::future::Future<Output = Vec<Family>> + Send + '_ {
        let run = self.start(keep);
        async move {
            let rx = {
                let mut r = lock(&run.pending.results);
                if r.finished < r.expected {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    r.wake = Some(tx);
                    Some(rx)
                } else {
                    None
                }
            };
            if let Some(rx) = rx {
                let deadline = tokio::time::Instant::from_std(run.deadline);
                let _ = tokio::time::timeout_at(deadline, rx).await;
            }
            let results = std::mem::take(&mut lock(&run.pending.results).outcomes);
            run.finish(results)
        }
    }

    /// Queues the chosen collectors on the pool.
    fn start(&self, keep: &dyn Fn(&str) -> bool) -> Running<'_> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let chosen: Vec<&Slot> = self.slots.iter().filter(|s| keep(s.name)).collect();
        let mut jobs: Vec<Job> = Vec::with_capacity(chosen.len());
        let mut skipped = vec![false; chosen.len()];
        // Still stuck in an earlier scrape: skip it now rather than tie up another worker.
        for (i, s) in chosen.iter().enumerate() {
            skipped[i] = overdue(s.running_since.load(Ordering::Relaxed), self.timeout);
        }
        let pending = Arc::new(Pending {
            results: Mutex::new(Results {
                outcomes: (0..chosen.len()).map(|_| None).collect(),
                finished: 0,
                expected: skipped.iter().filter(|s| !**s).count(),
                wake: None,
            }),
            done: Condvar::new(),
        });
        for (i, s) in chosen.iter().enumerate().filter(|(i, _)| !skipped[*i]) {
            let (c, since, p) = (
                s.collector.clone(),
                s.running_since.clone(),
                pending.clone(),
            );
            jobs.push(Box::new(move || {
                // Queued for so long that the scrape gave up: don't do the work at all.
                if Instant::now() >= deadline {
                    return;
                }
                // Watch this run unless another (concurrent scrape) is already watched.
                let watched = since
                    .compare_exchange(0, now_mark(), Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok();
                let t = Instant::now();
                let mut fams = Vec::new();
                let ok = c.collect(&mut fams).is_ok();
                let took = t.elapsed();
                if watched {
                    since.store(0, Ordering::Relaxed);
                }
                let mut r = lock(&p.results);
                r.outcomes[i] = Some((ok, fams, took));
                r.finished += 1;
                if r.finished == r.expected {
                    if let Some(tx) = r.wake.take() {
                        let _ = tx.send(());
                    }
                    drop(r);
                    p.done.notify_one();
                }
            }));
        }
        if !jobs.is_empty() {
            Pool::get().submit(jobs, self.timeout);
        }
        Running {
            chosen,
            skipped,
            pending,
            start,
            deadline,
        }
    }
}

impl Running<'_> {
    /// The collectors' families, then the duration and success families.
    fn finish(self, results: Vec<Option<Outcome>>) -> Vec<Family> {
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
        let mut out = Vec::new();
        for ((s, result), skipped) in self.chosen.iter().zip(results).zip(self.skipped) {
            let labels = [("collector", s.name)];
            match result {
                Some((ok, fams, took)) => {
                    if ok {
                        out.extend(fams);
                    }
                    duration.push(&labels, took.as_secs_f64());
                    success.push(&labels, if ok { 1.0 } else { 0.0 });
                }
                None => {
                    let took = if skipped {
                        0.0
                    } else {
                        self.start.elapsed().as_secs_f64()
                    };
                    duration.push(&labels, took);
                    success.push(&labels, 0.0);
                }
            }
        }
        out.push(duration);
        out.push(success);
        out
    }
}
