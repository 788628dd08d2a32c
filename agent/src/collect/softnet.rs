//! softnet collector: per-CPU counters from /proc/net/softnet_stat (hex columns), parsed as
//! procfs does for node_exporter 1.12: a line needs at least 9 columns; received_rps needs
//! 10, flow_limit_count 11; backlog_len and the CPU id need 13 (Linux 5.14+), otherwise the
//! CPU is the line number and the backlog 0. An unparsable column fails the collector.

use std::sync::Mutex;

use anyhow::Context;

use super::attr::HeldFile;
use super::{labels, Collector, Family, Labels, MetricType, Options};

struct Softnet {
    path: HeldFile,
    /// The CPUs of the last read (file order), and the order /metrics lists their rows in
    /// (CPU labels as text) with their label sets: kept while the CPUs stay the same.
    order: Mutex<RowOrder>,
}

/// CPU ids in the file's order, and (row, label set) in the order /metrics lists them.
type RowOrder = (Vec<u32>, Vec<(usize, Labels)>);

/// (metric, help, type), in the order of [`Row::values`].
const FAMILIES: &[(&str, &str, MetricType)] = &[
    (
        "node_softnet_processed_total",
        "Number of processed packets",
        MetricType::Counter,
    ),
    (
        "node_softnet_dropped_total",
        "Number of dropped packets",
        MetricType::Counter,
    ),
    (
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
        MetricType::Counter,
    ),
    (
        "node_softnet_cpu_collision_total",
        "Number of collision occur while obtaining device lock while transmitting",
        MetricType::Counter,
    ),
    (
        "node_softnet_received_rps_total",
        "Number of times cpu woken up received_rps",
        MetricType::Counter,
    ),
    (
        "node_softnet_flow_limit_count_total",
        "Number of times flow limit has been reached",
        MetricType::Counter,
    ),
    (
        "node_softnet_backlog_len",
        "Softnet backlog status",
        MetricType::Gauge,
    ),
];

/// One CPU's line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub cpu: u32,
    /// processed, dropped, time_squeeze, cpu_collision, received_rps, flow_limit, backlog.
    pub values: [u32; 7],
}

impl Row {
    /// Packets dropped because the CPU's backlog was full (netdev_max_backlog).
    pub fn dropped(&self) -> u32 {
        self.values[1]
    }
    /// Times the softirq ran out of budget (netdev_budget) with packets left.
    pub fn times_squeezed(&self) -> u32 {
        self.values[2]
    }
}

/// Reads and parses softnet_stat, one row per CPU.
pub fn read(file: &HeldFile) -> anyhow::Result<Vec<Row>> {
    parse(&file.read()?).with_context(|| format!("parsing {}", file.path().display()))
}

fn hex(cols: &[&str], i: usize) -> anyhow::Result<u32> {
    u32::from_str_radix(cols[i], 16).with_context(|| format!("column {i}: {:?}", cols[i]))
}

fn parse(text: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut cols: Vec<&str> = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        cols.clear();
        cols.extend(line.split_whitespace());
        let w = cols.len();
        anyhow::ensure!(
            w >= 9,
            "detected {w} columns, but expected at least 9: {line:?}"
        );
        // Columns 3..=7 are zero since Linux 2.6.23 but must still be hex.
        for i in 0..9 {
            hex(&cols, i)?;
        }
        let mut v = [0u32; 7];
        v[0] = hex(&cols, 0)?;
        v[1] = hex(&cols, 1)?;
        v[2] = hex(&cols, 2)?;
        v[3] = hex(&cols, 8)?;
        if w >= 10 {
            v[4] = hex(&cols, 9)?;
        }
        if w >= 11 {
            v[5] = hex(&cols, 10)?;
        }
        let cpu = if w >= 13 {
            v[6] = hex(&cols, 11)?;
            hex(&cols, 12)?
        } else {
            // Older kernels list online CPUs in order, without their number.
            line_no as u32
        };
        rows.push(Row { cpu, values: v });
    }
    Ok(rows)
}

impl Collector for Softnet {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let rows = read(&self.path)?;
        let mut fams: Vec<Family> = FAMILIES
            .iter()
            .map(|(n, h, k)| Family::new(*n, *h, *k))
            .collect();
        // In the order /metrics lists them (CPU labels as text), so that the encoder finds
        // them sorted; a stable sort, so that of two rows for one CPU the first still wins.
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        if order.0.len() != rows.len() || order.0.iter().zip(&rows).any(|(a, r)| *a != r.cpu) {
            let mut text: Vec<(String, usize)> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.cpu.to_string(), i))
                .collect();
            text.sort_by(|a, b| a.0.cmp(&b.0));
            order.0 = rows.iter().map(|r| r.cpu).collect();
            order.1 = text
                .into_iter()
                .map(|(cpu, i)| (i, labels(&[("cpu", &cpu)])))
                .collect();
        }
        for (i, set) in &order.1 {
            for (f, v) in fams.iter_mut().zip(rows[*i].values) {
                f.push_labels(set, f64::from(v));
            }
        }
        out.extend(fams);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Softnet {
        path: HeldFile::new(opts.procfs.join("net/softnet_stat")),
        order: Mutex::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_layouts_of_each_kernel_generation() {
        // 5.14+: 13 columns with backlog and CPU id (CPU 1 offline: ids skip).
        let t = "0000000a 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000003 00000004 00000005 00000006 00000000\n\
                 000000ff 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002\n";
        let rows = parse(t).unwrap();
        assert_eq!(
            rows[0],
            Row {
                cpu: 0,
                values: [10, 1, 2, 3, 4, 5, 6]
            }
        );
        assert_eq!(rows[1].cpu, 2);
        // 4.18–5.13: 11 columns, CPU = line number, no backlog.
        let t = "00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000007 00000008 00000009\n\
                 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let rows = parse(t).unwrap();
        assert_eq!(
            rows[0],
            Row {
                cpu: 0,
                values: [1, 0, 0, 7, 8, 9, 0]
            }
        );
        assert_eq!(rows[1].cpu, 1);
        // 2.6.23: 9 columns.
        let rows = parse("00000010 00000000 00000001 0 0 0 0 0 00000002\n").unwrap();
        assert_eq!(rows[0].values, [16, 0, 1, 2, 0, 0, 0]);
    }

    #[test]
    fn malformed_lines_fail() {
        assert!(parse("00000001 00000002\n").is_err());
        assert!(parse("0000000g 0 0 0 0 0 0 0 0\n").is_err());
        assert!(parse("0 0 0 0 0 0 0 0 0\n\n").is_err());
        assert!(parse("1ffffffff 0 0 0 0 0 0 0 0\n").is_err());
    }

    #[test]
    fn missing_file_fails_and_counters_pass_through() {
        let d = tempfile::tempdir().unwrap();
        let c = Softnet {
            path: HeldFile::new(d.path().join("softnet_stat")),
            order: Mutex::default(),
        };
        assert!(c.collect(&mut Vec::new()).is_err());
        // A counter that went backwards (u32 wrap in the kernel) is reported as read.
        for v in ["ffffffff", "00000001"] {
            std::fs::write(c.path.path(), format!("{v} 0 0 0 0 0 0 0 0 0 0\n")).unwrap();
            let mut out = Vec::new();
            c.collect(&mut out).unwrap();
            assert_eq!(
                out[0].samples[0].value,
                f64::from(u32::from_str_radix(v, 16).unwrap())
            );
            assert_eq!(out.len(), 7);
        }
    }
}
