//! sockstat collector: node_sockstat_<PROTO>_<field> gauges from /proc/net/sockstat and
//! sockstat6, parsed as procfs does for node_exporter 1.12: fields inuse (always, 0 when
//! absent), orphan, tw, alloc, mem, memory, plus mem_bytes = mem × page size for every
//! protocol with a mem field; `sockets: used` only from the IPv4 file. A missing file (IPv4
//! or IPv6 disabled) is skipped; a malformed one fails the collector.

use std::path::Path;

use anyhow::Context;

use super::attr::HeldFile;
use super::{util, Collector, Family, MetricType, Options, Text};

/// Optional per-protocol fields, in node_exporter's order.
const FIELDS: &[&str] = &["orphan", "tw", "alloc", "mem", "memory"];

struct Sockstat {
    /// sockstat, then sockstat6 (true: the IPv6 one).
    files: [(HeldFile, bool); 2],
    page_size: f64,
    names: util::Names,
}

fn gauge(out: &mut Vec<Family>, name: Text, help: Text, v: f64) {
    out.push(Family::single(name, help, MetricType::Gauge, v));
}

/// One line: protocol and its key/value pairs.
type Line<'a> = (&'a str, Vec<(&'a str, i64)>);

/// One file's lines; errors as procfs reports them.
fn parse(text: &str) -> anyhow::Result<Vec<Line<'_>>> {
    let mut out = Vec::new();
    for line in text.lines() {
        // procfs splits on single spaces, so a blank or short line is malformed.
        let fields: Vec<&str> = line.split(' ').collect();
        anyhow::ensure!(fields.len() >= 3, "malformed sockstat line: {line:?}");
        let kvs = &fields[1..];
        anyhow::ensure!(
            kvs.len() % 2 == 0,
            "odd number of fields in key/value pairs: {line:?}"
        );
        let mut pairs = Vec::with_capacity(kvs.len() / 2);
        for kv in kvs.chunks(2) {
            let v: i64 = kv[1]
                .parse()
                .with_context(|| format!("sockstat value {:?} in {line:?}", kv[1]))?;
            // A repeated key keeps its last value (procfs builds a map).
            pairs.retain(|(k, _)| *k != kv[0]);
            pairs.push((kv[0], v));
        }
        out.push((fields[0].trim_end_matches(':'), pairs));
    }
    Ok(out)
}

/// The TCP line of /proc/net/sockstat, as the saturation ratios read it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TcpSockets {
    /// Sockets in use (every state but TIME_WAIT).
    pub inuse: u64,
    /// Sockets in TIME_WAIT.
    pub tw: u64,
    /// Pages of memory TCP holds (compared with tcp_mem).
    pub mem_pages: u64,
}

/// Reads the TCP line of `procfs`/net/sockstat; `None` when the file has no such line.
pub fn read_tcp(procfs: &Path) -> anyhow::Result<Option<TcpSockets>> {
    let path = procfs.join("net/sockstat");
    let text = util::read(&path)?;
    let lines = parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(lines.iter().find(|(p, _)| *p == "TCP").map(|(_, kvs)| {
        let get = |k: &str| {
            kvs.iter()
                .find(|(n, _)| *n == k)
                .map_or(0, |(_, v)| u64::try_from(*v).unwrap_or(0))
        };
        TcpSockets {
            inuse: get("inuse"),
            tw: get("tw"),
            mem_pages: get("mem"),
        }
    }))
}

impl Sockstat {
    fn families(&self, text: &str, ipv6: bool, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut key = String::new();
        for (proto, kvs) in parse(text)? {
            let get = |k: &str| kvs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v as f64);
            if proto == "sockets" {
                if !ipv6 {
                    gauge(
                        out,
                        "node_sockstat_sockets_used".into(),
                        "Number of IPv4 sockets in use.".into(),
                        get("used").unwrap_or(0.0),
                    );
                }
                continue;
            }
            let mut emit = |field: &str, v: f64| {
                key.clear();
                key.push_str(proto);
                key.push(' ');
                key.push_str(field);
                let (name, help) = self.names.get(&key, || {
                    (
                        format!("node_sockstat_{proto}_{field}"),
                        format!("Number of {proto} sockets in state {field}."),
                    )
                });
                gauge(out, name, help, v)
            };
            emit("inuse", get("inuse").unwrap_or(0.0));
            for f in FIELDS {
                if let Some(v) = get(f) {
                    emit(f, v);
                }
            }
            if let Some(pages) = get("mem") {
                emit("mem_bytes", pages * self.page_size);
            }
        }
        Ok(())
    }
}

impl Collector for Sockstat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        for (file, ipv6) in &self.files {
            let path = file.path();
            let text = match file.text() {
                Ok(t) => t,
                // IPv4 or IPv6 disabled in this kernel: nothing to report for it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            self.families(&text, *ipv6, out)
                .with_context(|| format!("parsing {}", path.display()))?;
        }
        Ok(())
    }
}

fn files(procfs: &Path) -> [(HeldFile, bool); 2] {
    [
        (HeldFile::new(procfs.join("net/sockstat")), false),
        (HeldFile::new(procfs.join("net/sockstat6")), true),
    ]
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(Box::new(Sockstat {
        files: files(&opts.procfs),
        page_size: if page > 0 { page as f64 } else { 4096.0 },
        names: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)]) -> anyhow::Result<Vec<(String, f64)>> {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        for (f, t) in files {
            std::fs::write(d.path().join("net").join(f), t).unwrap();
        }
        let c = Sockstat {
            files: super::files(d.path()),
            page_size: 4096.0,
            names: Default::default(),
        };
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out
            .into_iter()
            .map(|f| (f.name.into_owned(), f.samples[0].value))
            .collect())
    }

    const V4: &str = "sockets: used 229\nTCP: inuse 4 orphan 0 tw 4 alloc 17 mem 1\nUDP: inuse 0 mem 2\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";
    const V6: &str = "TCP6: inuse 17\nUDP6: inuse 9\nUDPLITE6: inuse 0\nRAW6: inuse 1\nFRAG6: inuse 0 memory 0\n";

    #[test]
    fn both_files_as_node_exporter_names_them() {
        let m = run(&[("sockstat", V4), ("sockstat6", V6)]).unwrap();
        let get = |n: &str| m.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("node_sockstat_sockets_used"), Some(229.0));
        assert_eq!(get("node_sockstat_TCP_mem_bytes"), Some(4096.0));
        assert_eq!(get("node_sockstat_UDP_mem_bytes"), Some(8192.0));
        assert_eq!(get("node_sockstat_FRAG_memory"), Some(0.0));
        assert_eq!(get("node_sockstat_TCP6_inuse"), Some(17.0));
        assert_eq!(get("node_sockstat_FRAG_mem_bytes"), None);
        assert_eq!(m.len(), 1 + 6 + 3 + 1 + 1 + 2 + 6);
    }

    #[test]
    fn tcp_line_for_the_ratios() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/sockstat"), V4).unwrap();
        assert_eq!(
            read_tcp(d.path()).unwrap(),
            Some(TcpSockets {
                inuse: 4,
                tw: 4,
                mem_pages: 1
            })
        );
        std::fs::write(d.path().join("net/sockstat"), "UDP: inuse 1\n").unwrap();
        assert_eq!(read_tcp(d.path()).unwrap(), None);
        std::fs::write(d.path().join("net/sockstat"), "TCP: inuse x\n").unwrap();
        assert!(read_tcp(d.path()).is_err());
    }

    #[test]
    fn missing_files_are_skipped_malformed_ones_fail() {
        // IPv6 absent, and IPv4 absent: both fine (nothing to report).
        assert_eq!(run(&[("sockstat", V4)]).unwrap().len(), 14);
        assert_eq!(run(&[("sockstat6", V6)]).unwrap().len(), 6);
        assert!(run(&[]).unwrap().is_empty());
        assert!(run(&[("sockstat", "TCP: inuse 4 orphan\n")]).is_err());
        assert!(run(&[("sockstat", "TCP: inuse x\n")]).is_err());
        assert!(run(&[("sockstat", "TCP:\n")]).is_err());
        assert!(run(&[("sockstat6", "TCP6: inuse 1\n\nUDP6: inuse 2\n")]).is_err());
    }

    #[test]
    fn ipv6_sockets_line_is_not_exported_and_inuse_defaults() {
        let m = run(&[("sockstat6", "sockets: used 3\nXYZ6: alloc 2\n")]).unwrap();
        assert_eq!(
            m,
            [
                ("node_sockstat_XYZ6_inuse".to_string(), 0.0),
                ("node_sockstat_XYZ6_alloc".to_string(), 2.0)
            ]
        );
    }
}
