//! Throwaway network namespaces: a client and a server joined by a veth pair, with addresses
//! from the documentation ranges. Every namespace and every process the lab starts is recorded
//! here, so that a Drop guard, a signal or the next run can remove them.

use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Mutex;

/// The client's address (TEST-NET-1, RFC 5737).
pub const CLIENT_IP: &str = "192.0.2.1";
/// The server's address.
pub const SERVER_IP: &str = "192.0.2.2";
/// Source addresses of the raw SYN burst (TEST-NET-2). The server routes them to the client,
/// which owns none of them: replies are dropped there, so the connections stay half-open.
pub const SPOOF_NET: &str = "198.51.100.0/24";

/// Prefix of every namespace a lab process creates: `ntlab-PID-`.
pub fn prefix() -> String {
    format!("ntlab-{}-", std::process::id())
}

struct Registry {
    namespaces: Vec<String>,
    pids: Vec<u32>,
    dirs: Vec<std::path::PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    namespaces: Vec::new(),
    pids: Vec::new(),
    dirs: Vec::new(),
});

/// The lab's scratch directory for this process: `TMPDIR/ntlab-PID` (removed by
/// [`cleanup_all`], or by [`sweep_stale`] once the process is gone).
pub fn work_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ntlab-{}", std::process::id()))
}

/// Records a scratch directory to remove on a signal.
pub fn register_dir(dir: &std::path::Path) {
    registry().dirs.push(dir.to_path_buf());
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records a process the lab started (killed by [`cleanup_all`]).
pub fn register_pid(pid: u32) {
    registry().pids.push(pid);
}

/// Forgets a process that has exited.
pub fn forget_pid(pid: u32) {
    registry().pids.retain(|p| *p != pid);
}

/// Runs a command; its stdout, or an error with its stderr.
pub fn sh(args: &[&str]) -> io::Result<String> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace (`ip netns exec`).
pub fn sh_in(ns: &str, args: &[&str]) -> io::Result<String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    sh(&all)
}

/// Kills every process inside a namespace, then deletes it.
fn delete(ns: &str) {
    if let Ok(pids) = sh(&["ip", "netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill() has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "delete", ns])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Kills every registered process and deletes every registered namespace (signal path).
pub fn cleanup_all() {
    let (pids, namespaces, dirs) = {
        let mut r = registry();
        (
            std::mem::take(&mut r.pids),
            std::mem::take(&mut r.namespaces),
            std::mem::take(&mut r.dirs),
        )
    };
    for pid in pids {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    for ns in namespaces {
        delete(&ns);
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Deletes the namespaces of lab runs that died without cleaning up (killed with SIGKILL, or a
/// test binary interrupted before its Drop guards ran): `ntlab-PID-*` whose PID is gone.
pub fn sweep_stale() {
    let Ok(list) = sh(&["ip", "netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("ntlab-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete(name);
        }
    }
    // Scratch directories of lab processes that are gone.
    for e in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ntlab-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it starts) and
/// handles them on a thread of their own: kill what the lab started, delete its namespaces,
/// exit 130. Call first thing in main, before any other thread exists.
pub fn cleanup_on_signals() {
    // SAFETY: plain libc signal-set calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let set_copy = set;
        std::thread::spawn(move || {
            let mut sig = 0;
            libc::sigwait(&set_copy, &mut sig);
            eprintln!("nodetune-lab: signal {sig}: removing the lab's namespaces");
            cleanup_all();
            std::process::exit(130);
        });
    }
}

/// A client and a server namespace joined by veth, deleted (with everything running in them)
/// on drop.
pub struct Pair {
    pub client: String,
    pub server: String,
}

impl Pair {
    /// Creates `ntlab-PID-TAG-c` and `-s`: client 192.0.2.1/24, server 192.0.2.2/24, loopback
    /// up in both, and on the server a route for the SYN burst's source range via the client.
    pub fn new(tag: &str) -> io::Result<Pair> {
        let base = format!("{}{tag}", prefix());
        let pair = Pair {
            client: format!("{base}-c"),
            server: format!("{base}-s"),
        };
        for ns in [&pair.client, &pair.server] {
            // A leftover of the same name (a reused PID) goes first.
            delete(ns);
            sh(&["ip", "netns", "add", ns])?;
            registry().namespaces.push(ns.clone());
        }
        // The veth ends are created inside the namespaces: the host never sees them.
        sh(&[
            "ip",
            "link",
            "add",
            "veth0",
            "netns",
            &pair.client,
            "type",
            "veth",
            "peer",
            "name",
            "veth0",
            "netns",
            &pair.server,
        ])?;
        for (ns, ip) in [(&pair.client, CLIENT_IP), (&pair.server, SERVER_IP)] {
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "veth0",
            ])?;
            sh(&["ip", "-n", ns, "link", "set", "veth0", "up"])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        sh(&[
            "ip",
            "-n",
            &pair.server,
            "route",
            "add",
            SPOOF_NET,
            "via",
            CLIENT_IP,
        ])?;
        Ok(pair)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            delete(ns);
            registry().namespaces.retain(|n| n != ns);
        }
    }
}

/// Runs `f` on a new thread that has entered namespace `ns` (setns changes only the calling
/// thread, so the caller stays where it is). Sockets `f` creates belong to `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || -> io::Result<T> {
        let file = std::fs::File::open(&path)?;
        // SAFETY: setns on a namespace file descriptor we own.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("lab thread panicked"))?
}

/// Reads a sysctl inside a namespace.
pub fn sysctl(ns: &str, key: &str) -> io::Result<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    in_ns(ns, move || std::fs::read_to_string(path))?
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Writes a sysctl inside a namespace (per-namespace keys only).
pub fn set_sysctl(ns: &str, key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    in_ns(ns, move || std::fs::write(path, value))?
}
