//! infiniband collector, as node_exporter 1.12: `<sysfs>/class/infiniband/<device>` (fw_ver,
//! board_id, hca_type) and each port's state, phys_state, rate and the counters in `counters/`,
//! `counters_ext/` (pre-4.5 64-bit counters) and `hw_counters/` (mlx5). The data counters
//! (`port_rcv_data`, `port_xmit_data` and their `_64` forms) count 4-byte words and are
//! multiplied by 4. A counter file that cannot be read for an ignorable reason (missing,
//! permission, EINVAL, unsupported) is skipped; one that does not parse fails the collector
//! unless it says "N/A (no PMA)". No /sys/class/infiniband is "no data" (success 0).

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "infiniband-flags")]
pub struct Flags {
    /// Regexp of infiniband devices to include (mutually exclusive to device-exclude).
    #[arg(
        id = "collector.infiniband.device-include",
        long = "collector.infiniband.device-include"
    )]
    pub device_include: Option<String>,
    /// Regexp of infiniband devices to exclude (mutually exclusive to device-include).
    #[arg(
        id = "collector.infiniband.device-exclude",
        long = "collector.infiniband.device-exclude"
    )]
    pub device_exclude: Option<String>,
}

/// (file in counters/, family name, help).
const COUNTERS: &[(&str, &str, &str)] = &[
    ("excessive_buffer_overrun_errors", "node_infiniband_excessive_buffer_overrun_errors_total", "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at least one overrun error."),
    ("link_downed", "node_infiniband_link_downed_total", "Number of times the link failed to recover from an error state and went down"),
    ("link_error_recovery", "node_infiniband_link_error_recovery_total", "Number of times the link successfully recovered from an error state"),
    ("local_link_integrity_errors", "node_infiniband_local_link_integrity_errors_total", "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors."),
    ("multicast_rcv_packets", "node_infiniband_multicast_packets_received_total", "Number of multicast packets received (including errors)"),
    ("multicast_xmit_packets", "node_infiniband_multicast_packets_transmitted_total", "Number of multicast packets transmitted (including errors)"),
    ("port_rcv_constraint_errors", "node_infiniband_port_constraint_errors_received_total", "Number of packets received on the switch physical port that are discarded"),
    ("port_rcv_data", "node_infiniband_port_data_received_bytes_total", "Number of data octets received on all links"),
    ("port_rcv_discards", "node_infiniband_port_discards_received_total", "Number of inbound packets discarded by the port because the port is down or congested"),
    ("port_rcv_errors", "node_infiniband_port_errors_received_total", "Number of packets containing an error that were received on this port"),
    ("port_rcv_packets", "node_infiniband_port_packets_received_total", "Number of packets received on all VLs by this port (including errors)"),
    ("port_rcv_remote_physical_errors", "node_infiniband_port_receive_remote_physical_errors_total", "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port."),
    ("port_rcv_switch_relay_errors", "node_infiniband_port_receive_switch_relay_errors_total", "Number of packets that could not be forwarded by the switch."),
    ("port_xmit_constraint_errors", "node_infiniband_port_constraint_errors_transmitted_total", "Number of packets not transmitted from the switch physical port"),
    ("port_xmit_data", "node_infiniband_port_data_transmitted_bytes_total", "Number of data octets transmitted on all links"),
    ("port_xmit_discards", "node_infiniband_port_discards_transmitted_total", "Number of outbound packets discarded by the port because the port is down or congested"),
    ("port_xmit_packets", "node_infiniband_port_packets_transmitted_total", "Number of packets transmitted on all VLs from this port (including errors)"),
    ("port_xmit_wait", "node_infiniband_port_transmit_wait_total", "Number of ticks during which the port had data to transmit but no data was sent during the entire tick"),
    ("symbol_error", "node_infiniband_symbol_error_total", "Number of minor link errors detected on one or more physical lanes."),
    ("unicast_rcv_packets", "node_infiniband_unicast_packets_received_total", "Number of unicast packets received (including errors)"),
    ("unicast_xmit_packets", "node_infiniband_unicast_packets_transmitted_total", "Number of unicast packets transmitted (including errors)"),
    ("VL15_dropped", "node_infiniband_vl15_dropped_total", "Number of incoming VL15 packets dropped due to resource limitations."),
];

/// counters_ext/ (kernels before 4.5).
const COUNTERS_EXT: &[(&str, &str, &str)] = &[
    (
        "port_multicast_rcv_packets",
        "node_infiniband_legacy_multicast_packets_received_total",
        "Number of multicast packets received",
    ),
    (
        "port_multicast_xmit_packets",
        "node_infiniband_legacy_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted",
    ),
    (
        "port_rcv_data_64",
        "node_infiniband_legacy_data_received_bytes_total",
        "Number of data octets received on all links",
    ),
    (
        "port_rcv_packets_64",
        "node_infiniband_legacy_packets_received_total",
        "Number of data packets received on all links",
    ),
    (
        "port_unicast_rcv_packets",
        "node_infiniband_legacy_unicast_packets_received_total",
        "Number of unicast packets received",
    ),
    (
        "port_unicast_xmit_packets",
        "node_infiniband_legacy_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted",
    ),
    (
        "port_xmit_data_64",
        "node_infiniband_legacy_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
    ),
    (
        "port_xmit_packets_64",
        "node_infiniband_legacy_packets_transmitted_total",
        "Number of data packets received on all links",
    ),
];

/// hw_counters/ (mlx5). `lifespan` is a gauge in seconds (ms ÷ 1000), the rest counters.
const HW_COUNTERS: &[(&str, &str, &str)] = &[
    ("duplicate_request", "node_infiniband_duplicate_requests_packets_total", "The number of received packets. A duplicate request is a request that had been previously executed."),
    ("implied_nak_seq_err", "node_infiniband_implied_nak_seq_errors_total", "The number of time the requested decided an ACK. with a PSN larger than the expected PSN for an RDMA read or response."),
    ("lifespan", "node_infiniband_lifespan_seconds", "The maximum period in ms which defines the aging of the counter reads. Two consecutive reads within this period might return the same values."),
    ("local_ack_timeout_err", "node_infiniband_local_ack_timeout_errors_total", "The number of times QP's ack timer expired for RC, XRC, DCT QPs at the sender side. The QP retry limit was not exceed, therefore it is still recoverable error."),
    ("np_cnp_sent", "node_infiniband_np_cnp_packets_sent_total", "The number of CNP packets sent by the Notification Point when it noticed congestion experienced in the RoCEv2 IP header (ECN bits). The counters was added in MLNX_OFED 4.1"),
    ("np_ecn_marked_roce_packets", "node_infiniband_np_ecn_marked_roce_packets_received_total", "The number of RoCEv2 packets received by the notification point which were marked for experiencing the congestion (ECN bits where '11' on the ingress RoCE traffic) . The counters was added in MLNX_OFED 4.1"),
    ("out_of_buffer", "node_infiniband_out_of_buffer_drops_total", "The number of drops occurred due to lack of WQE for the associated QPs."),
    ("out_of_sequence", "node_infiniband_out_of_sequence_packets_received_total", "The number of out of sequence packets received."),
    ("packet_seq_err", "node_infiniband_packet_sequence_errors_total", "The number of received NAK sequence error packets. The QP retry limit was not exceeded."),
    ("req_cqe_error", "node_infiniband_req_cqes_errors_total", "The number of times requester detected CQEs completed with errors. The counters was added in MLNX_OFED 4.1"),
    ("req_cqe_flush_error", "node_infiniband_req_cqes_flush_errors_total", "The number of times requester detected CQEs completed with flushed errors. The counters was added in MLNX_OFED 4.1"),
    ("req_remote_access_errors", "node_infiniband_req_remote_access_errors_total", "The number of times requester detected remote access errors. The counters was added in MLNX_OFED 4.1"),
    ("req_remote_invalid_request", "node_infiniband_req_remote_invalid_request_errors_total", "The number of times requester detected remote invalid request errors. The counters was added in MLNX_OFED 4.1"),
    ("resp_cqe_error", "node_infiniband_resp_cqes_errors_total", "The number of times responder detected CQEs completed with errors. The counters was added in MLNX_OFED 4.1"),
    ("resp_cqe_flush_error", "node_infiniband_resp_cqes_flush_errors_total", "The number of times responder detected CQEs completed with flushed errors. The counters was added in MLNX_OFED 4.1"),
    ("resp_local_length_error", "node_infiniband_resp_local_length_errors_total", "The number of times responder detected local length errors. The counters was added in MLNX_OFED 4.1"),
    ("resp_remote_access_errors", "node_infiniband_resp_remote_access_errors_total", "The number of times responder detected remote access errors. The counters was added in MLNX_OFED 4.1"),
    ("rnr_nak_retry_err", "node_infiniband_rnr_nak_retry_packets_received_total", "The number of received RNR NAK packets. The QP retry limit was not exceeded."),
    ("roce_adp_retrans", "node_infiniband_roce_adp_retransmits_total", "The number of adaptive retransmissions for RoCE traffic. The counter was added in MLNX_OFED rev 5.0-1.0.0.0 and kernel v5.6.0"),
    ("roce_adp_retrans_to", "node_infiniband_roce_adp_retransmits_timeout_total", "The number of times RoCE traffic reached timeout due to adaptive retransmission. The counter was added in MLNX_OFED rev 5.0-1.0.0.0 and kernel v5.6.0"),
    ("roce_slow_restart", "node_infiniband_roce_slow_restart_used_total", "The number of times RoCE slow restart was used. The counter was added in MLNX_OFED rev 5.0-1.0.0.0 and kernel v5.6.0"),
    ("roce_slow_restart_cnps", "node_infiniband_roce_slow_restart_cnps_total", "The number of times RoCE slow restart generated CNP packets. The counter was added in MLNX_OFED rev 5.0-1.0.0.0 and kernel v5.6.0"),
    ("roce_slow_restart_trans", "node_infiniband_roce_slow_restart_total", "The number of times RoCE slow restart changed state to slow restart. The counter was added in MLNX_OFED rev 5.0-1.0.0.0 and kernel v5.6.0"),
    ("rp_cnp_handled", "node_infiniband_rp_cnp_packets_handled_total", "The number of CNP packets handled by the Reaction Point HCA to throttle the transmission rate. The counters was added in MLNX_OFED 4.1"),
    ("rp_cnp_ignored", "node_infiniband_rp_cnp_ignored_packets_received_total", "The number of CNP packets received and ignored by the Reaction Point HCA. This counter should not raise if RoCE Congestion Control was enabled in the network. If this counter raise, verify that ECN was enabled on the adapter."),
    ("rx_atomic_requests", "node_infiniband_rx_atomic_requests_total", "The number of received ATOMIC request for the associated QPs."),
    ("rx_dct_connect", "node_infiniband_rx_dct_connect_requests_total", "The number of received connection requests for the associated DCTs."),
    ("rx_icrc_encapsulated", "node_infiniband_rx_icrc_encapsulated_errors_total", "The number of RoCE packets with ICRC errors. This counter was added in MLNX_OFED 4.4 and kernel 4.19"),
    ("rx_read_requests", "node_infiniband_rx_read_requests_total", "The number of received READ requests for the associated QPs."),
    ("rx_write_requests", "node_infiniband_rx_write_requests_total", "The number of received WRITE requests for the associated QPs."),
];

/// One port: number, state and physical state ids, rate (bytes/s) and the counters read,
/// as (index into the table of its directory, value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Port {
    pub port: u32,
    pub state: u32,
    pub phys_state: u32,
    pub rate: u64,
    pub counters: Vec<(usize, u64)>,
    pub counters_ext: Vec<(usize, u64)>,
    pub hw_counters: Vec<(usize, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub board_id: String,
    pub firmware_version: String,
    pub hca_type: String,
    pub ports: Vec<Port>,
}

/// "4: ACTIVE" → 4.
pub fn parse_state(s: &str) -> anyhow::Result<u32> {
    let mut parts = s.split(':');
    let (Some(id), Some(_), None) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("failed to split {s:?} into 'ID: NAME'");
    };
    util::go_parse_uint(id.trim(), 10, 32)
        .map(|v| v as u32)
        .with_context(|| format!("failed to convert {:?} into uint", id.trim()))
}

/// "100 Gb/sec (4X EDR)" → bytes per second (the Gb/s figure read as a 32-bit float).
pub fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let Some((num, _)) = s.split_once(' ') else {
        anyhow::bail!("failed to split {s:?}");
    };
    let v: f32 = num
        .trim()
        .parse()
        .with_context(|| format!("failed to convert {:?} into uint", num.trim()))?;
    Ok((f64::from(v) * 125_000_000.0) as u64)
}

/// Errors procfs skips a counter file for.
fn ignorable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}

/// Reads the counters of one directory that are in `table`; `times4` are the word counters.
fn read_counters(
    dir: &Path,
    table: &[(&str, &str, &str)],
    times4: &[&str],
) -> anyhow::Result<Vec<(usize, u64)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut names: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let regular = e.file_type().is_ok_and(|t| t.is_file());
            (e.file_name().to_string_lossy().into_owned(), regular)
        })
        .collect();
    names.sort();
    for (name, regular) in names {
        if !regular {
            continue;
        }
        let Some(i) = table.iter().position(|(f, _, _)| *f == name) else {
            continue;
        };
        let path = dir.join(&name);
        let value = match util::read_attr(&path) {
            Ok(v) => v,
            Err(e) if ignorable(&e) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("failed to read file {}", path.display()))
            }
        };
        match util::go_parse_uint(&value, 0, 64) {
            Some(v) => {
                let v = if times4.contains(&name.as_str()) {
                    v.wrapping_mul(4)
                } else {
                    v
                };
                out.push((i, v));
            }
            None if value.contains("N/A (no PMA)") => {}
            None => anyhow::bail!("invalid value {value:?} in {}", path.display()),
        }
    }
    Ok(out)
}

fn read_port(dir: &Path, name: &str) -> anyhow::Result<Port> {
    let port = util::go_parse_uint(name, 10, 32)
        .with_context(|| format!("failed to convert {name:?} into uint"))? as u32;
    let read = |f: &str| util::read(&dir.join(f));
    // link_layer must be readable, as procfs requires.
    read("link_layer")?;
    let state = parse_state(&read("state")?)
        .with_context(|| format!("could not parse state file in {}", dir.display()))?;
    let phys_state = parse_state(&read("phys_state")?)
        .with_context(|| format!("could not parse phys_state file in {}", dir.display()))?;
    let rate = parse_rate(&read("rate")?)
        .with_context(|| format!("could not parse rate file in {}", dir.display()))?;
    let mut p = Port {
        port,
        state,
        phys_state,
        rate,
        ..Port::default()
    };
    if dir.join("counters").exists() {
        p.counters = read_counters(
            &dir.join("counters"),
            COUNTERS,
            &["port_rcv_data", "port_xmit_data"],
        )?;
        match read_counters(
            &dir.join("counters_ext"),
            COUNTERS_EXT,
            &["port_rcv_data_64", "port_xmit_data_64"],
        ) {
            Ok(c) => p.counters_ext = c,
            Err(e)
                if e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    if dir.join("hw_counters").exists() {
        p.hw_counters = read_counters(&dir.join("hw_counters"), HW_COUNTERS, &[])?;
    }
    Ok(p)
}

/// Reads one device directory.
pub fn read_device(dir: &Path, name: &str) -> anyhow::Result<Device> {
    let mut d = Device {
        name: name.to_string(),
        firmware_version: util::read_attr(&dir.join("fw_ver"))
            .with_context(|| format!("failed to read HCA firmware version of {name}"))?,
        ..Device::default()
    };
    for (f, slot) in [("board_id", &mut d.board_id), ("hca_type", &mut d.hca_type)] {
        match util::read_attr(&dir.join(f)) {
            Ok(v) => *slot = v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.join(f).display())),
        }
    }
    let ports = dir.join("ports");
    let mut names: Vec<String> = std::fs::read_dir(&ports)
        .with_context(|| format!("failed to list InfiniBand ports at {}", ports.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for p in names {
        let port = read_port(&ports.join(&p), &p)?;
        // Ports are keyed by number: a later duplicate ("01" and "1") replaces the earlier.
        d.ports.retain(|q| q.port != port.port);
        d.ports.push(port);
    }
    Ok(d)
}

fn render(devices: &[Device], out: &mut Vec<Family>) {
    let mut info = Family::new(
        "node_infiniband_info",
        "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
        MetricType::Gauge,
    );
    let mut state = Family::new(
        "node_infiniband_state_id",
        "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
        MetricType::Gauge,
    );
    let mut phys = Family::new(
        "node_infiniband_physical_state_id",
        "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)",
        MetricType::Gauge,
    );
    let mut rate = Family::new(
        "node_infiniband_rate_bytes_per_second",
        "Maximum signal transfer rate",
        MetricType::Gauge,
    );
    let table = |t: &'static [(&'static str, &'static str, &'static str)]| -> Vec<Family> {
        t.iter()
            .map(|(_, name, help)| {
                let kind = if *name == "node_infiniband_lifespan_seconds" {
                    MetricType::Gauge
                } else {
                    MetricType::Counter
                };
                Family::new(*name, *help, kind)
            })
            .collect()
    };
    let (mut c, mut ce, mut hw) = (table(COUNTERS), table(COUNTERS_EXT), table(HW_COUNTERS));
    for d in devices {
        info.push(
            &[
                ("device", &d.name),
                ("board_id", &d.board_id),
                ("firmware_version", &d.firmware_version),
                ("hca_type", &d.hca_type),
            ],
            1.0,
        );
        for p in &d.ports {
            let port = p.port.to_string();
            let l = [("device", d.name.as_str()), ("port", port.as_str())];
            state.push(&l, f64::from(p.state));
            phys.push(&l, f64::from(p.phys_state));
            rate.push(&l, p.rate as f64);
            for (fams, vals) in [
                (&mut c, &p.counters),
                (&mut ce, &p.counters_ext),
                (&mut hw, &p.hw_counters),
            ] {
                for (i, v) in vals {
                    let v = if fams[*i].name == "node_infiniband_lifespan_seconds" {
                        v / 1000
                    } else {
                        *v
                    };
                    fams[*i].push(&l, v as f64);
                }
            }
        }
    }
    out.extend([info, state, phys, rate]);
    out.extend(
        c.into_iter()
            .chain(ce)
            .chain(hw)
            .filter(|f| !f.samples.is_empty()),
    );
}

struct Infiniband {
    class: PathBuf,
    filter: util::DeviceFilter,
}

impl Collector for Infiniband {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // No such directory: no InfiniBand devices, no data.
        let mut names: Vec<String> = std::fs::read_dir(&self.class)
            .with_context(|| format!("reading {}", self.class.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut devices = Vec::new();
        for n in names {
            // Every device is read (a broken one fails the collector), then filtered.
            let d = read_device(&self.class.join(&n), &n)
                .context("error obtaining InfiniBand class info")?;
            if !self.filter.ignored(&d.name) {
                devices.push(d);
            }
        }
        render(&devices, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Infiniband {
        class: opts.sysfs.join("class/infiniband"),
        filter: util::DeviceFilter::new(
            &opts.infiniband.device_exclude,
            &opts.infiniband.device_include,
            "infiniband",
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn tree(root: &Path) {
        write(root, "mlx4_0/fw_ver", "2.31.5050\n");
        write(root, "mlx4_0/board_id", "SM_1141000001000\n");
        write(root, "mlx4_0/hca_type", "MT4099\n");
        let p = "mlx4_0/ports/1";
        write(root, &format!("{p}/link_layer"), "InfiniBand\n");
        write(root, &format!("{p}/state"), "4: ACTIVE\n");
        write(root, &format!("{p}/phys_state"), "5: LinkUp\n");
        write(root, &format!("{p}/rate"), "40 Gb/sec (4X QDR)\n");
        write(root, &format!("{p}/counters/port_rcv_data"), "100\n");
        write(root, &format!("{p}/counters/link_downed"), "0x10\n");
        write(
            root,
            &format!("{p}/counters/VL15_dropped"),
            "N/A (no PMA)\n",
        );
        write(root, &format!("{p}/counters/unknown_counter"), "x\n");
        write(root, &format!("{p}/counters_ext/port_xmit_data_64"), "7\n");
        write(root, &format!("{p}/hw_counters/lifespan"), "12500\n");
        write(root, &format!("{p}/hw_counters/out_of_buffer"), "3\n");
        let p = "mlx4_0/ports/2";
        write(root, &format!("{p}/link_layer"), "Ethernet\n");
        write(root, &format!("{p}/state"), "1: DOWN\n");
        write(root, &format!("{p}/phys_state"), "3: Disabled\n");
        write(root, &format!("{p}/rate"), "2.5 Gb/sec (1X SDR)\n");
    }

    fn collect(root: &Path, flags: &[&str]) -> anyhow::Result<Vec<Family>> {
        let mut f = vec![format!("--path.sysfs={}", root.display())];
        f.extend(flags.iter().map(|s| s.to_string()));
        let mut out = Vec::new();
        build(&Options::from_flags(f).unwrap())?.collect(&mut out)?;
        Ok(out)
    }

    fn value(f: &[Family], name: &str, port: &str) -> Option<f64> {
        f.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| s.labels[1].1 == port)
            .map(|s| s.value)
    }

    #[test]
    fn a_device_with_two_ports() {
        let d = tempfile::tempdir().unwrap();
        let class = d.path().join("class/infiniband");
        tree(&class);
        let f = collect(d.path(), &[]).unwrap();
        assert_eq!(f[0].samples[0].labels[3].1, "MT4099");
        for (name, port, v) in [
            ("node_infiniband_state_id", "1", 4.0),
            ("node_infiniband_physical_state_id", "2", 3.0),
            ("node_infiniband_rate_bytes_per_second", "1", 5e9),
            ("node_infiniband_rate_bytes_per_second", "2", 312_500_000.0),
            ("node_infiniband_port_data_received_bytes_total", "1", 400.0),
            ("node_infiniband_link_downed_total", "1", 16.0),
            (
                "node_infiniband_legacy_data_transmitted_bytes_total",
                "1",
                28.0,
            ),
            ("node_infiniband_lifespan_seconds", "1", 12.0),
            ("node_infiniband_out_of_buffer_drops_total", "1", 3.0),
        ] {
            assert_eq!(value(&f, name, port), Some(v), "{name} {port}");
        }
        assert_eq!(value(&f, "node_infiniband_vl15_dropped_total", "1"), None);
        let life = f
            .iter()
            .find(|f| f.name == "node_infiniband_lifespan_seconds");
        assert_eq!(life.unwrap().kind, MetricType::Gauge);
        // Filtered out: only the (empty) info family's siblings stay.
        let f = collect(d.path(), &["--collector.infiniband.device-exclude=^mlx"]).unwrap();
        assert!(f.iter().all(|f| f.samples.is_empty()));
    }

    #[test]
    fn broken_devices_fail_and_missing_class_is_no_data() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path(), &[]).is_err());
        let class = d.path().join("class/infiniband");
        tree(&class);
        write(
            &class,
            "mlx4_0/ports/1/counters/port_rcv_packets",
            "garbage\n",
        );
        assert!(collect(d.path(), &[]).is_err());
        std::fs::remove_file(class.join("mlx4_0/ports/1/counters/port_rcv_packets")).unwrap();
        write(&class, "mlx4_0/ports/1/state", "4 ACTIVE\n");
        assert!(collect(d.path(), &[]).is_err());
        write(&class, "mlx4_0/ports/1/state", "4: ACTIVE\n");
        write(&class, "mlx4_0/ports/x/state", "4: ACTIVE\n");
        assert!(collect(d.path(), &[]).is_err());
        assert!(parse_rate("40").is_err());
        assert!(parse_rate("fast Gb/sec").is_err());
        assert!(parse_state("a: b").is_err());
        assert!(parse_state("1: b: c").is_err());
    }
}
