//! listen_queue collector (nodetune's own, off by default on /metrics; the daemon's alert
//! rules use it): how full the fullest TCP accept queue is. Listening sockets are asked for
//! over NETLINK_SOCK_DIAG with a LISTEN-only state filter, so the kernel does the filtering
//! and the cost does not grow with the number of established connections (unlike reading
//! /proc/net/tcp). For a listener, the kernel reports the current accept-queue length and its
//! limit (min of the listen() backlog and net.core.somaxconn).

use super::{netlink, Collector, Family, MetricType, Options};

const TCP_LISTEN: u32 = 10;

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
    netlink::inet_diag(family, libc::IPPROTO_TCP as u8, 1u32 << TCP_LISTEN, |msg| {
        // struct inet_diag_msg: family, state, timer, retrans (4 bytes), sockid (48:
        // sport and dport in network byte order first), expires (4), rqueue (4), wqueue
        // (4), uid (4), inode (4).
        let port = msg.get(4..6).map(|p| u16::from_be_bytes([p[0], p[1]]));
        Ok(port
            .zip(netlink::u32_at(msg, 56))
            .zip(netlink::u32_at(msg, 60))
            .zip(netlink::u32_at(msg, 68))
            .map(|(((port, queued), backlog), inode)| Listener {
                port,
                queued,
                backlog,
                inode,
            }))
    })
}

impl Collector for ListenQueue {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let all = read()?;
        let ratio = all.iter().filter_map(Listener::fill).fold(0.0, f64::max);
        out.push(Family::single(
            "nodetune_listen_queue_max_ratio",
            "Fullest TCP accept queue: queued connections / the listener's backlog limit.",
            MetricType::Gauge,
            ratio,
        ));
        out.push(Family::single(
            "nodetune_listen_sockets",
            "Listening TCP sockets.",
            MetricType::Gauge,
            all.len() as f64,
        ));
        Ok(())
    }
}

pub fn build(_opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(ListenQueue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
