//! The filesystem collector's stat threads: statfs(2) on a mount whose server is gone (NFS,
//! CIFS, a FUSE daemon that stopped answering) blocks its caller for as long as the kernel
//! waits, often forever, and nothing can interrupt it. So the collector never calls statfs
//! itself: a few persistent threads do, and the collector waits for them at most
//! `--collector.filesystem.mount-timeout`.
//!
//! How it works, and what it costs:
//! - A scrape hands the whole list of mounts to the pool in one step (one lock, one wake-up)
//!   and waits for the answers. One awake thread stats every mount in turn (a statfs takes
//!   microseconds); a healthy scrape therefore costs two context switches, not one per mount
//!   (node_exporter starts a goroutine and a timer per mount).
//! - While the scrape waits, every [`SLOW`] it checks that its mounts still move: when mounts
//!   wait and every thread is busy for longer than that, it wakes or starts one more (up to
//!   `--collector.filesystem.stat-workers`, or beyond that when all of those are busy on
//!   mounts that do not answer), so one dead mount never holds up the others.
//! - At the deadline the scrape stops waiting. A mount whose statfs is still running is marked
//!   stuck: its thread is abandoned (it stays blocked in the kernel and no longer counts), and
//!   later scrapes report the mount with `device_error` 1 without asking it again, as
//!   node_exporter does. A stuck mount therefore holds one thread however many scrapes come
//!   (two at most if two scrapers reached it at the same time).
//! - When the abandoned statfs finally returns, its thread clears the stuck mark (the next
//!   scrape asks the mount again) and exits, unless no other thread is there to take work, in
//!   which case it rejoins: the pool is back to the threads it had before the mount hung.
//! - Threads that are not needed leave: a thread started beyond `stat-workers` exits once there
//!   is no work. On a healthy host the pool holds between one and `stat-workers` threads and
//!   starts none at steady state.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A mount's statfs(2) numbers, as node_exporter uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bsize: i64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

/// What the pool found out about one mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Usage(Usage),
    /// statfs failed with this errno.
    Error(i32),
    /// No answer: stuck now or in an earlier scrape, or never reached before the deadline.
    TimedOut,
}

/// How long a statfs may run before the waiting scrape gets another thread going.
pub const SLOW: Duration = Duration::from_millis(50);

/// Threads beyond `stat-workers`, stuck ones included, at most: past that, further dead
/// mounts are reported as timed out without being asked.
const EXTRA_THREADS: usize = 64;

/// The statfs call itself. Replaceable in tests.
pub type StatFn = fn(&CStr) -> Answer;

/// statfs(2).
pub fn statfs(path: &CStr) -> Answer {
    // SAFETY: `path` is NUL-terminated; `buf` is a plain C struct that statfs fills.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Answer::Error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Answer::Usage(Usage {
        bsize: buf.f_bsize as i64,
        blocks: buf.f_blocks as u64,
        bfree: buf.f_bfree as u64,
        bavail: buf.f_bavail as u64,
        files: buf.f_files as u64,
        ffree: buf.f_ffree as u64,
    })
}

/// One thread's current call.
struct Job {
    batch: u64,
    /// Index into the batch's `todo`.
    at: usize,
    path: Arc<CString>,
    started: Instant,
}

struct Worker {
    id: u64,
    job: Option<Job>,
    /// Given up on by a scrape: stuck in its statfs, no longer counted in `live`.
    abandoned: bool,
}

/// One scrape's mounts.
struct Batch {
    id: u64,
    todo: Vec<Arc<CString>>,
    /// The next mount of `todo` to hand out.
    next: usize,
    answers: Vec<Option<Answer>>,
    missing: usize,
}

struct State {
    batches: Vec<Batch>,
    workers: Vec<Worker>,
    /// Workers waiting for work.
    idle: usize,
    /// Workers not abandoned (idle or busy).
    live: usize,
    /// Paths whose statfs is still running in an abandoned thread.
    stuck: HashSet<Arc<CString>>,
    next_id: u64,
}

/// The pool. One per process for the collector (shared by the endpoint's and the alert
/// rules' scrapers); tests make their own.
pub struct Pool {
    state: Mutex<State>,
    /// Workers wait here for work.
    work: Condvar,
    /// Scrapes wait here for their answers.
    done: Condvar,
    /// `--collector.filesystem.stat-workers`.
    target: usize,
    stat: StatFn,
}

/// Live threads other than `me` that can take work now: idle, or busy for less than
/// [`SLOW`].
fn available_except(st: &State, me: u64) -> usize {
    st.workers
        .iter()
        .filter(|w| w.id != me && !w.abandoned)
        .filter(|w| w.job.as_ref().is_none_or(|j| j.started.elapsed() < SLOW))
        .count()
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    pub fn new(target: usize, stat: StatFn) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State {
                batches: Vec::new(),
                workers: Vec::new(),
                idle: 0,
                live: 0,
                stuck: HashSet::new(),
                next_id: 1,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            target: target.max(1),
            stat,
        })
    }

    /// Stats `path` on the caller's thread, for a mount that cannot block (see
    /// `super::ANSWERS_FROM_MEMORY`).
    pub fn stat_here(&self, path: &CStr) -> Answer {
        (self.stat)(path)
    }

    /// Stats every path within `wait`: one answer per path, in order. Paths marked stuck are
    /// answered [`Answer::TimedOut`] at once.
    pub fn stat_all(self: &Arc<Self>, paths: &[Arc<CString>], wait: Duration) -> Vec<Answer> {
        let deadline = Instant::now() + wait;
        let mut answers = vec![Answer::TimedOut; paths.len()];
        let mut st = lock(&self.state);
        // Which paths to ask, and where their answers go.
        let mut asked = Vec::with_capacity(paths.len());
        let mut todo = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            if !st.stuck.contains(p) {
                asked.push(i);
                todo.push(p.clone());
            }
        }
        if todo.is_empty() {
            return answers;
        }
        let id = st.next_id;
        st.next_id += 1;
        let n = todo.len();
        st.batches.push(Batch {
            id,
            todo,
            next: 0,
            answers: vec![None; n],
            missing: n,
        });
        self.wake_one(&mut st, false);
        loop {
            let at = st
                .batches
                .iter()
                .position(|b| b.id == id)
                .expect("a batch stays until its scrape removes it");
            if st.batches[at].missing == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                self.give_up(&mut st, id);
                break;
            }
            st = self
                .done
                .wait_timeout(st, (deadline - now).min(SLOW))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            let b = st.batches.iter().find(|b| b.id == id).expect("batch");
            if b.next < b.todo.len() {
                // Mounts still wait for a thread: the threads may all be on slow mounts.
                self.wake_one(&mut st, true);
            }
        }
        let at = st.batches.iter().position(|b| b.id == id).expect("batch");
        let b = st.batches.swap_remove(at);
        drop(st);
        for (i, a) in asked.into_iter().zip(b.answers) {
            if let Some(a) = a {
                answers[i] = a;
            }
        }
        answers
    }

    /// Gets one more thread onto the queued mounts: an idle one, else a new one while fewer
    /// than `target` are live, else (with `stalled`, when every live thread has been on its
    /// mount for longer than [`SLOW`]) a new one beyond the target.
    fn wake_one(self: &Arc<Self>, st: &mut State, stalled: bool) {
        if st.idle > 0 {
            self.work.notify_one();
            return;
        }
        let all_slow = st
            .workers
            .iter()
            .filter(|w| !w.abandoned)
            .all(|w| w.job.as_ref().is_some_and(|j| j.started.elapsed() >= SLOW));
        let room = st.workers.len() < self.target + EXTRA_THREADS;
        if room && (st.live < self.target || (stalled && all_slow)) {
            self.spawn(st);
        }
    }

    fn spawn(self: &Arc<Self>, st: &mut State) {
        let id = st.next_id;
        st.next_id += 1;
        let pool = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("statfs".into())
            .stack_size(128 * 1024)
            .spawn(move || pool.work(id));
        match started {
            Ok(_) => {
                st.workers.push(Worker {
                    id,
                    job: None,
                    abandoned: false,
                });
                st.live += 1;
            }
            Err(e) => crate::base::log::log(
                crate::base::log::Level::Error,
                &format!("starting a statfs thread: {e}"),
                &[],
            ),
        }
    }

    /// The deadline passed: mounts not yet handed out are dropped, and the threads still in a
    /// statfs for this batch are abandoned, their mounts marked stuck.
    fn give_up(&self, st: &mut State, id: u64) {
        if let Some(b) = st.batches.iter_mut().find(|b| b.id == id) {
            b.next = b.todo.len();
        }
        let State {
            workers,
            stuck,
            live,
            ..
        } = st;
        for w in workers.iter_mut() {
            if let Some(j) = &w.job {
                if j.batch == id && !w.abandoned {
                    w.abandoned = true;
                    *live -= 1;
                    stuck.insert(j.path.clone());
                }
            }
        }
    }

    fn work(&self, me: u64) {
        let mut st = lock(&self.state);
        loop {
            // Work: the first mount not handed out yet, oldest batch first.
            let claim = st.batches.iter_mut().find_map(|b| {
                (b.next < b.todo.len()).then(|| {
                    b.next += 1;
                    (b.id, b.next - 1, b.todo[b.next - 1].clone())
                })
            });
            if let Some((batch, at, path)) = claim {
                if st.stuck.contains(&path) {
                    // Marked stuck by a concurrent scrape since this one queued it.
                    self.answer(&mut st, batch, at, Answer::TimedOut);
                    continue;
                }
                if let Some(w) = st.workers.iter_mut().find(|w| w.id == me) {
                    w.job = Some(Job {
                        batch,
                        at,
                        path: path.clone(),
                        started: Instant::now(),
                    });
                }
                drop(st);
                let answer = (self.stat)(&path);
                st = lock(&self.state);
                if !self.finish(&mut st, me, answer) {
                    return;
                }
                continue;
            }
            // No work: a thread leaves when enough others are available without it.
            if available_except(&st, me) >= self.target {
                st.live -= 1;
                st.workers.retain(|w| w.id != me);
                return;
            }
            st.idle += 1;
            st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
        }
    }

    /// Records a statfs answer. Returns false when this thread should exit (it had been
    /// abandoned, and another thread is available).
    fn finish(&self, st: &mut State, me: u64, answer: Answer) -> bool {
        let Some(w) = st.workers.iter_mut().find(|w| w.id == me) else {
            return false;
        };
        let Some(job) = w.job.take() else {
            return true;
        };
        if w.abandoned {
            // The mount answered at last: ask it again from the next scrape on.
            w.abandoned = false;
            st.stuck.remove(&job.path);
            if available_except(st, me) >= 1 {
                st.workers.retain(|w| w.id != me);
                return false;
            }
            st.live += 1;
            return true;
        }
        self.answer(st, job.batch, job.at, answer);
        true
    }

    /// Stores one answer of a batch (unless its scrape already gave up on it).
    fn answer(&self, st: &mut State, batch: u64, at: usize, answer: Answer) {
        if let Some(b) = st.batches.iter_mut().find(|b| b.id == batch) {
            if b.answers[at].is_none() {
                b.answers[at] = Some(answer);
                b.missing -= 1;
                if b.missing == 0 {
                    self.done.notify_all();
                }
            }
        }
    }

    /// Threads alive (stuck ones included), and how many of them are stuck.
    #[cfg(test)]
    pub fn threads(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.workers.len(), st.workers.len() - st.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A fake statfs: "/hang*" blocks until HANG is cleared, "/slow*" takes 120 ms,
    /// "/gone*" fails ENOENT, the rest answer with the path's length as block count.
    static HANG: AtomicBool = AtomicBool::new(true);

    fn fake(path: &CStr) -> Answer {
        let p = path.to_bytes();
        if p.starts_with(b"/hang") {
            while HANG.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        } else if p.starts_with(b"/slow") {
            std::thread::sleep(Duration::from_millis(120));
        } else if p.starts_with(b"/gone") {
            return Answer::Error(libc::ENOENT);
        }
        Answer::Usage(Usage {
            bsize: 4096,
            blocks: p.len() as u64,
            ..Usage::default()
        })
    }

    fn paths(list: &[&str]) -> Vec<Arc<CString>> {
        list.iter()
            .map(|p| Arc::new(CString::new(*p).unwrap()))
            .collect()
    }

    fn blocks(a: &Answer) -> u64 {
        match a {
            Answer::Usage(u) => u.blocks,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn healthy_mounts_use_one_thread_and_start_none_after_the_first() {
        let pool = Pool::new(4, fake);
        let list = paths(&["/", "/boot", "/gone", "/var/lib"]);
        for _ in 0..50 {
            let a = pool.stat_all(&list, Duration::from_secs(5));
            assert_eq!(blocks(&a[0]), 1);
            assert_eq!(blocks(&a[1]), 5);
            assert_eq!(a[2], Answer::Error(libc::ENOENT));
            assert_eq!(blocks(&a[3]), 8);
        }
        assert_eq!(pool.threads(), (1, 0));
    }

    // One test for the hanging mount (HANG is process-wide).
    #[test]
    fn a_hanging_mount_holds_one_thread_and_recovers() {
        let pool = Pool::new(1, fake);
        let list = paths(&["/a", "/hang", "/b", "/slow", "/c"]);
        let t = Instant::now();
        let a = pool.stat_all(&list, Duration::from_millis(400));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(2),
            "{took:?}"
        );
        // The others were answered by a thread started when the first stalled.
        assert_eq!(blocks(&a[0]), 2);
        assert_eq!(a[1], Answer::TimedOut);
        assert_eq!(blocks(&a[2]), 2);
        assert_eq!(blocks(&a[3]), 5);
        assert_eq!(blocks(&a[4]), 2);
        assert_eq!(pool.threads(), (2, 1));
        // Later scrapes skip the stuck mount at once and start no thread.
        let list = paths(&["/a", "/hang", "/b", "/c"]);
        for _ in 0..20 {
            let t = Instant::now();
            let a = pool.stat_all(&list, Duration::from_millis(400));
            assert!(t.elapsed() < Duration::from_millis(100));
            assert_eq!(a[1], Answer::TimedOut);
            assert_eq!(blocks(&a[3]), 2);
            assert_eq!(pool.threads(), (2, 1));
        }
        // The mount answers: its thread clears the mark and leaves (one is the target).
        HANG.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.threads() != (1, 0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pool.threads(), (1, 0));
        let a = pool.stat_all(&list, Duration::from_millis(400));
        assert_eq!(blocks(&a[1]), 5);
        HANG.store(true, Ordering::SeqCst);
    }

    #[test]
    fn every_thread_stuck_still_answers_the_rest() {
        // Two dead mounts with one configured thread, and more behind them.
        let pool = Pool::new(1, |p| {
            if p.to_bytes().starts_with(b"/dead") {
                std::thread::sleep(Duration::from_secs(3600));
            }
            Answer::Usage(Usage::default())
        });
        let list = paths(&["/dead1", "/dead2", "/x", "/y"]);
        let a = pool.stat_all(&list, Duration::from_millis(500));
        assert_eq!(&a[..2], &[Answer::TimedOut, Answer::TimedOut]);
        assert_eq!(
            &a[2..],
            &[
                Answer::Usage(Usage::default()),
                Answer::Usage(Usage::default())
            ]
        );
        // Two stuck threads, one live.
        assert_eq!(pool.threads(), (3, 2));
        let a = pool.stat_all(&list, Duration::from_millis(500));
        assert_eq!(a[3], Answer::Usage(Usage::default()));
        assert_eq!(pool.threads(), (3, 2));
    }

    #[test]
    fn concurrent_scrapes_share_the_pool() {
        let pool = Pool::new(2, fake);
        let list = paths(&["/p", "/slow1", "/q"]);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (pool, list) = (pool.clone(), list.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let a = pool.stat_all(&list, Duration::from_secs(5));
                        assert_eq!(blocks(&a[1]), 6);
                        assert_eq!(blocks(&a[2]), 2);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Extra threads went away again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.threads().0 > 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(pool.threads().0 <= 2, "{:?}", pool.threads());
    }
}
