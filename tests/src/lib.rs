//! Helpers for the end-to-end suite: locate (and build once) the nodetune binary, and decide
//! whether a privileged test may run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of the nodetune binary, built once per test process with the same profile as the
/// tests (so `cargo test` alone is enough).
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .to_path_buf();
        let release = !cfg!(debug_assertions);
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "nodetune", "--bin", "nodetune"])
            .current_dir(&root);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of nodetune failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target
            .join(if release { "release" } else { "debug" })
            .join("nodetune")
    })
    .clone()
}

/// True when running under CI (`CI=true`), where privileged tests must not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Returns `true` when the test can go on. Without `ok` (root, a tool), outside CI the test
/// prints why and skips; in CI it panics, because privileged tests must never skip there.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("CI=true but {what} is not available: install it in .ci/run");
    }
    eprintln!("skipping: {what} is not available (this test runs in CI)");
    false
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
        Daemon::spawn(prefix, &bin(), args, env)
    }

    /// Starts `PROGRAM run ARGS` (another build of nodetune, e.g. with the gpu feature).
    pub fn start_program(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(&[], program, args, env)
    }

    fn spawn(
        prefix: &[&str],
        program: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr.log");
        // A test may pass its own --state-dir=DIR (to share one with the CLI).
        let own_state = args.iter().find_map(|a| a.strip_prefix("--state-dir="));
        let state = own_state.map_or_else(|| dir.path().join("state"), PathBuf::from);
        let mut cmd = if prefix.is_empty() {
            Command::new(program)
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(program);
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
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` with the given configuration (YAML text).
    pub fn start(config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("prometheus")
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
            _dir: dir,
        }
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
