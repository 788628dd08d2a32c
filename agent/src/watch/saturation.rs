//! Saturation ratios (0–1) per resource, from one snapshot: one number per resource for
//! dashboards, autoscalers and the ratio alerts (`nodetune_saturation_ratio{resource=…}`).

use super::snapshot::Snapshot;
use crate::collect::{Family, MetricType};

/// How close each resource is to its limit; `None` where an input is missing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Saturation {
    /// conntrack entries / nf_conntrack_max.
    pub conntrack: Option<f64>,
    /// Allocated file handles / fs.file-max.
    pub fds: Option<f64>,
    /// (TCP sockets in use + TIME_WAIT) / the size of net.ipv4.ip_local_port_range: an upper
    /// bound, since inbound sockets are counted too.
    pub ports: Option<f64>,
    /// TCP memory (pages) / the third field of net.ipv4.tcp_mem.
    pub socket_memory: Option<f64>,
    /// The fullest accept queue / its backlog limit.
    pub listen_queue: Option<f64>,
}

fn ratio(used: f64, limit: f64) -> Option<f64> {
    (limit > 0.0).then(|| (used / limit).clamp(0.0, 1.0))
}

impl Saturation {
    pub fn of(s: &Snapshot) -> Saturation {
        Saturation {
            conntrack: s.conntrack.and_then(|c| ratio(c.entries, c.limit)),
            fds: s.file_nr.and_then(|f| ratio(f.allocated, f.maximum)),
            ports: s
                .tcp_sockets
                .zip(s.limits.ports())
                .and_then(|(t, n)| ratio((t.inuse + t.tw) as f64, n as f64)),
            socket_memory: s
                .tcp_sockets
                .zip(s.limits.tcp_mem)
                .and_then(|(t, m)| ratio(t.mem_pages as f64, m[2] as f64)),
            listen_queue: s
                .listeners
                .as_ref()
                .map(|l| l.iter().filter_map(|l| l.fill()).fold(0.0, f64::max)),
        }
    }

    /// `nodetune_saturation_ratio{resource}` for the resources with their inputs.
    pub fn family(&self) -> Family {
        let mut f = Family::new(
            "nodetune_saturation_ratio",
            "How close a kernel resource is to its limit (0-1), per resource.",
            MetricType::Gauge,
        );
        for (resource, v) in [
            ("conntrack", self.conntrack),
            ("fds", self.fds),
            ("ports", self.ports),
            ("socket_memory", self.socket_memory),
            ("listen_queue", self.listen_queue),
        ] {
            if let Some(v) = v {
                f.push(&[("resource", resource)], v);
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{conntrack, filefd, listen_queue, sockstat};
    use crate::watch::snapshot::Limits;

    #[test]
    fn ratios_from_a_snapshot() {
        let s = Snapshot {
            conntrack: Some(conntrack::Table {
                entries: 900.0,
                limit: 1000.0,
                stats: None,
            }),
            file_nr: Some(filefd::FileNr {
                allocated: 10.0,
                maximum: 100.0,
            }),
            tcp_sockets: Some(sockstat::TcpSockets {
                inuse: 14000,
                tw: 116,
                mem_pages: 1000,
            }),
            listeners: Some(vec![
                listen_queue::Listener {
                    port: 80,
                    queued: 3,
                    backlog: 4,
                    inode: 0,
                },
                listen_queue::Listener {
                    port: 81,
                    queued: 9,
                    backlog: 0,
                    inode: 0,
                },
            ]),
            limits: Limits {
                port_range: Some((32768, 60999)),
                tcp_mem: Some([1000, 2000, 4000]),
            },
            ..Snapshot::default()
        };
        let sat = Saturation::of(&s);
        assert_eq!(
            sat,
            Saturation {
                conntrack: Some(0.9),
                fds: Some(0.1),
                ports: Some(0.5),
                socket_memory: Some(0.25),
                listen_queue: Some(0.75),
            }
        );
        let got: Vec<(String, f64)> = sat
            .family()
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], ("listen_queue".into(), 0.75));
        // No inputs, no series (listen_queue with no listeners is 0, not missing).
        assert!(Saturation::of(&Snapshot::default())
            .family()
            .samples
            .is_empty());
    }
}
