//! Listening: node_exporter-style addresses, binding, and fitting the connection cap under
//! the open-files limit.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

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

/// Descriptors kept free below RLIMIT_NOFILE for listeners, collectors' files, logs and the
/// runtime, when the connection cap is fitted under it.
pub const FD_RESERVE: usize = 128;

/// Raises the soft RLIMIT_NOFILE to the hard limit (as Go does at start, so node_exporter
/// does too), so that 1000+ connections fit; returns the soft limit now in force.
pub fn raise_nofile_limit() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// The connection cap actually used: the configured one, or less where RLIMIT_NOFILE would
/// run out first (accept failing with EMFILE would refuse every newcomer, scrapes included).
/// Besides [`FD_RESERVE`], the attributes the collectors may hold open stay free
/// ([`crate::collect::attr::held_budget`]).
pub fn fit_connection_cap(wanted: usize, nofile: Option<libc::rlim_t>) -> usize {
    match nofile {
        Some(n) => {
            let held = crate::collect::attr::held_budget(n);
            wanted.min((n as usize).saturating_sub(FD_RESERVE + held).max(1))
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen(":9100").unwrap()[0].to_string(), "[::]:9100");
        assert_eq!(
            parse_listen("127.0.0.1:1").unwrap()[0].to_string(),
            "127.0.0.1:1"
        );
    }

    #[test]
    fn connection_cap_fits_the_fd_limit() {
        assert_eq!(
            fit_connection_cap(1024, Some(1024)),
            1024 - FD_RESERVE - 256
        );
        assert_eq!(fit_connection_cap(1024, Some(1_048_576)), 1024);
        assert_eq!(
            fit_connection_cap(8192, Some(8192)),
            8192 - FD_RESERVE - 2048
        );
        assert_eq!(fit_connection_cap(1024, Some(10)), 1);
        assert_eq!(fit_connection_cap(1024, None), 1024);
    }
}
