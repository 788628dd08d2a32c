//! Saturation ratios (0–1) per resource, from the collected families plus the two limits that
//! only sysctls hold. One number per resource for dashboards and autoscalers
//! (`nodetune_saturation_ratio{resource=…}`).

use crate::collect::{Family, MetricType};
use crate::profile::Target;
use crate::tune::kernel::{Current, Kernel};

fn value(fams: &[Family], name: &str) -> Option<f64> {
    fams.iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.samples.iter())
        .map(|s| s.value)
        .next()
}

fn sysctl_fields(kernel: &Kernel, key: &str) -> Option<Vec<f64>> {
    match kernel.read(&Target::Sysctl(key.into())).ok()? {
        Current::Value(v) => v.split_whitespace().map(|f| f.parse().ok()).collect(),
        Current::Missing => None,
    }
}

fn ratio(used: Option<f64>, limit: Option<f64>) -> Option<f64> {
    match (used, limit) {
        (Some(u), Some(l)) if l > 0.0 => Some((u / l).clamp(0.0, 1.0)),
        _ => None,
    }
}

/// Computes the ratios that have their inputs:
/// - `conntrack`: node_nf_conntrack_entries / node_nf_conntrack_entries_limit;
/// - `fds`: node_filefd_allocated / node_filefd_maximum;
/// - `ports`: (TCP sockets in use + TIME_WAIT) / size of net.ipv4.ip_local_port_range — an
///   upper bound, since inbound sockets are counted too;
/// - `socket_memory`: node_sockstat_TCP_mem (pages) / the third field of net.ipv4.tcp_mem;
/// - `listen_queue`: the fullest accept queue / its backlog limit (listen_queue collector).
pub fn family(fams: &[Family], kernel: &Kernel) -> Family {
    let mut f = Family::new(
        "nodetune_saturation_ratio",
        "How close a kernel resource is to its limit (0-1), per resource.",
        MetricType::Gauge,
    );
    let ports = sysctl_fields(kernel, "net.ipv4.ip_local_port_range")
        .filter(|r| r.len() == 2)
        .map(|r| r[1] - r[0] + 1.0);
    let tcp = match (
        value(fams, "node_sockstat_TCP_inuse"),
        value(fams, "node_sockstat_TCP_tw"),
    ) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    let tcp_mem_max = sysctl_fields(kernel, "net.ipv4.tcp_mem").and_then(|m| m.get(2).copied());
    let rows = [
        (
            "conntrack",
            ratio(
                value(fams, "node_nf_conntrack_entries"),
                value(fams, "node_nf_conntrack_entries_limit"),
            ),
        ),
        (
            "fds",
            ratio(
                value(fams, "node_filefd_allocated"),
                value(fams, "node_filefd_maximum"),
            ),
        ),
        ("ports", ratio(tcp, ports)),
        (
            "socket_memory",
            ratio(value(fams, "node_sockstat_TCP_mem"), tcp_mem_max),
        ),
    ];
    for (resource, v) in rows {
        if let Some(v) = v {
            f.push(&[("resource", resource)], v);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_from_families_and_sysctls() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net/ipv4")).unwrap();
        std::fs::write(
            d.path().join("net/ipv4/ip_local_port_range"),
            "32768\t60999\n",
        )
        .unwrap();
        std::fs::write(d.path().join("net/ipv4/tcp_mem"), "1000\t2000\t4000\n").unwrap();
        let k = Kernel {
            sysctl_root: d.path().into(),
            sysfs: d.path().into(),
            root: d.path().into(),
        };
        let g = |n: &str, v: f64| {
            let mut f = Family::new(n.to_string(), "", MetricType::Gauge);
            f.push(&[], v);
            f
        };
        let fams = vec![
            g("node_nf_conntrack_entries", 900.0),
            g("node_nf_conntrack_entries_limit", 1000.0),
            g("node_filefd_allocated", 10.0),
            g("node_filefd_maximum", 100.0),
            g("node_sockstat_TCP_inuse", 14116.0),
            g("node_sockstat_TCP_tw", 0.0),
            g("node_sockstat_TCP_mem", 1000.0),
        ];
        let f = family(&fams, &k);
        let got: Vec<(String, f64)> = f
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("conntrack".into(), 0.9),
                ("fds".into(), 0.1),
                ("ports".into(), 0.5),
                ("socket_memory".into(), 0.25)
            ]
        );
        assert!(family(&[], &k).samples.is_empty());
    }
}
