//! The HTTP endpoint: `/metrics` (or `--web.telemetry-path`) with keep-alive, gzip,
//! OpenMetrics negotiation, `collect[]`/`exclude[]` filters and a concurrent-request limit
//! (503 past it), plus a small landing page. Open connections are capped
//! (`--web.max-connections`): at the cap the connection idle longest is dropped to make room.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

use super::encode::{self, Format};
use super::scrape::Scraper;
use super::webconfig::{Settings, Watched};
use crate::collect::Family;

/// Families added to every scrape by the daemon (nodetune_* metrics).
pub type Extra = Arc<dyn Fn() -> Vec<Family> + Send + Sync>;

/// What the endpoint serves.
pub struct Endpoint {
    pub scraper: Scraper,
    pub telemetry_path: String,
    /// 0 means no limit.
    pub max_requests: usize,
    /// Open connections at most (at least 1); see [`Registry`].
    pub max_connections: usize,
    pub extra: Option<Extra>,
    /// TLS, client certificates, basic auth and headers (`--web.config.file`).
    pub web: Watched,
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Parses `collect[]` and `exclude[]` from a query string into a filter, or an error text.
pub fn filter(
    query: Option<&str>,
    enabled: &[&'static str],
) -> Result<Option<(bool, Vec<String>)>, String> {
    let (mut collect, mut exclude) = (Vec::new(), Vec::new());
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k
            .replace("%5B", "[")
            .replace("%5D", "]")
            .replace("%5b", "[")
            .replace("%5d", "]");
        match k.as_str() {
            "collect[]" => collect.push(v.to_string()),
            "exclude[]" => exclude.push(v.to_string()),
            _ => {}
        }
    }
    if !collect.is_empty() && !exclude.is_empty() {
        return Err("collect[] and exclude[] cannot be used together".into());
    }
    let (include, names) = if collect.is_empty() {
        (false, exclude)
    } else {
        (true, collect)
    };
    if names.is_empty() {
        return Ok(None);
    }
    for n in &names {
        if !crate::collect::ALL.iter().any(|e| e.name == n) {
            return Err(format!("unknown collector {n:?}"));
        }
        if !enabled.contains(&n.as_str()) {
            return Err(format!("collector {n:?} is disabled"));
        }
    }
    Ok(Some((include, names)))
}

const LANDING: &str = "<!DOCTYPE html><html><head><title>nodetune</title></head><body>\
<h1>nodetune</h1><p>Kernel tuning, node metrics and saturation alerts.</p>\
<p><a href=\"METRICS\">Metrics</a></p></body></html>\n";

async fn handle(
    ep: Arc<Endpoint>,
    sem: Arc<Semaphore>,
    web: Arc<Settings>,
    conn: Held,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let mut r = route(ep, sem, web.clone(), conn, req).await;
    for (k, v) in &web.headers {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    Ok(r)
}

/// Checks credentials; a bcrypt check (tens of milliseconds on purpose) runs on a blocking
/// thread, at most two at a time, so wrong passwords sent in a loop cannot stall the event
/// loop or the scrapes of clients whose credentials are already verified.
async fn authorized(web: &Arc<Settings>, header: Option<&str>) -> bool {
    if let Some(answer) = web.quick_check(header) {
        return answer;
    }
    static BCRYPT: Semaphore = Semaphore::const_new(2);
    let Ok(_permit) = BCRYPT.acquire().await else {
        return false;
    };
    let (web, header) = (web.clone(), header.map(str::to_string));
    tokio::task::spawn_blocking(move || web.authorized(header.as_deref()))
        .await
        .unwrap_or(false)
}

async fn route(
    ep: Arc<Endpoint>,
    sem: Arc<Semaphore>,
    web: Arc<Settings>,
    conn: Held,
    req: Request<Incoming>,
) -> Resp {
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !authorized(&web, auth).await {
        let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic"),
        );
        return r;
    }
    // Read-only by construction: nothing here can change state, and other methods are
    // refused so that no proxy or client can mistake the endpoint for an API that does.
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // Scrape URLs are short; a huge query would only cost parsing time.
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI {
        return text(StatusCode::URI_TOO_LONG, "URI too long\n");
    }
    let path = req.uri().path();
    if path != ep.telemetry_path {
        if path == "/" {
            let mut r = text(
                StatusCode::OK,
                LANDING.replace("METRICS", &ep.telemetry_path),
            );
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return r;
        }
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    let permit = if ep.max_requests > 0 {
        match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "Limit of concurrent requests reached ({}), try again later.\n",
                        ep.max_requests
                    ),
                )
            }
        }
    } else {
        None
    };
    let selection = match filter(req.uri().query(), &ep.scraper.names()) {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = Format::negotiate(header(ACCEPT));
    let gzip = accepts_gzip(header(ACCEPT_ENCODING));
    let keep = |name: &str| match &selection {
        None => true,
        Some((true, names)) => names.iter().any(|n| n == name),
        Some((false, names)) => !names.iter().any(|n| n == name),
    };
    // The collectors run on the worker pool; this task just waits for them.
    let mut fams = ep.scraper.scrape_async(&keep).await;
    drop(permit);
    if let Some(extra) = &ep.extra {
        fams.extend(extra());
    }
    let fams = encode::normalize(fams);
    let mut out = String::with_capacity(64 * 1024);
    encode::encode(&fams, format, &mut out);
    let body = if gzip {
        let mut z = flate2::write::GzEncoder::new(
            Vec::with_capacity(out.len() / 4),
            flate2::Compression::fast(),
        );
        let _ = z.write_all(out.as_bytes());
        z.finish().unwrap_or_default()
    } else {
        out.into_bytes()
    };
    let mut r = Response::new(Full::new(conn.hold(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if gzip {
        r.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// Whether `Accept-Encoding` lists gzip with a non-zero quality (`gzip;q=0` refuses it).
pub fn accepts_gzip(header: Option<&str>) -> bool {
    header.is_some_and(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name_ok = parts.next().is_some_and(|n| n.eq_ignore_ascii_case("gzip"));
            let q = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(Some(1.0), |q| q.parse::<f64>().ok());
            name_ok && q.is_some_and(|q| q > 0.0)
        })
    })
}

/// Parses node_exporter-style listen addresses: `:9100` (all addresses), `HOST:PORT`,
/// `[::1]:PORT`.
pub fn parse_listen(addr: &str) -> anyhow::Result<Vec<SocketAddr>> {
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .with_context(|| format!("invalid port in {addr:?}"))?;
        return Ok(vec![SocketAddr::from(([0u16; 8], port))]);
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid listen address {addr:?}"))?
        .collect();
    anyhow::ensure!(
        !addrs.is_empty(),
        "listen address {addr:?} resolves to nothing"
    );
    Ok(addrs)
}

/// Binds the listeners (an IPv6 wildcard falls back to IPv4 where IPv6 is off).
pub async fn bind(addr: &str) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in parse_listen(addr)? {
        match TcpListener::bind(a).await {
            Ok(l) => out.push(l),
            Err(_) if a.ip().is_unspecified() && a.is_ipv6() => {
                let v4 = SocketAddr::from(([0, 0, 0, 0], a.port()));
                out.push(
                    TcpListener::bind(v4)
                        .await
                        .with_context(|| format!("listening on {v4}"))?,
                );
            }
            Err(e) => return Err(anyhow::anyhow!("listening on {a}: {e}")),
        }
    }
    Ok(out)
}

/// Longest request URI (path and query) answered; longer ones get 414. Longer than any
/// `collect[]` list, far below the 64 KiB head buffer (past which hyper answers 431).
pub const MAX_URI: usize = 8 * 1024;

/// Request heads (request line and headers) larger than this get 431.
const MAX_HEAD: usize = 64 * 1024;

/// A request head must arrive within this; also closes keep-alive connections idle this long.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection with no byte read or written for this long, and no request being handled, is
/// closed: this ends clients that never read their response (hyper has no write timeout).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of scrape responses held unwritten (clients that do not read) before such
/// connections are evicted; a scrape body is typically 100-300 kB.
const PENDING_BUDGET: usize = 32 * 1024 * 1024;

/// Descriptors kept free below RLIMIT_NOFILE for listeners, collectors' files, logs and the
/// runtime, when the connection cap is fitted under it.
pub const FD_RESERVE: usize = 128;

/// Raises the soft RLIMIT_NOFILE to the hard limit (as Go does at start, so node_exporter
/// does too), so that 1000+ connections fit; returns the soft limit now in force.
pub fn raise_nofile_limit() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// The connection cap actually used: the configured one, or less where RLIMIT_NOFILE would
/// run out first (accept failing with EMFILE would refuse every newcomer, scrapes included).
pub fn fit_connection_cap(wanted: usize, nofile: Option<libc::rlim_t>) -> usize {
    match nofile {
        Some(n) => wanted.min((n as usize).saturating_sub(FD_RESERVE).max(1)),
        None => wanted,
    }
}

/// One open connection as the accept loop sees it.
struct Slot {
    /// Milliseconds since [`Registry::epoch`] of the last byte read or written.
    last: AtomicU64,
    /// Requests whose handler is running (a scrape): such a connection is never evicted.
    busy: AtomicUsize,
    /// Whether the client has sent a byte: silent connections are evicted first.
    heard: AtomicBool,
    /// Bytes of response bodies this connection holds until they are written.
    pending: AtomicUsize,
    /// Notified when the connection is evicted to make room.
    evict: Notify,
}

/// The open connections. At the cap, a newcomer evicts a connection that has no request being
/// handled: one that never sent a byte if any (a connection flood), else the one that has gone
/// longest without a byte in either direction (idle keep-alive connections, slow-header
/// senders, clients that stopped reading), so a flood of them cannot lock scrapes out. Only when every connection is handling a request is the
/// newcomer refused (503).
struct Registry {
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
struct Ticket {
    id: u64,
    slot: Arc<Slot>,
    reg: Arc<Registry>,
}

impl Registry {
    fn new(cap: usize, pending_budget: usize) -> Registry {
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
    fn admit(self: &Arc<Self>) -> Option<(Ticket, bool)> {
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
struct HeldBody {
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
struct Held {
    reg: Arc<Registry>,
    slot: Arc<Slot>,
}

impl Held {
    fn hold(&self, data: Vec<u8>) -> Bytes {
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
    async fn stalled(&self) {
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
struct Busy(Arc<Slot>);

impl Busy {
    fn new(slot: &Arc<Slot>) -> Busy {
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
struct Tracked {
    io: TcpStream,
    ticket: Arc<Ticket>,
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
                let Ok((stream, _)) = accepted else {
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
                                hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io)) => hs,
                                _ = ticket.slot.evict.notified() => return,
                            };
                            if let Ok(Ok(s)) = hs {
                                drive(&b, s, svc, &ticket, stop).await;
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

    #[test]
    fn connection_cap_fits_the_fd_limit() {
        assert_eq!(fit_connection_cap(1024, Some(1024)), 1024 - FD_RESERVE);
        assert_eq!(fit_connection_cap(1024, Some(1_048_576)), 1024);
        assert_eq!(fit_connection_cap(1024, Some(10)), 1);
        assert_eq!(fit_connection_cap(1024, None), 1024);
    }

    #[test]
    fn gzip_negotiation() {
        for (h, want) in [
            (Some("gzip"), true),
            (Some("deflate, GZIP;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip;q=0.0, identity"), false),
            (Some("gzipx"), false),
            (Some("gzip;q=nope"), false),
            (Some("identity"), false),
            (None, false),
        ] {
            assert_eq!(accepts_gzip(h), want, "{h:?}");
        }
    }

    #[test]
    fn collect_and_exclude() {
        let en = ["cpu", "meminfo"];
        assert_eq!(filter(None, &en), Ok(None));
        assert_eq!(
            filter(Some("collect[]=cpu"), &en),
            Ok(Some((true, vec!["cpu".into()])))
        );
        assert_eq!(
            filter(Some("exclude%5B%5D=cpu"), &en),
            Ok(Some((false, vec!["cpu".into()])))
        );
        assert!(filter(Some("collect[]=cpu&exclude[]=meminfo"), &en)
            .unwrap_err()
            .contains("together"));
        assert_eq!(
            filter(Some("collect[]=nope"), &en).unwrap_err(),
            "unknown collector \"nope\""
        );
        assert_eq!(
            filter(Some("collect[]=hwmon"), &en).unwrap_err(),
            "collector \"hwmon\" is disabled"
        );
        assert_eq!(parse_listen(":9100").unwrap()[0].to_string(), "[::]:9100");
        assert_eq!(
            parse_listen("127.0.0.1:1").unwrap()[0].to_string(),
            "127.0.0.1:1"
        );
    }
}
