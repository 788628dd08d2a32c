//! The lab's load clients, on one epoll loop: a connect storm (short connections, the client
//! closes first), a burst (every connection at once), a fixed-rate opener (new connections at
//! a set rate, a few keep-alive requests each) and a holder (many connections kept open). Each
//! records connect and request latency and counts failures by errno.
//!
//! Requests are `GET PATH HTTP/1.1` with keep-alive; a response is complete when its headers
//! and Content-Length bytes of body have arrived.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How connections are opened.
#[derive(Debug, Clone, Copy)]
pub enum Pattern {
    /// `total` connections, at most `concurrency` at a time, each opened when one finishes.
    Storm { total: usize, concurrency: usize },
    /// `total` connections opened at once.
    Burst { total: usize },
    /// A new connection every 1/`per_sec` seconds for `secs` seconds (open loop: a slow
    /// server does not slow the schedule down).
    Rate { per_sec: f64, secs: f64 },
}

/// What a client does.
#[derive(Debug, Clone)]
pub struct Load {
    pub target: SocketAddrV4,
    pub pattern: Pattern,
    /// Requests per connection (keep-alive); 0: connect, then close.
    pub requests: usize,
    pub path: String,
    /// A connect not established by then fails with ETIMEDOUT.
    pub connect_timeout: Duration,
    /// A response not complete by then fails as "response timeout".
    pub response_timeout: Duration,
    /// Keep every connection open after its last response until the run ends (a holder).
    pub hold: bool,
    /// Stop opening connections at the first failure of this errno (e.g. EADDRNOTAVAIL after
    /// enough of them), to keep short runs short; 0 never stops.
    pub stop_after_errors: usize,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub attempts: usize,
    /// Connections that did everything they were asked to.
    pub ok: usize,
    /// Failures by kind, e.g. "connect EADDRNOTAVAIL", "connect ETIMEDOUT", "response timeout".
    pub errors: BTreeMap<String, usize>,
    /// Seconds from the start of the run to the first failure.
    pub first_error_s: Option<f64>,
    pub elapsed_s: f64,
    pub responses: usize,
    pub bytes: u64,
    /// Connect latency of every established connection, in microseconds.
    #[serde(skip)]
    pub connect_us: Vec<u64>,
    /// Latency of every complete response, from its request, in microseconds.
    #[serde(skip)]
    pub request_us: Vec<u64>,
    /// Time spent inside each connect() call, in microseconds: the kernel picks the source
    /// port there, and its search grows as the port range fills.
    #[serde(skip)]
    pub connect_call_us: Vec<u64>,
    /// Connections a fixed-rate load should have opened but did not: the client fell behind
    /// its schedule.
    pub behind: usize,
    /// Wall-clock instant of the start (to place alerts against the first failure).
    #[serde(skip)]
    pub started: Option<Instant>,
    /// Request latency computed elsewhere (wrk), when there are no samples.
    #[serde(skip)]
    pub request_tail: Option<Tail>,
}

impl Outcome {
    pub fn error_total(&self) -> usize {
        self.errors.values().sum()
    }

    fn fail(&mut self, what: String, at: Instant) {
        *self.errors.entry(what).or_default() += 1;
        if self.first_error_s.is_none() {
            if let Some(s) = self.started {
                self.first_error_s = Some(at.duration_since(s).as_secs_f64());
            }
        }
    }
}

/// The name of an errno value.
pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EPIPE => "EPIPE",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ENOBUFS => "ENOBUFS",
        libc::EAGAIN => "EAGAIN",
        libc::EADDRINUSE => "EADDRINUSE",
        _ => return format!("errno {e}"),
    };
    n.to_string()
}

#[derive(PartialEq)]
enum Phase {
    Connecting,
    Waiting,
    Idle,
}

struct Conn {
    fd: i32,
    phase: Phase,
    since: Instant,
    left: usize,
    buf: Vec<u8>,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Length of a complete HTTP response at the start of `buf`, if it is complete.
fn response_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + len).then_some(end + len)
}

struct Runner<'a> {
    load: &'a Load,
    ep: i32,
    conns: HashMap<i32, Conn>,
    out: Outcome,
    request: Vec<u8>,
    stop: bool,
}

impl Runner<'_> {
    fn close(&mut self, fd: i32) {
        if self.conns.remove(&fd).is_some() {
            // SAFETY: fd is a socket this runner opened and still owns.
            unsafe { libc::close(fd) };
        }
    }

    fn fail(&mut self, fd: Option<i32>, what: String, now: Instant) {
        if let Some(fd) = fd {
            self.close(fd);
        }
        let stop_at = self.load.stop_after_errors;
        self.out.fail(what, now);
        if stop_at > 0 && self.out.error_total() >= stop_at {
            self.stop = true;
        }
    }

    fn watch(&self, fd: i32, events: u32, add: bool) {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        let op = if add {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_MOD
        };
        // SAFETY: epoll_ctl on our epoll fd with a valid event struct.
        unsafe { libc::epoll_ctl(self.ep, op, fd, &mut ev) };
    }

    /// Opens one connection.
    fn open(&mut self) {
        self.out.attempts += 1;
        let now = Instant::now();
        // SAFETY: socket() has no memory preconditions.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            self.fail(None, format!("socket {}", errno_name(errno())), now);
            return;
        }
        let sa = sockaddr(self.load.target);
        let call = Instant::now();
        // SAFETY: sa is a valid sockaddr_in of the size given.
        let rc = unsafe {
            libc::connect(
                fd,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        self.out
            .connect_call_us
            .push(call.elapsed().as_micros() as u64);
        if rc != 0 && errno() != libc::EINPROGRESS {
            let e = errno();
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
            self.fail(None, format!("connect {}", errno_name(e)), now);
            return;
        }
        self.conns.insert(
            fd,
            Conn {
                fd,
                phase: Phase::Connecting,
                since: now,
                left: self.load.requests,
                buf: Vec::new(),
            },
        );
        self.watch(fd, libc::EPOLLOUT as u32, true);
    }

    fn send_request(&mut self, fd: i32, now: Instant) {
        // SAFETY: writing our request buffer to our socket.
        let n = unsafe {
            libc::send(
                fd,
                self.request.as_ptr() as *const libc::c_void,
                self.request.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n != self.request.len() as isize {
            let what = if n < 0 {
                format!("send {}", errno_name(errno()))
            } else {
                "send short".to_string()
            };
            self.fail(Some(fd), what, now);
            return;
        }
        if let Some(c) = self.conns.get_mut(&fd) {
            c.phase = Phase::Waiting;
            c.since = now;
        }
        self.watch(fd, libc::EPOLLIN as u32, false);
    }

    /// One connection finished its work: close it (the client closes first) or hold it.
    fn finish(&mut self, fd: i32) {
        self.out.ok += 1;
        if self.load.hold {
            if let Some(c) = self.conns.get_mut(&fd) {
                c.phase = Phase::Idle;
            }
            // Nothing more to read on a held connection.
            self.watch(fd, 0, false);
        } else {
            self.close(fd);
        }
    }

    fn on_event(&mut self, fd: i32, now: Instant) {
        let Some(c) = self.conns.get(&fd) else { return };
        match c.phase {
            Phase::Connecting => {
                let mut err: i32 = 0;
                let mut len = std::mem::size_of::<i32>() as u32;
                // SAFETY: getsockopt into a local i32 of the size given.
                unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        &mut err as *mut i32 as *mut libc::c_void,
                        &mut len,
                    )
                };
                if err != 0 {
                    self.fail(Some(fd), format!("connect {}", errno_name(err)), now);
                    return;
                }
                let us = now.duration_since(c.since).as_micros() as u64;
                self.out.connect_us.push(us);
                if c.left == 0 {
                    self.finish(fd);
                } else {
                    self.send_request(fd, now);
                }
            }
            Phase::Waiting => {
                let mut chunk = [0u8; 16384];
                loop {
                    // SAFETY: recv into a local buffer of the size given.
                    let n = unsafe {
                        libc::recv(fd, chunk.as_mut_ptr() as *mut libc::c_void, chunk.len(), 0)
                    };
                    if n > 0 {
                        self.out.bytes += n as u64;
                        if let Some(c) = self.conns.get_mut(&fd) {
                            c.buf.extend_from_slice(&chunk[..n as usize]);
                        }
                        continue;
                    }
                    if n == 0 {
                        self.fail(Some(fd), "response EOF".into(), now);
                        return;
                    }
                    let e = errno();
                    if e == libc::EAGAIN {
                        break;
                    }
                    self.fail(Some(fd), format!("response {}", errno_name(e)), now);
                    return;
                }
                let Some(c) = self.conns.get_mut(&fd) else {
                    return;
                };
                let Some(len) = response_len(&c.buf) else {
                    return;
                };
                c.buf.drain(..len);
                c.left -= 1;
                let us = now.duration_since(c.since).as_micros() as u64;
                let left = c.left;
                self.out.request_us.push(us);
                self.out.responses += 1;
                if left == 0 {
                    self.finish(fd);
                } else {
                    self.send_request(fd, now);
                }
            }
            Phase::Idle => {}
        }
    }

    /// Fails connections past their deadline.
    fn expire(&mut self, now: Instant) {
        let late: Vec<(i32, &'static str)> = self
            .conns
            .values()
            .filter_map(|c| match c.phase {
                Phase::Connecting if now.duration_since(c.since) > self.load.connect_timeout => {
                    Some((c.fd, "connect ETIMEDOUT"))
                }
                Phase::Waiting if now.duration_since(c.since) > self.load.response_timeout => {
                    Some((c.fd, "response timeout"))
                }
                _ => None,
            })
            .collect();
        for (fd, what) in late {
            self.fail(Some(fd), what.into(), now);
        }
    }

    fn busy(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.phase != Phase::Idle)
            .count()
    }
}

/// Runs a load in the calling thread's network namespace; blocks until every connection has
/// finished, failed or timed out.
pub fn run(load: &Load) -> Outcome {
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(
        ep >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: lab\r\nUser-Agent: nodetune-lab\r\n\r\n",
        load.path
    )
    .into_bytes();
    let started = Instant::now();
    let mut r = Runner {
        load,
        ep,
        conns: HashMap::new(),
        out: Outcome {
            started: Some(started),
            ..Outcome::default()
        },
        request,
        stop: false,
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut opened = 0usize;
    loop {
        let now = Instant::now();
        // Open what the pattern allows now, at most a batch per turn so that connections
        // already established are timed when they are, not after the whole burst is out.
        let mut more = false;
        if !r.stop {
            match load.pattern {
                Pattern::Storm { total, concurrency } => {
                    while opened < total && r.busy() < concurrency && !r.stop {
                        r.open();
                        opened += 1;
                    }
                }
                Pattern::Burst { total } => {
                    let batch = (opened + 64).min(total);
                    while opened < batch && !r.stop {
                        r.open();
                        opened += 1;
                    }
                    more = opened < total;
                }
                Pattern::Rate { per_sec, secs } => {
                    let due =
                        ((now.duration_since(started).as_secs_f64().min(secs)) * per_sec) as usize;
                    // A few per turn: when connect() itself gets slow, responses are still
                    // read on time and the client visibly falls behind instead.
                    let batch = (opened + 16).min(due);
                    while opened < batch && !r.stop {
                        r.open();
                        opened += 1;
                    }
                    more = opened < due;
                }
            }
        }
        let pattern_done = r.stop
            || match load.pattern {
                Pattern::Storm { total, .. } | Pattern::Burst { total } => opened >= total,
                Pattern::Rate { secs, .. } => now.duration_since(started).as_secs_f64() >= secs,
            };
        if pattern_done && r.busy() == 0 {
            break;
        }
        let timeout_ms = match load.pattern {
            _ if more => 0,
            Pattern::Rate { per_sec, .. } => ((1000.0 / per_sec) as i32).clamp(1, 10),
            _ => 10,
        };
        // SAFETY: events is a buffer of the length given.
        let n =
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
        let now = Instant::now();
        for ev in events.iter().take(n.max(0) as usize) {
            let fd = ev.u64 as i32;
            r.on_event(fd, now);
        }
        r.expire(now);
    }
    if let Pattern::Rate { per_sec, secs } = load.pattern {
        r.out.behind = ((secs * per_sec) as usize).saturating_sub(opened);
    }
    r.out.elapsed_s = started.elapsed().as_secs_f64();
    let fds: Vec<i32> = r.conns.keys().copied().collect();
    for fd in fds {
        r.close(fd);
    }
    // SAFETY: our epoll fd.
    unsafe { libc::close(ep) };
    r.out
}

/// Runs `threads` copies of a load side by side, each with its share of a storm's or a
/// burst's total, in the calling thread's network namespace (each thread enters it too), and
/// merges their outcomes. The kernel's port search runs in the connecting thread, so two
/// threads use two CPUs where one would wait.
pub fn run_parallel(load: &Load, threads: usize, netns: &str) -> std::io::Result<Outcome> {
    let threads = threads.max(1);
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..threads {
        let mut l = load.clone();
        let share = |total: usize| total / threads + usize::from(i < total % threads);
        l.pattern = match l.pattern {
            Pattern::Storm { total, concurrency } => Pattern::Storm {
                total: share(total),
                concurrency,
            },
            Pattern::Burst { total } => Pattern::Burst {
                total: share(total),
            },
            p => p,
        };
        let ns = netns.to_string();
        handles.push(std::thread::spawn(move || {
            crate::netns::in_ns(&ns, move || run(&l))
        }));
    }
    let mut out = Outcome {
        started: Some(started),
        ..Outcome::default()
    };
    for h in handles {
        let o = h
            .join()
            .map_err(|_| std::io::Error::other("client thread panicked"))??;
        out.attempts += o.attempts;
        out.ok += o.ok;
        out.responses += o.responses;
        out.bytes += o.bytes;
        for (k, v) in o.errors {
            *out.errors.entry(k).or_default() += v;
        }
        // Each thread timed its first failure from its own start, a few µs after ours.
        let shift = o
            .started
            .map_or(0.0, |s| s.duration_since(started).as_secs_f64());
        out.first_error_s = match (out.first_error_s, o.first_error_s.map(|f| f + shift)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        out.elapsed_s = out.elapsed_s.max(o.elapsed_s + shift);
        out.connect_us.extend(o.connect_us);
        out.request_us.extend(o.request_us);
        out.connect_call_us.extend(o.connect_call_us);
        out.behind += o.behind;
    }
    Ok(out)
}

/// Sends `count` SYNs to `dst` from raw sockets, from source addresses in 198.51.100.1-254 and
/// varying ports, as fast as the socket takes them. Needs CAP_NET_RAW in the calling thread's
/// namespace. Returns the number sent.
pub fn syn_burst(dst: SocketAddrV4, count: usize) -> std::io::Result<usize> {
    // SAFETY: socket() has no memory preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let sa = sockaddr(SocketAddrV4::new(*dst.ip(), 0));
    let d = dst.ip().octets();
    let mut seed: u32 = 0x9e37_79b9 ^ std::process::id();
    let mut sent = 0;
    for i in 0..count {
        let s = [198, 51, 100, 1 + (i % 254) as u8];
        let sport = 1024 + ((i / 254) % 60000) as u16;
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let pkt = syn_packet(s, d, sport, dst.port(), seed, i as u16);
        // SAFETY: sending a local buffer to a valid sockaddr_in.
        let n = unsafe {
            libc::sendto(
                fd,
                pkt.as_ptr() as *const libc::c_void,
                pkt.len(),
                0,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n == pkt.len() as isize {
            sent += 1;
        }
        // A pause every 128 packets lets softirq drain the per-CPU input queue
        // (net.core.netdev_max_backlog, 1000 by default and host-wide), so that the SYNs reach
        // the listener instead of being dropped on the way.
        if i % 128 == 127 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    Ok(sent)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 + TCP SYN packet (20 + 20 bytes, no options).
fn syn_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, id: u16) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(0x02);
    tcp.extend_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&tcp);
    let c = checksum(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 40];
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

/// The p-th percentile (0-100) of a sample, nearest rank; None when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // The small epsilon keeps 99.9 % of 1000 at rank 999 despite floating-point rounding.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99 and p99.9 of a latency sample, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tail {
    pub n: usize,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
}

impl Tail {
    pub fn of(sample: &[u64]) -> Tail {
        let mut s = sample.to_vec();
        s.sort_unstable();
        Tail {
            n: s.len(),
            p50_us: percentile(&s, 50.0),
            p99_us: percentile(&s, 99.0),
            p999_us: percentile(&s, 99.9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_content_length() {
        assert_eq!(
            response_len(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"),
            Some(41)
        );
        assert_eq!(
            response_len(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"),
            None
        );
        assert_eq!(response_len(b"HTTP/1.1 204 No\r\n\r\n"), Some(19));
    }

    #[test]
    fn percentiles_nearest_rank() {
        let s: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&s, 50.0), Some(500));
        assert_eq!(percentile(&s, 99.0), Some(990));
        assert_eq!(percentile(&s, 99.9), Some(999));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn syn_packet_checksums_verify() {
        let p = syn_packet([198, 51, 100, 1], [192, 0, 2, 2], 1024, 80, 7, 1);
        assert_eq!(p.len(), 40);
        assert_eq!(checksum(&p[..20]), 0, "IP header checksum");
        let mut pseudo = vec![198, 51, 100, 1, 192, 0, 2, 2, 0, 6, 0, 20];
        pseudo.extend_from_slice(&p[20..]);
        assert_eq!(checksum(&pseudo), 0, "TCP checksum");
    }
}
