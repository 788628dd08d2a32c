//! Pushing alerts to Alertmanager's v2 API (`POST /api/v2/alerts`): to every configured
//! Alertmanager (as Prometheus sends to each member of an HA cluster), over http or https (the
//! system's CA bundle or a CA file, optionally a client certificate), with basic auth or a
//! bearer token read from files at each delivery.
//!
//! Firing alerts are re-sent on every evaluation, as Alertmanager expects; a resolved alert is
//! sent with its end time and kept until one delivery succeeds. Each Alertmanager has its own
//! task that retries with backoff and folds newer batches in, so a slow or dead one neither
//! delays the others nor the drift loop: [`Client::push`] only queues.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Uri;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::base::log::{self, Level, Limiter};
use crate::watch::alerts::{Alert, State, Thresholds};

/// Delivery attempts per batch, and the pause before the second (doubled each time).
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Resolved alerts kept for an unreachable Alertmanager, at most.
const MAX_CARRIED: usize = 1000;

/// RFC 3339 UTC time, whole seconds (what Alertmanager's startsAt/endsAt take).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An alert as queued: resolved ones carry the time they resolved.
#[derive(Debug, Clone)]
struct Queued {
    alert: Alert,
    ends: Option<SystemTime>,
}

/// What one delivery sends.
#[derive(Debug, Clone, Default)]
struct Batch {
    alerts: Vec<Queued>,
    instance: String,
}

impl Batch {
    /// `newer` on top of `self`: its alerts replace the same alerts here; of the rest only
    /// resolutions stay (a firing alert absent from a newer batch was re-sent there or
    /// resolved there).
    fn merge(mut self, newer: Batch) -> Batch {
        let same = |a: &Alert, b: &Alert| a.name == b.name && a.labels == b.labels;
        self.alerts.retain(|q| {
            q.alert.state == State::Resolved
                && !newer.alerts.iter().any(|n| same(&n.alert, &q.alert))
        });
        self.alerts.extend(newer.alerts);
        if self.alerts.len() > MAX_CARRIED {
            let extra = self.alerts.len() - MAX_CARRIED;
            self.alerts.drain(..extra);
        }
        Batch {
            alerts: self.alerts,
            instance: newer.instance,
        }
    }
}

/// The JSON body for a batch of alerts.
fn body(batch: &Batch) -> Value {
    let list: Vec<Value> = batch
        .alerts
        .iter()
        .map(|q| {
            let a = &q.alert;
            let mut labels = serde_json::Map::new();
            labels.insert("alertname".into(), a.name.into());
            labels.insert("severity".into(), a.severity.into());
            labels.insert("instance".into(), batch.instance.clone().into());
            labels.insert("job".into(), "nodetune".into());
            for (k, v) in &a.labels {
                labels.insert(k.clone(), v.clone().into());
            }
            let mut alert = json!({
                "labels": labels,
                "annotations": { "summary": a.summary, "knob": a.knob, "remedy": a.remedy },
                "startsAt": rfc3339(a.started),
            });
            if let Some(ends) = q.ends {
                alert["endsAt"] = rfc3339(ends).into();
            }
            alert
        })
        .collect();
    Value::Array(list)
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    None,
    /// From the URL's userinfo (kept for `http://user:password@host` configurations).
    Inline(String),
    /// `username` and the password in a file, read at each delivery.
    Basic(String, PathBuf),
    /// A bearer token in a file, read at each delivery.
    Bearer(PathBuf),
}

/// One Alertmanager.
#[derive(Debug)]
struct Target {
    /// The URL as logs may show it (password replaced by `***`).
    shown: String,
    https: bool,
    /// `host:port` to connect to, and the Host header.
    addr: String,
    host: String,
    server_name: ServerName<'static>,
    /// Path prefix + /api/v2/alerts.
    path: String,
    auth: Auth,
}

/// The URL as it may appear in logs: a password in it is replaced by `***`.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn target(url: &str, server_name: Option<&str>, auth: &Auth) -> anyhow::Result<Target> {
    let shown = redact_url(url);
    let uri: Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{shown}: not a URL ({e})"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => anyhow::bail!("{shown}: the URL must start with http:// or https://"),
    };
    let authority = uri
        .authority()
        .with_context(|| format!("{shown}: the URL has no host"))?;
    let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority.as_str()),
    };
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = authority.host();
    let addr = format!("{host}:{port}");
    let auth = match (userinfo, auth) {
        (Some(u), Auth::None) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let pair = format!("{}:{}", decode(user), decode(pass));
            Auth::Inline(base64::engine::general_purpose::STANDARD.encode(pair))
        }
        (Some(_), _) => anyhow::bail!(
            "{shown}: credentials in the URL and in [alerts.alertmanager]: keep one of them"
        ),
        (None, a) => a.clone(),
    };
    let name = server_name.unwrap_or(host.trim_start_matches('[').trim_end_matches(']'));
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| anyhow::anyhow!("{shown}: {name:?} is not a valid TLS server name"))?;
    let path = format!("{}/api/v2/alerts", uri.path().trim_end_matches('/'));
    Ok(Target {
        shown,
        https,
        addr,
        host: hostport.to_string(),
        server_name,
        path,
        auth,
    })
}

fn read_secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} from {}", path.display()))?;
    let s = s.trim();
    anyhow::ensure!(!s.is_empty(), "{} holds no {what}", path.display());
    Ok(s.to_string())
}

/// The TLS client settings: roots from the CA file or the system, a client certificate.
fn tls_config(am: &crate::watch::alerts::Alertmanager) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &am.ca_file {
        Some(ca) => {
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("ca-file {}: {e}", ca.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "ca-file {}: no PEM certificate in it",
                ca.display()
            );
            for c in certs {
                roots
                    .add(c)
                    .with_context(|| format!("ca-file {}", ca.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            anyhow::ensure!(
                added > 0,
                "no system CA certificates found ({}): install ca-certificates or set [alerts.alertmanager] ca-file",
                found
                    .errors
                    .first()
                    .map_or("none".to_string(), |e| e.to_string())
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots);
    let mut cfg = match (&am.cert_file, &am.key_file) {
        (Some(cert), Some(key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("cert-file {}: {e}", cert.display()))?;
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow::anyhow!("key-file {}: {e}", key.display()))?;
            builder.with_client_auth_cert(certs, k).with_context(|| {
                format!(
                    "cert-file {} and key-file {} do not match",
                    cert.display(),
                    key.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Why a delivery failed, and whether trying again can help.
struct Failed {
    retry: bool,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failed {
    fn from(e: E) -> Failed {
        Failed {
            retry: true,
            error: e.into(),
        }
    }
}

async fn post_once(
    t: &Target,
    tls: Option<&tokio_rustls::TlsConnector>,
    body: &Bytes,
) -> Result<(), Failed> {
    let stream = tokio::net::TcpStream::connect(&t.addr)
        .await
        .with_context(|| format!("connecting to {}", t.addr))?;
    let mut req = hyper::Request::post(&t.path)
        .header("host", &t.host)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("nodetune/", env!("CARGO_PKG_VERSION")),
        );
    match &t.auth {
        Auth::None => {}
        Auth::Inline(b64) => req = req.header("authorization", format!("Basic {b64}")),
        Auth::Basic(user, file) => {
            let pass = read_secret(file, "password")?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req = req.header("authorization", format!("Basic {b64}"));
        }
        Auth::Bearer(file) => {
            let token = read_secret(file, "bearer token")?;
            req = req.header("authorization", format!("Bearer {token}"));
        }
    }
    let req = req
        .body(Full::new(body.clone()))
        .context("building request")?;
    let resp = match (t.https, tls) {
        (true, Some(tls)) => {
            let s = tls
                .connect(t.server_name.clone(), stream)
                .await
                .context("TLS handshake")?;
            send(hyper_util::rt::TokioIo::new(s), req).await?
        }
        (true, None) => return Err(anyhow::anyhow!("https without TLS settings").into()),
        _ => send(hyper_util::rt::TokioIo::new(stream), req).await?,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text[..text.len().min(512)])
        .trim()
        .to_string();
    Err(Failed {
        // A request Alertmanager refuses stays refused; overload and outages may pass.
        retry: status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429,
        error: anyhow::anyhow!("Alertmanager answered {status}: {text}"),
    })
}

async fn send<I>(
    io: I,
    req: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.context("sending alerts")
}

/// Warnings about an unreachable Alertmanager: once a minute each.
static UNREACHABLE: Limiter = Limiter::new(Duration::from_secs(60));

/// Delivers batches to one Alertmanager until the client is dropped (a reload).
async fn deliver(
    t: Arc<Target>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    mut rx: mpsc::UnboundedReceiver<Batch>,
) {
    let mut carried = Batch::default();
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        let mut batch = std::mem::take(&mut carried).merge(first);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let result = loop {
            while let Ok(newer) = rx.try_recv() {
                batch = batch.merge(newer);
            }
            let bytes = Bytes::from(body(&batch).to_string());
            let r = match tokio::time::timeout(timeout, post_once(&t, tls.as_ref(), &bytes)).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("no answer within {timeout:?}").into()),
            };
            match r {
                Ok(()) => break Ok(()),
                Err(f) if !f.retry || attempt == ATTEMPTS => break Err(f.error),
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        };
        match result {
            Ok(()) => {
                if std::mem::replace(&mut failing, false) {
                    log::log(
                        Level::Notice,
                        &format!("alertmanager {}: delivering again", t.shown),
                        &[("URL", &t.shown)],
                    );
                }
                if log::enabled(Level::Debug) {
                    log::log(
                        Level::Debug,
                        &format!(
                            "alertmanager {}: delivered {} alert(s)",
                            t.shown,
                            batch.alerts.len()
                        ),
                        &[("URL", &t.shown)],
                    );
                }
            }
            Err(e) => {
                failing = true;
                // Firing alerts go again with the next evaluation; resolutions are kept.
                batch.alerts.retain(|q| q.alert.state == State::Resolved);
                let kept = batch.alerts.len();
                carried = batch;
                if let Some(held) = UNREACHABLE.admit(&t.shown, Instant::now()) {
                    let more = if held > 0 {
                        format!(" ({held} more failure(s) not logged)")
                    } else {
                        String::new()
                    };
                    log::log(
                        Level::Warning,
                        &format!(
                            "alertmanager {}: {e:#}; {ATTEMPTS} attempts failed, trying again with the next evaluation ({kept} resolution(s) kept){more}",
                            t.shown
                        ),
                        &[("URL", &t.shown)],
                    );
                }
            }
        }
    }
}

/// Pushes alerts to every configured Alertmanager.
pub struct Client {
    targets: Vec<Arc<Target>>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    /// One delivery task per Alertmanager, started by the first push (inside the runtime).
    queues: OnceLock<Vec<mpsc::UnboundedSender<Batch>>>,
}

impl Client {
    /// The client for `[alerts]`, or None without any Alertmanager URL. Checks URLs and reads
    /// the CA, certificate, key and secret files now, so that a mistake is a configuration
    /// error at start or reload, not a failure at the first alert.
    pub fn new(alerts: &Thresholds) -> anyhow::Result<Option<Client>> {
        let urls = alerts.alertmanager_urls();
        if urls.is_empty() {
            return Ok(None);
        }
        let am = &alerts.alertmanager;
        let auth = match (&am.username, &am.password_file, &am.bearer_token_file) {
            (Some(u), Some(p), _) => {
                read_secret(p, "password").context("[alerts.alertmanager] password-file")?;
                Auth::Basic(u.clone(), p.clone())
            }
            (_, _, Some(t)) => {
                read_secret(t, "bearer token")
                    .context("[alerts.alertmanager] bearer-token-file")?;
                Auth::Bearer(t.clone())
            }
            _ => Auth::None,
        };
        let targets = urls
            .iter()
            .map(|u| target(u, am.server_name.as_deref(), &auth).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("[alerts] Alertmanager URLs")?;
        let tls = if targets.iter().any(|t| t.https) || am.ca_file.is_some() {
            let cfg = tls_config(am).context("[alerts.alertmanager] TLS")?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        Ok(Some(Client {
            targets,
            tls,
            timeout: am.timeout,
            queues: OnceLock::new(),
        }))
    }

    /// Queues alerts for every Alertmanager and returns at once. Call inside the runtime.
    pub fn push(&self, alerts: &[Alert], instance: &str) {
        if alerts.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let batch = Batch {
            alerts: alerts
                .iter()
                .map(|a| Queued {
                    alert: a.clone(),
                    ends: (a.state == State::Resolved).then_some(now),
                })
                .collect(),
            instance: instance.to_string(),
        };
        let queues = self.queues.get_or_init(|| {
            self.targets
                .iter()
                .map(|t| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(deliver(t.clone(), self.tls.clone(), self.timeout, rx));
                    tx
                })
                .collect()
        });
        for q in queues {
            let _ = q.send(batch.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_000_000_900)),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_825_600)),
            "2000-02-29T12:00:00Z"
        );
    }

    #[test]
    fn urls_and_credentials() {
        let t = target("http://127.0.0.1:9093", None, &Auth::None).unwrap();
        assert_eq!(
            (t.https, t.addr.as_str(), t.path.as_str()),
            (false, "127.0.0.1:9093", "/api/v2/alerts")
        );
        assert_eq!(t.auth, Auth::None);
        let t = target("https://am.example/prefix/", None, &Auth::None).unwrap();
        assert_eq!(
            (t.https, t.addr.as_str(), t.path.as_str()),
            (true, "am.example:443", "/prefix/api/v2/alerts")
        );
        assert_eq!(t.server_name, ServerName::try_from("am.example").unwrap());
        let t = target("http://ops:p%40ss@am:9093/x", None, &Auth::None).unwrap();
        assert_eq!((t.addr.as_str(), t.host.as_str()), ("am:9093", "am:9093"));
        assert_eq!(t.auth, Auth::Inline("b3BzOnBAc3M=".into()), "ops:p@ss");
        assert_eq!(t.shown, "http://ops:***@am:9093/x");
        let t = target("https://[::1]:9093", Some("am.internal"), &Auth::None).unwrap();
        assert_eq!(t.addr, "[::1]:9093");
        assert_eq!(t.server_name, ServerName::try_from("am.internal").unwrap());
        let t = target("https://[::1]:9093", None, &Auth::None).unwrap();
        assert!(matches!(t.server_name, ServerName::IpAddress(_)));
        let e = format!(
            "{:#}",
            target("ftp://ops:hunter2@am", None, &Auth::None).unwrap_err()
        );
        assert!(
            !e.contains("hunter2") && e.contains("ops:***@am") && e.contains("http:// or https://"),
            "{e}"
        );
        let bearer = Auth::Bearer("/t".into());
        let e = format!(
            "{:#}",
            target("http://u:hunter2@am", None, &bearer).unwrap_err()
        );
        assert!(
            e.contains("keep one of them") && !e.contains("hunter2"),
            "{e}"
        );
        assert_eq!(
            redact_url("http://ops:hunter2@am:9093/p"),
            "http://ops:***@am:9093/p"
        );
        assert_eq!(redact_url("http://am:9093/p@x"), "http://am:9093/p@x");
    }

    fn alert(name: &'static str, state: State) -> Alert {
        Alert {
            name,
            severity: "warning",
            labels: vec![("key".into(), "k".into())],
            state,
            value: 1.0,
            summary: "s".into(),
            knob: "k",
            remedy: "r",
            since: Instant::now(),
            started: UNIX_EPOCH,
        }
    }

    fn batch(alerts: &[Alert]) -> Batch {
        Batch {
            alerts: alerts
                .iter()
                .map(|a| Queued {
                    alert: a.clone(),
                    ends: (a.state == State::Resolved).then_some(UNIX_EPOCH),
                })
                .collect(),
            instance: "h".into(),
        }
    }

    #[test]
    fn newer_batches_replace_but_resolutions_stay() {
        let old = batch(&[
            alert("A", State::Resolved),
            alert("B", State::Firing),
            alert("C", State::Resolved),
        ]);
        let new = batch(&[alert("C", State::Firing), alert("D", State::Firing)]);
        let m = old.merge(new);
        let got: Vec<(&str, State)> = m
            .alerts
            .iter()
            .map(|q| (q.alert.name, q.alert.state))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A", State::Resolved),
                ("C", State::Firing),
                ("D", State::Firing)
            ]
        );
        let v = body(&m);
        assert_eq!(v[0]["endsAt"], "1970-01-01T00:00:00Z");
        assert!(v[1].get("endsAt").is_none());
        assert_eq!(v[1]["labels"]["instance"], "h");
    }

    /// A stand-in Alertmanager on loopback: answers each request with the next status of
    /// `statuses` (200 once they run out) and reports each request's head.
    async fn fake_am(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let mut n = 0;
                // The head, then the body by Content-Length.
                while let Ok(m) = s.read(&mut buf[n..]).await {
                    if m == 0 {
                        break;
                    }
                    n += m;
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if n >= end + 4 + len {
                            break;
                        }
                    }
                }
                let status = statuses.next().unwrap_or(200);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        (addr, rx)
    }

    fn thresholds(
        urls: Vec<String>,
        f: impl FnOnce(&mut crate::watch::alerts::Alertmanager),
    ) -> Thresholds {
        let mut t = Thresholds::default();
        t.alertmanager.urls = urls;
        t.alertmanager.timeout = Duration::from_secs(30);
        f(&mut t.alertmanager);
        t
    }

    #[tokio::test]
    async fn bearer_token_from_a_file_and_retries_with_backoff() {
        let d = tempfile::tempdir().unwrap();
        let token = d.path().join("token");
        std::fs::write(&token, "s3cr3t-token\n").unwrap();
        // Two failures (503) then success: the third attempt delivers.
        let (addr, mut got) = fake_am(vec![503, 503]).await;
        let c = Client::new(&thresholds(vec![format!("http://{addr}/am")], |a| {
            a.bearer_token_file = Some(token.clone())
        }))
        .unwrap()
        .unwrap();
        c.push(&[alert("A", State::Firing)], "host-1");
        for _ in 0..3 {
            let req = tokio::time::timeout(Duration::from_secs(20), got.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(
                req.starts_with("POST /am/api/v2/alerts HTTP/1.1\r\n"),
                "{req}"
            );
            assert!(
                req.contains("authorization: Bearer s3cr3t-token\r\n"),
                "{req}"
            );
            assert!(
                req.contains("\"alertname\":\"A\"") && req.contains("\"instance\":\"host-1\""),
                "{req}"
            );
        }
        // A refused request (400) is not retried.
        let (addr, mut got) = fake_am(vec![400]).await;
        let pw = d.path().join("pw");
        std::fs::write(&pw, "hunter2").unwrap();
        let c = Client::new(&thresholds(vec![format!("http://{addr}")], |a| {
            a.username = Some("nodetune".into());
            a.password_file = Some(pw.clone());
        }))
        .unwrap()
        .unwrap();
        c.push(&[alert("A", State::Firing)], "h");
        let req = got.recv().await.unwrap();
        assert!(
            req.contains("authorization: Basic bm9kZXR1bmU6aHVudGVyMg==\r\n"),
            "{req}"
        );
        assert!(
            tokio::time::timeout(Duration::from_secs(3), got.recv())
                .await
                .is_err(),
            "400 is final"
        );
        // Missing secret files are configuration errors, before any alert.
        let e = Client::new(&thresholds(vec!["http://a".into()], |a| {
            a.bearer_token_file = Some(d.path().join("nope"))
        }))
        .err()
        .unwrap();
        assert!(
            format!("{e:#}").contains("bearer-token-file: reading the bearer token from"),
            "{e:#}"
        );
    }

    /// An Alertmanager that accepts connections and never answers holds up nobody else.
    #[tokio::test]
    async fn a_stuck_alertmanager_does_not_delay_the_others() {
        let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stuck_addr = stuck.local_addr().unwrap();
        let (addr, mut got) = fake_am(vec![]).await;
        let c = Client::new(&thresholds(
            vec![format!("http://{stuck_addr}"), format!("http://{addr}")],
            |_| {},
        ))
        .unwrap()
        .unwrap();
        c.push(&[alert("A", State::Firing)], "h");
        let req = tokio::time::timeout(Duration::from_secs(10), got.recv()).await;
        assert!(
            req.is_ok_and(|r| r.is_some()),
            "the healthy one got the alert"
        );
        drop(stuck);
    }
}
