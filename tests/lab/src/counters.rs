//! Kernel counters of one namespace: TcpExt (/proc/net/netstat), Tcp (/proc/net/snmp) and the
//! TIME_WAIT count (/proc/net/sockstat), read through /proc/thread-self so that the reading
//! thread's namespace is the one reported.

use std::collections::BTreeMap;
use std::io;

use crate::netns::in_ns;

/// Counters by "Group.Name" (e.g. "TcpExt.ListenOverflows", "Tcp.RetransSegs").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters(pub BTreeMap<String, u64>);

/// The counters the report shows for the server.
pub const SERVER: &[&str] = &[
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.SyncookiesSent",
];

/// Parses the two-line "Group: names" / "Group: values" format of netstat and snmp.
pub fn parse(text: &str, out: &mut BTreeMap<String, u64>) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((group, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<u64>() {
                out.insert(format!("{group}.{n}"), v);
            }
        }
    }
}

impl Counters {
    /// Reads the counters of namespace `ns`.
    pub fn read(ns: &str) -> io::Result<Counters> {
        in_ns(ns, || -> io::Result<Counters> {
            let mut m = BTreeMap::new();
            for f in ["netstat", "snmp"] {
                let text = std::fs::read_to_string(format!("/proc/thread-self/net/{f}"))?;
                parse(&text, &mut m);
            }
            let sockstat = std::fs::read_to_string("/proc/thread-self/net/sockstat")?;
            for line in sockstat.lines().filter(|l| l.starts_with("TCP:")) {
                let f: Vec<&str> = line.split_whitespace().collect();
                for kv in f[1..].chunks(2) {
                    if let [k, v] = kv {
                        if let Ok(v) = v.parse() {
                            m.insert(format!("sockstat.{k}"), v);
                        }
                    }
                }
            }
            Ok(Counters(m))
        })?
    }

    /// Packets dropped at a full per-CPU input queue, all CPUs (host-wide: softnet_stat is
    /// not per namespace).
    pub fn softnet_dropped() -> u64 {
        std::fs::read_to_string("/proc/net/softnet_stat")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|v| u64::from_str_radix(v, 16).ok())
            .sum()
    }

    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// `self - before` for every counter (gauges such as sockstat are taken as they are now).
    pub fn since(&self, before: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .map(|(k, v)| {
                    let d = if k.starts_with("sockstat.") {
                        *v
                    } else {
                        v.saturating_sub(before.get(k))
                    };
                    (k.clone(), d)
                })
                .collect(),
        )
    }

    /// The server counters of the report, as "name value" pairs.
    pub fn server(&self) -> BTreeMap<String, u64> {
        SERVER
            .iter()
            .map(|k| (k.trim_start_matches("TcpExt.").to_string(), self.get(k)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netstat_pairs() {
        let mut m = BTreeMap::new();
        parse(
            "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 5 7\nIpExt: InNoRoutes\nIpExt: 1\n",
            &mut m,
        );
        assert_eq!(m["TcpExt.ListenOverflows"], 7);
        assert_eq!(m["IpExt.InNoRoutes"], 1);
        let a = Counters(m.clone());
        let mut m2 = m;
        m2.insert("TcpExt.ListenOverflows".into(), 10);
        assert_eq!(Counters(m2).since(&a).get("TcpExt.ListenOverflows"), 3);
    }
}
