//! Helpers for the end-to-end suite: locate (and build once) the nodetune binary, and decide
//! whether a test whose peer is missing fails or, when the contributor said so, is skipped
//! ([`require`]); fixtures shared by several tests ([`FaultFs`]).

pub mod beside;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Path of the nodetune binary, built once per test process with the same profile as the
/// tests (so `cargo test` alone is enough).
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("nodetune", "nodetune")).clone()
}

/// Path of the surge lab's binary (tests/lab), built once per test process.
pub fn lab_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("nodetune-lab", "nodetune-lab"))
        .clone()
}

fn build(package: &str, name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    let release = !cfg!(debug_assertions);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--quiet", "-p", package, "--bin", name])
        .current_dir(&root);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build of {name} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target
        .join(if release { "release" } else { "debug" })
        .join(name)
}

/// True when running under CI (`CI=true`), where privileged tests must not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// The variable that lists the test peers a contributor chose to go without.
pub const SKIP_VAR: &str = "NODETUNE_TEST_SKIP";

/// The words of a peer's description (`"FUSE (root, /dev/fuse)"` → `fuse`, `root`, `dev`,
/// `fuse`): a name in [`SKIP_VAR`] skips the test when it is one of them.
fn peer_words(what: &str) -> Vec<String> {
    what.split(|c: char| c.is_whitespace() || ",;:()[]/".contains(c))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The words worth suggesting for [`SKIP_VAR`]: those outside parentheses (which explain),
/// less the prose around the peers' names.
fn peer_names(what: &str) -> Vec<String> {
    const PROSE: &[&str] = &["a", "and", "dev", "for", "of", "or", "the", "with"];
    let mut outside = String::new();
    let mut depth = 0usize;
    for c in what.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    let mut names: Vec<String> = Vec::new();
    for w in peer_words(&outside) {
        if !PROSE.contains(&w.as_str()) && !names.contains(&w) {
            names.push(w);
        }
    }
    names
}

/// Whether `skip` (the value of [`SKIP_VAR`], comma-separated names) names the peer `what`.
fn skip_names(skip: &str, what: &str) -> bool {
    let words = peer_words(what);
    skip.split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .any(|n| !n.is_empty() && words.contains(&n))
}

/// What [`require`] does about a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Peer {
    /// Here: the test goes on.
    Present,
    /// Missing, and the contributor said to go without it: the test returns early, saying so.
    Skipped(String),
    /// Missing: the test fails with this message.
    Missing(String),
}

/// The decision behind [`require`], given whether CI is on and the value of [`SKIP_VAR`].
pub fn peer(ok: bool, what: &str, ci: bool, skip: &str) -> Peer {
    if ok {
        return Peer::Present;
    }
    if ci {
        return Peer::Missing(format!(
            "CI=true and this test needs {what}, which is not here: tests/install-peers must \
             install it ({SKIP_VAR} is ignored under CI)"
        ));
    }
    if skip_names(skip, what) {
        return Peer::Skipped(format!(
            "skipped: this test needs {what}, which is not here, and {SKIP_VAR}={skip} names it"
        ));
    }
    Peer::Missing(format!(
        "this test needs {what}, which is not here. `tests/install-peers` (as root, Debian) \
         installs every peer the suite uses; to leave out the tests that need this one, set \
         {SKIP_VAR} to one of: {}",
        peer_names(what).join(", ")
    ))
}

/// Returns `true` when the test can go on: `ok` says whether its peer (root, a tool, a
/// package, a kernel feature) is here. A missing peer fails the test with what to install
/// (`tests/install-peers` installs every peer), so that a test that did not run is never
/// reported as passed. A contributor who goes without a peer on purpose names it in
/// `NODETUNE_TEST_SKIP` (comma-separated; any word of `what`, e.g. `root`, `wrk`,
/// `prometheus-alertmanager`): the test then prints why and returns early. Under `CI=true`
/// the variable is ignored: every peer must be there.
pub fn require(ok: bool, what: &str) -> bool {
    let skip = std::env::var(SKIP_VAR).unwrap_or_default();
    match peer(ok, what, in_ci(), &skip) {
        Peer::Present => true,
        Peer::Skipped(why) => {
            eprintln!("{why}");
            false
        }
        Peer::Missing(why) => panic!("{why}"),
    }
}

/// [`require`] for a program on PATH, named with the package that provides it.
pub fn require_tool(tool: &str, package: &str) -> bool {
    require(have_tool(tool), &format!("{tool} (from {package})"))
}

/// [`require`] for running as root (namespaces, mounts, real kernel writes).
pub fn require_root() -> bool {
    require(
        is_root(),
        "root (the test makes namespaces or mounts, or writes kernel state)",
    )
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// True when `tool` is on PATH.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// The result of running nodetune.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs nodetune with `args` and the given extra environment.
pub fn nodetune(args: &[&str], env: &[(&str, &std::path::Path)]) -> Run {
    run_cmd(
        Command::new(bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v))),
    )
}

/// Runs a prepared command and captures its output.
pub fn run_cmd(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("start command");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A stand-in host in a temporary directory: a sysctl tree with kernel-like defaults, procfs
/// and sysfs files for host facts, a root for /etc, and a state directory.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
}

/// Default values written by [`FakeHost::new`] (as a 6.x kernel prints them).
pub const FAKE_SYSCTLS: &[(&str, &str)] = &[
    ("fs/file-max", "9223372036854775807"),
    ("fs/nr_open", "1048576"),
    ("kernel/osrelease", "6.1.0-18-amd64"),
    ("net/core/default_qdisc", "pfifo_fast"),
    ("net/core/netdev_max_backlog", "1000"),
    ("net/core/rmem_max", "212992"),
    ("net/core/wmem_max", "212992"),
    ("net/core/somaxconn", "4096"),
    ("net/ipv4/ip_local_port_range", "32768\t60999"),
    ("net/ipv4/tcp_available_congestion_control", "reno cubic"),
    ("net/ipv4/tcp_congestion_control", "cubic"),
    ("net/ipv4/tcp_fastopen", "1"),
    ("net/ipv4/tcp_max_syn_backlog", "512"),
    ("net/ipv4/tcp_notsent_lowat", "4294967295"),
    ("net/ipv4/tcp_rmem", "4096\t131072\t6291456"),
    ("net/ipv4/tcp_slow_start_after_idle", "1"),
    ("net/ipv4/tcp_syncookies", "1"),
    ("net/ipv4/tcp_tw_reuse", "2"),
    ("net/ipv4/tcp_wmem", "4096\t16384\t4194304"),
];

impl FakeHost {
    pub fn new() -> FakeHost {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = FakeHost { dir };
        for (k, v) in FAKE_SYSCTLS {
            h.write(&format!("sys/{k}"), &format!("{v}\n"));
        }
        h.write(
            "proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree:         8000000 kB\n",
        );
        h.write(
            "proc/cpuinfo",
            "processor\t: 0\nflags\t\t: fpu sse2\n\nprocessor\t: 1\nflags\t\t: fpu sse2\n",
        );
        h.write("sysfs/devices/system/cpu/online", "0-3\n");
        std::fs::create_dir_all(h.path("root/etc")).expect("mkdir");
        h
    }

    /// Loads nf_conntrack in the fake kernel (creates its keys and module parameter).
    pub fn with_conntrack(self) -> FakeHost {
        self.write("sys/net/netfilter/nf_conntrack_max", "262144\n");
        self.write("sysfs/module/nf_conntrack/parameters/hashsize", "65536\n");
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// A sysctl value as the kernel file holds it.
    pub fn sysctl(&self, key: &str) -> String {
        self.read(&format!("sys/{}", key.replace('.', "/")))
    }

    /// Every file under the tree with its content, to prove nothing changed.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readdir").flatten().collect();
            entries.sort_by_key(|e| e.path());
            for e in entries {
                let p = e.path();
                let ft = e.file_type().expect("file type");
                if ft.is_dir() {
                    walk(&p, out);
                } else if ft.is_file() {
                    out.push((p.clone(), std::fs::read(&p).expect("read")));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }

    /// Runs nodetune against this host (roots passed through the environment).
    pub fn run(&self, args: &[&str]) -> Run {
        nodetune(
            args,
            &[
                ("NODETUNE_SYSCTL_ROOT", &self.path("sys")),
                ("NODETUNE_PROCFS", &self.path("proc")),
                ("NODETUNE_SYSFS", &self.path("sysfs")),
                ("NODETUNE_ROOT", &self.path("root")),
                ("NODETUNE_STATE_DIR", &self.path("state")),
            ],
        )
    }
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

/// A network namespace created for one test with `ip netns add`, deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> TestNetns {
        let name = format!("nt-{tag}-{}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        TestNetns { name }
    }

    /// Reads a sysctl inside the namespace with the system's own tool.
    pub fn sysctl(&self, key: &str) -> String {
        let r =
            run_cmd(Command::new("ip").args(["netns", "exec", &self.name, "sysctl", "-n", key]));
        assert_eq!(r.code, 0, "sysctl -n {key}: {}", r.stderr);
        r.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn set(&self, key: &str, value: &str) {
        let r = run_cmd(Command::new("ip").args([
            "netns",
            "exec",
            &self.name,
            "sysctl",
            "-w",
            &format!("{key}={value}"),
        ]));
        assert_eq!(r.code, 0, "sysctl -w {key}: {}", r.stderr);
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Polls `cond` every 10 ms until it holds or `secs` pass; returns whether it held.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cond()
}

/// A running `nodetune run`, its stderr captured to a file; killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
    pub state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `prefix… nodetune run ARGS` with the state directory in a temporary dir.
    pub fn start(prefix: &[&str], args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_bin(&bin(), prefix, args, env)
    }

    /// Starts `PROGRAM run ARGS` (another build of nodetune, e.g. with the gpu feature).
    pub fn start_program(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_bin(program, &[], args, env)
    }

    /// As [`Daemon::start`], with another nodetune binary (the installed package's).
    pub fn start_bin(
        bin: &std::path::Path,
        prefix: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr.log");
        // A test may pass its own --state-dir=DIR (to share one with the CLI).
        let own_state = args.iter().find_map(|a| a.strip_prefix("--state-dir="));
        let state = own_state.map_or_else(|| dir.path().join("state"), PathBuf::from);
        let mut cmd = if prefix.is_empty() {
            Command::new(bin)
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(bin);
            c
        };
        cmd.arg("run").args(args);
        if own_state.is_none() {
            cmd.arg(format!("--state-dir={}", state.display()));
        }
        cmd.envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = cmd.spawn().expect("start nodetune run");
        Daemon {
            child,
            log,
            state,
            _dir: dir,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's status document, once written.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.state.join("daemon.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// One field of a managed key in the status document (`state`, `want`, `drift_total`…).
    pub fn key_field(&self, key: &str, field: &str) -> Option<serde_json::Value> {
        let st = self.status()?;
        let k = st["keys"]
            .as_array()?
            .iter()
            .find(|k| k["key"] == key)?
            .clone();
        Some(k[field].clone())
    }

    /// The first address the endpoint listens on (from the status file).
    pub fn addr(&self) -> String {
        assert!(
            wait_until(20, || self.status().is_some()),
            "daemon never wrote its status:\n{}",
            self.stderr()
        );
        self.status().unwrap()["listen"][0]
            .as_str()
            .expect("listen address")
            .to_string()
    }

    /// Sends a signal by number.
    pub fn signal(&self, sig: i32) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// SIGTERM, then waits for a clean exit and returns the exit code.
    pub fn stop(mut self) -> (i32, String) {
        self.signal(15);
        let code = self
            .child
            .wait()
            .map(|s| s.code().unwrap_or(-1))
            .unwrap_or(-1);
        (code, self.stderr())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET; returns (status, headers, body).
pub fn http_get(addr: &str, path: &str, headers: &[&str]) -> Option<(u16, String, Vec<u8>)> {
    http_request(addr, "GET", path, headers, b"")
}

/// An HTTP/1.1 request with any method and body; returns (status, headers, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Option<(u16, String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some((status, head, body))
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..eol])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        if size == 0 {
            return Some(out);
        }
        let start = eol + 2;
        out.extend_from_slice(rest.get(start..start + size)?);
        rest = rest.get(start + size + 2..)?;
    }
}

/// A real Prometheus server on a free loopback port, killed on drop.
pub struct Prometheus {
    child: std::process::Child,
    pub addr: String,
    /// Command prefix it runs under (`ip netns exec NS`); queries go through it too.
    prefix: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` with the given configuration (YAML text).
    pub fn start(config: &str) -> Prometheus {
        Prometheus::start_in(&[], config)
    }

    /// Starts `prefix… prometheus` (e.g. `ip netns exec NS`, inside a network namespace).
    pub fn start_in(prefix: &[&str], config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("prometheus");
                c
            }
            None => Command::new("prometheus"),
        };
        let child = cmd
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            addr: format!("127.0.0.1:{port}"),
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
        }
    }

    /// The result vector of an instant query (empty when Prometheus is not up yet, or the
    /// query failed), asked with promtool so that it works through the prefix too.
    pub fn instant(&self, q: &str) -> Vec<serde_json::Value> {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("promtool");
                c
            }
            None => Command::new("promtool"),
        };
        cmd.args(["query", "instant", "-o", "json"])
            .arg(format!("http://{}", self.addr))
            .arg(q);
        let r = run_cmd(&mut cmd);
        if r.code != 0 {
            return Vec::new();
        }
        serde_json::from_str::<Vec<serde_json::Value>>(&r.stdout).unwrap_or_default()
    }

    /// The value of the first sample an instant query returns, if any.
    pub fn value(&self, q: &str) -> Option<f64> {
        self.instant(q)
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
    }

    /// The raw JSON answer to an instant query (empty if Prometheus is not up yet).
    pub fn query(&self, q: &str) -> String {
        http_get(&self.addr, &format!("/api/v1/query?query={q}"), &[])
            .map(|r| String::from_utf8_lossy(&r.2).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakeHost {
    /// The environment that points nodetune at this host (sysctl tree and root), plus `extra`.
    pub fn env<'a>(&self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
        let mut env = vec![
            (
                "NODETUNE_SYSCTL_ROOT",
                self.path("sys").display().to_string(),
            ),
            ("NODETUNE_ROOT", self.path("root").display().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    }

    /// Starts `nodetune run ARGS` against this host.
    pub fn daemon(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Daemon {
        let env = self.env(extra_env);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Daemon::start(&[], args, &env)
    }
}

extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}

const CLONE_NEWNET: i32 = 0x4000_0000;

/// Runs `f` on a thread that has joined the named namespace: sockets it creates belong to
/// the namespace, also when other threads use them later.
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{name}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open the namespace");
        // SAFETY: setns on a descriptor we own; it only changes this thread's namespace.
        let rc = unsafe { setns(ns.as_raw_fd(), CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

impl TestNetns {
    /// [`in_netns`] for this namespace.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.name, f)
    }

    /// A GET from inside the namespace.
    pub fn http_get(&self, addr: &str, path: &str) -> Option<(u16, String, Vec<u8>)> {
        let (addr, path) = (addr.to_string(), path.to_string());
        self.enter(move || http_get(&addr, &path, &[]))
    }

    /// A free TCP port on the namespace's loopback.
    pub fn free_port(&self) -> u16 {
        self.enter(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        })
    }
}

/// A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port, inside a
/// test namespace or not; killed on drop.
pub struct Alertmanager {
    child: std::process::Child,
    pub addr: String,
    ns: Option<String>,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts it and waits until it is ready.
    pub fn start(ns: Option<&TestNetns>) -> Alertmanager {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("am.yml"),
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .expect("write alertmanager.yml");
        let port = match ns {
            Some(ns) => ns.free_port(),
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port(),
        };
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, "prometheus-alertmanager"]);
                c
            }
            None => Command::new("prometheus-alertmanager"),
        };
        let child = cmd
            .arg(format!(
                "--config.file={}",
                dir.path().join("am.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager");
        let am = Alertmanager {
            child,
            addr: format!("127.0.0.1:{port}"),
            ns: ns.map(|n| n.name.clone()),
            _dir: dir,
        };
        assert!(
            wait_until(30, || am.get("/-/ready").is_some_and(|r| r.0 == 200)),
            "Alertmanager never became ready"
        );
        am
    }

    fn get(&self, path: &str) -> Option<(u16, String, Vec<u8>)> {
        match &self.ns {
            Some(name) => {
                let (addr, path) = (self.addr.clone(), path.to_string());
                in_netns(name, move || http_get(&addr, &path, &[]))
            }
            None => http_get(&self.addr, path, &[]),
        }
    }

    /// The alerts it holds now (active ones; resolved alerts drop out).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.get("/api/v2/alerts")
            .and_then(|(_, _, b)| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
/// A private mount namespace for one test (`unshare --mount --propagation private`), held
/// open by a `sleep` process; mounts made in it (with [`MountNs::command`]) are invisible to
/// the host and to other tests, and go away with the namespace when its last process exits.
/// The holder is killed on drop; processes started inside have their own guards.
pub struct MountNs {
    holder: std::process::Child,
}

impl MountNs {
    /// True when a namespace can be made here: root with unshare and nsenter.
    pub fn available() -> bool {
        is_root() && have_tool("unshare") && have_tool("nsenter")
    }

    pub fn new() -> MountNs {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "3600"])
            .spawn()
            .expect("unshare");
        let ns = MountNs { holder };
        // unshare execs sleep once the namespace exists: its mount namespace then differs.
        let own = std::fs::read_link("/proc/self/ns/mnt").expect("own mount namespace");
        let pid = ns.pid();
        assert!(
            wait_until(10, || std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
                .is_ok_and(|n| n != own)),
            "unshare did not make a mount namespace"
        );
        ns
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// The words that run a program inside: `nsenter -t PID -m` (it execs, so the program
    /// keeps the pid it is started with).
    pub fn prefix(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid().to_string(),
            "-m".into(),
        ]
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid().to_string(), "-m", program]);
        c
    }

    /// Runs a command inside and asserts it succeeded.
    pub fn run(&self, program: &str, args: &[&str]) {
        let r = run_cmd(self.command(program).args(args));
        assert_eq!(r.code, 0, "{program} {args:?}: {}", r.stderr);
    }
}

impl Default for MountNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Threads of a process (`Threads:` of /proc/PID/status).
pub fn threads(pid: u32) -> Option<usize> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The FUSE filesystem of tests/fault-fs, mounted on a temporary directory; unmounted (and
/// its process ended) on drop, also when the test panics.
pub struct FaultFs {
    child: std::process::Child,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl FaultFs {
    const PYTHON: &'static str = "/usr/bin/python3";

    /// True when FUSE can be mounted here: root, /dev/fuse, Debian's python3-fusepy.
    pub fn available() -> bool {
        is_root()
            && Path::new("/dev/fuse").exists()
            && Command::new(Self::PYTHON)
                .args(["-c", "import fusepy"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Mounts files given as (name, content, fault); see faultfs.py for the faults.
    pub fn mount(files: &[(&str, &str, &str)]) -> FaultFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let spec: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(n, c, f)| (n.to_string(), serde_json::json!({"content": c, "fault": f})))
            .collect();
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, serde_json::Value::Object(spec).to_string()).expect("spec");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fault-fs/faultfs.py");
        let mut child = Command::new(Self::PYTHON)
            .arg(script)
            .arg(&mnt)
            .arg(&spec_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start faultfs.py");
        let out = child.stdout.take().expect("stdout");
        let fs = FaultFs {
            child,
            mnt,
            _dir: dir,
        };
        // It prints "ready" once mounted (EOF if it died first: then the assert fails and
        // Drop cleans up).
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "faultfs.py did not mount");
        fs
    }

    /// The mount point: the files are directly under it.
    pub fn dir(&self) -> &Path {
        &self.mnt
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        // Lazy unmount: succeeds even if a reader still holds a file open; the filesystem
        // process then exits by itself.
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        if !wait_until(5, || matches!(self.child.try_wait(), Ok(Some(_)))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::{peer, Peer};

    const AM: &str = "prometheus-alertmanager (Debian package prometheus-alertmanager)";

    #[test]
    fn a_missing_peer_fails_and_names_the_fix() {
        let Peer::Missing(why) = peer(false, AM, false, "") else {
            panic!("a missing peer must fail the test")
        };
        assert!(why.contains("tests/install-peers"), "{why}");
        assert!(
            why.ends_with("NODETUNE_TEST_SKIP to one of: prometheus-alertmanager"),
            "{why}"
        );
        let Peer::Missing(why) = peer(false, "root with ip, sysctl and /dev/fuse", false, "")
        else {
            panic!("a missing peer must fail the test")
        };
        assert!(why.ends_with("one of: root, ip, sysctl, fuse"), "{why}");
        let Peer::Missing(why) = peer(false, "FUSE (root, /dev/fuse, python3-fusepy)", false, "")
        else {
            panic!("a missing peer must fail the test")
        };
        assert!(why.ends_with("one of: fuse"), "{why}");
        // Names that are not words of the description do not skip it.
        for skip in ["alertmanager", "prometheus", "wrk,root", " , "] {
            assert!(
                matches!(peer(false, AM, false, skip), Peer::Missing(_)),
                "{skip}"
            );
        }
    }

    #[test]
    fn a_named_peer_is_skipped_outside_ci_only() {
        for skip in [
            "prometheus-alertmanager",
            "wrk, Prometheus-Alertmanager",
            "debian",
        ] {
            assert!(
                matches!(peer(false, AM, false, skip), Peer::Skipped(_)),
                "{skip}"
            );
        }
        let Peer::Missing(why) = peer(false, AM, true, "prometheus-alertmanager") else {
            panic!("CI ignores NODETUNE_TEST_SKIP")
        };
        assert!(why.starts_with("CI=true"), "{why}");
        assert_eq!(peer(true, AM, true, ""), Peer::Present);
        assert_eq!(
            peer(true, AM, false, "prometheus-alertmanager"),
            Peer::Present
        );
    }
}
