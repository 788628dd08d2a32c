//! Pushing alerts to Alertmanager's v2 API (`POST /api/v2/alerts`), with retries. Firing
//! alerts are re-sent on every evaluation, as Alertmanager expects; a resolved alert is sent
//! once with its end time.

use base64::Engine;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::watch::alerts::{Alert, State};

/// RFC 3339 UTC time (what Alertmanager's startsAt/endsAt take).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The JSON body for a batch of alerts.
pub fn body(alerts: &[Alert], instance: &str, now: SystemTime) -> Value {
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut labels = serde_json::Map::new();
            labels.insert("alertname".into(), a.name.into());
            labels.insert("severity".into(), a.severity.into());
            labels.insert("instance".into(), instance.into());
            labels.insert("job".into(), "nodetune".into());
            for (k, v) in &a.labels {
                labels.insert(k.clone(), v.clone().into());
            }
            let mut alert = json!({
                "labels": labels,
                "annotations": { "summary": a.summary, "knob": a.knob, "remedy": a.remedy },
                "startsAt": rfc3339(a.started),
            });
            if a.state == State::Resolved {
                alert["endsAt"] = rfc3339(now).into();
            }
            alert
        })
        .collect();
    Value::Array(list)
}

/// Where to post: `host:port`, a path prefix, and basic-auth credentials from the URL's
/// userinfo (`http://user:password@host/`), if any.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    path: String,
    auth: Option<String>,
}

/// Splits `http://[user:password@]host:port/prefix`.
fn split_url(url: &str) -> anyhow::Result<Target> {
    let rest = url.strip_prefix("http://").with_context(|| {
        format!(
            "{}: only http:// Alertmanager URLs are supported",
            redact_url(url)
        )
    })?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (auth, host) = match host.rsplit_once('@') {
        Some((userinfo, host)) => (
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(userinfo)
            )),
            host,
        ),
        None => (None, host),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok(Target {
        host,
        path: path.to_string(),
        auth,
    })
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

async fn post_once(t: &Target, body: &Bytes) -> anyhow::Result<()> {
    let host = t.host.as_str();
    let stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::post(format!("{}/api/v2/alerts", t.path))
        .header("host", host)
        .header("content-type", "application/json");
    if let Some(auth) = &t.auth {
        req = req.header("authorization", auth);
    }
    let req = req
        .body(Full::new(body.clone()))
        .context("building request")?;
    let resp = sender.send_request(req).await.context("sending alerts")?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        anyhow::bail!(
            "Alertmanager answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        );
    }
    Ok(())
}

/// Posts alerts, retrying with backoff (3 tries, 10 s timeout each).
pub async fn push(url: &str, alerts: &[Alert], instance: &str) -> anyhow::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let target = split_url(url)?;
    let body = Bytes::from(body(alerts, instance, SystemTime::now()).to_string());
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
        }
        match tokio::time::timeout(Duration::from_secs(10), post_once(&target, &body)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("timed out after 10 s")),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
        .context(format!("pushing alerts to {}", redact_url(url))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_urls() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_825_600)),
            "2000-02-29T12:00:00Z"
        );
        let t = |host: &str, path: &str, auth: Option<&str>| Target {
            host: host.into(),
            path: path.into(),
            auth: auth.map(Into::into),
        };
        assert_eq!(
            split_url("http://127.0.0.1:9093").unwrap(),
            t("127.0.0.1:9093", "", None)
        );
        assert_eq!(
            split_url("http://am/prefix/").unwrap(),
            t("am:80", "/prefix", None)
        );
        assert_eq!(
            split_url("http://ops:p@ss@am:9093/x").unwrap(),
            t("am:9093", "/x", Some("Basic b3BzOnBAc3M="))
        );
        let e = format!("{:#}", split_url("https://ops:hunter2@am").unwrap_err());
        assert!(!e.contains("hunter2") && e.contains("ops:***@am"), "{e}");
        assert_eq!(
            redact_url("http://ops:hunter2@am:9093/p"),
            "http://ops:***@am:9093/p"
        );
        assert_eq!(redact_url("http://am:9093/p@x"), "http://am:9093/p@x");
    }
}
