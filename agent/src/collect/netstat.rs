//! netstat collector: node_netstat_<Proto>_<Field> (untyped) from /proc/net/netstat and
//! /proc/net/snmp (header/value line pairs) and /proc/net/snmp6 (name/value lines), for the
//! fields matching --collector.netstat.fields, parsed as node_exporter 1.12 parses them:
//! netstat and snmp are required, snmp6 is optional (IPv6 disabled); a header/value pair with
//! different field counts or a value that is not a number fails the collector.

use std::path::Path;

use anyhow::Context;

use super::attr::HeldFile;
use super::{util, Collector, Family, MetricType, Options};

/// Protocol → its (field, raw value) pairs in file order. A protocol seen again replaces the
/// earlier one (as the Go maps node_exporter merges into do). A handful of protocols, so a
/// list searched in order: a sorted map cost a string comparison per level for each of the
/// 400 fields of every scrape.
#[derive(Default)]
pub struct Stats<'a>(pub Vec<(&'a str, Vec<(&'a str, &'a str)>)>);

impl<'a> Stats<'a> {
    /// The field list of `proto`, emptied if `replace`, created if new.
    fn proto(&mut self, proto: &'a str, replace: bool) -> &mut Vec<(&'a str, &'a str)> {
        let at = match self.0.iter().position(|(p, _)| *p == proto) {
            Some(at) => at,
            None => {
                self.0.push((proto, Vec::new()));
                self.0.len() - 1
            }
        };
        let fields = &mut self.0[at].1;
        if replace {
            fields.clear();
        }
        fields
    }

    /// Adds `other`'s protocols, each replacing one of the same name.
    fn extend(&mut self, other: Stats<'a>) {
        for (proto, fields) in other.0 {
            *self.proto(proto, true) = fields;
        }
    }
}

/// Parses "Proto: a b c" / "Proto: 1 2 3" line pairs, the format of /proc/net/netstat and
/// /proc/net/snmp.
pub fn parse_pairs(text: &str) -> anyhow::Result<Stats<'_>> {
    let mut out = Stats::default();
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let values = lines.next().unwrap_or("");
        // Split on single spaces like node_exporter: the kernel writes exactly one.
        let mut names = spaced(header);
        let mut vals = spaced(values);
        let proto = names
            .next()
            .and_then(|p| p.strip_suffix(':'))
            .with_context(|| format!("malformed header line {header:?}"))?;
        vals.next();
        let fields = out.proto(proto, true);
        loop {
            match (names.next(), vals.next()) {
                (Some(n), Some(v)) => fields.push((n, v)),
                (None, None) => break,
                _ => anyhow::bail!(
                    "field count mismatch for {proto}: {} names, {} values",
                    header.split(' ').count() - 1,
                    values.split(' ').count() - 1
                ),
            }
        }
    }
    Ok(out)
}

/// `s` split at each single space, as `str::split(' ')` does, without a char searcher's set-up
/// for each of the 800 short fields of a read.
fn spaced(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b' ') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// A field's value as node_exporter parses it (a float); counters, the usual case, without
/// the float parser.
fn value(v: &str) -> Option<f64> {
    match v.parse::<u64>() {
        Ok(n) => Some(n as f64),
        Err(_) => v.parse().ok(),
    }
}

/// Parses snmp6 "Ip6InOctets 123" lines: the protocol is the name up to its first '6'; lines
/// without a '6' or a value are skipped.
pub fn parse_snmp6(text: &str) -> Stats<'_> {
    let mut out = Stats::default();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let Some(i) = name.find('6') else { continue };
        out.proto(&name[..=i], false).push((&name[i + 1..], value));
    }
    out
}

/// The TcpExt counters of /proc/net/netstat that nodetune's alert rules read, typed: the rules
/// use these fields, so a counter they lack is a compile error, not a series missing at run
/// time. `None` where this kernel does not have the field.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TcpExt {
    /// Connections dropped because an accept queue was full.
    pub listen_overflows: Option<u64>,
    /// Connection requests dropped at a listener, for any reason (overflows included).
    pub listen_drops: Option<u64>,
    /// SYN cookies sent: the SYN queue was full.
    pub syncookies_sent: Option<u64>,
    /// SYNs dropped because the SYN queue was full and SYN cookies are off.
    pub req_q_full_drop: Option<u64>,
    /// Times TCP entered memory pressure (tcp_mem's second field).
    pub memory_pressures: Option<u64>,
}

impl TcpExt {
    /// Picks the fields out of parsed /proc/net/netstat (the kernel's names, in one place).
    pub fn from_stats(stats: &Stats<'_>) -> TcpExt {
        let mut t = TcpExt::default();
        let Some((_, fields)) = stats.0.iter().find(|(p, _)| *p == "TcpExt") else {
            return t;
        };
        for (name, value) in fields {
            let slot = match *name {
                "ListenOverflows" => &mut t.listen_overflows,
                "ListenDrops" => &mut t.listen_drops,
                "SyncookiesSent" => &mut t.syncookies_sent,
                "TCPReqQFullDrop" => &mut t.req_q_full_drop,
                "TCPMemoryPressures" => &mut t.memory_pressures,
                _ => continue,
            };
            *slot = value.parse().ok();
        }
        t
    }
}

/// Reads the TcpExt counters from `procfs`/net/netstat.
pub fn read_tcp_ext(procfs: &Path) -> anyhow::Result<TcpExt> {
    let path = procfs.join("net/netstat");
    let text = util::read(&path)?;
    let stats = parse_pairs(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(TcpExt::from_stats(&stats))
}

struct Netstat {
    netstat: HeldFile,
    snmp: HeldFile,
    snmp6: HeldFile,
    fields: util::FieldFilter,
}

impl Collector for Netstat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let (netstat, snmp) = (self.netstat.read()?, self.snmp.read()?);
        let parse = |file: &HeldFile, text| {
            parse_pairs(text).with_context(|| format!("parsing {}", file.path().display()))
        };
        let mut stats = parse(&self.netstat, &netstat)?;
        stats.extend(parse(&self.snmp, &snmp)?);
        let snmp6 = match self.snmp6.text() {
            Ok(text) => text,
            // No IPv6 in this kernel.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", self.snmp6.path().display()))
            }
        };
        stats.extend(parse_snmp6(&snmp6));
        let mut key = String::new();
        let mut fields_wanted = self.fields.matcher();
        let mut mine = Vec::new();
        for (proto, fields) in &stats.0 {
            for (field, value) in fields {
                // Every value must parse, selected or not, as in node_exporter.
                let v = self::value(value)
                    .with_context(|| format!("invalid value {value:?} in netstats"))?;
                key.clear();
                key.push_str(proto);
                key.push('_');
                key.push_str(field);
                let Some((name, help)) = fields_wanted.select(&key, || {
                    (
                        format!("node_netstat_{key}"),
                        format!("Statistic {proto}{field}."),
                    )
                }) else {
                    continue;
                };
                mine.push(Family::single(name, help, MetricType::Untyped, v));
            }
        }
        // A field named twice for one protocol (never by the kernel): the last value wins,
        // as it does in node_exporter's map. Only the few selected fields are sorted.
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        mine.dedup_by(|later, kept| {
            let same = later.name == kept.name;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        out.append(&mut mine);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let net = opts.procfs.join("net");
    Ok(Box::new(Netstat {
        netstat: HeldFile::new(net.join("netstat")),
        snmp: HeldFile::new(net.join("snmp")),
        snmp6: HeldFile::new(net.join("snmp6")),
        fields: util::FieldFilter::new(&opts.netstat_fields, "collector.netstat.fields")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPOFOQueue\nTcpExt: 3 7 9 2\nIpExt: InOctets OutOctets\nIpExt: 100 200\n";
    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 500\nTcp: RtoAlgorithm CurrEstab InErrs\nTcp: 1 12 0\nUdp: InDatagrams NoPorts\nUdp: 40 2\n";
    const SNMP6: &str = "Ip6InReceives                   \t30\nIp6InOctets 4000\nUdp6InDatagrams 5\nUdpLite6InErrors 2\nbogus\nnosix 1\n";

    fn run(files: &[(&str, &str)], fields: Option<&str>) -> anyhow::Result<Vec<(String, f64)>> {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        for (f, t) in files {
            std::fs::write(d.path().join("net").join(f), t).unwrap();
        }
        let net = d.path().join("net");
        let c = Netstat {
            netstat: HeldFile::new(net.join("netstat")),
            snmp: HeldFile::new(net.join("snmp")),
            snmp6: HeldFile::new(net.join("snmp6")),
            fields: util::FieldFilter::new(
                fields.unwrap_or(super::super::options::NETSTAT_FIELDS),
                "f",
            )
            .unwrap(),
        };
        let mut out = Vec::new();
        c.collect(&mut out)?;
        let mut m: Vec<(String, f64)> = out
            .into_iter()
            .map(|f| (f.name.into_owned(), f.samples[0].value))
            .collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(m)
    }

    #[test]
    fn default_fields_from_all_three_files() {
        let m = run(
            &[("netstat", NETSTAT), ("snmp", SNMP), ("snmp6", SNMP6)],
            None,
        )
        .unwrap();
        let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_netstat_Ip6_InOctets",
                "node_netstat_IpExt_InOctets",
                "node_netstat_IpExt_OutOctets",
                "node_netstat_Ip_Forwarding",
                "node_netstat_TcpExt_ListenDrops",
                "node_netstat_TcpExt_ListenOverflows",
                "node_netstat_TcpExt_SyncookiesSent",
                "node_netstat_TcpExt_TCPOFOQueue",
                "node_netstat_Tcp_CurrEstab",
                "node_netstat_Tcp_InErrs",
                "node_netstat_Udp6_InDatagrams",
                "node_netstat_UdpLite6_InErrors",
                "node_netstat_Udp_InDatagrams",
                "node_netstat_Udp_NoPorts",
            ]
        );
        let all = run(
            &[("netstat", NETSTAT), ("snmp", SNMP), ("snmp6", SNMP6)],
            Some(".*"),
        )
        .unwrap();
        assert!(all.contains(&("node_netstat_Ip6_InReceives".into(), 30.0)));
        assert!(all.contains(&("node_netstat_Ip_DefaultTTL".into(), 64.0)));
    }

    #[test]
    fn ipv6_absent_is_fine_netstat_or_snmp_absent_is_not() {
        assert_eq!(
            run(&[("netstat", NETSTAT), ("snmp", SNMP)], None)
                .unwrap()
                .len(),
            11
        );
        assert!(run(&[("snmp", SNMP)], None).is_err());
        assert!(run(&[("netstat", NETSTAT)], None).is_err());
    }

    #[test]
    fn repeats_resolve_as_in_node_exporter() {
        // A protocol seen again replaces the earlier one, in the same file or the next; a
        // field named twice keeps its last value.
        let m = run(
            &[
                (
                    "netstat",
                    "TcpExt: ListenDrops ListenOverflows\nTcpExt: 1 2\nTcpExt: ListenDrops ListenDrops\nTcpExt: 3 4\n",
                ),
                ("snmp", "Tcp: InErrs\nTcp: 5\nUdp: NoPorts\nUdp: 6\n"),
                ("snmp6", "Udp6InDatagrams 7\n"),
            ],
            Some(".*"),
        )
        .unwrap();
        assert_eq!(
            m,
            [
                ("node_netstat_TcpExt_ListenDrops".to_string(), 4.0),
                ("node_netstat_Tcp_InErrs".to_string(), 5.0),
                ("node_netstat_Udp6_InDatagrams".to_string(), 7.0),
                ("node_netstat_Udp_NoPorts".to_string(), 6.0),
            ]
        );
    }

    #[test]
    fn tcp_ext_fields_for_the_alert_rules() {
        let stats = parse_pairs(
            "TcpExt: ListenOverflows TCPReqQFullDrop SyncookiesSent X\nTcpExt: 7 3 -1 9\n",
        )
        .unwrap();
        assert_eq!(
            TcpExt::from_stats(&stats),
            TcpExt {
                listen_overflows: Some(7),
                req_q_full_drop: Some(3),
                // Not a counter value: absent rather than wrong.
                syncookies_sent: None,
                ..TcpExt::default()
            }
        );
        assert_eq!(
            TcpExt::from_stats(&parse_pairs("IpExt: A\nIpExt: 1\n").unwrap()),
            TcpExt::default()
        );
    }

    #[test]
    fn malformed_pairs_fail() {
        // Field count mismatch, a trailing header without values, a value that is no number
        // (even in a field not selected).
        for bad in [
            "TcpExt: A B\nTcpExt: 1\n",
            "TcpExt: A B\nTcpExt: 1 2\nIpExt: InOctets\n",
            "TcpExt: A B\nTcpExt: 1 x\n",
            "no colon\n1\n",
        ] {
            assert!(
                run(&[("netstat", bad), ("snmp", SNMP)], None).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn negative_and_large_values_pass_through() {
        let m = run(
            &[
                ("netstat", "TcpExt: ListenDrops\nTcpExt: -1\n"),
                ("snmp", "Tcp: InErrs\nTcp: 18446744073709551615\n"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            m,
            [
                ("node_netstat_TcpExt_ListenDrops".to_string(), -1.0),
                (
                    "node_netstat_Tcp_InErrs".to_string(),
                    18446744073709551615.0
                )
            ]
        );
    }
}
