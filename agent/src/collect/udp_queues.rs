//! udp_queues collector, as node_exporter 1.12: the transmit and receive queue bytes of every
//! UDP socket summed from `<procfs>/net/udp` and `net/udp6` into
//! `node_udp_queues{queue="tx|rx",ip="v4|v6"}`. A missing file leaves its address family out
//! (IPv6 disabled); both missing is "no data" (success 0); any line procfs cannot parse fails
//! the collector, as procfs's socket-line parser does.

use anyhow::Context;

use super::attr::HeldFile;
use super::{netlink, util, Collector, Family, MetricType, Options};

/// Queue totals of one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queues {
    pub tx: u64,
    pub rx: u64,
}

fn hex_ip_ok(s: &str) -> bool {
    util::go_hex_decode(s).is_some_and(|b| b.len() == 4 || b.len() == 16)
}

/// `addr:port` as procfs checks it: two parts, an address of 4 or 16 hex bytes, a hex port.
fn addr_port_ok(s: &str) -> bool {
    let mut it = s.split(':');
    match (it.next(), it.next(), it.next()) {
        (Some(ip), Some(port), None) => {
            hex_ip_ok(ip) && util::go_parse_uint(port, 16, 64).is_some()
        }
        _ => false,
    }
}

/// Sums the tx/rx queues of /proc/net/udp{,6} (the first line is the header).
pub fn parse_udp(text: &str) -> anyhow::Result<Queues> {
    let mut q = Queues::default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let bad = || anyhow::anyhow!("invalid socket line {line:?}");
        // procfs needs 10 columns, and column 13 (drops) for UDP.
        if f.len() < 13 {
            return Err(bad());
        }
        let mut sl = f[0].split(':');
        let sl_ok = matches!((sl.next(), sl.next(), sl.next()), (Some(n), Some(_), None)
            if util::go_parse_uint(n, 0, 64).is_some());
        let (Some(tx), Some(rx)) = f[4]
            .split_once(':')
            .filter(|(_, rx)| !rx.contains(':'))
            .map(|(tx, rx)| {
                (
                    util::go_parse_uint(tx, 16, 64),
                    util::go_parse_uint(rx, 16, 64),
                )
            })
            .unwrap_or((None, None))
        else {
            return Err(bad());
        };
        if !sl_ok
            || !addr_port_ok(f[1])
            || !addr_port_ok(f[2])
            || util::go_parse_uint(f[3], 16, 64).is_none()
            || util::go_parse_uint(f[7], 0, 64).is_none()
            || util::go_parse_uint(f[9], 0, 64).is_none()
            || util::go_parse_uint(f[12], 0, 64).is_none()
        {
            return Err(bad());
        }
        q.tx = q.tx.wrapping_add(tx);
        q.rx = q.rx.wrapping_add(rx);
    }
    Ok(q)
}

fn render(v4: Option<Queues>, v6: Option<Queues>, out: &mut Vec<Family>) {
    let mut f = Family::new(
        "node_udp_queues",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
        MetricType::Gauge,
    );
    for (q, ip) in [(v4, "v4"), (v6, "v6")] {
        if let Some(q) = q {
            f.push(&[("queue", "tx"), ("ip", ip)], q.tx as f64);
            f.push(&[("queue", "rx"), ("ip", ip)], q.rx as f64);
        }
    }
    out.push(f);
}

struct UdpQueues {
    v4: HeldFile,
    v6: HeldFile,
    /// The address families asked over NETLINK_SOCK_DIAG instead of their file: where
    /// `--path.procfs` is the real /proc, and for IPv6 only where /proc/net/udp6 exists
    /// (with IPv6 disabled at boot the kernel still answers, with no sockets).
    diag_v4: bool,
    diag_v6: bool,
}

/// The queues of every UDP socket of `family` (this network namespace's), from sock_diag:
/// the same two numbers per socket that /proc/net/udp prints (`udp_rqueue_get` and
/// `sk_wmem_alloc_get`), without a text line per socket to print and parse, and one walk of
/// the kernel's UDP hash table instead of two (reading a seq_file to its end starts a walk
/// again).
fn diag(family: u8) -> std::io::Result<Queues> {
    let mut q = Queues::default();
    netlink::inet_diag(family, libc::IPPROTO_UDP as u8, u32::MAX, |msg| {
        // struct inet_diag_msg: idiag_rqueue at 56, idiag_wqueue at 60.
        let (Some(rx), Some(tx)) = (netlink::u32_at(msg, 56), netlink::u32_at(msg, 60)) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "short inet_diag_msg",
            ));
        };
        q.rx = q.rx.wrapping_add(u64::from(rx));
        q.tx = q.tx.wrapping_add(u64::from(tx));
        Ok(None::<()>)
    })?;
    Ok(q)
}

/// `None` when the file does not exist.
fn read(file: &HeldFile) -> anyhow::Result<Option<Queues>> {
    let path = file.path();
    match file.text() {
        Ok(text) => parse_udp(&text)
            .map(Some)
            .with_context(|| format!("couldn't get udp queued bytes from {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl UdpQueues {
    /// One address family: over sock_diag where it is asked that way and answers (a kernel
    /// without udp_diag does not), else from its file.
    fn family(&self, file: &HeldFile, diag: bool, family: i32) -> anyhow::Result<Option<Queues>> {
        if diag {
            if let Ok(q) = self::diag(family as u8) {
                return Ok(Some(q));
            }
        }
        read(file)
    }
}

impl Collector for UdpQueues {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let v4 = self.family(&self.v4, self.diag_v4, libc::AF_INET)?;
        let v6 = self.family(&self.v6, self.diag_v6, libc::AF_INET6)?;
        anyhow::ensure!(
            v4.is_some() || v6.is_some(),
            "no data: neither {} nor {} exists",
            self.v4.path().display(),
            self.v6.path().display()
        );
        render(v4, v6, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let real = opts.procfs == std::path::Path::new("/proc");
    let v6 = opts.procfs.join("net/udp6");
    Ok(Box::new(UdpQueues {
        v4: HeldFile::new(opts.procfs.join("net/udp")),
        diag_v4: real,
        diag_v6: real && v6.exists(),
        v6: HeldFile::new(v6),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  195: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17040 2 0000000000000000 0
  301: 0100007F:0035 00000000:0000 07 00000100:00000a00 00:00000000 00000000   101        0 20188 2 0000000000000000 3
";

    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000000000000000000000000000:0222 00000000000000000000000000000000:0000 07 00000010:00000020 00:00000000 00000000     0        0 1 2 0000000000000000 0
";

    fn collect(root: &std::path::Path) -> anyhow::Result<Vec<Family>> {
        let c =
            build(&Options::from_flags([format!("--path.procfs={}", root.display())]).unwrap())?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out)
    }

    #[test]
    fn sums_both_families() {
        assert_eq!(
            parse_udp(UDP).unwrap(),
            Queues {
                tx: 0x100,
                rx: 0xa00
            }
        );
        assert_eq!(parse_udp(UDP6).unwrap(), Queues { tx: 0x10, rx: 0x20 });
        assert_eq!(parse_udp("").unwrap(), Queues::default());
        assert_eq!(parse_udp("header only\n").unwrap(), Queues::default());
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/udp"), UDP).unwrap();
        let f = collect(d.path()).unwrap();
        let s: Vec<_> = f[0]
            .samples
            .iter()
            .map(|s| (s.labels[0].1.as_str(), s.labels[1].1.as_str(), s.value))
            .collect();
        // IPv6 off: only v4.
        assert_eq!(s, [("tx", "v4", 256.0), ("rx", "v4", 2560.0)]);
        std::fs::write(d.path().join("net/udp6"), UDP6).unwrap();
        assert_eq!(collect(d.path()).unwrap()[0].samples.len(), 4);
    }

    #[test]
    fn garbled_lines_and_missing_files_fail() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path()).is_err());
        let head = UDP.lines().next().unwrap();
        for bad in [
            // Too few columns (no drops), an empty line, a bad queue, a bad address.
            "  1: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1",
            "",
            "  1: 00000000:0044 00000000:0000 07 0000000x:00000000 00:00000000 00000000 0 0 1 2 0 0",
            "  1: 000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0",
            "  1: 00000000:0044 00000000:0000 07 00000000 00:00000000 00000000 0 0 1 2 0 0",
            "  x: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0",
            "  1: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 -1",
        ] {
            assert!(parse_udp(&format!("{head}\n{bad}\n")).is_err(), "{bad:?}");
        }
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/udp6"), format!("{head}\nbad\n")).unwrap();
        assert!(collect(d.path()).is_err());
    }
}
