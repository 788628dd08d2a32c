//! Logging, the one entry point for the whole program: [`log`]`(level, message, fields)`.
//!
//! Where stderr is connected to the journal (systemd sets `$JOURNAL_STREAM`), events go to the
//! journal's native socket with their fields (`KEY=net.core.somaxconn`, `CODE_FILE`, …) unless
//! `--log.format` was given explicitly. Otherwise, as node_exporter does on a terminal or into
//! a file, one line per event on stderr: logfmt (`time=… level=INFO source=… msg="…"
//! key=value`) or JSON. `--log.level` drops events below it (debug, info, warn, error).

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// An event's severity, as a syslog priority (the journal's PRIORITY field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 3,
    Warning = 4,
    /// A normal but significant event (start, reload, correction); `info` in logfmt and JSON.
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    /// The level name in logfmt and JSON lines (log/slog's names, as node_exporter writes).
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARN",
            Level::Notice | Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// `--log.level`: the least severe events written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Threshold {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl Threshold {
    fn lets_through(self, level: Level) -> bool {
        let worst = match self {
            Threshold::Debug => Level::Debug,
            Threshold::Info => Level::Info,
            Threshold::Warn => Level::Warning,
            Threshold::Error => Level::Error,
        };
        level <= worst
    }
}

/// `--log.format`: how lines on stderr look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Logfmt,
    Json,
}

/// The settings in force: threshold, format, and whether the format was asked for explicitly
/// (which also sends journal-connected output to stderr as lines of that format).
static THRESHOLD: AtomicU8 = AtomicU8::new(Threshold::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(0);
const FORMAT_JSON: u8 = 1;
const FORMAT_EXPLICIT: u8 = 2;

/// Sets the level and format; `format` None keeps logfmt and the native journal.
pub fn init(threshold: Threshold, format: Option<Format>) {
    THRESHOLD.store(threshold as u8, Ordering::Relaxed);
    let f = match format {
        None => 0,
        Some(Format::Logfmt) => FORMAT_EXPLICIT,
        Some(Format::Json) => FORMAT_EXPLICIT | FORMAT_JSON,
    };
    FORMAT.store(f, Ordering::Relaxed);
}

fn threshold() -> Threshold {
    match THRESHOLD.load(Ordering::Relaxed) {
        0 => Threshold::Debug,
        1 => Threshold::Info,
        2 => Threshold::Warn,
        _ => Threshold::Error,
    }
}

/// Whether an event of this level would be written (skip building costly debug messages).
pub fn enabled(level: Level) -> bool {
    threshold().lets_through(level)
}

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// True when stderr is the journal stream systemd connected (`$JOURNAL_STREAM` = its dev:ino).
fn stderr_is_journal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| {
        let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = stream.split_once(':') else {
            return false;
        };
        std::fs::metadata("/proc/self/fd/2")
            .map(|m| m.dev().to_string() == dev && m.ino().to_string() == ino)
            .unwrap_or(false)
    })
}

fn journal() -> Option<&'static UnixDatagram> {
    static SOCK: OnceLock<Option<UnixDatagram>> = OnceLock::new();
    SOCK.get_or_init(|| {
        if !stderr_is_journal() {
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

/// The source file relative to the crate's src/ (`daemon/mod.rs`), as node_exporter's
/// `source=` names its Go file.
fn short_file(loc: &Location<'static>) -> &'static str {
    let f: &'static str = loc.file();
    f.rsplit_once("/src/").map_or(f, |(_, rest)| rest)
}

/// A logfmt value: bare when it is a plain token, else quoted with Go-style escapes.
fn logfmt_value(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && c != '\u{7f}');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One event as a line (without the newline), in logfmt or JSON. Field names are written in
/// lower case (`KEY` → `key`), as logfmt and JSON consumers expect.
fn line(
    json: bool,
    now: SystemTime,
    level: Level,
    source: &str,
    message: &str,
    fields: &[(&str, &str)],
) -> String {
    let time = humantime::format_rfc3339_millis(now).to_string();
    let mut out = String::with_capacity(128 + message.len());
    if json {
        let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
        let _ = write!(
            out,
            "{{\"time\":{},\"level\":\"{}\",\"source\":{},\"msg\":{}",
            s(&time),
            level.name(),
            s(source),
            s(message)
        );
        for (k, v) in fields {
            let _ = write!(out, ",{}:{}", s(&k.to_ascii_lowercase()), s(v));
        }
        out.push('}');
    } else {
        let _ = write!(
            out,
            "time={time} level={} source={source} msg=",
            level.name()
        );
        logfmt_value(&mut out, message);
        for (k, v) in fields {
            out.push(' ');
            out.push_str(&k.to_ascii_lowercase());
            out.push('=');
            logfmt_value(&mut out, v);
        }
    }
    out
}

/// Logs a message with extra structured fields (upper-case names, e.g. KEY, EXPECTED): the
/// one way anything in nodetune writes a log event.
#[track_caller]
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    if !enabled(level) {
        return;
    }
    let loc = Location::caller();
    let format = FORMAT.load(Ordering::Relaxed);
    if format & FORMAT_EXPLICIT == 0 {
        if let Some(sock) = journal() {
            let mut buf = Vec::with_capacity(256);
            field(&mut buf, "PRIORITY", &(level as u8).to_string());
            field(&mut buf, "SYSLOG_IDENTIFIER", "nodetune");
            field(&mut buf, "MESSAGE", message);
            field(&mut buf, "CODE_FILE", short_file(loc));
            field(&mut buf, "CODE_LINE", &loc.line().to_string());
            for (k, v) in fields {
                field(&mut buf, k, v);
            }
            if sock.send(&buf).is_ok() {
                return;
            }
        }
    }
    let source = format!("{}:{}", short_file(loc), loc.line());
    let text = line(
        format & FORMAT_JSON != 0,
        SystemTime::now(),
        level,
        &source,
        message,
        fields,
    );
    // Under systemd without the native socket, a priority prefix keeps the journal's levels.
    if stderr_is_journal() && format & FORMAT_EXPLICIT == 0 {
        eprintln!("<{}>{text}", level as u8);
    } else {
        eprintln!("{text}");
    }
}

/// Lets one event per key through each period and counts those held back, for events a
/// client can cause at will (refused TLS handshakes, unreachable Alertmanagers).
pub struct Limiter {
    period: Duration,
    seen: Mutex<Vec<(String, Instant, u64)>>,
}

impl Limiter {
    pub const fn new(period: Duration) -> Limiter {
        Limiter {
            period,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// `Some(n)` when an event for `key` may be logged now, `n` being how many were held
    /// back since the last one; `None` to drop it.
    pub fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = seen.iter_mut().find(|e| e.0 == key) {
            if now.duration_since(e.1) < self.period {
                e.2 += 1;
                return None;
            }
            e.1 = now;
            return Some(std::mem::take(&mut e.2));
        }
        // Keys are reasons and addresses: few, but bounded all the same.
        if seen.len() >= 256 {
            seen.clear();
        }
        seen.push((key.to_string(), now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn native_fields() {
        let mut b = Vec::new();
        field(&mut b, "KEY", "net.core.somaxconn");
        field(&mut b, "M", "a\nb");
        assert_eq!(&b[..23], b"KEY=net.core.somaxconn\n");
        assert_eq!(&b[23..25], b"M\n");
        assert_eq!(&b[25..33], &3u64.to_le_bytes());
        assert_eq!(&b[33..], b"a\nb\n");
    }

    #[test]
    fn logfmt_and_json_lines() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let fields = [("KEY", "net.core.somaxconn"), ("WRITER", "x \"y\"\n")];
        assert_eq!(
            line(false, t, Level::Warning, "watch/drift.rs:9", "drift: a = 1", &fields),
            "time=2026-11-18T11:06:40.123Z level=WARN source=watch/drift.rs:9 msg=\"drift: a = 1\" \
             key=net.core.somaxconn writer=\"x \\\"y\\\"\\n\""
        );
        assert_eq!(
            line(false, t, Level::Notice, "a.rs:1", "started", &[("E", "")]),
            "time=2026-11-18T11:06:40.123Z level=INFO source=a.rs:1 msg=started e=\"\""
        );
        let j = line(true, t, Level::Debug, "a.rs:1", "m \"q\"", &fields);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["time"], "2026-11-18T11:06:40.123Z");
        assert_eq!(v["level"], "DEBUG");
        assert_eq!(v["msg"], "m \"q\"");
        assert_eq!(v["writer"], "x \"y\"\n");
        assert!(j.starts_with("{\"time\":"), "{j}");
    }

    #[test]
    fn thresholds() {
        assert!(Threshold::Info.lets_through(Level::Notice));
        assert!(!Threshold::Info.lets_through(Level::Debug));
        assert!(!Threshold::Warn.lets_through(Level::Notice));
        assert!(Threshold::Warn.lets_through(Level::Error));
        assert!(Threshold::Debug.lets_through(Level::Debug));
        assert!(!Threshold::Error.lets_through(Level::Warning));
    }

    #[test]
    fn limiter_counts_what_it_holds_back() {
        let l = Limiter::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(l.admit("a", t), Some(0));
        assert_eq!(l.admit("a", t + Duration::from_secs(1)), None);
        assert_eq!(l.admit("a", t + Duration::from_secs(2)), None);
        assert_eq!(l.admit("b", t + Duration::from_secs(2)), Some(0));
        assert_eq!(l.admit("a", t + Duration::from_secs(61)), Some(2));
    }
}
