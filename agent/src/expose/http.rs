//! The HTTP endpoint: `/metrics` (or `--web.telemetry-path`) with keep-alive, gzip,
//! OpenMetrics negotiation, `collect[]`/`exclude[]` filters and a concurrent-request limit
//! (503 past it), plus a small landing page.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let mut r = route(ep, sem, &web, req).await;
    for (k, v) in &web.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::try_from(k.as_str()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

async fn route(
    ep: Arc<Endpoint>,
    sem: Arc<Semaphore>,
    web: &Settings,
    req: Request<Incoming>,
) -> Resp {
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !web.authorized(auth) {
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
    let gzip =
        header(ACCEPT_ENCODING).is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
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

/// Most connections served at once; more are closed on accept (bounded memory and
/// descriptors whatever clients do, e.g. thousands of idle keep-alive connections).
pub const MAX_CONNECTIONS: usize = 512;

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

/// Drives one connection until it ends, or until shutdown: then in-flight requests finish
/// (keep-alive is ended) within a few seconds.
async fn drive<I, S>(
    b: &hyper::server::conn::http1::Builder,
    io: I,
    svc: S,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    S: hyper::service::Service<Request<Incoming>, Response = Resp, Error = Infallible> + Send,
    S::Future: Send,
{
    let conn = b.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// Serves until `shutdown` turns true: then stops accepting and lets connections drain.
/// Returns once every connection has ended (or after the drain timeout).
pub async fn serve(
    listeners: Vec<TcpListener>,
    ep: Arc<Endpoint>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let sem = Arc::new(Semaphore::new(ep.max_requests.max(1)));
    let conns = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = Vec::new();
    for l in listeners {
        let (ep, sem, conns, mut stop) = (ep.clone(), sem.clone(), conns.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = l.accept() => a,
                    _ = stop_requested(&mut stop) => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                // Over the cap: close at once rather than queue.
                let Ok(permit) = conns.clone().try_acquire_owned() else {
                    continue;
                };
                let (ep, sem, stop) = (ep.clone(), sem.clone(), stop.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let web = ep.web.current();
                    let tls = web.tls.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        handle(ep.clone(), sem.clone(), web.clone(), req)
                    });
                    let mut b = hyper::server::conn::http1::Builder::new();
                    // Bounded memory whatever the client does: header size and read time.
                    b.timer(TokioTimer::new())
                        .max_buf_size(64 * 1024)
                        .header_read_timeout(Duration::from_secs(30));
                    match tls {
                        Some(acceptor) => {
                            // A handshake that never completes must not hold the task forever.
                            let hs = tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await;
                            if let Ok(Ok(s)) = hs {
                                drive(&b, s, svc, stop).await;
                            }
                        }
                        None => drive(&b, stream, svc, stop).await,
                    }
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // Drain: wait (bounded) until every connection task has released its permit.
    let _ = tokio::time::timeout(
        Duration::from_secs(6),
        conns.acquire_many(MAX_CONNECTIONS as u32),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
