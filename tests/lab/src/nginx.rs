//! nginx from Debian as the API server: one worker (a deliberately small worker count), a
//! `listen … backlog=N`, `/` answering "ok" and `/big` a larger file. Runs in the server
//! namespace under the file-descriptor limit a scenario gives it, with its files in a
//! temporary directory; killed on drop.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{self, in_ns, SERVER_IP};

/// How nginx is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The backlog nginx passes to listen().
    pub backlog: u32,
    pub worker_connections: u32,
    /// RLIMIT_NOFILE (soft, hard) nginx starts with; None: the lab's own.
    pub nofile: Option<(u64, u64)>,
    /// Size of /big in bytes (0: no such file).
    pub big_bytes: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            backlog: 65535,
            worker_connections: 16384,
            nofile: None,
            big_bytes: 0,
        }
    }
}

pub struct Nginx {
    proc: Proc,
    pub dir: PathBuf,
}

/// How nginx runs: a child of the lab, or a systemd unit of the lab's making.
enum Proc {
    Child(Child),
    Unit { name: String, pid: u32 },
}

/// Where the lab puts its transient units (runtime only, gone at reboot).
const UNIT_DIR: &str = "/run/systemd/system";

/// True when systemd is the init system (its runtime unit directory exists).
pub fn systemd_running() -> bool {
    Path::new(UNIT_DIR).is_dir()
}

fn systemctl(args: &[&str]) -> io::Result<String> {
    let mut all = vec!["systemctl"];
    all.extend_from_slice(args);
    netns::sh(&all)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

/// True when Debian's nginx is installed.
pub fn available() -> bool {
    std::path::Path::new("/usr/sbin/nginx").exists()
}

fn config(s: &Setup, dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "# nodetune lab: one worker, as small an API server as it gets.
worker_processes 1;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {wc}; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    sendfile on;
    server {{
        listen {SERVER_IP}:80 backlog={backlog};
        location = / {{ return 200 \"ok\\n\"; }}
        location = /big {{ root {d}/www; }}
    }}
}}
",
        wc = s.worker_connections,
        backlog = s.backlog,
    )
}

impl Nginx {
    /// Starts nginx in namespace `ns` and waits until it accepts connections.
    pub fn start(ns: &str, setup: &Setup, dir: PathBuf) -> io::Result<Nginx> {
        std::fs::create_dir_all(dir.join("www"))?;
        if setup.big_bytes > 0 {
            std::fs::write(dir.join("www/big"), vec![b'x'; setup.big_bytes])?;
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(setup, &dir))?;
        let nofile = setup.nofile;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "/usr/sbin/nginx", "-p"])
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("stderr.log"))?));
        // SAFETY: only async-signal-safe calls (setrlimit, prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some((soft, hard)) = nofile {
                    let lim = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        netns::register_pid(child.id());
        let n = Nginx {
            proc: Proc::Child(child),
            dir,
        };
        n.wait_ready(ns)
    }

    /// Starts nginx as systemd unit `unit` (written to /run/systemd/system, with `dropin`
    /// copied into its .d directory when given), so that systemd sets its limits. The unit
    /// and its drop-in are removed on drop.
    pub fn start_unit(
        ns: &str,
        setup: &Setup,
        dir: PathBuf,
        unit: &str,
        dropin: Option<&Path>,
    ) -> io::Result<Nginx> {
        std::fs::create_dir_all(dir.join("www"))?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(setup, &dir))?;
        let ip = which("ip").ok_or_else(|| io::Error::other("ip is not on PATH"))?;
        let unit_file = Path::new(UNIT_DIR).join(unit);
        std::fs::write(
            &unit_file,
            format!(
                "# nodetune lab, scenario 4: removed when the lab ends.\n[Unit]\nDescription=nodetune lab nginx\n[Service]\nExecStart={} netns exec {ns} /usr/sbin/nginx -p {} -c {}\n",
                ip.display(),
                dir.display(),
                conf.display()
            ),
        )?;
        let dropin_dir = Path::new(UNIT_DIR).join(format!("{unit}.d"));
        let _ = std::fs::remove_dir_all(&dropin_dir);
        if let Some(d) = dropin {
            std::fs::create_dir_all(&dropin_dir)?;
            let name = d
                .file_name()
                .ok_or_else(|| io::Error::other("drop-in has no name"))?;
            std::fs::copy(d, dropin_dir.join(name))?;
        }
        systemctl(&["daemon-reload"])?;
        let started = systemctl(&["start", unit]);
        let pid = systemctl(&["show", "-p", "MainPID", "--value", unit])
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let n = Nginx {
            proc: Proc::Unit {
                name: unit.to_string(),
                pid,
            },
            dir,
        };
        started?;
        n.wait_ready(ns)
    }

    fn pid(&self) -> u32 {
        match &self.proc {
            Proc::Child(c) => c.id(),
            Proc::Unit { pid, .. } => *pid,
        }
    }

    fn exited(&mut self) -> Option<String> {
        match &mut self.proc {
            Proc::Child(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
            Proc::Unit { pid, .. } => (!Path::new(&format!("/proc/{pid}")).exists())
                .then(|| "the unit's main process is gone".to_string()),
        }
    }

    fn wait_ready(mut self, ns: &str) -> io::Result<Nginx> {
        let n = &mut self;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Probe from inside the server namespace, so the client's ports stay untouched.
            let up = in_ns(ns, || {
                std::net::TcpStream::connect_timeout(
                    &(SERVER_IP.parse::<std::net::Ipv4Addr>().expect("ip"), 80).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            })?;
            if up && !n.workers().is_empty() {
                return Ok(self);
            }
            if let Some(st) = n.exited() {
                return Err(io::Error::other(format!(
                    "nginx exited ({st}): {}",
                    n.errors()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "nginx did not start listening within 10 s: {}",
                    n.errors()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master process.
    pub fn master(&self) -> i32 {
        self.pid() as i32
    }

    /// The master's children (the worker).
    pub fn workers(&self) -> Vec<i32> {
        let pid = self.pid();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    fn signal_all(&self, sig: i32) {
        for pid in self.workers().into_iter().chain([self.master()]) {
            // SAFETY: kill() has no memory preconditions.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Stops the worker and master (SIGSTOP): a stalled server, as in a long GC pause or a
    /// blocked event loop; the kernel keeps completing handshakes into the accept queue.
    pub fn pause(&self) {
        self.signal_all(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal_all(libc::SIGCONT);
    }

    /// RLIMIT_NOFILE of the worker as /proc shows it: (soft, hard).
    pub fn worker_nofile(&self) -> Option<(String, String)> {
        let pid = *self.workers().first()?;
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
    }

    /// nginx's error log (and stderr).
    pub fn errors(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default());
        s
    }

    /// Lines of the error log that mention "Too many open files".
    pub fn emfile_lines(&self) -> usize {
        self.errors()
            .lines()
            .filter(|l| l.contains("Too many open files"))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.workers();
        self.resume();
        match &mut self.proc {
            Proc::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
                netns::forget_pid(c.id());
            }
            Proc::Unit { name, .. } => {
                let _ = systemctl(&["stop", name]);
                let _ = std::fs::remove_file(Path::new(UNIT_DIR).join(&*name));
                let _ = std::fs::remove_dir_all(Path::new(UNIT_DIR).join(format!("{name}.d")));
                let _ = systemctl(&["daemon-reload"]);
            }
        }
        for w in workers {
            // SAFETY: as above.
            unsafe { libc::kill(w, libc::SIGKILL) };
        }
    }
}
