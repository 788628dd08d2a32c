//! Open connections: the registry that caps them and picks which to evict, the accounting of
//! unwritten response bytes, and the socket wrapper that records when bytes last moved.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A connection with no byte read or written for this long, and no request being handled, is
/// closed: this ends clients that never read their response (hyper has no write timeout).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of scrape responses held unwritten (clients that do not read) before such
/// connections are evicted; a scrape body is typically 100-300 kB.
pub(super) const PENDING_BUDGET: usize = 32 * 1024 * 1024;

/// One open connection as the accept loop sees it.
pub(super) struct Slot {
    /// Milliseconds since [`Registry::epoch`] of the last byte read or written.
    last: AtomicU64,
    /// Requests whose handler is running (a scrape): such a connection is never evicted.
    busy: AtomicUsize,
    /// Whether the client has sent a byte: silent connections are evicted first.
    heard: AtomicBool,
    /// Bytes of response bodies this connection holds until they are written.
    pending: AtomicUsize,
    /// Notified when the connection is evicted to make room.
    pub(super) evict: Notify,
}

/// The open connections. At the cap, a newcomer evicts a connection that has no request being
/// handled: one that never sent a byte if any (a connection flood), else the one that has gone
/// longest without a byte in either direction (idle keep-alive connections, slow-header
/// senders, clients that stopped reading), so a flood of them cannot lock scrapes out. Only when every connection is handling a request is the
/// newcomer refused (503).
pub(super) struct Registry {
    epoch: Instant,
    cap: usize,
    /// Bytes of response bodies not yet written, all connections together.
    pending: AtomicUsize,
    /// Most such bytes before connections that stopped reading are evicted.
    pending_budget: usize,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// A connection's place in the registry; leaving it (drop) frees the place.
pub(super) struct Ticket {
    id: u64,
    pub(super) slot: Arc<Slot>,
    reg: Arc<Registry>,
}

impl Registry {
    pub(super) fn new(cap: usize, pending_budget: usize) -> Registry {
        Registry {
            epoch: Instant::now(),
            cap: cap.max(1),
            pending: AtomicUsize::new(0),
            pending_budget,
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        // Never held across a panic point that matters; a poisoned map is still consistent.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection, evicting one if at the cap; `None`: all are busy.
    /// The second value is true when a connection was evicted.
    pub(super) fn admit(self: &Arc<Self>) -> Option<(Ticket, bool)> {
        let mut open = self.lock();
        let mut evicted = false;
        if open.len() >= self.cap {
            let victim = open
                .iter()
                .filter(|(_, s)| s.busy.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, s)| {
                    (
                        s.heard.load(Ordering::Relaxed),
                        s.last.load(Ordering::Relaxed),
                    )
                })
                .map(|(id, _)| *id)?;
            if let Some(s) = open.remove(&victim) {
                // notify_one keeps the wake-up even if the task is not waiting yet.
                s.evict.notify_one();
                evicted = true;
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            last: AtomicU64::new(self.now_ms()),
            busy: AtomicUsize::new(0),
            heard: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        open.insert(id, slot.clone());
        Some((
            Ticket {
                id,
                slot,
                reg: self.clone(),
            },
            evicted,
        ))
    }
}

impl Registry {
    /// Makes room for `n` more bytes of unwritten responses for connection `me`: past the
    /// budget, evicts connections holding unwritten bytes (clients that stopped reading),
    /// least recently active first, until enough will be freed. Returns how many it evicted.
    fn make_room(&self, n: usize, me: &Arc<Slot>) -> usize {
        let total = self.pending.load(Ordering::Relaxed) + n;
        let Some(mut excess) = total.checked_sub(self.pending_budget).filter(|e| *e > 0) else {
            return 0;
        };
        let mut open = self.lock();
        let mut holders: Vec<(u64, u64, usize)> = open
            .iter()
            .filter(|(_, s)| !Arc::ptr_eq(s, me) && s.busy.load(Ordering::Relaxed) == 0)
            .map(|(id, s)| {
                (
                    *id,
                    s.last.load(Ordering::Relaxed),
                    s.pending.load(Ordering::Relaxed),
                )
            })
            .filter(|(_, _, p)| *p > 0)
            .collect();
        holders.sort_by_key(|(_, last, _)| *last);
        let mut evicted = 0;
        for (id, _, bytes) in holders {
            if excess == 0 {
                break;
            }
            if let Some(s) = open.remove(&id) {
                s.evict.notify_one();
                excess = excess.saturating_sub(bytes);
                evicted += 1;
            }
        }
        evicted
    }
}

/// A scrape body counted against the budget of unwritten bytes until hyper lets go of it
/// (written, or the connection dropped).
pub(super) struct HeldBody {
    data: Vec<u8>,
    slot: Arc<Slot>,
    reg: Arc<Registry>,
}

impl AsRef<[u8]> for HeldBody {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for HeldBody {
    fn drop(&mut self) {
        let n = self.data.len();
        self.slot.pending.fetch_sub(n, Ordering::Relaxed);
        self.reg.pending.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The connection a request came on, for accounting its response body.
pub(super) struct Held {
    pub(super) reg: Arc<Registry>,
    pub(super) slot: Arc<Slot>,
}

impl Held {
    pub(super) fn hold(&self, data: Vec<u8>) -> Bytes {
        let n = data.len();
        self.reg.make_room(n, &self.slot);
        self.slot.pending.fetch_add(n, Ordering::Relaxed);
        self.reg.pending.fetch_add(n, Ordering::Relaxed);
        Bytes::from_owner(HeldBody {
            data,
            slot: self.slot.clone(),
            reg: self.reg.clone(),
        })
    }
}

impl Ticket {
    fn touch(&self) {
        self.slot.last.store(self.reg.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once this connection has been stalled (no byte either way, no request being
    /// handled) for [`STALL_TIMEOUT`].
    pub(super) async fn stalled(&self) {
        loop {
            let last = Duration::from_millis(self.slot.last.load(Ordering::Relaxed));
            let idle = self.reg.epoch.elapsed().saturating_sub(last);
            if idle >= STALL_TIMEOUT && self.slot.busy.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wait = STALL_TIMEOUT
                .saturating_sub(idle)
                .max(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.reg.lock().remove(&self.id);
    }
}

/// Marks a request as being handled while alive.
pub(super) struct Busy(Arc<Slot>);

impl Busy {
    pub(super) fn new(slot: &Arc<Slot>) -> Busy {
        slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when bytes last moved, for eviction and the stall timeout.
pub(super) struct Tracked {
    pub(super) io: TcpStream,
    pub(super) ticket: Arc<Ticket>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.ticket.touch();
            self.ticket.slot.heard.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.ticket.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.ticket.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_idlest_unbusy_connection_goes() {
        let reg = Arc::new(Registry::new(3, usize::MAX));
        let (a, _) = reg.admit().unwrap();
        let (b, _) = reg.admit().unwrap();
        let (c, _) = reg.admit().unwrap();
        a.slot.last.store(5, Ordering::Relaxed);
        b.slot.last.store(1, Ordering::Relaxed);
        c.slot.last.store(3, Ordering::Relaxed);
        // b is idlest but serving a scrape: c goes.
        let busy = Busy::new(&b.slot);
        let (d, evicted) = reg.admit().unwrap();
        assert!(evicted);
        assert!(!reg.lock().contains_key(&c.id) && reg.lock().contains_key(&b.id));
        // Everyone busy: refused.
        let _busy = [Busy::new(&a.slot), Busy::new(&d.slot)];
        assert!(reg.admit().is_none());
        drop(busy);
        let (_e, evicted) = reg.admit().unwrap();
        assert!(evicted && !reg.lock().contains_key(&b.id));
        // A ticket leaving frees its place.
        drop(a);
        assert_eq!(reg.lock().len(), 2);
    }

    #[test]
    fn silent_connections_go_before_ones_that_sent_a_request() {
        let reg = Arc::new(Registry::new(2, usize::MAX));
        let (talker, _) = reg.admit().unwrap();
        let (silent, _) = reg.admit().unwrap();
        // The talker is idler (older last byte), but it sent something; the silent one goes.
        talker.slot.last.store(1, Ordering::Relaxed);
        silent.slot.last.store(9, Ordering::Relaxed);
        talker.slot.heard.store(true, Ordering::Relaxed);
        let (_new, evicted) = reg.admit().unwrap();
        assert!(evicted);
        let open = reg.lock();
        assert!(open.contains_key(&talker.id) && !open.contains_key(&silent.id));
    }

    #[test]
    fn unread_responses_past_the_budget_evict_their_connections() {
        let reg = Arc::new(Registry::new(10, 100));
        let tickets: Vec<Ticket> = (0..3).map(|_| reg.admit().unwrap().0).collect();
        let held = |t: &Ticket| Held {
            reg: reg.clone(),
            slot: t.slot.clone(),
        };
        for (i, t) in tickets.iter().enumerate() {
            t.slot.last.store(i as u64, Ordering::Relaxed);
        }
        let b0 = held(&tickets[0]).hold(vec![0; 40]);
        let b1 = held(&tickets[1]).hold(vec![0; 40]);
        assert_eq!(reg.pending.load(Ordering::Relaxed), 80);
        assert_eq!(reg.lock().len(), 3);
        // 80 + 40 > 100: the least recently active holder (0) is evicted, 1 stays.
        let b2 = held(&tickets[2]).hold(vec![0; 40]);
        assert!(!reg.lock().contains_key(&tickets[0].id));
        assert!(reg.lock().contains_key(&tickets[1].id));
        // Written (dropped by hyper): the bytes leave the count.
        drop((b0, b1, b2));
        assert_eq!(reg.pending.load(Ordering::Relaxed), 0);
        assert_eq!(tickets[1].slot.pending.load(Ordering::Relaxed), 0);
    }
}
