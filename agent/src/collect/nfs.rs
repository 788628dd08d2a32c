//! nfs collector, as node_exporter 1.12: the NFS client's RPC statistics from
//! `<procfs>/net/rpc/nfs` (lines `net`, `rpc`, `proc2`, `proc3`, `proc4`). Every procedure of
//! NFS v2, v3 and v4 is exported, zero when its line is absent, under procfs's field names.
//! Any line procfs rejects (unknown key, non-number, wrong count) fails the collector; no file
//! (no NFS client) is "no data" (success 0).

use std::path::PathBuf;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// NFSv2 procedures, in /proc order (after the count).
pub const V2: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];

/// NFSv3 procedures, in /proc order.
pub const V3: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];

/// NFSv4 client operations, in /proc order (procfs's ClientV4Stats names).
pub const V4_CLIENT: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "GetDeviceInfo",
    "LayoutGet",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// /proc/net/rpc/nfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// net: packets, udp, tcp, tcp connections.
    pub net: [u64; 4],
    /// rpc: calls, retransmissions, authentication refreshes.
    pub rpc: [u64; 3],
    pub v2: [u64; 18],
    pub v3: [u64; 22],
    pub v4: [u64; 59],
}

impl Default for ClientStats {
    fn default() -> Self {
        ClientStats {
            net: [0; 4],
            rpc: [0; 3],
            v2: [0; 18],
            v3: [0; 22],
            v4: [0; 59],
        }
    }
}

/// Splits an rpc stats line into its key and numbers (at least one, all u64).
pub fn key_values(line: &str) -> anyhow::Result<(&str, Vec<u64>)> {
    let mut f = line.split_whitespace();
    let (Some(key), Some(first)) = (f.next(), f.next()) else {
        anyhow::bail!("invalid NFS metric line {line:?}");
    };
    let values = std::iter::once(first)
        .chain(f)
        .map(|v| util::go_parse_uint(v, 10, 64).with_context(|| format!("invalid value {v:?}")))
        .collect::<anyhow::Result<Vec<u64>>>()?;
    Ok((key, values))
}

/// Exactly `N` values.
pub fn exact<const N: usize>(v: &[u64], what: &str) -> anyhow::Result<[u64; N]> {
    <[u64; N]>::try_from(v).map_err(|_| anyhow::anyhow!("invalid {what} line {v:?}"))
}

/// A `procN` line: a count, then that many values; at least `N` of them are used.
pub fn counted<const N: usize>(v: &[u64], what: &str) -> anyhow::Result<[u64; N]> {
    let count = v[0];
    let rest = &v[1..];
    anyhow::ensure!(
        rest.len() as u64 == count && rest.len() >= N,
        "invalid {what} line {v:?}"
    );
    let mut out = [0u64; N];
    out.copy_from_slice(&rest[..N]);
    Ok(out)
}

pub fn parse_client(text: &str) -> anyhow::Result<ClientStats> {
    let mut s = ClientStats::default();
    for line in text.lines() {
        let (key, v) = key_values(line)?;
        match key {
            "net" => s.net = exact(&v, "Network")?,
            "rpc" => s.rpc = exact(&v, "RPC")?,
            "proc2" => s.v2 = counted(&v, "V2Stats")?,
            "proc3" => s.v3 = counted(&v, "V3Stats")?,
            "proc4" => {
                // Older kernels have fewer operations: the rest are zero.
                anyhow::ensure!(
                    (v.len() - 1) as u64 == v[0],
                    "invalid ClientV4Stats line {v:?}"
                );
                s.v4 = [0; 59];
                for (d, x) in s.v4.iter_mut().zip(&v[1..]) {
                    *d = *x;
                }
            }
            _ => anyhow::bail!("unknown NFS metric line {key:?}"),
        }
    }
    Ok(s)
}

fn render(s: &ClientStats, out: &mut Vec<Family>) {
    let mut packets = Family::new(
        "node_nfs_packets_total",
        "Total NFSd network packets (sent+received) by protocol type.",
        MetricType::Counter,
    );
    packets.push(&[("protocol", "udp")], s.net[1] as f64);
    packets.push(&[("protocol", "tcp")], s.net[2] as f64);
    out.push(packets);
    for (name, help, v) in [
        (
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            s.net[3],
        ),
        (
            "node_nfs_rpcs_total",
            "Total number of RPCs performed.",
            s.rpc[0],
        ),
        (
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            s.rpc[1],
        ),
        (
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            s.rpc[2],
        ),
    ] {
        out.push(Family::single(name, help, MetricType::Counter, v as f64));
    }
    let mut req = Family::new(
        "node_nfs_requests_total",
        "Number of NFS procedures invoked.",
        MetricType::Counter,
    );
    for (proto, names, vals) in [
        ("2", &V2[..], &s.v2[..]),
        ("3", &V3[..], &s.v3[..]),
        ("4", &V4_CLIENT[..], &s.v4[..]),
    ] {
        for (m, v) in names.iter().zip(vals) {
            req.push(&[("proto", proto), ("method", m)], *v as f64);
        }
    }
    out.push(req);
}

struct Nfs {
    path: PathBuf,
}

impl Collector for Nfs {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // No such file: no NFS client, no data.
        let text = util::read(&self.path)?;
        let s = parse_client(&text)
            .with_context(|| format!("failed to retrieve nfs stats: {}", self.path.display()))?;
        render(&s, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Nfs {
        path: opts.procfs.join("net/rpc/nfs"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFS: &str = "net 18628 0 18628 6
rpc 4329785 0 4338291
proc2 18 2 69 0 0 4410 0 0 0 0 0 0 0 0 0 0 0 99 2
proc3 22 1 4084749 29200 94754 32580 186 47747 7981 8639 0 6356 0 6962 0 7958 0 0 241 4 4 2 39
proc4 3 1 2 3
";

    #[test]
    fn client_lines() {
        let s = parse_client(NFS).unwrap();
        assert_eq!(s.net, [18628, 0, 18628, 6]);
        assert_eq!(s.rpc, [4329785, 0, 4338291]);
        assert_eq!((s.v2[0], s.v2[17]), (2, 2));
        assert_eq!(s.v3[1], 4084749);
        // A short proc4 line: the rest are zero.
        assert_eq!(&s.v4[..4], &[1, 2, 3, 0]);
        let mut out = Vec::new();
        render(&s, &mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(out[5].samples.len(), 99);
        let lookup = out[5]
            .samples
            .iter()
            .find(|s| s.labels[0].1 == "3" && s.labels[1].1 == "Lookup")
            .unwrap();
        assert_eq!(lookup.value, 94754.0);
        // No lines at all: every series, zero.
        render(&parse_client("").unwrap(), &mut out);
    }

    #[test]
    fn garbled_lines_fail() {
        for bad in [
            "net 1 2 3",
            "rpc 1 2 3 4",
            "proc2 3 1 2 3",
            "proc3 23 1",
            "proc4 5 1 2",
            "bogus 1",
            "net",
            "net 1 2 3 -4",
            "net 1 2 3 x",
        ] {
            assert!(parse_client(bad).is_err(), "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        let o = Options::from_flags([format!("--path.procfs={}", d.path().display())]).unwrap();
        assert!(build(&o).unwrap().collect(&mut Vec::new()).is_err());
    }
}
