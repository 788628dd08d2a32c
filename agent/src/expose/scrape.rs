//! One scrape: run the enabled collectors on a small shared worker pool with a deadline, and
//! add node_exporter's `node_scrape_collector_duration_seconds` and
//! `node_scrape_collector_success`.
//!
//! Why a pool and not a thread per collector: a scrape then costs a couple of thread wake-ups
//! instead of one per collector, and the endpoint and the alert rules share the same few
//! threads. A collector that hangs (a stuck sensor read) is abandoned for this scrape and
//! reported with success 0; the worker it holds no longer counts, so the pool starts one
//! replacement, and while the collector stays stuck later scrapes skip it at once. A collector
//! never runs twice at once: a scrape that finds it running (for a concurrent scrape) shares
//! that run's result. A hung read therefore costs one blocked thread, never one per scrape.

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

/// A worker busy for longer than this no longer counts as available: when jobs wait, another
/// worker is started. Collectors take well under a millisecond; a stuck read takes forever.
const SLOW: Duration = Duration::from_millis(20);

/// Hard cap on worker threads, stuck ones included (each collector can hold at most one).
const MAX_WORKERS: usize = 64;

/// How often a waiting scrape checks that its queued jobs have a worker.
const POKE: Duration = Duration::from_millis(20);

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    /// One entry per worker thread alive: when its current job started (0 when idle).
    workers: Vec<Arc<AtomicU64>>,
}

/// The process-wide worker pool: `live` available workers, plus any slow or stuck ones.
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
            }),
            wake: Condvar::new(),
            // As many workers as cores: more only adds context switches.
            live: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 8),
        })
    }

    /// Queues jobs and makes sure workers will run them.
    fn submit(&'static self, jobs: Vec<Job>) {
        let n = jobs.len();
        let mut st = lock(&self.state);
        st.jobs.extend(jobs);
        let wake = n.min(st.idle);
        self.top_up(&mut st);
        drop(st);
        for _ in 0..wake {
            self.wake.notify_one();
        }
    }

    /// Called by scrapes still waiting after `POKE`: if their jobs sit in the queue while
    /// every worker is slow or stuck, start more.
    fn poke(&'static self) {
        let mut st = lock(&self.state);
        self.top_up(&mut st);
    }

    /// Starts workers while jobs wait and fewer than `live` workers are available.
    fn top_up(&'static self, st: &mut PoolState) {
        let available = st
            .workers
            .iter()
            .filter(|w| !overdue(w.load(Ordering::Relaxed), SLOW))
            .count();
        let spawn = st
            .jobs
            .len()
            .saturating_sub(st.idle)
            .min(self.live.saturating_sub(available))
            .min(MAX_WORKERS.saturating_sub(st.workers.len()));
        for _ in 0..spawn {
            let busy = Arc::new(AtomicU64::new(0));
            let mine = busy.clone();
            let started = std::thread::Builder::new()
                .name("collect".into())
                .stack_size(256 * 1024)
                .spawn(move || self.work(&mine));
            match started {
                Ok(_) => st.workers.push(busy),
                Err(e) => crate::base::log::log(
                    crate::base::log::Level::Error,
                    &format!("starting a collector thread: {e}"),
                    &[],
                ),
            }
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
                // Extra workers started while this one was slow or stuck: leave once enough
                // others are available.
                let available_others = st
                    .workers
                    .iter()
                    .filter(|w| !std::ptr::eq(&***w, busy))
                    .filter(|w| !overdue(w.load(Ordering::Relaxed), SLOW))
                    .count();
                if available_others >= self.live && st.jobs.is_empty() {
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
    /// The run queued or in progress, if any: scrapes that arrive meanwhile wait for it.
    flight: Mutex<Option<Flight>>,
}

/// One run of a collector and the scrapes waiting for its result.
struct Flight {
    /// When it started running (see `now_mark`); 0 while queued.
    started: u64,
    /// Past the last waiter's deadline nobody needs the result: a queued run is dropped.
    deadline: Instant,
    waiters: Vec<(Arc<Pending>, usize)>,
}

/// The results of one scrape, filled in by the workers.
struct Pending {
    results: Mutex<Results>,
    done: Condvar,
}

struct Results {
    outcomes: Vec<Option<Outcome>>,
    finished: usize,
    /// usize::MAX until every collector of the scrape is queued or joined.
    expected: usize,
    /// Set by an async waiter; the worker that finishes the last job sends on it.
    wake: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Pending {
    fn deliver(&self, i: usize, outcome: Outcome) {
        let mut r = lock(&self.results);
        // After the scrape's deadline its outcomes were taken: a late result is dropped.
        let Some(slot) = r.outcomes.get_mut(i) else {
            return;
        };
        *slot = Some(outcome);
        r.finished += 1;
        if r.finished == r.expected {
            if let Some(tx) = r.wake.take() {
                let _ = tx.send(());
            }
            drop(r);
            self.done.notify_one();
        }
    }
}

/// Runs a slot's queued flight and hands the outcome to every scrape waiting for it.
fn run(slot: &Slot) {
    {
        let mut flight = lock(&slot.flight);
        let Some(f) = flight.as_mut() else { return };
        // Queued for so long that every waiting scrape gave up: don't do the work at all.
        if Instant::now() >= f.deadline {
            *flight = None;
            return;
        }
        f.started = now_mark();
    }
    let t = Instant::now();
    let mut fams = Vec::new();
    // A bug in one collector must not take the daemon down: a panic fails this collector.
    let ok = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        slot.collector.collect(&mut fams)
    })) {
        Ok(r) => r.is_ok(),
        Err(_) => {
            crate::base::log::log(
                crate::base::log::Level::Error,
                &format!("the {} collector panicked; it fails this scrape", slot.name),
                &[],
            );
            fams.clear();
            false
        }
    };
    let took = t.elapsed();
    let waiters = lock(&slot.flight)
        .take()
        .map(|f| f.waiters)
        .unwrap_or_default();
    let last = waiters.len().saturating_sub(1);
    let mut fams = Some(fams);
    for (k, (pending, i)) in waiters.into_iter().enumerate() {
        let fams = if k == last {
            fams.take().unwrap_or_default()
        } else {
            fams.clone().unwrap_or_default()
        };
        pending.deliver(i, (ok, fams, took));
    }
}

/// A scrape whose jobs are queued or running.
pub struct Running<'a> {
    chosen: Vec<&'a Arc<Slot>>,
    skipped: Vec<bool>,
    pending: Arc<Pending>,
    start: Instant,
    deadline: Instant,
}

/// The collectors, built once at start (they cache what never changes).
pub struct Scraper {
    slots: Vec<Arc<Slot>>,
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
            slots.push(Arc::new(Slot {
                name,
                collector: Arc::from(c),
                flight: Mutex::new(None),
            }));
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
        let mut r = lock(&run.pending.results);
        loop {
            let left = run.deadline.saturating_duration_since(Instant::now());
            (r, _) = run
                .pending
                .done
                .wait_timeout_while(r, left.min(POKE), |r| r.finished < r.expected)
                .unwrap_or_else(|p| p.into_inner());
            if r.finished >= r.expected || Instant::now() >= run.deadline {
                break;
            }
            drop(r);
            Pool::get().poke();
            r = lock(&run.pending.results);
        }
        let results = std::mem::take(&mut r.outcomes);
        drop(r);
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
            if let Some(mut rx) = rx {
                loop {
                    let left = run.deadline.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(left.min(POKE), &mut rx).await.is_ok()
                        || Instant::now() >= run.deadline
                    {
                        break;
                    }
                    Pool::get().poke();
                }
            }
            let results = std::mem::take(&mut lock(&run.pending.results).outcomes);
            run.finish(results)
        }
    }

    /// Queues the chosen collectors on the pool, or joins their runs already under way.
    fn start(&self, keep: &dyn Fn(&str) -> bool) -> Running<'_> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let chosen: Vec<&Arc<Slot>> = self.slots.iter().filter(|s| keep(s.name)).collect();
        let pending = Arc::new(Pending {
            results: Mutex::new(Results {
                outcomes: (0..chosen.len()).map(|_| None).collect(),
                finished: 0,
                expected: usize::MAX,
                wake: None,
            }),
            done: Condvar::new(),
        });
        let mut jobs: Vec<Job> = Vec::with_capacity(chosen.len());
        let mut skipped = vec![false; chosen.len()];
        for (i, slot) in chosen.iter().enumerate() {
            let mut flight = lock(&slot.flight);
            match flight.as_mut() {
                // Stuck in an earlier scrape: skip it now rather than tie up another worker.
                Some(f) if overdue(f.started, self.timeout) => skipped[i] = true,
                // Under way for a concurrent scrape (or hanging, not yet past the timeout):
                // share that run rather than start a second one.
                Some(f) => {
                    f.waiters.push((pending.clone(), i));
                    f.deadline = f.deadline.max(deadline);
                }
                None => {
                    *flight = Some(Flight {
                        started: 0,
                        deadline,
                        waiters: vec![(pending.clone(), i)],
                    });
                    let slot = Arc::clone(slot);
                    jobs.push(Box::new(move || run(&slot)));
                }
            }
        }
        {
            let mut r = lock(&pending.results);
            r.expected = skipped.iter().filter(|s| !**s).count();
        }
        if !jobs.is_empty() {
            Pool::get().submit(jobs);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Fast(&'static str, Arc<AtomicUsize>);
    impl Collector for Fast {
        fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let mut f = Family::new(self.0, "h", MetricType::Gauge);
            f.push(&[], 1.0);
            out.push(f);
            Ok(())
        }
    }

    /// Blocks until the gate opens, like a read from a stuck sensor.
    struct Hang(Arc<(Mutex<bool>, Condvar)>, Arc<AtomicUsize>);
    impl Collector for Hang {
        fn collect(&self, _: &mut Vec<Family>) -> anyhow::Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let (open, cv) = &*self.0;
            let _open = cv
                .wait_while(lock(open), |o| !*o)
                .unwrap_or_else(|p| p.into_inner());
            Ok(())
        }
    }

    fn scraper(collectors: Vec<(&'static str, Box<dyn Collector>)>, timeout: Duration) -> Scraper {
        Scraper {
            slots: collectors
                .into_iter()
                .map(|(name, c)| {
                    Arc::new(Slot {
                        name,
                        collector: Arc::from(c),
                        flight: Mutex::new(None),
                    })
                })
                .collect(),
            timeout,
        }
    }

    fn success(fams: &[Family], name: &str) -> f64 {
        fams.iter()
            .find(|f| f.name == "node_scrape_collector_success")
            .and_then(|f| f.samples.iter().find(|s| s.labels[0].1 == name))
            .map(|s| s.value)
            .expect("success series")
    }

    #[test]
    fn hung_collectors_cost_one_thread_each_and_nothing_else() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (fast_runs, hang_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // More hung collectors than the pool has workers, and many fast ones queued after them.
        let hung: Vec<&'static str> = vec!["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"];
        let mut cs: Vec<(&'static str, Box<dyn Collector>)> = Vec::new();
        for &h in &hung {
            cs.push((h, Box::new(Hang(gate.clone(), hang_runs.clone()))));
        }
        let fast: Vec<&'static str> = vec!["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"];
        for &f in &fast {
            cs.push((f, Box::new(Fast(f, fast_runs.clone()))));
        }
        let s = scraper(cs, Duration::from_millis(400));
        for round in 0..4 {
            let t = Instant::now();
            let fams = s.scrape(&|_| true);
            assert!(
                t.elapsed() < Duration::from_millis(1500),
                "round {round}: {:?}",
                t.elapsed()
            );
            for f in &fast {
                assert_eq!(success(&fams, f), 1.0, "round {round}: {f}");
                assert!(fams.iter().any(|x| x.name == *f));
            }
            for h in &hung {
                assert_eq!(success(&fams, h), 0.0, "round {round}: {h}");
            }
        }
        // Each hung collector ran once: later scrapes joined or skipped it.
        assert_eq!(hang_runs.load(Ordering::SeqCst), hung.len());
        assert_eq!(fast_runs.load(Ordering::SeqCst), 4 * fast.len());
        let workers = lock(&Pool::get().state).workers.len();
        assert!(
            workers <= Pool::get().live + hung.len() + 2,
            "{workers} worker threads"
        );
        // The reads return: the next scrape is whole again.
        *lock(&gate.0) = true;
        gate.1.notify_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let fams = s.scrape(&|_| true);
            if hung.iter().all(|h| success(&fams, h) == 1.0) {
                break;
            }
            assert!(Instant::now() < deadline, "hung collectors never recovered");
        }
        // Their late results (for scrapes long over) were dropped without harm: every worker
        // comes back to idle, none died holding its busy mark.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&Pool::get().state)
            .workers
            .iter()
            .any(|w| w.load(Ordering::Relaxed) != 0)
        {
            assert!(Instant::now() < deadline, "a worker never came back");
            std::thread::yield_now();
        }
    }

    struct Panics;
    impl Collector for Panics {
        fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
            out.push(Family::new("half_done", "h", MetricType::Gauge));
            panic!("a collector bug");
        }
    }

    #[test]
    fn a_panicking_collector_fails_alone() {
        let runs = Arc::new(AtomicUsize::new(0));
        let s = scraper(
            vec![
                ("bad", Box::new(Panics)),
                ("good", Box::new(Fast("good", runs.clone()))),
            ],
            Duration::from_secs(5),
        );
        for _ in 0..3 {
            let fams = s.scrape(&|_| true);
            assert_eq!(success(&fams, "bad"), 0.0);
            assert_eq!(success(&fams, "good"), 1.0);
            assert!(!fams.iter().any(|f| f.name == "half_done"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn concurrent_scrapes_share_a_run() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let s = Arc::new(scraper(
            vec![("slow", Box::new(Hang(gate.clone(), runs.clone())))],
            Duration::from_secs(10),
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.scrape(&|_| true))
            })
            .collect();
        // All four scrapes are waiting on one run.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&s.slots[0].flight)
            .as_ref()
            .map_or(0, |f| f.waiters.len())
            < 4
        {
            assert!(Instant::now() < deadline, "scrapes did not join the run");
            std::thread::yield_now();
        }
        *lock(&gate.0) = true;
        gate.1.notify_all();
        for t in threads {
            let fams = t.join().expect("scrape thread");
            assert_eq!(success(&fams, "slow"), 1.0);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
