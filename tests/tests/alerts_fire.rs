//! Every alert fires from its real cause, end to end through the daemon, and resolves when the
//! cause stops. For each: `nodetune_alert{alertname=…, state="firing"}` on /metrics, a log line
//! that names the knob, an Alertmanager (a real one) holding the alert with the knob in its
//! annotations, and after the cause stops the resolution in all three.
//!
//! Where the kernel can produce the condition inside a throwaway network namespace, it does:
//! a listener that never accepts (ListenQueueOverflow, both halves), SYNs to a listener whose
//! SYN queue is full (SynBacklogPressure), a narrow port range with many connections
//! (EphemeralPortPressure), a key changed behind the daemon's back (SysctlDrift) and another
//! writer (SysctlFight). The rest only the host can produce (socket memory, conntrack, file
//! handles, softnet, NIC errors, thermal throttling): fake roots written in the kernel's own
//! formats.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nodetune_e2e::{
    have_tool, is_root, require, run_cmd, wait_until, Alertmanager, Daemon, FakeHost, TestNetns,
};

extern "C" {
    fn listen(fd: i32, backlog: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
}

const IPPROTO_TCP: i32 = 6;
const TCP_DEFER_ACCEPT: i32 = 9;
const SOL_SOCKET: i32 = 1;
const SO_LINGER: i32 = 13;

fn privileged() -> bool {
    require(
        is_root() && have_tool("ip") && have_tool("sysctl") && have_tool("prometheus-alertmanager"),
        "root with ip, sysctl and prometheus-alertmanager",
    )
}

/// Fast timings: evaluated every 200 ms, firing after 400 ms, resolved 1 s after clearing.
fn config(mode: &str, am: &Alertmanager) -> String {
    format!(
        "mode = \"{mode}\"\ndrift-interval = \"100ms\"\n[alerts]\ninterval = \"200ms\"\n\
         for-duration = \"400ms\"\nclear-duration = \"1s\"\nalertmanager-url = \"http://{}\"\n",
        am.addr
    )
}

/// Where a daemon serves and pushes, and how to look at both.
struct Watched {
    ns: Option<TestNetns>,
    am: Alertmanager,
    daemon: Daemon,
    metrics: String,
    _dir: tempfile::TempDir,
}

/// An alert instance: name and its distinguishing labels (besides alertname, severity, state).
type Instance<'a> = (&'a str, &'a [(&'a str, &'a str)]);

impl Watched {
    /// A daemon inside a fresh namespace, with an Alertmanager beside it.
    fn in_netns(tag: &str, mode: &str, profile: &str) -> Watched {
        let ns = TestNetns::new(tag);
        let r = run_cmd(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let am = Alertmanager::start(Some(&ns));
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("nodetune.toml");
        std::fs::write(&cfg, config(mode, &am)).expect("config");
        let port = ns.free_port();
        let daemon = Daemon::start(
            &["ip", "netns", "exec", &ns.name],
            &[
                &format!("--profile={profile}"),
                &format!("--config={}", cfg.display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            &[],
        );
        let w = Watched {
            ns: Some(ns),
            am,
            daemon,
            metrics: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        assert!(
            wait_until(30, || w.scrape().contains("nodetune_build_info")),
            "daemon never served:\n{}",
            w.daemon.stderr()
        );
        w
    }

    fn scrape(&self) -> String {
        let r = match &self.ns {
            Some(ns) => ns.http_get(&self.metrics, "/metrics"),
            None => nodetune_e2e::http_get(&self.metrics, "/metrics", &[]),
        };
        r.map(|(_, _, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The state of an alert instance on /metrics ("pending", "firing"), if present.
    fn state(&self, (name, labels): Instance) -> Option<String> {
        let body = self.scrape();
        body.lines()
            .filter_map(|l| l.strip_prefix("nodetune_alert{"))
            .filter_map(|l| l.split_once('}'))
            .map(|(inner, _)| parse_labels(inner))
            .find(|m| {
                m.get("alertname").map(String::as_str) == Some(name) && {
                    let mut rest = m.clone();
                    for k in ["alertname", "severity", "state"] {
                        rest.remove(k);
                    }
                    rest == labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }
            })
            .and_then(|m| m.get("state").cloned())
    }

    /// Alertmanager holds the instance, with the knob in its annotations.
    fn in_alertmanager(&self, (name, labels): Instance, knob: &str) -> bool {
        self.am.alerts().iter().any(|a| {
            a["labels"]["alertname"] == name
                && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                && a["annotations"]["knob"]
                    .as_str()
                    .is_some_and(|k| k.contains(knob))
        })
    }

    fn fires(&self, inst: Instance, knob: &str) {
        assert!(
            wait_until(30, || self.state(inst).as_deref() == Some("firing")),
            "{inst:?} never fired; /metrics alerts: {}\n{}",
            self.alert_lines(),
            self.daemon.stderr()
        );
        let log = self.daemon.stderr();
        let line = log
            .lines()
            .find(|l| l.contains(&format!("alert {} firing", inst.0)) && l.contains(knob));
        assert!(
            line.is_some(),
            "no log line names {knob} for {inst:?}:\n{log}"
        );
        assert!(
            wait_until(30, || self.in_alertmanager(inst, knob)),
            "Alertmanager never got {inst:?} naming {knob}: {:?}",
            self.am.alerts()
        );
    }

    fn resolves(&self, inst: Instance) {
        assert!(
            wait_until(30, || self.state(inst).is_none()),
            "{inst:?} never resolved: {}\n{}",
            self.alert_lines(),
            self.daemon.stderr()
        );
        assert!(
            self.daemon
                .stderr()
                .contains(&format!("alert {} resolved", inst.0)),
            "{}",
            self.daemon.stderr()
        );
        assert!(
            wait_until(30, || !self.am.alerts().iter().any(|a| {
                a["labels"]["alertname"] == inst.0
                    && inst.1.iter().all(|(k, v)| a["labels"][*k] == *v)
            })),
            "Alertmanager still holds {inst:?}: {:?}",
            self.am.alerts()
        );
    }

    fn alert_lines(&self) -> String {
        self.scrape()
            .lines()
            .filter(|l| l.starts_with("nodetune_alert{"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn parse_labels(inner: &str) -> BTreeMap<String, String> {
    inner
        .split("\",")
        .filter_map(|kv| kv.split_once("=\""))
        .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
        .collect()
}

/// A cause kept up by a thread inside the namespace until [`Cause::stop`].
struct Cause {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Cause {
    fn start(ns: &TestNetns, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Cause {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Spawned from a thread inside the namespace, the worker lives there too.
        let thread = ns.enter(move || std::thread::spawn(move || body(flag)));
        Cause {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("cause thread");
        }
    }
}

impl Drop for Cause {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn listener(port: u16, backlog: i32) -> TcpListener {
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    // SAFETY: listen() on our own socket, to set a small backlog.
    assert_eq!(unsafe { listen(l.as_raw_fd(), backlog) }, 0);
    l
}

fn set_int(fd: i32, level: i32, name: i32, v: i32) {
    // SAFETY: the value is a live i32 of the length given.
    let rc = unsafe {
        setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const std::ffi::c_void,
            4,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Closes with a reset: no TIME_WAIT left behind.
fn reset(s: TcpStream) {
    let linger: [i32; 2] = [1, 0];
    // SAFETY: struct linger is two ints.
    unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            linger.as_ptr() as *const std::ffi::c_void,
            8,
        )
    };
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn listen_queue_overflow_both_halves() {
    if !privileged() {
        return;
    }
    let w = Watched::in_netns("lq", "audit", "base");
    let ns = w.ns.as_ref().expect("namespace");
    // A listener with a backlog of 4 that never accepts: its queue fills (5 of 4), and every
    // further SYN overflows it.
    let port = ns.free_port();
    let cause = Cause::start(ns, move |stop| {
        let l = listener(port, 4);
        let mut queued = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(s) = TcpStream::connect_timeout(&addr(port), Duration::from_millis(50)) {
                queued.push(s);
            }
        }
        drop(queued);
        drop(l);
    });
    let knob = "net.core.somaxconn";
    let counters: Instance = ("ListenQueueOverflow", &[]);
    let fill: Instance = ("ListenQueueOverflow", &[("resource", "listen_queue")]);
    w.fires(counters, knob);
    w.fires(fill, knob);
    assert!(w
        .scrape()
        .contains("nodetune_saturation_ratio{resource=\"listen_queue\"} 1"));
    cause.stop();
    w.resolves(counters);
    w.resolves(fill);
}

#[test]
fn syn_backlog_pressure_with_and_without_syn_cookies() {
    if !privileged() {
        return;
    }
    let w = Watched::in_netns("syn", "audit", "base");
    let ns = w.ns.as_ref().expect("namespace");
    let port = ns.free_port();
    // A listener whose SYN queue (its backlog, 2) is held full by connections that never send
    // a byte (TCP_DEFER_ACCEPT keeps them there); it accepts everything else, so only the SYN
    // queue is short. Every new SYN then gets a cookie, or is dropped without cookies.
    let storm = move |stop: Arc<AtomicBool>| {
        let l = listener(port, 2);
        set_int(l.as_raw_fd(), IPPROTO_TCP, TCP_DEFER_ACCEPT, 60);
        l.set_nonblocking(true).expect("nonblocking");
        let silent: Vec<TcpStream> = (0..3)
            .filter_map(|_| TcpStream::connect_timeout(&addr(port), Duration::from_secs(1)).ok())
            .collect();
        while !stop.load(Ordering::SeqCst) {
            let _ = TcpStream::connect_timeout(&addr(port), Duration::from_millis(50));
            while let Ok((s, _)) = l.accept() {
                drop(s);
            }
        }
        drop(silent);
    };
    let inst: Instance = ("SynBacklogPressure", &[]);
    let knob = "net.ipv4.tcp_max_syn_backlog";
    let cause = Cause::start(ns, storm);
    w.fires(inst, knob);
    assert!(w.daemon.stderr().contains("TcpExt SyncookiesSent"));
    cause.stop();
    w.resolves(inst);
    // Without SYN cookies the kernel drops those SYNs: TCPReqQFullDrop, a counter
    // node_exporter's default fields leave out (the daemon exports it for the rules).
    ns.set("net.ipv4.tcp_syncookies", "0");
    let cause = Cause::start(ns, storm);
    w.fires(inst, knob);
    let log = w.daemon.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("alert SynBacklogPressure") && l.contains("TCPReqQFullDrop")),
        "{log}"
    );
    assert!(w
        .scrape()
        .contains("# TYPE nodetune_netstat_TcpExt_TCPReqQFullDrop counter"));
    cause.stop();
    w.resolves(inst);
}

#[test]
fn ephemeral_port_pressure_in_a_narrow_range() {
    if !privileged() {
        return;
    }
    let w = Watched::in_netns("eph", "audit", "base");
    let ns = w.ns.as_ref().expect("namespace");
    // 100 ephemeral ports; 90 connections (and their accepted ends) use them up.
    ns.set("net.ipv4.ip_local_port_range", "40000 40099");
    let port = ns.free_port();
    let cause = Cause::start(ns, move |stop| {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let clients: Vec<TcpStream> = (0..90)
            .filter_map(|_| TcpStream::connect(addr(port)).ok())
            .collect();
        let accepted: Vec<TcpStream> = (0..clients.len())
            .filter_map(|_| l.accept().ok().map(|(s, _)| s))
            .collect();
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        clients.into_iter().for_each(reset);
        drop(accepted);
    });
    let inst: Instance = ("EphemeralPortPressure", &[("resource", "ports")]);
    w.fires(inst, "net.ipv4.ip_local_port_range");
    cause.stop();
    w.resolves(inst);
}

#[test]
fn sysctl_drift_then_back_in_sync() {
    if !privileged() {
        return;
    }
    // Applied once, then watched in audit mode: a change is reported, never corrected.
    let ns = TestNetns::new("dft");
    let state = tempfile::tempdir().expect("tempdir");
    let r = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(nodetune_e2e::bin())
            .args(["apply", "--profile=api-node"])
            .arg(format!("--state-dir={}", state.path().display())),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    drop(ns);
    // The namespace above only proved apply works there; the watched one gets the same apply.
    let w = Watched::in_netns("drf", "audit", "api-node");
    let ns = w.ns.as_ref().expect("namespace");
    let r = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(nodetune_e2e::bin())
            .args(["apply", "--profile=api-node"])
            .arg(format!("--state-dir={}", state.path().display())),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let inst: Instance = ("SysctlDrift", &[("key", "net.core.somaxconn")]);
    // Applied after the daemon started: every key comes into sync, then one is changed.
    assert!(
        wait_until(30, || w.state(inst).is_none() && w.alert_lines().is_empty()),
        "{}",
        w.alert_lines()
    );
    ns.set("net.core.somaxconn", "1000");
    w.fires(inst, "nodetune apply");
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        "1000",
        "audit never corrects"
    );
    ns.set("net.core.somaxconn", "65535");
    w.resolves(inst);
}

#[test]
fn sysctl_fight_until_the_other_writer_stops() {
    if !privileged() {
        return;
    }
    let w = Watched::in_netns("fgt", "enforce", "api-node");
    let ns = w.ns.as_ref().expect("namespace");
    assert!(wait_until(30, || ns.sysctl("net.core.somaxconn") == "65535"));
    let mut writer = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            "while :; do sysctl -qw net.core.somaxconn=1000; sleep 0.05; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("writer");
    let inst: Instance = ("SysctlFight", &[("key", "net.core.somaxconn")]);
    w.fires(inst, "one owner per key");
    // The other writer stops; the operator reloads, as the runbook says, and enforcement
    // resumes: the key is corrected and the fight is over.
    let _ = writer.kill();
    let _ = writer.wait();
    w.daemon.signal(1);
    assert!(wait_until(30, || ns.sysctl("net.core.somaxconn") == "65535"));
    w.resolves(inst);
}

/// A fake host tree in the kernel's formats; `hot` turns every cause on, `n` advances the
/// counters.
fn write_host(root: &std::path::Path, hot: bool, n: u64) {
    let w = |rel: &str, text: String| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    let rising = |by: u64| if hot { n * by } else { 0 };
    w(
        "proc/net/netstat",
        format!(
            "TcpExt: ListenOverflows ListenDrops SyncookiesSent TCPReqQFullDrop TCPMemoryPressures\n\
             TcpExt: 0 0 0 0 {}\n",
            rising(1)
        ),
    );
    w("proc/net/snmp", "Tcp: CurrEstab\nTcp: 1\n".into());
    w(
        "proc/net/sockstat",
        format!(
            "sockets: used 5\nTCP: inuse 3 orphan 0 tw 0 alloc 3 mem {}\n",
            if hot { 3800 } else { 10 }
        ),
    );
    w(
        "proc/sys/net/netfilter/nf_conntrack_count",
        format!("{}\n", if hot { 950 } else { 10 }),
    );
    w("proc/sys/net/netfilter/nf_conntrack_max", "1000\n".into());
    w(
        "proc/net/stat/nf_conntrack",
        format!(
            "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
             00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 {:08x} 00000000 00000000  00000000 00000000 00000000 00000000\n",
            rising(3)
        ),
    );
    w(
        "proc/sys/fs/file-nr",
        format!("{}\t0\t1000\n", if hot { 900 } else { 100 }),
    );
    w(
        "proc/net/softnet_stat",
        format!(
            "00001000 {:08x} 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n",
            rising(5)
        ),
    );
    w(
        "proc/net/dev",
        format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
             eth0: 0 {} {} 0 0 0 0 0 0 {} 0 0 0 0 0 0\n",
            n * 100,
            rising(10),
            n * 100
        ),
    );
    w(
        "proc/stat",
        "cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\n".into(),
    );
    // Host facts the profile is resolved with.
    w("proc/meminfo", "MemTotal:       16384000 kB\n".into());
    let cpu = "sys/devices/system/cpu/cpu0";
    w(&format!("{cpu}/topology/physical_package_id"), "0\n".into());
    w(&format!("{cpu}/topology/core_id"), "0\n".into());
    w(
        &format!("{cpu}/thermal_throttle/core_throttle_count"),
        format!("{}\n", rising(2)),
    );
    w(
        &format!("{cpu}/thermal_throttle/package_throttle_count"),
        "0\n".into(),
    );
    w("sys/class/hwmon/hwmon0/name", "coretemp\n".into());
    w(
        "sys/class/hwmon/hwmon0/temp1_input",
        format!("{}\n", if hot { 101_000 } else { 50_000 }),
    );
    w("sys/class/hwmon/hwmon0/temp1_crit", "100000\n".into());
}

#[test]
fn host_wide_causes_from_fake_roots() {
    if !require(
        have_tool("prometheus-alertmanager"),
        "prometheus-alertmanager (Debian package)",
    ) {
        return;
    }
    let h = FakeHost::new();
    h.write("sys/net/ipv4/tcp_mem", "1000\t2000\t4000\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("host");
    write_host(&root, false, 0);
    let am = Alertmanager::start(None);
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(&cfg, config("audit", &am)).expect("config");
    let daemon = h.daemon(
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
            &format!("--path.procfs={}", root.join("proc").display()),
            &format!("--path.sysfs={}", root.join("sys").display()),
            "--collector.netdev.netlink=false",
        ],
        &[],
    );
    let metrics = daemon.addr();
    let w = Watched {
        ns: None,
        am,
        daemon,
        metrics,
        _dir: dir,
    };
    let expected: &[(Instance, &str)] = &[
        (("SocketMemoryPressure", &[]), "net.ipv4.tcp_mem"),
        (
            ("SocketMemoryPressure", &[("resource", "socket_memory")]),
            "net.ipv4.tcp_mem",
        ),
        (("ConntrackNearFull", &[]), "[conntrack] max"),
        (
            ("ConntrackNearFull", &[("resource", "conntrack")]),
            "[conntrack] max",
        ),
        (
            ("FileDescriptorPressure", &[("resource", "fds")]),
            "[limits] nofile",
        ),
        (
            ("SoftnetDrops", &[("counter", "dropped")]),
            "net.core.netdev_max_backlog",
        ),
        (
            ("NicErrors", &[("device", "eth0"), ("direction", "receive")]),
            "ring sizes",
        ),
        (("ThermalThrottling", &[("source", "cpu_core")]), "cooling"),
        (
            (
                "ThermalThrottling",
                &[
                    ("chip", "coretemp"),
                    ("sensor", "temp1"),
                    ("source", "hwmon"),
                ],
            ),
            "cooling",
        ),
    ];
    // Causes on: counters advance every 100 ms until every alert has fired.
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, r) = (stop.clone(), root.clone());
    let writer = std::thread::spawn(move || {
        let mut n = 1;
        while !flag.load(Ordering::SeqCst) {
            write_host(&r, true, n);
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        write_host(&r, false, n);
    });
    for (inst, knob) in expected {
        w.fires(*inst, knob);
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    for (inst, _) in expected {
        w.resolves(*inst);
    }
}
