//! ipvs collector, as node_exporter 1.12: the IPVS totals of `<procfs>/net/ip_vs_stats`
//! (hex counters on its third line) and the per-backend connections and weights of
//! `<procfs>/net/ip_vs`, summed over backends that share the label values chosen with
//! `--collector.ipvs.backend-labels`. No ip_vs_stats (no ip_vs module) is "no data" (success
//! 0); a line procfs cannot parse fails the collector.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// Every backend label, in node_exporter's order.
const LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

#[derive(Debug, Clone, clap::Args)]
#[group(id = "ipvs-flags")]
pub struct Flags {
    /// Comma separated list for IPVS backend stats labels.
    #[arg(
        id = "collector.ipvs.backend-labels",
        long = "collector.ipvs.backend-labels",
        default_value = "local_address,local_port,remote_address,remote_port,proto,local_mark"
    )]
    pub backend_labels: String,
}

/// /proc/net/ip_vs_stats's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    pub incoming_packets: u64,
    pub outgoing_packets: u64,
    pub incoming_bytes: u64,
    pub outgoing_bytes: u64,
}

/// One "->" line of /proc/net/ip_vs, with its virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub local_address: Option<IpAddr>,
    pub local_port: u16,
    pub remote_address: IpAddr,
    pub remote_port: u16,
    pub local_mark: String,
    pub proto: String,
    pub active: u64,
    pub inactive: u64,
    pub weight: u64,
}

/// Parses ip_vs_stats: the third line holds five hex totals.
pub fn parse_stats(text: &str) -> anyhow::Result<Stats> {
    let mut lines = text.splitn(4, '\n');
    let (Some(_), Some(_), Some(third), Some(_)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        anyhow::bail!("ip_vs_stats corrupt: too short");
    };
    let f: Vec<&str> = third.split_whitespace().collect();
    anyhow::ensure!(
        f.len() == 5,
        "ip_vs_stats corrupt: unexpected number of fields"
    );
    let hex = |s: &str| {
        util::go_parse_uint(s, 16, 64).with_context(|| format!("invalid ip_vs_stats value {s:?}"))
    };
    Ok(Stats {
        connections: hex(f[0])?,
        incoming_packets: hex(f[1])?,
        outgoing_packets: hex(f[2])?,
        incoming_bytes: hex(f[3])?,
        outgoing_bytes: hex(f[4])?,
    })
}

/// procfs's parseIPPort: `0A000001:0050` (13 characters) or `[v6 address]:0050` (46).
fn ip_port(s: &str) -> anyhow::Result<(IpAddr, u16)> {
    let bad = || anyhow::anyhow!("unexpected IP:Port {s:?}");
    let ip = match s.len() {
        13 => {
            let b = s.get(..8).and_then(util::go_hex_decode).ok_or_else(bad)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        46 => s
            .get(1..40)
            .and_then(|a| a.parse::<IpAddr>().ok())
            .ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let port = s
        .get(s.len() - 4..)
        .and_then(|p| util::go_parse_uint(p, 16, 16))
        .ok_or_else(bad)?;
    Ok((ip, port as u16))
}

/// Parses /proc/net/ip_vs: virtual services (TCP/UDP address or FWM mark) and their backends.
pub fn parse_backends(text: &str) -> anyhow::Result<Vec<Backend>> {
    let mut out = Vec::new();
    let mut proto = String::new();
    let mut mark = String::new();
    let mut local: Option<(IpAddr, u16)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(&first) = f.first() else { continue };
        if first == "IP" || first == "Prot" || f.get(1) == Some(&"RemoteAddress:Port") {
            continue;
        }
        match first {
            "TCP" | "UDP" if f.len() >= 2 => {
                proto = first.to_string();
                mark.clear();
                local = Some(ip_port(f[1])?);
            }
            "FWM" if f.len() >= 2 => {
                proto = first.to_string();
                mark = f[1].to_string();
                local = None;
            }
            "->" if f.len() >= 6 => {
                let (remote_address, remote_port) = ip_port(f[1])?;
                let num = |s: &str| {
                    util::go_parse_uint(s, 10, 64)
                        .with_context(|| format!("invalid ip_vs value {s:?}"))
                };
                out.push(Backend {
                    local_address: local.map(|l| l.0),
                    local_port: local.map_or(0, |l| l.1),
                    remote_address,
                    remote_port,
                    local_mark: mark.clone(),
                    proto: proto.clone(),
                    weight: num(f[3])?,
                    active: num(f[4])?,
                    inactive: num(f[5])?,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `--collector.ipvs.backend-labels` → the chosen labels in node_exporter's order.
fn parse_labels(flag: &str) -> anyhow::Result<Vec<&'static str>> {
    let given: Vec<&str> = flag.split(',').filter(|l| !l.is_empty()).collect();
    let mut unknown: Vec<&str> = given
        .iter()
        .copied()
        .filter(|l| !LABELS.contains(l))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        anyhow::bail!("unknown IPVS backend labels: {:?}", unknown.join(", "));
    }
    Ok(LABELS
        .iter()
        .copied()
        .filter(|l| given.contains(l))
        .collect())
}

fn render(stats: &Stats, backends: &[Backend], labels: &[&'static str], out: &mut Vec<Family>) {
    for (name, help, v) in [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
            stats.connections,
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
            stats.incoming_packets,
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
            stats.outgoing_packets,
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
            stats.incoming_bytes,
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
            stats.outgoing_bytes,
        ),
    ] {
        out.push(Family::single(name, help, MetricType::Counter, v as f64));
    }
    // Sums per label-value key (the values joined by '-', as node_exporter keys its map; the
    // last backend of a key gives the label values).
    let mut sums: Vec<(String, Vec<String>, [u64; 3])> = Vec::new();
    for b in backends {
        let kv: Vec<String> = labels
            .iter()
            .map(|l| match *l {
                "local_address" => b.local_address.map(util::go_ip_string).unwrap_or_default(),
                "local_port" => b.local_port.to_string(),
                "remote_address" => util::go_ip_string(b.remote_address),
                "remote_port" => b.remote_port.to_string(),
                "proto" => b.proto.clone(),
                _ => b.local_mark.clone(),
            })
            .collect();
        let key = kv.join("-");
        let at = match sums.iter().position(|(k, _, _)| *k == key) {
            Some(at) => at,
            None => {
                sums.push((key, Vec::new(), [0; 3]));
                sums.len() - 1
            }
        };
        let s = &mut sums[at];
        s.1 = kv;
        s.2[0] = s.2[0].wrapping_add(b.active);
        s.2[1] = s.2[1].wrapping_add(b.inactive);
        s.2[2] = s.2[2].wrapping_add(b.weight);
    }
    let mut fams = [
        Family::new(
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            MetricType::Gauge,
        ),
        Family::new(
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            MetricType::Gauge,
        ),
        Family::new(
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            MetricType::Gauge,
        ),
    ];
    for (_, kv, v) in &sums {
        let l: Vec<(&'static str, &str)> = labels
            .iter()
            .copied()
            .zip(kv.iter().map(String::as_str))
            .collect();
        for (f, v) in fams.iter_mut().zip(v) {
            f.push(&l, *v as f64);
        }
    }
    out.extend(fams);
}

struct Ipvs {
    stats: PathBuf,
    backends: PathBuf,
    labels: Vec<&'static str>,
}

impl Collector for Ipvs {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // No such file: no ip_vs module, no data.
        let stats = parse_stats(&util::read(&self.stats)?)
            .with_context(|| format!("could not get IPVS stats: {}", self.stats.display()))?;
        let backends = parse_backends(&util::read(&self.backends)?).with_context(|| {
            format!("could not get backend status: {}", self.backends.display())
        })?;
        render(&stats, &backends, &self.labels, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Ipvs {
        stats: opts.procfs.join("net/ip_vs_stats"),
        backends: opts.procfs.join("net/ip_vs"),
        labels: parse_labels(&opts.ipvs.backend_labels)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "   Total Incoming Outgoing         Incoming         Outgoing
   Conns  Packets  Packets            Bytes            Bytes
     1A2B     FF00        0         10000000                0

 Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
       4    1FFFA        0          4BA0D75                0
";

    const IPVS: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0A80016:0CEA wlc
  -> C0A85216:0CEA      Tunnel  100    248        2
  -> C0A85215:0CEA      Tunnel  100    248        1
TCP  [2620:0000:0000:0000:0000:0000:0000:0001]:0050 sh
  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   1      0          0
FWM  10001000 wlc
  -> C0A8321A:0CEA      Route   0      0          1
  -> C0A83215:0CEA      Route   0      0          2
";

    #[test]
    fn stats_and_backends() {
        let s = parse_stats(STATS).unwrap();
        assert_eq!(
            (s.connections, s.incoming_packets, s.incoming_bytes),
            (0x1a2b, 0xff00, 0x10000000)
        );
        let b = parse_backends(IPVS).unwrap();
        assert_eq!(b.len(), 5);
        assert_eq!(b[0].local_address, Some("192.168.0.22".parse().unwrap()));
        assert_eq!(
            (b[0].local_port, b[0].weight, b[0].active),
            (3306, 100, 248)
        );
        assert_eq!(b[2].remote_address, "2620::2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (b[3].local_address, b[3].local_mark.as_str()),
            (None, "10001000")
        );
        let mut out = Vec::new();
        render(
            &s,
            &b,
            &parse_labels("local_address,local_port,remote_address,remote_port,proto,local_mark")
                .unwrap(),
            &mut out,
        );
        assert_eq!(out.len(), 8);
        assert_eq!(out[5].samples.len(), 5);
        let fwm = &out[5].samples[3];
        assert_eq!(fwm.labels[0].1, "");
        assert_eq!(fwm.labels[5].1, "10001000");
        // Summed over backends that share the chosen labels.
        let mut out = Vec::new();
        render(
            &s,
            &b,
            &parse_labels("proto,,local_port").unwrap(),
            &mut out,
        );
        let inactive: Vec<_> = out[6]
            .samples
            .iter()
            .map(|s| (s.labels[0].1.as_str(), s.labels[1].1.as_str(), s.value))
            .collect();
        assert_eq!(
            inactive,
            [("3306", "TCP", 3.0), ("80", "TCP", 0.0), ("0", "FWM", 3.0)]
        );
        assert_eq!(out[5].samples[0].labels[0].0, "local_port");
        // No labels at all: one series.
        let mut out = Vec::new();
        render(&s, &b, &parse_labels("").unwrap(), &mut out);
        assert_eq!(out[7].samples.len(), 1);
        assert_eq!(out[7].samples[0].value, 201.0);
    }

    #[test]
    fn bad_flags_and_garbled_files() {
        let e = parse_labels("proto,bogus,zz,bogus")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unknown IPVS backend labels: \"bogus, zz\"");
        assert!(parse_stats("a\nb\n").is_err());
        assert!(parse_stats("a\nb\n1 2 3\n").is_err());
        assert!(parse_stats("a\nb\n1 2 3 4 x\n").is_err());
        for bad in [
            "TCP  C0A8001:0CEA wlc",
            "TCP  C0A80016:0CEX wlc",
            "  -> C0A85216:0CEA      Tunnel  x    248        2",
            "  -> [2620:0000:0000:0000:0000:0000:0000:000g]:0050      Route   1      0          0",
        ] {
            assert!(parse_backends(bad).is_err(), "{bad}");
        }
        // Short lines are skipped, not misread.
        assert_eq!(parse_backends("TCP\n->\nFWM\nx\n\n").unwrap(), []);
    }

    #[test]
    fn missing_files() {
        let d = tempfile::tempdir().unwrap();
        let o = Options::from_flags([format!("--path.procfs={}", d.path().display())]).unwrap();
        let mut out = Vec::new();
        assert!(build(&o).unwrap().collect(&mut out).is_err());
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/ip_vs_stats"), STATS).unwrap();
        // Stats without the backend table: node_exporter fails the collector too.
        assert!(build(&o).unwrap().collect(&mut out).is_err());
        std::fs::write(d.path().join("net/ip_vs"), IPVS).unwrap();
        let mut out = Vec::new();
        build(&o).unwrap().collect(&mut out).unwrap();
        assert_eq!(out.len(), 8);
        assert!(
            Options::from_flags(["--collector.ipvs.backend-labels=x".to_string()])
                .map(|o| build(&o).is_err())
                .unwrap()
        );
    }
}
