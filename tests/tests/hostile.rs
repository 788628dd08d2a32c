//! Slow and hostile clients, and load, against `nodetune run` on loopback: thousands of idle
//! connections, slow-header senders, clients that never read, oversized heads and URIs, and
//! wrk at 20/200/1000 connections. Scrapes must still be served, descriptors and memory must
//! stay bounded, and the drift loop must keep running.
//!
//! No wall-clock thresholds (the suite runs beside other tests on busy machines): what is
//! asserted is progress and order. Scrapes during a flood are served while a keep-alive
//! connection opened before the flood is still open, so by eviction and before the daemon's
//! 30 s idle timeout could have freed a place; a kernel value changed under load is reported
//! as drifted, and then as back in sync, while wrk is still running. Speed under load is
//! measured by `tests/bench/stress-load` (docs/reliability.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nodetune_e2e::{have_tool, http_get, require, wait_until, Daemon, FakeHost};

/// A small connection cap, so that floods past it are cheap.
const CAP: usize = 64;

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit (inherited by wrk); returns it.
fn raise_nofile() -> u64 {
    const RLIMIT_NOFILE: i32 = 7;
    let mut l = Rlimit { cur: 0, max: 0 };
    // SAFETY: both calls only read or write the struct passed in.
    unsafe {
        assert_eq!(getrlimit(RLIMIT_NOFILE, &mut l), 0);
        l.cur = l.max;
        assert_eq!(setrlimit(RLIMIT_NOFILE, &l), 0);
    }
    l.cur
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

struct Setup {
    d: Daemon,
    addr: String,
    pid: u32,
    host: FakeHost,
}

/// A daemon on a stand-in host reading the host-a fixture.
fn start(extra: &[&str]) -> Setup {
    let host = FakeHost::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/host-a");
    let mut args = vec![
        "--config=/etc/nodetune/nodetune.toml".to_string(),
        "--web.listen-address=127.0.0.1:0".to_string(),
        format!("--path.procfs={}", fixture.join("proc").display()),
        format!("--path.sysfs={}", fixture.join("sys").display()),
        format!(
            "--collector.textfile.directory={}",
            fixture.join("textfile").display()
        ),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = host.daemon(&args, &[]);
    let addr = d.addr();
    let pid = d.child.id();
    Setup { d, addr, pid, host }
}

/// One scrape that must succeed.
fn scrape_ok(addr: &str, what: &str) {
    let code = http_get(addr, "/metrics?collect[]=loadavg", &[]).map(|r| r.0);
    assert_eq!(code, Some(200), "{what}: scrape answered {code:?}");
}

/// A scrape during a connection flood: its connection competes with the flood's for the
/// last free places, and one that is dropped before its request arrives (the client was not
/// scheduled between connect and send) is retried, as Prometheus retries at the next
/// interval. Any answer but 200 fails; [`Sentinel::still_open`] afterwards shows it was
/// served before an idle timeout could have made room.
fn scrape_during_flood(addr: &str, what: &str) {
    for _ in 0..1000 {
        match http_get(addr, "/metrics?collect[]=loadavg", &[]).map(|r| r.0) {
            Some(200) => return,
            None => continue,
            code => panic!("{what}: scrape answered {code:?}"),
        }
    }
    panic!("{what}: 1000 connections in a row dropped before their request was read");
}

/// A keep-alive connection that has sent a request, idle in between: the daemon closes it
/// only after 30 s of idleness (or to make room when nothing else can go, and a flood's
/// connections that never sent a byte always go first). While it answers, no idle timeout
/// has fired since its last request.
struct Sentinel(TcpStream);

impl Sentinel {
    fn open(addr: &str) -> Sentinel {
        let s = Sentinel(TcpStream::connect(addr).expect("connect"));
        s.0.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        assert!(s.ask(), "the sentinel's first request was not answered");
        s
    }

    /// A HEAD request on the connection; true when it answered 200 (the head ends the
    /// answer, so the connection stays open for the next).
    fn ask(&self) -> bool {
        let mut c = &self.0;
        if c.write_all(b"HEAD /metrics?collect[]=loadavg HTTP/1.1\r\nHost: t\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match c.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return false,
            }
        }
        head.starts_with(b"HTTP/1.1 200")
    }

    fn still_open(&self, what: &str) {
        assert!(
            self.ask(),
            "{what}: the keep-alive connection opened before the flood was closed: the scrape \
             was not served before an idle timeout"
        );
    }
}

/// Sends raw request bytes and reads the answer until the server closes; returns the
/// status code, or 0 if none came within 10 s.
fn raw(addr: &str, req: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).expect("send");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn idle_flood_and_slow_headers_leave_scrapes_served() {
    raise_nofile();
    let cap = CAP.to_string();
    let s = start(&["--mode=off", &format!("--web.max-connections={cap}")]);
    scrape_ok(&s.addr, "before the flood");
    let base_fds = fds(s.pid);
    // 50 slow-header senders: a request line now, then one header byte per second.
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).expect("connect");
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .unwrap();
            c
        })
        .collect();
    let mut last_drip = Instant::now();
    let mut drip = |slow: &mut Vec<TcpStream>| {
        if last_drip.elapsed() >= Duration::from_secs(1) {
            last_drip = Instant::now();
            for c in slow.iter_mut() {
                // Evicted ones fail: that is the point.
                let _ = c.write_all(b"a");
            }
        }
    };
    let sentinel = Sentinel::open(&s.addr);
    // 2000 idle connections that never send a byte.
    let mut idle: Vec<TcpStream> = Vec::new();
    let mut max_fds = 0;
    for i in 0..2000 {
        idle.push(TcpStream::connect(&s.addr).expect("connect"));
        if i % 100 == 0 {
            drip(&mut slow);
            max_fds = max_fds.max(fds(s.pid));
        }
    }
    max_fds = max_fds.max(fds(s.pid));
    // Scrapes are served while all that is open, and while a second flood arrives.
    let flood_addr = s.addr.clone();
    let flood = std::thread::spawn(move || {
        (0..1000)
            .filter_map(|_| TcpStream::connect(&flood_addr).ok())
            .collect::<Vec<_>>()
    });
    sentinel.still_open("the first flood");
    for i in 0..10 {
        drip(&mut slow);
        let what = format!("scrape {i} during the flood");
        scrape_during_flood(&s.addr, &what);
        sentinel.still_open(&what);
        max_fds = max_fds.max(fds(s.pid));
    }
    let more = flood.join().unwrap();
    scrape_ok(&s.addr, "after the second flood");
    sentinel.still_open("after the second flood");
    max_fds = max_fds.max(fds(s.pid));
    let rss = status_kb(s.pid, "VmRSS");
    let hwm = status_kb(s.pid, "VmHWM");
    eprintln!(
        "cap {CAP}: descriptors at most {max_fds} (base {base_fds}), VmRSS {rss} kB, VmHWM {hwm} kB"
    );
    // The cap, plus one newcomer admitted before its evicted neighbour closes, plus the
    // scrape's own connection and collectors' files.
    assert!(
        max_fds <= base_fds + CAP + 8,
        "descriptors reached {max_fds} (base {base_fds}, cap {CAP})"
    );
    assert!(hwm < 64 * 1024, "VmHWM {hwm} kB");
    drop((idle, more, slow, sentinel));
    let (code, err) = s.d.stop();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn oversized_heads_and_slow_readers() {
    let s = start(&["--mode=off", &format!("--web.max-connections={CAP}")]);
    // After a full scrape (every collector, as the slow readers' scrapes below): the
    // descriptors the collectors hold (device attributes and /proc tables kept open between
    // scrapes, netlink sockets) are there, and count as the base.
    let full = http_get(&s.addr, "/metrics", &[]).map(|r| r.0);
    assert_eq!(full, Some(200), "first full scrape: {full:?}");
    let base_fds = fds(s.pid);
    // A head past the 64 KiB buffer: 431. Exactly 64 KiB and no end of head, so the server has
    // read every byte when it answers (unread bytes would make its close a reset).
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    head.resize(64 * 1024, b'a');
    assert_eq!(raw(&s.addr, &head), 431);
    // Too many headers: 431.
    let mut many = String::from("GET /metrics HTTP/1.1\r\nHost: t\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-{i}: a\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    assert_eq!(raw(&s.addr, many.as_bytes()), 431);
    // A 16 KiB query (within the head buffer): 414.
    let q = format!(
        "GET /metrics?collect[]=loadavg&x={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    assert_eq!(raw(&s.addr, q.as_bytes()), 414);
    // A URI past the head buffer: hyper's 431.
    let mut long = b"GET /metrics?x=".to_vec();
    long.resize(64 * 1024, b'a');
    assert_eq!(raw(&s.addr, &long), 431);

    // Clients that pipeline scrapes and never read (twice the cap of them, so some are
    // evicted): what the kernel buffers cannot take stays in the daemon, bounded by the cap
    // and the budget of unwritten bytes (unit-tested in agent/src/expose/http.rs).
    let ten = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(10);
    let readers: Vec<TcpStream> = (0..2 * CAP)
        .filter_map(|_| {
            let mut c = TcpStream::connect(&s.addr).ok()?;
            c.write_all(&ten).ok()?;
            Some(c)
        })
        .collect();
    // Their scrapes may take every --web.max-requests slot for a moment (503, as configured);
    // a scrape must get through (60 s only bounds the wait: this is not a speed check), and
    // then every one.
    assert!(
        wait_until(60, || http_get(&s.addr, "/metrics?collect[]=loadavg", &[])
            .is_some_and(|r| r.0 == 200)),
        "no scrape served beside the slow readers"
    );
    for i in 0..3 {
        scrape_ok(&s.addr, &format!("scrape {i} beside the slow readers"));
    }
    let fd = fds(s.pid);
    let hwm = status_kb(s.pid, "VmHWM");
    eprintln!("slow readers: descriptors {fd} (base {base_fds}), VmHWM {hwm} kB");
    assert!(
        fd <= base_fds + CAP + 32,
        "descriptors {fd} (base {base_fds})"
    );
    assert!(hwm < 96 * 1024, "VmHWM {hwm} kB");
    drop(readers);
    let (code, err) = s.d.stop();
    assert_eq!(code, 0, "{err}");
}

/// The value of a sample without labels in a text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn drift_ticks(addr: &str) -> f64 {
    let mut v = None;
    // Between loads no limit is hit; a retry covers a scrape that raced the previous run's end.
    wait_until(10, || {
        v = http_get(addr, "/metrics?collect[]=loadavg", &[])
            .filter(|r| r.0 == 200)
            .and_then(|r| sample(&String::from_utf8_lossy(&r.2), "nodetune_drift_ticks_total"));
        v.is_some()
    });
    v.expect("nodetune_drift_ticks_total")
}

/// wrk's counts: responses by status, and socket errors by kind.
struct WrkRun {
    codes: Vec<(u16, u64)>,
    socket: String,
    requests: u64,
}

/// Starts `wrk -t2 -cCONNS -dSECSs` against /metrics, counting responses by status.
fn wrk_start(addr: &str, conns: usize, secs: u32) -> std::process::Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/wrk-status.lua");
    Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}/metrics"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wrk")
}

/// wrk's report, once it has finished.
fn wrk_report(child: std::process::Child) -> WrkRun {
    let out = child.wait_with_output().expect("wait for wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes = text
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("status ")?.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect();
    let socket = text
        .lines()
        .find(|l| l.trim_start().starts_with("Socket errors"))
        .unwrap_or("no socket errors")
        .trim()
        .to_string();
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ")?.0.trim().parse().ok())
        .unwrap_or(0);
    WrkRun {
        codes,
        socket,
        requests,
    }
}

/// Waits until the daemon's log holds `line` `n` times, failing if wrk ends first: the
/// drift loop must see the change while the load is still on.
fn logged_while_loaded(
    d: &Daemon,
    wrk: &mut std::process::Child,
    line: &str,
    n: usize,
    what: &str,
) {
    loop {
        if d.stderr().matches(line).count() >= n {
            assert!(
                matches!(wrk.try_wait(), Ok(None)),
                "{what}: wrk ended before the drift loop reported {line:?}"
            );
            return;
        }
        if !matches!(wrk.try_wait(), Ok(None)) {
            // One last look: the line may have come in just before wrk ended.
            assert!(
                d.stderr().matches(line).count() >= n,
                "{what}: wrk ended and the drift loop had not reported {line:?}:\n{}",
                d.stderr()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn load_keeps_the_daemon_alive_bounded_and_on_time() {
    if !require(have_tool("wrk"), "wrk (Debian package)") {
        return;
    }
    // wrk -c1000 needs more than the usual 1024 descriptors; it inherits this limit.
    assert!(
        raise_nofile() >= 1100,
        "RLIMIT_NOFILE hard limit too low for wrk -c1000"
    );
    // Audit mode: every drift tick re-reads the profile's keys in the stand-in sysctl tree.
    let interval = 0.1;
    let mut s = start(&["--mode=audit", "--drift-interval=100ms"]);
    let base_fds = fds(s.pid);
    const DRIFTED: &str = "drift: net.ipv4.tcp_syncookies is 0, profile base wants 1";
    const IN_SYNC: &str = "net.ipv4.tcp_syncookies is back in sync";
    for (round, conns) in [20, 200, 1000].into_iter().enumerate() {
        let t0 = Instant::now();
        let before = drift_ticks(&s.addr);
        // 6 s: 60 drift intervals, so a loop slowed by a busy machine still fits in it.
        let mut child = wrk_start(&s.addr, conns, 6);
        // The load is on once wrk's connections are open.
        assert!(
            wait_until(60, || fds(s.pid) >= base_fds + conns / 2
                || !matches!(child.try_wait(), Ok(None))),
            "wrk -c{conns} never opened its connections"
        );
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "wrk -c{conns} ended before its connections were seen open"
        );
        // A kernel value changes under the load, then changes back: the drift loop reports
        // both while wrk is still running.
        let what = format!("wrk -c{conns}");
        s.host.write("sys/net/ipv4/tcp_syncookies", "0\n");
        logged_while_loaded(&s.d, &mut child, DRIFTED, round + 1, &what);
        s.host.write("sys/net/ipv4/tcp_syncookies", "1\n");
        logged_while_loaded(&s.d, &mut child, IN_SYNC, round + 1, &what);
        let run = wrk_report(child);
        let after = drift_ticks(&s.addr);
        let expected = t0.elapsed().as_secs_f64() / interval;
        let ticks = after - before;
        let hwm = status_kb(s.pid, "VmHWM");
        eprintln!(
            "wrk -c{conns}: {} requests, statuses {:?}, {}; drift ticks {ticks} of ~{expected:.0}; VmHWM {hwm} kB",
            run.requests, run.codes, run.socket
        );
        assert!(
            matches!(s.d.child.try_wait(), Ok(None)),
            "the daemon died under wrk -c{conns}:\n{}",
            s.d.stderr()
        );
        assert!(run.requests > 0, "no request completed at -c{conns}");
        assert!(
            run.codes
                .iter()
                .all(|(c, _)| (200..300).contains(c) || *c == 503),
            "non-2xx other than 503 at -c{conns}: {:?}",
            run.codes
        );
        // Ticks are timer-driven and skipped ones are not made up in a burst: never more than
        // the intervals that passed (how many fewer a busy machine allows is measured by
        // tests/bench/stress-load, not asserted here).
        assert!(
            ticks >= 2.0 && ticks <= expected + 2.0,
            "drift ticks {ticks}, intervals ~{expected:.0} at -c{conns}"
        );
        assert!(hwm < 128 * 1024, "VmHWM {hwm} kB at -c{conns}");
    }
    let (code, err) = s.d.stop();
    assert_eq!(code, 0, "{err}");
}
