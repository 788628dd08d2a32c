//! The accept loop: admit each connection (or refuse it at the cap), drive it with hyper over
//! plain TCP or TLS, and drain connections on shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::conn::{Busy, Held, Registry, Ticket, Tracked, PENDING_BUDGET};
use super::handshake;
use super::route::{handle, Resp};
use super::Endpoint;

/// Request heads (request line and headers) larger than this get 431.
const MAX_HEAD: usize = 64 * 1024;

/// A TLS handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request head must arrive within this; also closes keep-alive connections idle this long.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves once shutdown is requested (never, if the sender is gone without requesting it).
async fn stop_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Drives one connection until it ends, is evicted or stalls, or until shutdown: then
/// in-flight requests finish (keep-alive is ended) within a few seconds.
async fn drive<I, S>(
    b: &hyper::server::conn::http1::Builder,
    io: I,
    svc: S,
    ticket: &Ticket,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send,
    S: hyper::service::Service<Request<Incoming>, Response = Resp, Error = Infallible> + Send,
    S::Future: Send,
{
    let conn = b.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    // Evicted or stalled: dropping the connection closes the socket.
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = ticket.slot.evict.notified() => {}
        _ = ticket.stalled() => {}
        _ = stop_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// The whole answer to a connection refused at the cap (every connection is handling a
/// request): small enough for the socket buffer of a fresh connection, so never blocks.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 52\r\n\r\n\
Limit of open connections reached, try again later.\n";

/// Serves until `shutdown` turns true: then stops accepting and lets connections drain.
/// Returns once every connection has ended (or after the drain timeout).
pub async fn serve(
    listeners: Vec<TcpListener>,
    ep: Arc<Endpoint>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let sem = Arc::new(Semaphore::new(ep.max_requests.max(1)));
    let reg = Arc::new(Registry::new(ep.max_connections, PENDING_BUDGET));
    // Every connection task holds a sender: recv() returns None once all have ended.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for l in listeners {
        let (ep, sem, reg, alive, mut stop) = (
            ep.clone(),
            sem.clone(),
            reg.clone(),
            alive.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = l.accept() => a,
                    _ = stop_requested(&mut stop) => break,
                };
                let Ok((stream, peer)) = accepted else {
                    // EMFILE and the like: back off (as Go's server does) rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let web = ep.web.current();
                let Some((ticket, evicted)) = reg.admit() else {
                    if web.tls.is_none() {
                        let _ = stream.try_write(REFUSED);
                    }
                    continue;
                };
                let ticket = Arc::new(ticket);
                let (ep, sem, stop, alive) = (ep.clone(), sem.clone(), stop.clone(), alive.clone());
                let reg = reg.clone();
                tokio::spawn(async move {
                    let _alive = alive;
                    let tls = web.tls.clone();
                    let slot = ticket.slot.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let busy = Busy::new(&slot);
                        let (ep, sem, web) = (ep.clone(), sem.clone(), web.clone());
                        let held = Held {
                            reg: reg.clone(),
                            slot: slot.clone(),
                        };
                        async move {
                            let r = handle(ep, sem, web, held, req).await;
                            drop(busy);
                            r
                        }
                    });
                    let mut b = hyper::server::conn::http1::Builder::new();
                    // Bounded memory whatever the client does: header size and read time.
                    b.timer(TokioTimer::new())
                        .max_buf_size(MAX_HEAD)
                        .header_read_timeout(HEADER_TIMEOUT);
                    let io = Tracked {
                        io: stream,
                        ticket: ticket.clone(),
                    };
                    match tls {
                        Some(acceptor) => {
                            // A handshake that never completes must not hold the task forever.
                            let hs = tokio::select! {
                                hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)) => hs,
                                _ = ticket.slot.evict.notified() => return,
                            };
                            // A refusal says why (rate-limited): an mTLS client that
                            // cannot connect is otherwise a mystery on both ends.
                            match hs {
                                Ok(Ok(s)) => drive(&b, s, svc, &ticket, stop).await,
                                Ok(Err(e)) => handshake::log_refusal(Some(peer), &handshake::explain_io(&e)),
                                Err(_) => handshake::log_refusal(Some(peer), &handshake::timed_out(HANDSHAKE_TIMEOUT)),
                            }
                        }
                        None => drive(&b, io, svc, &ticket, stop).await,
                    }
                });
                if evicted {
                    // Let the evicted connection close before accepting more: descriptors stay
                    // at the cap (plus one) during a flood.
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    drop(alive);
    for t in tasks {
        let _ = t.await;
    }
    // Drain: wait (bounded) until every connection task has ended.
    let _ = tokio::time::timeout(Duration::from_secs(6), all_done.recv()).await;
}
