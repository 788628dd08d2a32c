//! Keeps the daemon's resident set small: sets up the allocator, drops its start-up code once
//! start-up is over, and gives the allocator's free memory back to the kernel after a burst of
//! requests.
//!
//! Argument parsing, config and profile loading, TLS set-up and the collectors' one-off
//! discovery run once, yet their code pages stay mapped, and counted in RSS, for the life of
//! the process. Once the first full collection is done, the daemon drops its references to
//! its clean, read-only file mappings (its own binary and the shared libraries): the pages stay
//! in the page cache, and the scrape, drift and alert paths map back only the code they run
//! (with the kernel's usual fault-around of neighbouring cached pages). On the development VM
//! this takes the steady RSS from about 8 MB to about 5.2 MB (docs/benchmarks.md).

use std::io;
use std::path::Path;

/// The mappings that are safe to drop: private file mappings, not writable, with no
/// copy-on-write pages, so every page reads back from the file unchanged.
fn droppable(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            // A mapping header: "start-end perms offset dev inode [path]".
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            current = match (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                (Ok(s), Ok(e))
                    if e > s
                        && path.starts_with('/')
                        && perms.starts_with('r')
                        && !perms.contains('w')
                        && perms.ends_with('p') =>
                {
                    Some((s, e))
                }
                _ => None,
            };
        } else if first == "Anonymous:" {
            // Copy-on-write pages (a relocated read-only segment, a debugger's breakpoint)
            // would be lost to MADV_DONTNEED: such mappings are left alone.
            if let Some(range) = current.take() {
                if fields.next() == Some("0") {
                    out.push(range);
                }
            }
        }
    }
    out
}

fn status_kb(key: &str) -> Option<u64> {
    let status = crate::collect::util::read_text(Path::new("/proc/self/status")).ok()?;
    let line = status.lines().find(|l| l.split(':').next() == Some(key))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn rss_file_kb() -> Option<u64> {
    status_kb("RssFile")
}

/// The allocator's settings for every command; call first thing in `main`, before any other
/// thread exists.
///
/// Collector threads each get a glibc malloc arena by default, which multiplies resident
/// memory for no gain in a small agent: one arena is plenty.
///
/// The scrape's big buffers (the body, hundreds of kB to MBs on a big host) are mapped for the
/// scrape and unmapped after it. glibc's default raises its mmap threshold to the size of the
/// first such buffer freed, and its trim threshold to twice that: every later body then comes
/// from the heap, whose free top is kept up to twice the body's size, so resident memory grew
/// with the host by about twice the body per unit (docs/benchmarks.md, "Cost as the host
/// grows"). Fixed thresholds keep both at 128 KiB.
///
/// The per-thread caches can only be turned off from the environment: the daemon does that
/// for itself ([`reexec_without_thread_caches`]).
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; the caller has no other thread yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// The glibc tunable that turns its per-thread caches off.
const NO_THREAD_CACHE: &str = "glibc.malloc.tcache_count=0";

/// Starts the daemon again, once, with glibc's per-thread caches of freed blocks ("tcache")
/// turned off; returns only when that is not needed or not possible (the reason, for the log).
///
/// Each thread keeps up to seven freed blocks of every small size. The allocator counts them
/// as in use, so neither coalescing nor a trim returns the pages they lie on, and a scrape's
/// short-lived strings and label sets, spread over more pages on a bigger host, pin more of
/// them: on the --grow trees they were about 200 kB at the base host and 1-2 kB more per
/// zone, disk or NIC (docs/benchmarks.md, "Cost as the host grows"), for under 1 % of CPU
/// when scraped as Prometheus does (3-4 % only with scrapes back to back).
/// glibc reads the setting only from GLIBC_TUNABLES at start-up, hence the new exec (same
/// PID, arguments and environment, plus the tunable). A GLIBC_TUNABLES that already sets
/// `glibc.malloc.tcache_count` is left as it is: that is also how to keep the caches.
/// Call before any thread is started.
pub fn reexec_without_thread_caches() -> Option<String> {
    #[cfg(target_env = "gnu")]
    {
        use std::os::unix::process::CommandExt;
        let tunables = std::env::var_os("GLIBC_TUNABLES");
        let value = with_thread_caches_off(tunables.as_deref().map(|t| t.to_string_lossy()))?;
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                return Some(format!(
                    "glibc's thread caches stay on: own path unknown: {e}"
                ))
            }
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // exec only returns on failure.
        let e = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", value)
            .exec();
        Some(format!(
            "glibc's thread caches stay on: exec {}: {e}",
            exe.display()
        ))
    }
    #[cfg(not(target_env = "gnu"))]
    None
}

/// GLIBC_TUNABLES with the thread caches turned off, or None when it already says how many
/// blocks they keep.
fn with_thread_caches_off(tunables: Option<std::borrow::Cow<str>>) -> Option<String> {
    match tunables {
        Some(t)
            if t.split(':')
                .any(|kv| kv.split('=').next() == Some("glibc.malloc.tcache_count")) =>
        {
            None
        }
        Some(t) if !t.is_empty() => Some(format!("{t}:{NO_THREAD_CACHE}")),
        _ => Some(NO_THREAD_CACHE.to_string()),
    }
}

/// Releases start-up code pages; returns the kB of file-backed RSS released. Call once, when
/// start-up is over. Failures are harmless (the pages simply stay) and reported to the caller.
pub fn release_startup_code() -> io::Result<u64> {
    let before = rss_file_kb().unwrap_or(0);
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    for (start, end) in droppable(&smaps) {
        let (addr, len) = (start as *mut libc::c_void, end - start);
        // SAFETY: the range is a whole mapping of this process that reads back unchanged from
        // its file (checked above); MADV_DONTNEED changes what is resident, not contents.
        if unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(before.saturating_sub(rss_file_kb().unwrap_or(before)))
}

/// Gives memory back after bursts. A burst (thousands of connections, pipelined scrapes)
/// leaves megabytes of freed buffers in the allocator's heap: glibc returns only the free top
/// of its heap to the kernel on its own, and the daemon, idle again at a few MB, would keep the
/// burst's size for good. Checked every few seconds (one read of /proc/self/status): when the
/// process's own memory (RssAnon) has grown well past its idle size, `malloc_trim` returns
/// every free page of the heap, wherever it lies.
pub struct Trimmer {
    /// RssAnon when the daemon was last idle and trimmed (kB).
    idle_kb: Option<u64>,
}

/// Growth over the idle size that is worth a trim (kB).
const TRIM_SLACK_KB: u64 = 2048;

impl Trimmer {
    pub fn new() -> Trimmer {
        Trimmer { idle_kb: None }
    }

    /// Call periodically. The first call records the idle size (call it once start-up is
    /// over; a smaller size seen later replaces it); later calls trim when the process's own
    /// memory exceeds twice that, or that plus [`TRIM_SLACK_KB`], whichever is more. Returns
    /// the kB released, if it trimmed.
    pub fn tick(&mut self) -> Option<u64> {
        let anon = status_kb("RssAnon")?;
        let idle = match self.idle_kb {
            Some(idle) if idle <= anon => idle,
            // The first call, or smaller than ever: the idle size.
            _ => {
                self.idle_kb = Some(anon);
                return None;
            }
        };
        if !worth_trimming(idle, anon) {
            return None;
        }
        // Still large after a trim, the memory is in use (a burst still under way): the next
        // tick tries again. A trim that finds little to free costs a walk of the free lists.
        trim();
        let after = status_kb("RssAnon").unwrap_or(anon);
        Some(anon.saturating_sub(after))
    }
}

/// Whether `now_kb` of the process's own memory is far enough past `idle_kb` to trim.
fn worth_trimming(idle_kb: u64, now_kb: u64) -> bool {
    now_kb > idle_kb.saturating_mul(2).max(idle_kb + TRIM_SLACK_KB)
}

impl Default for Trimmer {
    fn default() -> Self {
        Self::new()
    }
}

/// Returns the allocator's free memory to the kernel.
fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_caches_are_turned_off_unless_the_environment_says_otherwise() {
        let off = |t: Option<&str>| with_thread_caches_off(t.map(std::borrow::Cow::Borrowed));
        assert_eq!(off(None).as_deref(), Some(NO_THREAD_CACHE));
        assert_eq!(off(Some("")).as_deref(), Some(NO_THREAD_CACHE));
        assert_eq!(
            off(Some("glibc.malloc.check=3")).as_deref(),
            Some("glibc.malloc.check=3:glibc.malloc.tcache_count=0")
        );
        // Set by the operator (or by the first exec): left alone, so it never loops.
        assert_eq!(off(Some("glibc.malloc.tcache_count=7")), None);
        assert_eq!(
            off(Some("glibc.malloc.check=3:glibc.malloc.tcache_count=0")),
            None
        );
        // A longer name that starts the same is another tunable.
        assert!(off(Some("glibc.malloc.tcache_count_x=1")).is_some());
    }

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let smaps = "\
55d000000000-55d000100000 r-xp 00001000 fd:01 123 /usr/bin/nodetune
Rss:                 400 kB
Anonymous:             0 kB
55d000100000-55d000110000 r--p 00101000 fd:01 123 /usr/bin/nodetune
Anonymous:             8 kB
55d000110000-55d000120000 rw-p 00111000 fd:01 123 /usr/bin/nodetune
Anonymous:             0 kB
55d000200000-55d000300000 rw-p 00000000 00:00 0 [heap]
Anonymous:           100 kB
7f0000000000-7f0000010000 r--p 00000000 fd:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000020000-7f0000030000 r--s 00000000 00:05 789 /memfd:x (deleted)
Anonymous:             0 kB
7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            droppable(smaps),
            vec![
                (0x55d000000000, 0x55d000100000),
                (0x7f0000000000, 0x7f0000010000)
            ]
        );
    }

    #[test]
    fn trims_only_well_past_the_idle_size() {
        assert!(!worth_trimming(5000, 6000));
        assert!(!worth_trimming(5000, 10_000));
        assert!(worth_trimming(5000, 10_001));
        // A small daemon: at least TRIM_SLACK_KB of growth.
        assert!(!worth_trimming(1000, 3000));
        assert!(worth_trimming(1000, 3049));
    }

    #[test]
    fn a_burst_of_freed_memory_is_given_back() {
        // A burst: 40 MB in small blocks (heap, not mmap), touched, then all freed but one
        // allocated last, near the top, which keeps glibc from shrinking the heap by itself.
        let blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 1000]).collect();
        let pin = vec![1u8; 1000];
        drop(blocks);
        let before = status_kb("RssAnon").unwrap();
        trim();
        let after = status_kb("RssAnon").unwrap();
        assert!(after + 20_000 < before, "{before} kB -> {after} kB");
        assert_eq!(pin[0], 1);
        // The trimmer records the idle size first, then leaves a daemon at that size alone.
        let mut t = Trimmer::new();
        assert_eq!(t.tick(), None);
        assert_eq!(t.tick(), None);
    }

    #[test]
    fn releasing_keeps_the_code_running() {
        // Runs in the test process itself: the code pages it drops are faulted back in
        // from the file by the very next instructions, and data stays intact.
        let table: Vec<u64> = (0..1000).collect();
        release_startup_code().expect("madvise on this process's own mappings");
        assert_eq!(table.iter().sum::<u64>(), 499_500);
        assert!(droppable(&std::fs::read_to_string("/proc/self/smaps").unwrap()).len() > 1);
    }
}
