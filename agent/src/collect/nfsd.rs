//! nfsd collector, as node_exporter 1.12: the NFS server's statistics from
//! `<procfs>/net/rpc/nfsd` (reply cache, file handles, I/O, threads, read-ahead cache, network,
//! RPC errors, and the v2/v3/v4 operations node_exporter names). Values of absent lines are
//! zero. Any line procfs rejects fails the collector; no file (no NFS server) is "no data".

use std::path::PathBuf;

use anyhow::Context;

use super::nfs::{counted, exact, key_values, V2, V3};
use super::{util, Collector, Family, MetricType, Options};

/// NFSv4 operations (proc4ops), in /proc order after the count; the 40th is optional.
const V4_OPS: [&str; 40] = [
    "Op0Unused",
    "Op1Unused",
    "Op2Future",
    "Access",
    "Close",
    "Commit",
    "Create",
    "DelegPurge",
    "DelegReturn",
    "GetAttr",
    "GetFH",
    "Link",
    "Lock",
    "Lockt",
    "Locku",
    "Lookup",
    "LookupRoot",
    "Nverify",
    "Open",
    "OpenAttr",
    "OpenConfirm",
    "OpenDgrd",
    "PutFH",
    "PutPubFH",
    "PutRootFH",
    "Read",
    "ReadDir",
    "ReadLink",
    "Remove",
    "Rename",
    "Renew",
    "RestoreFH",
    "SaveFH",
    "SecInfo",
    "SetAttr",
    "SetClientID",
    "SetClientIDConfirm",
    "Verify",
    "Write",
    "RelLockOwner",
];

/// The v4 operations node_exporter leaves out of node_nfsd_requests_total.
const V4_NOT_EXPORTED: [&str; 5] = [
    "Op0Unused",
    "Op1Unused",
    "Op2Future",
    "PutPubFH",
    "PutRootFH",
];

/// /proc/net/rpc/nfsd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// rc: hits, misses, nocache.
    pub reply_cache: [u64; 3],
    /// fh: stale (the other four are unused by the kernel).
    pub fh_stale: u64,
    /// io: read, write.
    pub io: [u64; 2],
    /// th: threads (the second field, full count, is not exported).
    pub threads: u64,
    /// ra: cache size and not found (the histogram is not exported).
    pub ra_size: u64,
    pub ra_not_found: u64,
    /// net: packets, udp, tcp, tcp connections.
    pub net: [u64; 4],
    /// rpc: calls, bad, bad format, bad auth, bad client.
    pub rpc: [u64; 5],
    pub v2: Vec<u64>,
    pub v3: Vec<u64>,
    pub v4ops: Vec<u64>,
    pub wdeleg_getattr: u64,
}

pub fn parse_server(text: &str) -> anyhow::Result<ServerStats> {
    let mut s = ServerStats {
        v2: vec![0; 18],
        v3: vec![0; 22],
        v4ops: vec![0; 40],
        ..ServerStats::default()
    };
    for line in text.lines() {
        // "th" may carry a histogram of floats (old kernels): only its first two fields count.
        let (key, v) = if line.split_whitespace().next() == Some("th") {
            let f: Vec<&str> = line.split_whitespace().take(3).collect();
            anyhow::ensure!(f.len() == 3, "invalid NFSd th metric line {line:?}");
            let v = f[1..]
                .iter()
                .map(|v| {
                    util::go_parse_uint(v, 10, 64).with_context(|| format!("invalid value {v:?}"))
                })
                .collect::<anyhow::Result<Vec<u64>>>()?;
            ("th", v)
        } else {
            key_values(line)?
        };
        match key {
            "rc" => s.reply_cache = exact(&v, "ReplyCache")?,
            "fh" => s.fh_stale = exact::<5>(&v, "FileHandles")?[0],
            "io" => s.io = exact(&v, "InputOutput")?,
            "th" => s.threads = exact::<2>(&v, "Threads")?[0],
            "ra" => {
                let ra = exact::<12>(&v, "ReadAheadCache")?;
                s.ra_size = ra[0];
                s.ra_not_found = ra[11];
            }
            "net" => s.net = exact(&v, "Network")?,
            "rpc" => s.rpc = exact(&v, "RPC")?,
            "proc2" => s.v2 = counted::<18>(&v, "V2Stats")?.to_vec(),
            "proc3" => s.v3 = counted::<22>(&v, "V3Stats")?.to_vec(),
            "proc4" => {
                anyhow::ensure!(v[0] == 2 && v.len() == 3, "invalid V4Stats line {v:?}");
            }
            "proc4ops" => {
                let ops = counted::<39>(&v, "V4Ops")?;
                s.v4ops = ops.to_vec();
                s.v4ops.push(if v.len() > 40 { v[40] } else { 0 });
            }
            "wdeleg_getattr" => s.wdeleg_getattr = v[0],
            _ => anyhow::bail!("unknown NFSd metric line {key:?}"),
        }
    }
    Ok(s)
}

fn counter(out: &mut Vec<Family>, name: &'static str, help: &'static str, v: u64) {
    out.push(Family::single(name, help, MetricType::Counter, v as f64));
}

fn render(s: &ServerStats, out: &mut Vec<Family>) {
    counter(
        out,
        "node_nfsd_reply_cache_hits_total",
        "Total number of NFSd Reply Cache hits (client lost server response).",
        s.reply_cache[0],
    );
    counter(
        out,
        "node_nfsd_reply_cache_misses_total",
        "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
        s.reply_cache[1],
    );
    counter(
        out,
        "node_nfsd_reply_cache_nocache_total",
        "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
        s.reply_cache[2],
    );
    counter(
        out,
        "node_nfsd_file_handles_stale_total",
        "Total number of NFSd stale file handles",
        s.fh_stale,
    );
    counter(
        out,
        "node_nfsd_disk_bytes_read_total",
        "Total NFSd bytes read.",
        s.io[0],
    );
    counter(
        out,
        "node_nfsd_disk_bytes_written_total",
        "Total NFSd bytes written.",
        s.io[1],
    );
    out.push(Family::single(
        "node_nfsd_server_threads",
        "Total number of NFSd kernel threads that are running.",
        MetricType::Gauge,
        s.threads as f64,
    ));
    out.push(Family::single(
        "node_nfsd_read_ahead_cache_size_blocks",
        "How large the read ahead cache is in blocks.",
        MetricType::Gauge,
        s.ra_size as f64,
    ));
    counter(
        out,
        "node_nfsd_read_ahead_cache_not_found_total",
        "Total number of NFSd read ahead cache not found.",
        s.ra_not_found,
    );
    let mut f = Family::new(
        "node_nfsd_packets_total",
        "Total NFSd network packets (sent+received) by protocol type.",
        MetricType::Counter,
    );
    f.push(&[("proto", "udp")], s.net[1] as f64);
    f.push(&[("proto", "tcp")], s.net[2] as f64);
    out.push(f);
    counter(
        out,
        "node_nfsd_connections_total",
        "Total number of NFSd TCP connections.",
        s.net[3],
    );
    let mut f = Family::new(
        "node_nfsd_rpc_errors_total",
        "Total number of NFSd RPC errors by error type.",
        MetricType::Counter,
    );
    f.push(&[("error", "fmt")], s.rpc[2] as f64);
    f.push(&[("error", "auth")], s.rpc[3] as f64);
    f.push(&[("error", "cInt")], s.rpc[4] as f64);
    out.push(f);
    counter(
        out,
        "node_nfsd_server_rpcs_total",
        "Total number of NFSd RPCs.",
        s.rpc[0],
    );
    let mut req = Family::new(
        "node_nfsd_requests_total",
        "Total number NFSd Requests by method and protocol.",
        MetricType::Counter,
    );
    // v2 and v3 without Null.
    for (proto, names, vals) in [("2", &V2[..], &s.v2), ("3", &V3[..], &s.v3)] {
        for (m, v) in names.iter().zip(vals.iter()).skip(1) {
            req.push(&[("proto", proto), ("method", m)], *v as f64);
        }
    }
    for (i, m) in V4_OPS.iter().enumerate() {
        if !V4_NOT_EXPORTED.contains(m) {
            let v = s.v4ops.get(i).copied().unwrap_or(0);
            req.push(&[("proto", "4"), ("method", m)], v as f64);
        }
    }
    req.push(
        &[("proto", "4"), ("method", "WdelegGetattr")],
        s.wdeleg_getattr as f64,
    );
    out.push(req);
}

struct Nfsd {
    path: PathBuf,
}

impl Collector for Nfsd {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // No such file: no NFS server, no data.
        let text = util::read(&self.path)?;
        let s = parse_server(&text)
            .with_context(|| format!("failed to retrieve nfsd stats: {}", self.path.display()))?;
        render(&s, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Nfsd {
        path: opts.procfs.join("net/rpc/nfsd"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFSD: &str = "rc 0 6 18622
fh 0 0 0 0 0
io 157286400 72864
th 8 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000
ra 32 0 0 0 0 0 0 0 0 0 0 0
net 18628 0 18628 6
rpc 18628 0 0 0 0
proc2 18 2 69 0 0 4410 0 0 0 0 0 0 0 0 0 0 0 99 2
proc3 22 2 112 0 2719 111 0 0 0 0 0 0 0 0 0 0 0 27 216 0 2 1 0
proc4 2 2 10853
proc4ops 40 0 0 0 1098 2 0 0 0 0 8179 5896 0 0 0 0 5900 0 0 2 0 2 0 9609 0 2 150 1272 0 0 0 1236 0 0 0 0 3 3 0 0 7
wdeleg_getattr 15
";

    #[test]
    fn server_lines() {
        let s = parse_server(NFSD).unwrap();
        assert_eq!(s.reply_cache, [0, 6, 18622]);
        assert_eq!((s.threads, s.ra_size), (8, 32));
        assert_eq!(s.io, [157286400, 72864]);
        assert_eq!(s.wdeleg_getattr, 15);
        let mut out = Vec::new();
        render(&s, &mut out);
        let req = out.last().unwrap();
        assert_eq!(req.samples.len(), 17 + 21 + 35 + 1);
        let get = |proto: &str, m: &str| {
            req.samples
                .iter()
                .find(|s| s.labels[0].1 == proto && s.labels[1].1 == m)
                .map(|s| s.value)
        };
        assert_eq!(get("4", "GetFH"), Some(5896.0));
        assert_eq!(get("4", "Read"), Some(150.0));
        assert_eq!(get("4", "WdelegGetattr"), Some(15.0));
        assert_eq!(get("2", "Null"), None);
        assert_eq!(get("3", "Lookup"), Some(2719.0));
        assert_eq!(out.len(), 14);
    }

    #[test]
    fn garbled_lines_fail() {
        for bad in [
            "rc 1 2",
            "th 8",
            "ra 1 2",
            "proc4 3 1 2 3",
            "proc4ops 38 0",
            "xx 1",
            "rc",
            "io 1 x",
        ] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
        // Old kernels: 39 v4 operations.
        let ops = format!("proc4ops 39{}", " 1".repeat(39));
        assert_eq!(parse_server(&ops).unwrap().v4ops[39], 0);
    }
}
