//! Logging for the daemon: to the journal with structured fields when stderr is connected to
//! it (systemd sets $JOURNAL_STREAM), else one line per event on stderr.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

/// syslog priorities used here.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

fn journal() -> Option<&'static UnixDatagram> {
    static SOCK: OnceLock<Option<UnixDatagram>> = OnceLock::new();
    SOCK.get_or_init(|| {
        let stream = std::env::var("JOURNAL_STREAM").ok()?;
        let (dev, ino) = stream.split_once(':')?;
        let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
        if meta.dev().to_string() != dev || meta.ino().to_string() != ino {
            return None;
        }
        let s = UnixDatagram::unbound().ok()?;
        s.connect(JOURNAL_SOCKET).ok()?;
        Some(s)
    })
    .as_ref()
}

/// Appends one field in the journal's native format (binary form for multi-line values).
fn field(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'\n');
    } else {
        buf.push(b'=');
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'\n');
    }
}

/// Logs a message with extra structured fields (upper-case names, e.g. KEY, EXPECTED).
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    if let Some(sock) = journal() {
        let mut buf = Vec::with_capacity(256);
        field(&mut buf, "PRIORITY", &(level as u8).to_string());
        field(&mut buf, "SYSLOG_IDENTIFIER", "nodetune");
        field(&mut buf, "MESSAGE", message);
        for (k, v) in fields {
            field(&mut buf, k, v);
        }
        if sock.send(&buf).is_ok() {
            return;
        }
    }
    let mut line = format!("<{}>nodetune: {message}", level as u8);
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v:?}"));
    }
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn native_fields() {
        let mut b = Vec::new();
        super::field(&mut b, "KEY", "net.core.somaxconn");
        super::field(&mut b, "M", "a\nb");
        assert_eq!(&b[..23], b"KEY=net.core.somaxconn\n");
        assert_eq!(&b[23..25], b"M\n");
        assert_eq!(&b[25..33], &3u64.to_le_bytes());
        assert_eq!(&b[33..], b"a\nb\n");
    }
}
