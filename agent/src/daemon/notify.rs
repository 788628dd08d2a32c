//! systemd's notification protocol (sd_notify): READY=1, WATCHDOG=1 and STATUS= lines sent
//! as one datagram to $NOTIFY_SOCKET. Without the variable (not started by systemd with
//! Type=notify) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (newline-separated assignments) to the notification socket, if any.
pub fn notify(state: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket address (Linux).
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(())
}

/// The watchdog period systemd expects pings within, if the watchdog is on for this process
/// (WATCHDOG_USEC, and WATCHDOG_PID unset or ours).
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_to_a_socket_path() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // Only this test sets the variable; the daemon test uses its own process.
        std::env::set_var("NOTIFY_SOCKET", &path);
        super::notify("READY=1\nSTATUS=ok").unwrap();
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
        super::notify("READY=1").unwrap();
    }
}
