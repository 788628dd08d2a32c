//! Routing one request: authentication, method and size checks, the landing page, the
//! concurrent-request limit, `collect[]`/`exclude[]`, content negotiation (text or OpenMetrics,
//! gzip) and the scrape itself.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::sync::Semaphore;

use super::conn::Held;
use super::Endpoint;
use crate::expose::encode::{self, Format};
use crate::expose::webconfig::Settings;

/// Longest request URI (path and query) answered; longer ones get 414. Longer than any
/// `collect[]` list, far below the 64 KiB head buffer (past which hyper answers 431).
pub const MAX_URI: usize = 8 * 1024;

pub(super) type Resp = Response<Full<Bytes>>;

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
    // Names and values are percent-decoded (and '+' is a space), as Go's url.ParseQuery does.
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "collect[]" => collect.push(v.into_owned()),
            "exclude[]" => exclude.push(v.into_owned()),
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

pub(super) async fn handle(
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
    // promhttp's instrumentation: in flight while served, then counted by status code.
    let flight = ep.exporter_metrics.as_ref().map(|m| m.begin());
    let r = metrics(ep, sem, conn, req).await;
    // node_exporter answers a bad collect[]/exclude[] (400) before promhttp's handler.
    if let Some(f) = flight.filter(|_| r.status() != StatusCode::BAD_REQUEST) {
        f.answered(r.status().as_u16());
    }
    r
}

/// The metrics handler proper: the request limit, the filters and the scrape.
async fn metrics(
    ep: Arc<Endpoint>,
    sem: Arc<Semaphore>,
    conn: Held,
    req: Request<Incoming>,
) -> Resp {
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
    let fams = match &ep.exporter_metrics {
        Some(m) => m.gather(fams),
        None => encode::normalize(fams),
    };
    // Sized from the last scrape, so the text is written without growing (and copying) its
    // buffer several times, nor holding twice the room it needs.
    static LAST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = String::with_capacity((last + last / 8).max(64 * 1024));
    encode::encode(&fams, format, &mut out);
    LAST.store(out.len(), std::sync::atomic::Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Any escape in names and values, not just the brackets.
        assert_eq!(
            filter(Some("%63ollect%5b%5d=mem%69nfo&collect[]=%63pu&x=%zz"), &en),
            Ok(Some((true, vec!["meminfo".into(), "cpu".into()])))
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
    }
}
