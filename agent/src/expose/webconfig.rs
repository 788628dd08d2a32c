//! `--web.config.file`: TLS, client certificates and basic auth in the Prometheus
//! exporter-toolkit `web-config.yml` format, so the same file node_exporter uses works here.
//! The file is re-read when it changes; a broken new file keeps the old settings.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted for compatibility; rustls picks safe suites and curves itself.
    #[serde(default, rename = "cipher_suites")]
    _cipher_suites: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "curve_preferences")]
    _curve_preferences: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "prefer_server_cipher_suites")]
    _prefer_server_cipher_suites: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    // HTTP/2 is not offered; the setting is accepted and ignored.
    #[serde(default, rename = "http2")]
    _http2: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsServerConfig>,
    http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

/// The settings in force.
pub struct Settings {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Extra response headers, checked when the file is loaded.
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    users: BTreeMap<String, String>,
    /// `user\0password` pairs already verified (bcrypt is slow on purpose).
    verified: Mutex<HashSet<String>>,
}

/// A bcrypt hash of a random password, checked for unknown users so that they take as long
/// as known ones.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

impl Settings {
    /// Plain HTTP, no authentication.
    pub fn none() -> Settings {
        Settings {
            tls: None,
            headers: Vec::new(),
            users: BTreeMap::new(),
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// The answer for an `Authorization` header when it needs no bcrypt check: no users
    /// configured, a malformed header, or credentials verified before. `None`: call
    /// [`Settings::authorized`], which is slow on purpose (run it off the event loop).
    pub fn quick_check(&self, header: Option<&str>) -> Option<bool> {
        if self.users.is_empty() {
            return Some(true);
        }
        let Some((user, pass)) = credentials(header) else {
            return Some(false);
        };
        let key = format!("{user}\0{pass}");
        let seen = self.verified.lock().map(|v| v.contains(&key));
        seen.unwrap_or(false).then_some(true)
    }

    /// Checks an `Authorization` header; true when no users are configured.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        if let Some(answer) = self.quick_check(header) {
            return answer;
        }
        let Some((user, pass)) = credentials(header) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let ok = bcrypt::verify(&pass, hash).unwrap_or(false) && known;
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                // Bounded: a flood of distinct valid pairs cannot grow memory without limit.
                if v.len() > 1000 {
                    v.clear();
                }
                v.insert(format!("{user}\0{pass}"));
            }
        }
        ok
    }
}

/// `user` and `password` from a `Basic` authorization header.
fn credentials(header: Option<&str>) -> Option<(String, String)> {
    let cred = header
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())?;
    let (user, pass) = cred.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Highest bcrypt cost accepted: each check of a wrong password costs 2^cost rounds, about
/// 0.3 s at 12 on a server core, so a higher cost lets any client burn CPU at will (cost 20
/// takes minutes per request).
const MAX_BCRYPT_COST: u32 = 12;

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> anyhow::Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |v: &str| -> anyhow::Result<u8> {
        match v {
            "TLS10" | "TLS11" => anyhow::bail!("{v} is not supported; use TLS12 or TLS13"),
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            other => anyhow::bail!("unknown TLS version {other:?} (TLS12 or TLS13)"),
        }
    };
    let lo = min.map(rank).transpose()?.unwrap_or(12);
    let hi = max.map(rank).transpose()?.unwrap_or(13);
    let mut out = Vec::new();
    if lo <= 12 && hi >= 12 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 13 {
        out.push(&rustls::version::TLS13);
    }
    anyhow::ensure!(!out.is_empty(), "min_version is above max_version");
    Ok(out)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Loads a web-config file. Relative paths in it are relative to the file, as in
/// exporter-toolkit.
/// serde quotes the offending value in type errors (`invalid type: string "…"`); in this file
/// that value may be a password hash or a mistyped password, and errors go to the journal.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut parts = msg.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        // Odd pieces are inside quotes.
        out.push('"');
        out.push_str(if i % 2 == 0 { "<redacted>" } else { part });
    }
    out
}

pub fn load(path: &Path) -> anyhow::Result<Settings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(path, &text)
}

/// Parses web-config text; `path` names it in errors and anchors relative certificate paths.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<Settings> {
    let f: File = serde_norway::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {}", path.display(), redact_quoted(&e.to_string()))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    for (user, hash) in &f.basic_auth_users {
        anyhow::ensure!(
            hash.starts_with("$2"),
            "{}: basic_auth_users.{user}: not a bcrypt hash (generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            path.display()
        );
        let cost = hash.split('$').nth(2).and_then(|c| c.parse::<u32>().ok());
        if let Some(cost) = cost.filter(|c| *c > MAX_BCRYPT_COST) {
            anyhow::bail!(
                "{}: basic_auth_users.{user}: bcrypt cost {cost} is too high (at most {MAX_BCRYPT_COST}: every wrong password would cost the server 2^{cost} rounds); generate the hash with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                path.display()
            );
        }
    }
    let tls = match f.tls_server_config {
        None => None,
        Some(t) => {
            let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) else {
                anyhow::bail!(
                    "{}: tls_server_config needs both cert_file and key_file",
                    path.display()
                );
            };
            let (cert, key) = (resolve(base, cert), resolve(base, key));
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    anyhow::anyhow!("reading certificates from {}: {e}", cert.display())
                })?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| anyhow::anyhow!("reading key from {}: {e}", key.display()))?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&versions(
                    t.min_version.as_deref(),
                    t.max_version.as_deref(),
                )?)
                .context("TLS versions")?;
            let auth = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
            let builder = if auth == "NoClientCert" {
                builder.with_no_client_auth()
            } else {
                let ca = t
                    .client_ca_file
                    .as_ref()
                    .map(|c| resolve(base, c))
                    .with_context(|| {
                        format!(
                            "{}: client_auth_type {auth} needs client_ca_file",
                            path.display()
                        )
                    })?;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(&ca)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca.display()))?
                {
                    let c = c.map_err(|e| anyhow::anyhow!("reading {}: {e}", ca.display()))?;
                    roots
                        .add(c)
                        .with_context(|| format!("adding a CA from {}", ca.display()))?;
                }
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let v = match auth {
                    "RequireAndVerifyClientCert" => v.build(),
                    "VerifyClientCertIfGiven" | "RequestClientCert" => v.allow_unauthenticated().build(),
                    other => anyhow::bail!(
                        "{}: client_auth_type {other:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
                        path.display()
                    ),
                }
                .context("client certificate verifier")?;
                builder.with_client_cert_verifier(v)
            };
            let mut cfg = builder
                .with_single_cert(certs, key)
                .context("certificate and key do not match")?;
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
        }
    };
    // Checked here, once, not skipped at response time: a header that cannot be sent is a
    // mistake the operator should see when the file is loaded.
    let mut headers = Vec::new();
    for (name, value) in f.http_server_config.map(|h| h.headers).unwrap_or_default() {
        let n = hyper::header::HeaderName::try_from(name.as_str()).map_err(|_| {
            anyhow::anyhow!(
                "{}: http_server_config.headers: {name:?} is not a valid header name",
                path.display()
            )
        })?;
        let v = hyper::header::HeaderValue::from_str(&value).map_err(|_| {
            anyhow::anyhow!(
                "{}: http_server_config.headers.{name}: the value is not a valid header value (printable ASCII, no line breaks)",
                path.display()
            )
        })?;
        headers.push((n, v));
    }
    Ok(Settings {
        tls,
        headers,
        users: f.basic_auth_users,
        verified: Mutex::new(HashSet::new()),
    })
}

/// The web config in force, re-read when the file changes.
pub struct Watched {
    path: Option<PathBuf>,
    state: Mutex<(Option<SystemTime>, Arc<Settings>)>,
}

impl Watched {
    /// Loads the file (an error here stops the start) or plain settings without one.
    pub fn new(path: Option<PathBuf>) -> anyhow::Result<Watched> {
        let (mtime, s) = match &path {
            Some(p) => (
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
                load(p)?,
            ),
            None => (None, Settings::none()),
        };
        Ok(Watched {
            path,
            state: Mutex::new((mtime, Arc::new(s))),
        })
    }

    /// The current settings, reloading first if the file changed.
    pub fn current(&self) -> Arc<Settings> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &self.path {
            let mtime = std::fs::metadata(p).and_then(|m| m.modified()).ok();
            if mtime != st.0 {
                st.0 = mtime;
                match load(p) {
                    Ok(s) => st.1 = Arc::new(s),
                    Err(e) => crate::base::log::log(
                        crate::base::log::Level::Error,
                        &format!(
                            "web config changed but is invalid, keeping the previous one: {e:#}"
                        ),
                        &[],
                    ),
                }
            }
        }
        st.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_costs_that_let_clients_burn_cpu_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.yml");
        // Cost 20: found by the webconfig fuzz target, one check took 225 s.
        let hash = "$2b$20$ZwQesbPsIsa99zuXWvWOK.K7rlYaK7N7CFvdSPWjPcrLmV.7D6NCG";
        std::fs::write(&p, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
        let e = format!("{:#}", load(&p).err().unwrap());
        assert!(
            e.contains("basic_auth_users.prometheus: bcrypt cost 20 is too high (at most 12"),
            "{e}"
        );
        let ok = "$2b$10$ZwQesbPsIsa99zuXWvWOK.K7rlYaK7N7CFvdSPWjPcrLmV.7D6NCG";
        std::fs::write(&p, format!("basic_auth_users:\n  prometheus: {ok}\n")).unwrap();
        let s = load(&p).unwrap();
        let good = "Basic cHJvbWV0aGV1czpzM2NyZXQ=";
        assert_eq!(s.quick_check(Some(good)), None, "not verified yet");
        assert!(s.authorized(Some(good)));
        assert_eq!(s.quick_check(Some(good)), Some(true), "cached");
        assert_eq!(s.quick_check(Some("Bearer x")), Some(false));
    }

    #[test]
    fn headers_that_cannot_be_sent_are_refused_at_load() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.yml");
        std::fs::write(&p, "http_server_config:\n  headers:\n    \"Bad Name\": x\n").unwrap();
        let e = format!("{:#}", load(&p).err().unwrap());
        assert!(e.contains("\"Bad Name\" is not a valid header name"), "{e}");
        std::fs::write(&p, "http_server_config:\n  headers:\n    X-A: \"a\\nb\"\n").unwrap();
        let e = format!("{:#}", load(&p).err().unwrap());
        assert!(
            e.contains("headers.X-A: the value is not a valid header value"),
            "{e}"
        );
    }

    #[test]
    fn values_in_parse_errors_are_redacted() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "hunter2", expected a map"#),
            r#"invalid type: string "<redacted>", expected a map"#
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.yml");
        std::fs::write(&p, "basic_auth_users: \"pw-HUNTER2\"\n").unwrap();
        let e = format!("{:#}", load(&p).err().unwrap());
        assert!(!e.contains("HUNTER2") && e.contains("web.yml:1:"), "{e}");
    }

    #[test]
    fn basic_auth_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.yml");
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(&p, format!("basic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n")).unwrap();
        let s = load(&p).unwrap();
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(s.authorized(Some(&b64("prometheus:s3cret"))));
        assert!(s.authorized(Some(&b64("prometheus:s3cret"))), "cached");
        assert!(!s.authorized(Some(&b64("prometheus:wrong"))));
        assert!(!s.authorized(Some(&b64("nobody:s3cret"))));
        assert!(!s.authorized(None));
        let headers: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(headers, vec![("x-frame-options", "deny")]);
        std::fs::write(&p, "tls_server_config:\n  cert_fil: x\n").unwrap();
        let e = load(&p).err().unwrap().to_string();
        assert!(e.contains("unknown field `cert_fil`"), "{e}");
        std::fs::write(&p, "basic_auth_users:\n  u: plain\n").unwrap();
        assert!(load(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("not a bcrypt hash"));
        assert!(Settings::none().authorized(None));
    }
}
