//! listen_queue collector (nodetune's own, off by default on /metrics; the daemon's alert
//! rules use it): how full the fullest TCP accept queue is. Listening sockets are asked for
//! over NETLINK_SOCK_DIAG with a LISTEN-only state filter, so the kernel does the filtering
//! and the cost does not grow with the number of established connections (unlike reading
//! /proc/net/tcp). For a listener, the kernel reports the current accept-queue length and its
//! limit (min of the listen() backlog and net.core.somaxconn).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Collector, Family, MetricType, Options};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const TCP_LISTEN: u32 = 10;

/// struct nlmsghdr + struct inet_diag_req_v2.
#[repr(C)]
struct Request {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    // struct inet_diag_sockid: ports, addresses, interface, cookie.
    id: [u8; 48],
}

struct ListenQueue;

/// One listening TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Its local port.
    pub port: u16,
    /// Connections waiting in its accept queue.
    pub queued: u32,
    /// The queue's limit: min(listen() backlog, net.core.somaxconn).
    pub backlog: u32,
    /// The socket's inode (`socket:[INODE]` in /proc/PID/fd): which process owns it.
    pub inode: u32,
}

impl Listener {
    /// How full the accept queue is (0-1); `None` for a zero limit.
    pub fn fill(&self) -> Option<f64> {
        (self.backlog > 0).then(|| (f64::from(self.queued) / f64::from(self.backlog)).min(1.0))
    }
}

/// Every listening TCP socket, IPv4 and IPv6 (IPv6 may be disabled: then IPv4 only).
pub fn read() -> std::io::Result<Vec<Listener>> {
    let mut all = listeners(libc::AF_INET as u8)?;
    all.extend(listeners(libc::AF_INET6 as u8).unwrap_or_default());
    Ok(all)
}

/// Every listening TCP socket of one address family.
fn listeners(family: u8) -> std::io::Result<Vec<Listener>> {
    // SAFETY: socket() has no memory preconditions; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let req = Request {
        len: std::mem::size_of::<Request>() as u32,
        kind: SOCK_DIAG_BY_FAMILY,
        flags: NLM_F_REQUEST | NLM_F_DUMP,
        seq: 1,
        pid: 0,
        family,
        protocol: libc::IPPROTO_TCP as u8,
        ext: 0,
        pad: 0,
        states: 1 << TCP_LISTEN,
        id: [0; 48],
    };
    // SAFETY: the buffer is the request struct, fully initialised, of the length given.
    let sent = unsafe {
        libc::send(
            sock.as_raw_fd(),
            &req as *const Request as *const libc::c_void,
            req.len as usize,
            0,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let data = &buf[..n as usize];
        let mut off = 0;
        while off + 16 <= data.len() {
            let u32_at =
                |o: usize| u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            let len = u32_at(off) as usize;
            let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
            if kind == NLMSG_DONE {
                return Ok(out);
            }
            if kind == NLMSG_ERROR || len < 16 || off + len > data.len() {
                return Err(std::io::Error::other("sock_diag error"));
            }
            // struct inet_diag_msg after the 16-byte header: family, state, timer, retrans
            // (4 bytes), sockid (48), expires (4), rqueue (4), wqueue (4), uid (4), inode (4).
            let msg = off + 16;
            if msg + 72 <= off + len {
                out.push(Listener {
                    // idiag_sport, in network byte order.
                    port: u16::from_be_bytes([data[msg + 4], data[msg + 5]]),
                    queued: u32_at(msg + 56),
                    backlog: u32_at(msg + 60),
                    inode: u32_at(msg + 68),
                });
            }
            off += (len + 3) & !3;
        }
    }
}

impl Collector for ListenQueue {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let all = read()?;
        let ratio = all.iter().filter_map(Listener::fill).fold(0.0, f64::max);
        let mut r = Family::new(
            "nodetune_listen_queue_max_ratio",
            "Fullest TCP accept queue: queued connections / the listener's backlog limit.",
            MetricType::Gauge,
        );
        r.push(&[], ratio.min(1.0));
        let mut n = Family::new(
            "nodetune_listen_sockets",
            "Listening TCP sockets.",
            MetricType::Gauge,
        );
        n.push(&[], all.len() as f64);
        out.extend([r, n]);
        Ok(())
    }
}

pub fn build(_opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(ListenQueue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listener_and_its_backlog() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // A backlog of 4: fill the accept queue with 2 connections nobody accepts.
        // SAFETY: listen() on our own socket fd.
        unsafe { libc::listen(l.as_raw_fd(), 4) };
        let _c1 = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _c2 = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let found = read().unwrap();
        // SAFETY: fstat on our own listening socket.
        let inode = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(l.as_raw_fd(), &mut st);
            st.st_ino as u32
        };
        let want = Listener {
            port,
            queued: 2,
            backlog: 4,
            inode,
        };
        assert!(found.contains(&want), "{found:?}");
        assert_eq!(want.fill(), Some(0.5));
        let mut out = Vec::new();
        ListenQueue.collect(&mut out).unwrap();
        assert!(out[0].samples[0].value >= 0.5);
    }
}
