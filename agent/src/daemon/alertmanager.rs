//! Pushing alerts to Alertmanager's v2 API (`POST /api/v2/alerts`), with retries. Firing
//! alerts are re-sent on every evaluation, as Alertmanager expects; a resolved alert is sent
//! once with its end time.

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
                "annotations": { "summary": a.summary, "remedy": a.remedy },
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

/// Splits `http://host:port/prefix` into (host:port, path prefix).
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// Alertmanager URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

async fn post_once(host: &str, path: &str, body: &Bytes) -> anyhow::Result<()> {
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
    let req = hyper::Request::post(format!("{path}/api/v2/alerts"))
        .header("host", host)
        .header("content-type", "application/json")
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
    let (host, path) = split_url(url)?;
    let body = Bytes::from(body(alerts, instance, SystemTime::now()).to_string());
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
        }
        match tokio::time::timeout(Duration::from_secs(10), post_once(&host, &path, &body)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("timed out after 10 s")),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
        .context(format!("pushing alerts to {url}")))
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
        assert_eq!(
            split_url("http://127.0.0.1:9093").unwrap(),
            ("127.0.0.1:9093".into(), String::new())
        );
        assert_eq!(
            split_url("http://am/prefix/").unwrap(),
            ("am:80".into(), "/prefix".into())
        );
        assert!(split_url("https://am").is_err());
    }
}
