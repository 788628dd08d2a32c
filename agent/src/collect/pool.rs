//! The worker pool every collection runs on: the endpoint's collectors (families for
//! /metrics) and the daemon's probes (typed readings for the alert rules) alike.
//!
//! Why a pool and not a thread per task: a scrape then costs a couple of thread wake-ups
//! instead of one per collector, and the endpoint and the alert rules share the same few
//! threads. A task that hangs (a stuck sensor read) is abandoned for this run and reported as
//! timed out; the worker it holds no longer counts, so the pool starts one replacement, and
//! while the task stays stuck later runs skip it at once. A task never runs twice at once: a
//! run that finds it running (for a concurrent scrape) shares that run's result. A hung read
//! therefore costs one blocked thread, never one per scrape.
//!
//! "Hangs" is judged against the task's own record: a task counts as stuck once it has run
//! [`SLOW_FACTOR`] times longer than its recent runs (and at least [`SLOW`]). On a big host
//! the cpufreq collector takes tens of milliseconds on every scrape; it is slow, not stuck,
//! and must not cost a thread started and ended per scrape.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// A queued task run: how long it usually takes, and how long it may hold its worker before
/// it counts as stuck.
struct Job {
    /// The slot whose queued flight to run (a reference count, not a boxed closure: a scrape
    /// queues a job per collector).
    run: Arc<dyn Work>,
    expected: Duration,
    slow_after: Duration,
}

/// Expected work per woken worker: a run whose tasks together take less than this is done by
/// one worker (the others sleep on), a bigger one is spread over more. Spreading costs CPU:
/// each wake-up is two context switches, and workers allocating at once contend for the one
/// malloc arena (futex waits and wakes). On node_exporter's defaults here (about 1.1 ms of
/// collector time, the filesystem collector's wait for its stat thread included) two workers
/// cost 1.24 ms of CPU a scrape and one 0.92, with no slower answer. Queued jobs still wake
/// idle workers when a scrape has waited `POKE`, so a slow task does not hold up the rest.
const SHARE: Duration = Duration::from_millis(8);

/// How many idle workers to wake for `n` jobs expected to take `expected` together.
fn workers_for(n: usize, expected: Duration, idle: usize) -> usize {
    let shares = expected.as_nanos().div_ceil(SHARE.as_nanos()).max(1);
    usize::try_from(shares)
        .unwrap_or(usize::MAX)
        .min(n)
        .min(idle)
}

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

/// The least time a job may hold its worker before it no longer counts as available (when
/// jobs wait, another worker is then started). Most collectors take well under a
/// millisecond; a stuck read takes forever.
const SLOW: Duration = Duration::from_millis(20);

/// A job counts as stuck past this many times its task's recent duration (if that is longer
/// than [`SLOW`]).
const SLOW_FACTOR: u32 = 4;

/// How long a task with the given recent duration may run before it counts as stuck.
fn slow_after(recent: Duration) -> Duration {
    (recent * SLOW_FACTOR).max(SLOW)
}

/// A task's recent duration after a run that took `took`: the longest recent run, decaying by
/// an eighth per run, so one slow scrape raises it at once and it falls back over a few runs.
fn fold_recent(recent: Duration, took: Duration) -> Duration {
    took.max(recent - recent / 8)
}

/// Hard cap on worker threads, stuck ones included (each collector can hold at most one).
const MAX_WORKERS: usize = 64;

/// How often a waiting scrape checks that its queued jobs have a worker.
const POKE: Duration = Duration::from_millis(20);

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    /// One entry per worker thread alive.
    workers: Vec<Arc<Busy>>,
}

/// What a worker is doing: when its current job started (0 when idle), and after how many
/// milliseconds that job counts as stuck.
#[derive(Default)]
struct Busy {
    since: AtomicU64,
    limit_ms: AtomicU64,
}

impl Busy {
    /// Busy with a job for longer than that job may take: no longer available.
    fn stuck(&self) -> bool {
        let limit = Duration::from_millis(self.limit_ms.load(Ordering::Relaxed));
        overdue(self.since.load(Ordering::Relaxed), limit)
    }
}

/// Worker threads started since the process began (the benchmark and tests read it).
static STARTED: AtomicU64 = AtomicU64::new(0);

/// How many worker threads the pool has started so far.
pub fn threads_started() -> u64 {
    STARTED.load(Ordering::Relaxed)
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
        let expected = jobs.iter().map(|j| j.expected).sum();
        let mut st = lock(&self.state);
        st.jobs.extend(jobs);
        let wake = workers_for(n, expected, st.idle);
        self.top_up(&mut st);
        drop(st);
        for _ in 0..wake {
            self.wake.notify_one();
        }
    }

    /// Called by scrapes still waiting after `POKE`: jobs still queued wake the idle workers
    /// (fewer than all may have been woken), and if every worker is stuck, more are started.
    fn poke(&'static self) {
        let mut st = lock(&self.state);
        let wake = st.jobs.len().min(st.idle);
        self.top_up(&mut st);
        drop(st);
        for _ in 0..wake {
            self.wake.notify_one();
        }
    }

    /// Starts workers while jobs wait and fewer than `live` workers are available.
    fn top_up(&'static self, st: &mut PoolState) {
        let available = st.workers.iter().filter(|w| !w.stuck()).count();
        let spawn = st
            .jobs
            .len()
            .saturating_sub(st.idle)
            .min(self.live.saturating_sub(available))
            .min(MAX_WORKERS.saturating_sub(st.workers.len()));
        for _ in 0..spawn {
            let busy = Arc::new(Busy::default());
            let mine = busy.clone();
            let started = std::thread::Builder::new()
                .name("collect".into())
                .stack_size(256 * 1024)
                .spawn(move || self.work(&mine));
            match started {
                Ok(_) => {
                    STARTED.fetch_add(1, Ordering::Relaxed);
                    st.workers.push(busy);
                }
                Err(e) => crate::base::log::log(
                    crate::base::log::Level::Error,
                    &format!("starting a collector thread: {e}"),
                    &[],
                ),
            }
        }
    }

    fn work(&self, busy: &Busy) {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.jobs.pop_front() {
                let limit = u64::try_from(job.slow_after.as_millis()).unwrap_or(u64::MAX);
                busy.limit_ms.store(limit, Ordering::Relaxed);
                busy.since.store(now_mark(), Ordering::Relaxed);
                drop(st);
                job.run.work();
                busy.since.store(0, Ordering::Relaxed);
                st = lock(&self.state);
                // Extra workers started while this one was stuck: leave once enough others
                // are available.
                let available_others = st
                    .workers
                    .iter()
                    .filter(|w| !std::ptr::eq(&***w, busy))
                    .filter(|w| !w.stuck())
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

/// What a task does: read its sources and return its value, or fail.
pub type Task<T> = Box<dyn Fn() -> anyhow::Result<T> + Send + Sync>;

/// How one task fared in one run.
#[derive(Debug)]
pub enum Done<T> {
    /// It ran: its value (None when it failed or panicked) and how long it took.
    Ran { value: Option<T>, took: Duration },
    /// Still running at the deadline (hung or slow): abandoned for this run.
    TimedOut { waited: Duration },
    /// Stuck since an earlier run: not started again.
    Skipped,
}

struct Slot<T> {
    name: &'static str,
    task: Task<T>,
    /// Recent duration in microseconds (see `fold_recent`).
    recent_us: AtomicU64,
    /// The run queued or in progress, if any: runs that arrive meanwhile wait for it.
    flight: Mutex<Option<Flight<T>>>,
}

/// One run of a task and the runs waiting for its result.
struct Flight<T> {
    /// When it started running (see `now_mark`); 0 while queued.
    started: u64,
    /// Past the last waiter's deadline nobody needs the result: a queued run is dropped.
    deadline: Instant,
    /// Usually the one run that queued it: kept inline.
    waiters: smallvec::SmallVec<[(Arc<Pending<T>>, usize); 1]>,
}

type Outcome<T> = (Option<T>, Duration);

/// The results of one run of several tasks, filled in by the workers.
struct Pending<T> {
    results: Mutex<Results<T>>,
    done: Condvar,
}

struct Results<T> {
    outcomes: Vec<Option<Outcome<T>>>,
    finished: usize,
    /// usize::MAX until every task of the run is queued or joined.
    expected: usize,
    /// Set by an async waiter; the worker that finishes the last job sends on it.
    wake: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<T> Pending<T> {
    fn deliver(&self, i: usize, outcome: Outcome<T>) {
        let mut r = lock(&self.results);
        // After the run's deadline its outcomes were taken: a late result is dropped.
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

/// What a worker runs: a slot's queued flight.
trait Work: Send + Sync {
    fn work(&self);
}

impl<T: Clone + Send + 'static> Work for Slot<T> {
    fn work(&self) {
        run(self)
    }
}

/// Runs a slot's queued flight and hands the outcome to every run waiting for it.
fn run<T: Clone>(slot: &Slot<T>) {
    {
        let mut flight = lock(&slot.flight);
        let Some(f) = flight.as_mut() else { return };
        // Queued for so long that every waiting run gave up: don't do the work at all.
        if Instant::now() >= f.deadline {
            *flight = None;
            return;
        }
        f.started = now_mark();
    }
    let t = Instant::now();
    // A bug in one task must not take the daemon down: a panic fails this task.
    let value = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (slot.task)())) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            // As node_exporter: a failing collector is success=0, its reason a debug line
            // (absent sources fail on every scrape of many hosts). Formatted only when debug
            // is on: the error's text (strerror and all) would cost every scrape CPU and
            // resident code pages.
            use crate::base::log::{self, Level};
            if log::enabled(Level::Debug) {
                log::log(
                    Level::Debug,
                    &format!("collector {} failed: {e:#}", slot.name),
                    &[("COLLECTOR", slot.name)],
                );
            }
            None
        }
        Err(_) => {
            crate::base::log::log(
                crate::base::log::Level::Error,
                &format!("{} panicked; it fails this run", slot.name),
                &[],
            );
            None
        }
    };
    let took = t.elapsed();
    let recent = Duration::from_micros(slot.recent_us.load(Ordering::Relaxed));
    let recent = u64::try_from(fold_recent(recent, took).as_micros()).unwrap_or(u64::MAX);
    slot.recent_us.store(recent, Ordering::Relaxed);
    let waiters = lock(&slot.flight)
        .take()
        .map(|f| f.waiters)
        .unwrap_or_default();
    let last = waiters.len().saturating_sub(1);
    let mut value = Some(value);
    for (k, (pending, i)) in waiters.into_iter().enumerate() {
        let v = if k == last {
            value.take().flatten()
        } else {
            value.clone().flatten()
        };
        pending.deliver(i, (v, took));
    }
}

/// A run whose jobs are queued or in progress.
struct Running<'a, T> {
    chosen: Vec<&'a Arc<Slot<T>>>,
    skipped: Vec<bool>,
    pending: Arc<Pending<T>>,
    start: Instant,
    deadline: Instant,
}

/// Named tasks run together on the pool, each within a timeout.
pub struct Runner<T> {
    slots: Vec<Arc<Slot<T>>>,
    timeout: Duration,
}

impl<T: Clone + Send + 'static> Runner<T> {
    pub fn new(tasks: Vec<(&'static str, Task<T>)>, timeout: Duration) -> Runner<T> {
        Runner {
            slots: tasks
                .into_iter()
                .map(|(name, task)| {
                    Arc::new(Slot {
                        name,
                        task,
                        recent_us: AtomicU64::new(0),
                        flight: Mutex::new(None),
                    })
                })
                .collect(),
            timeout,
        }
    }

    /// The tasks' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.name).collect()
    }

    /// Runs the tasks accepted by `keep`, in parallel, each within the timeout. Blocks the
    /// caller until all are done or the deadline passes.
    pub fn run(&self, keep: &dyn Fn(&str) -> bool) -> Vec<(&'static str, Done<T>)> {
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

    /// The same as [`Runner::run`] without blocking a thread while the tasks run: the
    /// endpoint and the daemon await this on their event loop.
    pub fn run_async(
        &self,
        keep: &dyn Fn(&str) -> bool,
    ) -> impl std::future::Future<Output = Vec<(&'static str, Done<T>)>> + Send + '_ {
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

    /// Queues the chosen tasks on the pool, or joins their runs already under way.
    fn start(&self, keep: &dyn Fn(&str) -> bool) -> Running<'_, T> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let chosen: Vec<&Arc<Slot<T>>> = self.slots.iter().filter(|s| keep(s.name)).collect();
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
                // Stuck in an earlier run: skip it now rather than tie up another worker.
                Some(f) if overdue(f.started, self.timeout) => skipped[i] = true,
                // Under way for a concurrent run (or hanging, not yet past the timeout):
                // share that run rather than start a second one.
                Some(f) => {
                    f.waiters.push((pending.clone(), i));
                    f.deadline = f.deadline.max(deadline);
                }
                None => {
                    *flight = Some(Flight {
                        started: 0,
                        deadline,
                        waiters: smallvec::smallvec![(pending.clone(), i)],
                    });
                    let recent = Duration::from_micros(slot.recent_us.load(Ordering::Relaxed));
                    jobs.push(Job {
                        run: Arc::clone(slot) as Arc<dyn Work>,
                        expected: recent,
                        slow_after: slow_after(recent),
                    });
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

impl<T> Running<'_, T> {
    fn finish(self, results: Vec<Option<Outcome<T>>>) -> Vec<(&'static str, Done<T>)> {
        let waited = self.start.elapsed();
        self.chosen
            .iter()
            .zip(results)
            .zip(self.skipped)
            .map(|((s, result), skipped)| {
                let done = match result {
                    Some((value, took)) => Done::Ran { value, took },
                    None if skipped => Done::Skipped,
                    None => Done::TimedOut { waited },
                };
                (s.name, done)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    type Gate = Arc<(Mutex<bool>, Condvar)>;

    /// Counts its runs and returns its name.
    fn fast(name: &'static str, runs: &Arc<AtomicUsize>) -> (&'static str, Task<&'static str>) {
        let runs = runs.clone();
        (
            name,
            Box::new(move || {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(name)
            }),
        )
    }

    /// Blocks until the gate opens, like a read from a stuck sensor.
    fn hang(
        name: &'static str,
        gate: &Gate,
        runs: &Arc<AtomicUsize>,
    ) -> (&'static str, Task<&'static str>) {
        let (gate, runs) = (gate.clone(), runs.clone());
        (
            name,
            Box::new(move || {
                runs.fetch_add(1, Ordering::SeqCst);
                let (open, cv) = &*gate;
                let _open = cv
                    .wait_while(lock(open), |o| !*o)
                    .unwrap_or_else(|p| p.into_inner());
                Ok(name)
            }),
        )
    }

    fn ok<T>(results: &[(&'static str, Done<T>)], name: &str) -> bool {
        results
            .iter()
            .any(|(n, d)| *n == name && matches!(d, Done::Ran { value: Some(_), .. }))
    }

    #[test]
    fn hung_tasks_cost_one_thread_each_and_nothing_else() {
        let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (fast_runs, hang_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // More hung tasks than the pool has workers, and many fast ones queued after them.
        let hung = ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"];
        let fast_names = ["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"];
        let mut tasks: Vec<(&'static str, Task<&'static str>)> = Vec::new();
        for h in hung {
            tasks.push(hang(h, &gate, &hang_runs));
        }
        for f in fast_names {
            tasks.push(fast(f, &fast_runs));
        }
        let r = Runner::new(tasks, Duration::from_millis(400));
        for round in 0..4 {
            let results = r.run(&|_| true);
            for f in fast_names {
                assert!(ok(&results, f), "round {round}: {f}");
            }
            for h in hung {
                assert!(!ok(&results, h), "round {round}: {h}");
            }
        }
        // Each hung task ran once: later runs joined or skipped it.
        assert_eq!(hang_runs.load(Ordering::SeqCst), hung.len());
        assert_eq!(fast_runs.load(Ordering::SeqCst), 4 * fast_names.len());
        let workers = lock(&Pool::get().state).workers.len();
        assert!(
            workers <= Pool::get().live + hung.len() + 2,
            "{workers} worker threads"
        );
        // The reads return: the next run is whole again.
        *lock(&gate.0) = true;
        gate.1.notify_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let results = r.run(&|_| true);
            if hung.iter().all(|h| ok(&results, h)) {
                break;
            }
            assert!(Instant::now() < deadline, "hung tasks never recovered");
        }
        // Their late results (for runs long over) were dropped without harm: every worker
        // comes back to idle, none died holding its busy mark.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&Pool::get().state)
            .workers
            .iter()
            .any(|w| w.since.load(Ordering::Relaxed) != 0)
        {
            assert!(Instant::now() < deadline, "a worker never came back");
            std::thread::yield_now();
        }
    }

    #[test]
    fn small_runs_wake_one_worker() {
        let us = Duration::from_micros;
        assert_eq!(workers_for(11, us(300), 2), 1);
        assert_eq!(workers_for(11, Duration::ZERO, 2), 1);
        assert_eq!(workers_for(11, us(1500), 8), 1);
        assert_eq!(workers_for(11, us(9000), 8), 2);
        assert_eq!(workers_for(3, us(30_000), 8), 3);
        assert_eq!(workers_for(11, us(30_000), 2), 2);
        assert_eq!(workers_for(11, us(300), 0), 0);
    }

    #[test]
    fn a_task_is_stuck_only_well_past_its_own_record() {
        let ms = Duration::from_millis;
        // Fast tasks keep the floor; a task that takes 30 ms on every run may take 120.
        assert_eq!(slow_after(Duration::ZERO), SLOW);
        assert_eq!(slow_after(ms(1)), SLOW);
        assert_eq!(slow_after(ms(30)), ms(120));
        // One long run raises the record at once; shorter ones bring it down over a few runs.
        let mut r = fold_recent(Duration::ZERO, ms(30));
        assert_eq!(r, ms(30));
        r = fold_recent(r, ms(80));
        assert_eq!(r, ms(80));
        for _ in 0..3 {
            r = fold_recent(r, ms(30));
        }
        assert!(r < ms(80) && r > ms(30), "{r:?}");
        for _ in 0..20 {
            r = fold_recent(r, ms(30));
        }
        assert_eq!(r, ms(30));
    }

    #[test]
    fn a_panicking_task_fails_alone() {
        let runs = Arc::new(AtomicUsize::new(0));
        let bad: Task<&'static str> = Box::new(|| panic!("a collector bug"));
        let r = Runner::new(
            vec![("bad", bad), fast("good", &runs)],
            Duration::from_secs(5),
        );
        for _ in 0..3 {
            let results = r.run(&|_| true);
            assert!(!ok(&results, "bad") && ok(&results, "good"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn concurrent_runs_share_a_run() {
        let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Runner::new(
            vec![hang("slow", &gate, &runs)],
            Duration::from_secs(10),
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || ok(&r.run(&|_| true), "slow"))
            })
            .collect();
        // All four runs are waiting on one run.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&r.slots[0].flight)
            .as_ref()
            .map_or(0, |f| f.waiters.len())
            < 4
        {
            assert!(Instant::now() < deadline, "runs did not join");
            std::thread::yield_now();
        }
        *lock(&gate.0) = true;
        gate.1.notify_all();
        for t in threads {
            assert!(t.join().expect("run thread"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
