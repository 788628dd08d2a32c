//! Why a TLS handshake was refused, in words an operator can act on, logged at most once a
//! minute per reason (a client can fail handshakes at will). Nothing secret is logged: the
//! peer's address and the reason, never certificate contents or keys.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustls::{CertificateError, Error, PeerIncompatible};

use crate::base::log::{self, Level, Limiter};

/// A refused handshake: a short stable reason (a log field) and the explanation.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub text: String,
    /// Worth a warning (a client that should work does not), or only a debug line (a port
    /// scanner or health check that closes the connection).
    pub warn: bool,
}

fn refusal(reason: &'static str, text: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        text: text.into(),
        warn: true,
    }
}

const REISSUE: &str = "how to reissue it: docs/endpoint.md (Client certificates)";

/// What a rustls error during the handshake means for the operator.
fn explain(e: &Error) -> Refusal {
    match e {
        Error::NoCertificatesPresented => refusal(
            "no-client-certificate",
            "the client sent no certificate, and client_auth_type RequireAndVerifyClientCert requires one",
        ),
        Error::InvalidCertificate(c) => certificate(c),
        Error::PeerIncompatible(
            PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled,
        ) => refusal(
            "unsupported-version",
            "the client offers no TLS version this endpoint accepts (TLS 1.2 and 1.3, narrowed by min_version/max_version)",
        ),
        Error::PeerIncompatible(p) => refusal(
            "incompatible",
            format!("the client has nothing in common with this endpoint's TLS settings ({p:?})"),
        ),
        Error::AlertReceived(a) => refusal(
            "client-alert",
            format!(
                "the client ended the handshake with alert {a:?}: it likely does not trust this endpoint's certificate (check its CA file and the certificate's names)"
            ),
        ),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => refusal(
            "not-tls",
            "the client does not speak TLS (plain http:// to the https endpoint?)",
        ),
        other => refusal("other", format!("{other}")),
    }
}

fn certificate(c: &CertificateError) -> Refusal {
    match c {
        CertificateError::UnknownIssuer => refusal(
            "unknown-ca",
            format!("the client certificate is not signed by a CA in client_ca_file; {REISSUE}"),
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => refusal(
            "expired",
            format!("the client certificate has expired; {REISSUE}"),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => refusal(
            "not-yet-valid",
            "the client certificate is not valid yet (check both clocks)",
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            refusal(
                "wrong-usage",
                format!(
                    "the client certificate is not for client authentication (its extendedKeyUsage lacks clientAuth); {REISSUE}"
                ),
            )
        }
        // webpki refuses X.509 v1 (no extensions, so no usage to check): what
        // `openssl x509 -req` makes without -extfile. node_exporter accepts it.
        CertificateError::Other(o) if o.to_string().contains("UnsupportedCertVersion") => refusal(
            "x509-v1",
            "the client certificate is X.509 v1 (made without extensions, as `openssl x509 -req` does without -extfile); only v3 certificates are accepted: reissue it with extendedKeyUsage=clientAuth (docs/endpoint.md, Client certificates)",
        ),
        CertificateError::Revoked => refusal("revoked", "the client certificate is revoked"),
        other => refusal(
            "bad-certificate",
            format!("the client certificate was refused: {other:?}"),
        ),
    }
}

/// The refusal behind a failed `TlsAcceptor::accept`.
pub fn explain_io(e: &std::io::Error) -> Refusal {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return explain(tls);
    }
    Refusal {
        reason: "closed",
        text: format!("the connection ended during the handshake ({e})"),
        warn: false,
    }
}

/// The refusal when no handshake arrived in time.
pub fn timed_out(limit: Duration) -> Refusal {
    Refusal {
        reason: "timeout",
        text: format!("no TLS handshake within {} s", limit.as_secs()),
        warn: false,
    }
}

static REFUSED: Limiter = Limiter::new(Duration::from_secs(60));

/// Logs a refused handshake: a warning per reason at most once a minute (with the count of
/// those held back), the rest at debug level.
pub fn log_refusal(peer: Option<SocketAddr>, r: &Refusal) {
    let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let held = if r.warn {
        REFUSED.admit(r.reason, Instant::now())
    } else {
        None
    };
    let (level, more) = match held {
        Some(0) => (Level::Warning, String::new()),
        Some(n) => (
            Level::Warning,
            format!(" ({n} more refused for this reason in the last minute)"),
        ),
        None => (Level::Debug, String::new()),
    };
    if !log::enabled(level) {
        return;
    }
    log::log(
        level,
        &format!("TLS handshake from {peer} refused: {}{more}", r.text),
        &[("PEER", &peer), ("REASON", r.reason)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let r = |e: Error| explain(&e).reason;
        assert_eq!(r(Error::NoCertificatesPresented), "no-client-certificate");
        assert_eq!(
            r(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            "unknown-ca"
        );
        assert_eq!(
            r(Error::InvalidCertificate(CertificateError::Expired)),
            "expired"
        );
        assert_eq!(
            r(Error::InvalidCertificate(CertificateError::InvalidPurpose)),
            "wrong-usage"
        );
        assert_eq!(
            r(Error::PeerIncompatible(
                PeerIncompatible::SupportedVersionsExtensionRequired
            )),
            "unsupported-version"
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(explain_io(&io).reason, "unknown-ca");
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(!explain_io(&eof).warn);
    }
}
