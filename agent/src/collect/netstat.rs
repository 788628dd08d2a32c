//! netstat collector: node_netstat_<Proto>_<Field> (untyped) from /proc/net/netstat,
//! /proc/net/snmp (header/value line pairs) and /proc/net/snmp6 (name/value lines), for the
//! fields matching --collector.netstat.fields.

use std::path::PathBuf;

use anyhow::Context;
use regex::Regex;

use super::{util, Collector, Family, MetricType, Options};

struct Netstat {
    procfs: PathBuf,
    fields: Regex,
}

/// Parses "Proto: a b c" / "Proto: 1 2 3" line pairs into (proto, field, value).
pub fn parse_pairs(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((proto, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            out.push((proto.to_string(), n.to_string(), v.to_string()));
        }
    }
    out
}

/// Parses snmp6 "Ip6InOctets 123" lines: the protocol is the name up to its first '6'.
fn parse_snmp6(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (name, value) = (it.next()?, it.next()?);
            let i = name.find('6')?;
            Some((
                name[..=i].to_string(),
                name[i + 1..].to_string(),
                value.to_string(),
            ))
        })
        .collect()
}

impl Collector for Netstat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut stats = parse_pairs(&util::read(&self.procfs.join("net/netstat"))?);
        stats.extend(parse_pairs(&util::read(&self.procfs.join("net/snmp"))?));
        if let Ok(text) = std::fs::read_to_string(self.procfs.join("net/snmp6")) {
            stats.extend(parse_snmp6(&text));
        }
        for (proto, field, value) in stats {
            let key = format!("{proto}_{field}");
            if !self.fields.is_match(&key) {
                continue;
            }
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let mut f = Family::new(
                format!("node_netstat_{key}"),
                format!("Statistic {proto}{field}."),
                MetricType::Untyped,
            );
            f.push(&[], v);
            out.push(f);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Netstat {
        procfs: opts.procfs.clone(),
        fields: Regex::new(&opts.netstat_fields).context("--collector.netstat.fields")?,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairs_and_snmp6() {
        let p = super::parse_pairs("TcpExt: SyncookiesSent ListenDrops\nTcpExt: 3 -1\n");
        assert_eq!(p[1], ("TcpExt".into(), "ListenDrops".into(), "-1".into()));
        let s = super::parse_snmp6("Ip6InOctets 10\nUdpLite6InErrors 2\nbogus\n");
        assert_eq!(s[1], ("UdpLite6".into(), "InErrors".into(), "2".into()));
        assert_eq!(s.len(), 2);
    }
}
