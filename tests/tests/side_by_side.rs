//! Side by side on this host: Debian's prometheus-node-exporter (1.5.0) and `nodetune run`, both
//! on their defaults (nodetune with its packaged configuration, audit mode, on a free loopback
//! port). Every family node_exporter serves, `go_*` aside, must come out of nodetune with the
//! same type, the same label names, the same series and values within what changes between two
//! reads; a real Prometheus scraping both must store the same series.
//!
//! nodetune's compatibility target is node_exporter 1.12, so the differences between 1.5 and
//! 1.12 are accepted, each one listed below by name with its reason (node_exporter's
//! CHANGELOG.md, or the commit where the CHANGELOG is silent). So are the two places where
//! Debian's package departs from upstream's defaults. Nothing else is: a family, a label or a
//! series that only one of them has fails the test, and the failure lists what is missing
//! (the families of collectors nodetune does not have yet).
//!
//! Values: node_exporter is scraped just before and just after nodetune, and nodetune's value
//! must lie between node_exporter's two (counters move, but only forwards), widened by the
//! tolerance of the family's group (see [`check`]) for gauges that move both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nodetune_e2e::{have_tool, http_get, require, wait_until, Daemon, Prometheus};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// Debian's default textfile directory (upstream's default is none).
const DEBIAN_TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";

/// The two tests start their own pair of exporters; one pair at a time keeps the host quiet.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Families node_exporter 1.5 serves that 1.12 renamed or removed (none on Linux hosts so far:
/// the meminfo fields 1.12 dropped, nodetune still exports, as 1.5 did).
const GONE_IN_1_12: &[(&str, &str)] = &[];

/// Families 1.12 serves that 1.5 did not, by name, with the reason.
const ADDED_AFTER_1_5: &[(&str, &str)] = &[
    (
        "node_netstat_TcpExt_TCPOFOQueue",
        "1.8.0: added to the default netstat fields (#2867)",
    ),
    (
        "node_netstat_TcpExt_TCPRcvQDrop",
        "1.9.0: added to the default netstat fields (#3021)",
    ),
    (
        "node_softnet_backlog_len",
        "1.6.0: more softnet_stat columns (#2592, not in the CHANGELOG)",
    ),
    (
        "node_softnet_cpu_collision_total",
        "1.6.0: more softnet_stat columns (#2592)",
    ),
    (
        "node_softnet_flow_limit_count_total",
        "1.6.0: more softnet_stat columns (#2592)",
    ),
    (
        "node_softnet_received_rps_total",
        "1.6.0: more softnet_stat columns (#2592)",
    ),
    (
        "node_cpu_online",
        "1.9.0: cpu: Support CPU online status (#3032)",
    ),
    (
        "node_cpu_frequency_avg_hertz",
        "1.12.0: cpufreq: Add support for cpuinfo_avg_freq (#3712)",
    ),
    (
        "node_pressure_irq_stalled_seconds_total",
        "1.9.0: pressure: add IRQ PSI metrics (#3048)",
    ),
    (
        "node_filesystem_mount_info",
        "1.9.0: filesystem: Add node_filesystem_mount_info (#2970)",
    ),
    (
        "node_filesystem_purgeable_bytes",
        "1.9.0: purgeable space on macOS (#3206); on Linux 1.12 exports it as 0",
    ),
    (
        "node_network_altnames_info",
        "1.11.0: netlink: Add node_network_altnames_info (#3541)",
    ),
    (
        "node_kernel_hung_tasks_total",
        "1.11.0: kernel_hung collector, on by default (#3470)",
    ),
    (
        "node_watchdog_access_cs0",
        "1.8.0: watchdog collector, on by default (#2880)",
    ),
    (
        "node_watchdog_bootstatus",
        "1.8.0: watchdog collector (#2880)",
    ),
    (
        "node_watchdog_fw_version",
        "1.8.0: watchdog collector (#2880)",
    ),
    ("node_watchdog_info", "1.8.0: watchdog collector (#2880)"),
    (
        "node_watchdog_nowayout",
        "1.8.0: watchdog collector (#2880)",
    ),
    (
        "node_watchdog_pretimeout_seconds",
        "1.8.0: watchdog collector (#2880)",
    ),
    (
        "node_watchdog_timeleft_seconds",
        "1.8.0: watchdog collector (#2880)",
    ),
    (
        "node_watchdog_timeout_seconds",
        "1.8.0: watchdog collector (#2880)",
    ),
    (
        "process_network_receive_bytes_total",
        "client_golang 1.20 process collector (node_exporter 1.12 uses client_golang 1.24)",
    ),
    (
        "process_network_transmit_bytes_total",
        "client_golang 1.20 process collector (node_exporter 1.12 uses client_golang 1.24)",
    ),
];

/// Label names 1.12 added to families 1.5 has: (family, label, reason).
const LABELS_ADDED: &[(&str, &str, &str)] = &[
    (
        "node_disk_info",
        "rotational",
        "1.9.0: diskstats: Add block device rotational (#3022)",
    ),
    (
        "node_network_info",
        "adminstate",
        "1.6.0: administrative state of interfaces (#2515)",
    ),
    (
        "node_filesystem_avail_bytes",
        "device_error",
        "1.8.0: filesystem: surface device errors (#2923)",
    ),
    (
        "node_filesystem_device_error",
        "device_error",
        "1.8.0 (#2923)",
    ),
    ("node_filesystem_files", "device_error", "1.8.0 (#2923)"),
    (
        "node_filesystem_files_free",
        "device_error",
        "1.8.0 (#2923)",
    ),
    (
        "node_filesystem_free_bytes",
        "device_error",
        "1.8.0 (#2923)",
    ),
    ("node_filesystem_readonly", "device_error", "1.8.0 (#2923)"),
    (
        "node_filesystem_size_bytes",
        "device_error",
        "1.8.0 (#2923)",
    ),
    (
        "node_exporter_build_info",
        "tags",
        "client_golang's version collector (prometheus/common's build tags), newer than 1.5's",
    ),
];

/// Families whose type changed between 1.5 and 1.12: (family, 1.5's type, reason). None yet.
const TYPE_CHANGED: &[(&str, &str, &str)] = &[];

/// netdev's families: Debian's package excludes `lo` from them.
const NETDEV: &[&str] = &[
    "node_network_receive_bytes_total",
    "node_network_receive_compressed_total",
    "node_network_receive_drop_total",
    "node_network_receive_errs_total",
    "node_network_receive_fifo_total",
    "node_network_receive_frame_total",
    "node_network_receive_multicast_total",
    "node_network_receive_nohandler_total",
    "node_network_receive_packets_total",
    "node_network_transmit_bytes_total",
    "node_network_transmit_carrier_total",
    "node_network_transmit_colls_total",
    "node_network_transmit_compressed_total",
    "node_network_transmit_drop_total",
    "node_network_transmit_errs_total",
    "node_network_transmit_fifo_total",
    "node_network_transmit_packets_total",
];

type Labels = Vec<(String, String)>;

#[derive(Debug, Default, Clone)]
struct Fam {
    kind: String,
    series: BTreeMap<Labels, f64>,
}

type Expo = BTreeMap<String, Fam>;

/// A series one exporter may have without the other, and why.
fn series_exception(name: &str, labels: &Labels) -> Option<&'static str> {
    let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if NETDEV.contains(&name) && label("device") == Some("lo") {
        return Some(
            "Debian's package sets --collector.netdev.device-exclude=^lo$ (upstream: no exclusion)",
        );
    }
    if name.starts_with("node_filesystem_") {
        let mountpoint = label("mountpoint").unwrap_or("");
        let under = |dir: &str| {
            mountpoint
                .strip_prefix(dir)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if (under("/run") && !mountpoint.starts_with("/run/credentials/"))
            || under("/mnt")
            || under("/media")
        {
            return Some(
                "Debian's package adds run, mnt and media to --collector.filesystem.\
                 mount-points-exclude (upstream excludes only /run/credentials/…)",
            );
        }
        if label("fstype") == Some("erofs") {
            return Some("1.10.0: filesystem: Add erofs in default excluded fs (#3313)");
        }
    }
    if name.starts_with("node_disk_") {
        let dev = label("device").unwrap_or("");
        if dev
            .strip_prefix("zram")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            return Some("1.8.0: diskstats: Ignore zram devices on linux systems (#2898)");
        }
    }
    if name == "node_exporter_build_info" {
        return Some("label values describe each build (nodetune: its version, no Go)");
    }
    if name.starts_with("node_scrape_collector_") {
        return match label("collector") {
            Some("systemd") => Some(
                "Debian's package enables the systemd collector (upstream: off; nodetune: none)",
            ),
            Some("watchdog") => Some("1.8.0: watchdog collector, on by default (#2880)"),
            Some("kernel_hung") => Some("1.11.0: kernel_hung collector, on by default (#3470)"),
            Some("bcachefs") => Some("1.11.0: bcachefs collector, on by default (#3523)"),
            Some("dmmultipath") => Some("1.12.0: dmmultipath collector, on by default (#3581)"),
            _ => None,
        };
    }
    None
}

/// How a family's values are compared.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Between node_exporter's two reads, widened by `abs` + `rel` × |value|.
    Near { abs: f64, rel: f64 },
    /// The value describes each exporter's own process or work: only sane (finite, ≥ 0).
    Own,
    /// Checked on its own below (request counts, the network bytes of the process).
    Special,
}

const MIB: f64 = 1024.0 * 1024.0;

fn near(abs: f64, rel: f64) -> Check {
    Check::Near { abs, rel }
}

/// The value tolerance of each family group. Counters and everything that cannot change
/// between two reads fall to the default, the bare bracket: a counter only moves forwards, so
/// node_exporter's reads before and after nodetune's hold it between them.
fn check(name: &str) -> Check {
    match name {
        // Each exporter's own process and timing: different processes, nothing to compare.
        "node_scrape_collector_duration_seconds"
        | "process_cpu_seconds_total"
        | "process_resident_memory_bytes"
        | "process_virtual_memory_bytes"
        | "process_open_fds" => Check::Own,
        "promhttp_metric_handler_requests_total"
        | "process_network_receive_bytes_total"
        | "process_network_transmit_bytes_total" => Check::Special,
        // Both started by this test, seconds apart.
        "process_start_time_seconds" => near(60.0, 0.0),
        // Runnable and blocked tasks at the instant of the read, on a shared machine.
        "node_procs_running" | "node_procs_blocked" => near(16.0, 0.0),
        // Open files and tracked connections, system-wide: every process moves them.
        "node_filefd_allocated" => near(2048.0, 0.0),
        "node_nf_conntrack_entries" => near(512.0, 0.0),
        "node_netstat_Tcp_CurrEstab" => near(64.0, 0.0),
        "node_arp_entries" => near(4.0, 0.0),
        // Socket counts and socket memory (pages, and bytes): this test's own connections
        // come and go (TIME_WAIT), and so do everyone else's.
        "node_sockstat_sockets_used"
        | "node_sockstat_TCP_alloc"
        | "node_sockstat_TCP_inuse"
        | "node_sockstat_TCP_orphan"
        | "node_sockstat_TCP_tw"
        | "node_sockstat_TCP6_inuse"
        | "node_sockstat_UDP_inuse"
        | "node_sockstat_UDP6_inuse"
        | "node_sockstat_RAW_inuse"
        | "node_sockstat_RAW6_inuse"
        | "node_sockstat_FRAG_inuse"
        | "node_sockstat_FRAG6_inuse" => near(256.0, 0.0),
        "node_sockstat_TCP_mem" | "node_sockstat_UDP_mem" => near(1024.0, 0.0),
        "node_sockstat_TCP_mem_bytes"
        | "node_sockstat_UDP_mem_bytes"
        | "node_sockstat_FRAG_memory"
        | "node_sockstat_FRAG6_memory" => near(4.0 * MIB, 0.0),
        "node_udp_queues" => near(4.0 * MIB, 0.0),
        "node_disk_io_now" => near(256.0, 0.0),
        "node_softnet_backlog_len" => near(1000.0, 0.0),
        // The kernel derives btime from the wall clock and the uptime: it may move by a second.
        "node_boot_time_seconds" => near(1.0, 0.0),
        // Wall-clock time, read in order; a second for a clock step between the reads.
        "node_time_seconds" => near(1.0, 0.0),
        // Older kernels' entropy estimate moves with every read of /dev/random.
        "node_entropy_available_bits" => near(256.0, 0.0),
        // The clock discipline moves these between reads: small absolute tolerances.
        "node_timex_offset_seconds" | "node_timex_estimated_error_seconds" => near(1e-3, 0.0),
        "node_timex_maxerror_seconds" => near(0.01, 0.0),
        "node_timex_frequency_adjustment_ratio" => near(1e-5, 0.0),
        // Free space on filesystems other processes write to (builds, logs).
        "node_filesystem_avail_bytes" | "node_filesystem_free_bytes" => near(64.0 * MIB, 0.0),
        "node_filesystem_files_free" => near(4096.0, 0.0),
        // Free, cached, dirty memory: everything else on the host moves it between reads.
        n if n.starts_with("node_memory_") && n.ends_with("_bytes") => near(64.0 * MIB, 0.02),
        _ => near(0.0, 0.0),
    }
}

fn lookup<'a>(table: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    table.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn added_labels(name: &str) -> Vec<&'static str> {
    LABELS_ADDED
        .iter()
        .filter(|(f, _, _)| *f == name)
        .map(|(_, l, _)| *l)
        .collect()
}

/// Parses the text exposition format (0.0.4): families with their type and series.
fn parse(text: &str) -> Expo {
    let mut out = Expo::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            out.entry(name.to_string()).or_default().kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels, value) = parse_sample(line);
        let fam = if out.contains_key(&name) {
            name
        } else {
            // Summary and histogram samples belong to the family without their suffix.
            ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string()
        };
        if let Some(f) = out.get_mut(&fam) {
            f.series.insert(labels, value);
        }
    }
    out
}

fn parse_sample(line: &str) -> (String, Labels, f64) {
    let end = line.find(['{', ' ']).expect("sample line");
    let name = line[..end].to_string();
    let mut labels = Labels::new();
    let mut rest = &line[end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            // name="value" pairs, separated by commas, up to '}'.
            let mut key = String::new();
            let mut closed_at = None;
            for (i, c) in chars.by_ref() {
                match c {
                    '=' => break,
                    '}' => {
                        closed_at = Some(i);
                        break;
                    }
                    ',' | ' ' => {}
                    c => key.push(c),
                }
            }
            if let Some(i) = closed_at {
                rest = &body[i + 1..];
                break;
            }
            assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
            let mut value = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|c| c.1) {
                        Some('n') => value.push('\n'),
                        Some(o) => value.push(o),
                        None => {}
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
    }
    labels.sort();
    let v = rest.split_whitespace().next().expect("value");
    let value = match v {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
    };
    (name, labels, value)
}

fn strip(labels: &Labels, drop: &[&str]) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn label_names(series: &BTreeMap<Labels, f64>, drop: &[&str]) -> BTreeSet<Vec<String>> {
    series
        .keys()
        .map(|l| {
            l.iter()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .collect()
}

/// Metric names in Debian's textfile directory: node_exporter serves them there by default.
fn debian_textfile_families() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(DEBIAN_TEXTFILE_DIR) else {
        return out;
    };
    for e in dir.flatten() {
        if e.path().extension().is_some_and(|x| x == "prom") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for l in text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
            {
                if let Some(end) = l.find(['{', ' ']) {
                    out.insert(l[..end].to_string());
                }
            }
            out.insert("node_textfile_mtime_seconds".to_string());
        }
    }
    out
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An exporter under test and the number of 200 answers it has given this test.
struct Target {
    addr: String,
    answered: u64,
}

impl Target {
    fn scrape(&mut self) -> Option<String> {
        let (status, _, body) = http_get(&self.addr, "/metrics", &[])?;
        (status == 200).then(|| {
            self.answered += 1;
            String::from_utf8_lossy(&body).into_owned()
        })
    }

    fn wait(&mut self, who: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.scrape().is_none() {
            assert!(
                Instant::now() < deadline,
                "{who} never answered on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Both exporters on their defaults, on loopback.
struct Pair {
    ne: Target,
    nt: Target,
    _ne: Kill,
    _nt: Daemon,
    _dir: tempfile::TempDir,
}

fn start_pair() -> Pair {
    // nodetune first: its build (on a first run) must not eat into node_exporter's uptime.
    let dir = tempfile::tempdir().unwrap();
    let packaged =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/nodetune.toml");
    let config = dir.path().join("nodetune.toml");
    std::fs::copy(&packaged, &config).expect("packaged configuration");
    let nt_daemon = Daemon::start(
        &[],
        &[
            &format!("--config={}", config.display()),
            "--web.listen-address=127.0.0.1:0",
        ],
        &[],
    );
    let mut nt = Target {
        addr: nt_daemon.addr(),
        answered: 0,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let ne_child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter");
    let mut ne = Target {
        addr: format!("127.0.0.1:{port}"),
        answered: 0,
    };
    ne.wait("node_exporter");
    nt.wait(&format!("nodetune:\n{}", nt_daemon.stderr()));
    Pair {
        ne,
        nt,
        _ne: Kill(ne_child),
        _nt: nt_daemon,
        _dir: dir,
    }
}

fn peers_present(prometheus: bool) -> bool {
    require(
        std::path::Path::new(NODE_EXPORTER).is_file(),
        "prometheus-node-exporter (Debian package)",
    ) && (!prometheus || require(have_tool("prometheus"), "prometheus (Debian package)"))
}

/// What one comparison found.
#[derive(Default)]
struct Report {
    /// node_exporter families nodetune lacks (the merge checklist).
    missing: Vec<String>,
    /// node_exporter collectors nodetune lacks (their node_scrape_collector_* series).
    collectors: BTreeSet<String>,
    problems: Vec<String>,
}

impl Report {
    fn series_missing(&mut self, name: &str, labels: &Labels) {
        match labels.as_slice() {
            [(k, c)] if name.starts_with("node_scrape_collector_") && k == "collector" => {
                self.collectors.insert(c.clone());
            }
            _ => self
                .problems
                .push(format!("{name}{labels:?}: series missing in nodetune")),
        }
    }

    fn finish(self, what: &str) {
        let collectors: Vec<&str> = self.collectors.iter().map(String::as_str).collect();
        eprintln!(
            "{what}: {} families missing in nodetune: {}\n{what}: {} collectors missing: {}",
            self.missing.len(),
            self.missing.join(" "),
            collectors.len(),
            collectors.join(" ")
        );
        let mut all: Vec<String> = self
            .missing
            .iter()
            .map(|m| format!("missing in nodetune: {m}"))
            .collect();
        all.extend(
            collectors
                .iter()
                .map(|c| format!("collector missing in nodetune: {c}")),
        );
        all.extend(self.problems);
        assert!(
            all.is_empty(),
            "{what}: {} differences:\n{}",
            all.len(),
            all.join("\n")
        );
    }
}

/// Compares nodetune's scrape with node_exporter's two around it.
fn compare(before: &Expo, nt: &Expo, after: &Expo, textfile: &BTreeSet<String>) -> Report {
    let mut r = Report::default();
    let ne_names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in &ne_names {
        let name = name.as_str();
        if name.starts_with("go_") || textfile.contains(name) {
            continue;
        }
        let (b, a) = (before.get(name), after.get(name));
        let Some(t) = nt.get(name) else {
            if lookup(GONE_IN_1_12, name).is_none() {
                r.missing.push(name.to_string());
            }
            continue;
        };
        let ne_kind = b.or(a).map(|f| f.kind.as_str()).unwrap_or("");
        let type_ok = TYPE_CHANGED
            .iter()
            .any(|(n, old, _)| *n == name && *old == ne_kind && !t.kind.is_empty());
        if t.kind != ne_kind && !type_ok {
            r.problems
                .push(format!("{name}: type {}, node_exporter {ne_kind}", t.kind));
        }
        let added = added_labels(name);
        let ne_series: BTreeMap<Labels, f64> = b
            .into_iter()
            .chain(a)
            .flat_map(|f| f.series.clone())
            .collect();
        let nt_series: BTreeMap<Labels, f64> = t
            .series
            .iter()
            .map(|(l, v)| (strip(l, &added), *v))
            .collect();
        let (ln_ne, ln_nt) = (label_names(&ne_series, &[]), label_names(&nt_series, &[]));
        if !ne_series.is_empty() && !nt_series.is_empty() && ln_ne != ln_nt {
            r.problems.push(format!(
                "{name}: label names {ln_nt:?}, node_exporter {ln_ne:?}"
            ));
            continue;
        }
        // Series node_exporter had in both reads (a device that came or went between the
        // reads proves nothing either way).
        for (labels, bv) in b.map(|f| &f.series).into_iter().flatten() {
            let Some(av) = a.and_then(|f| f.series.get(labels)) else {
                continue;
            };
            if series_exception(name, labels).is_some() {
                continue;
            }
            let Some(v) = nt_series.get(labels) else {
                r.series_missing(name, labels);
                continue;
            };
            if let Some(p) = compare_value(name, *bv, *v, *av) {
                r.problems.push(format!("{name}{labels:?}: {p}"));
            }
        }
        for labels in nt_series.keys() {
            if !ne_series.contains_key(labels) && series_exception(name, labels).is_none() {
                r.problems
                    .push(format!("{name}{labels:?}: series only in nodetune"));
            }
        }
    }
    for name in nt.keys() {
        let known = before.contains_key(name) || after.contains_key(name);
        // nodetune's own families have their own namespace (PRODUCT.md section 3).
        if !known && !name.starts_with("nodetune_") && lookup(ADDED_AFTER_1_5, name).is_none() {
            r.problems.push(format!("only in nodetune: {name}"));
        }
    }
    r
}

/// None when nodetune's value `v` fits node_exporter's reads `b` (before) and `a` (after).
fn compare_value(name: &str, b: f64, v: f64, a: f64) -> Option<String> {
    match check(name) {
        Check::Own => (!(v.is_finite() && v >= 0.0)).then(|| format!("{v} is not a sane value")),
        Check::Special => None,
        Check::Near { abs, rel } => {
            if b.is_nan() && a.is_nan() && v.is_nan() {
                return None;
            }
            let tol = abs + rel * v.abs();
            let (lo, hi) = (b.min(a) - tol, b.max(a) + tol);
            (!(lo <= v && v <= hi))
                .then(|| format!("nodetune {v}, node_exporter {b} then {a} (tolerance {tol})"))
        }
    }
}

fn value(e: &Expo, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    e.get(name)?.series.get(&want).copied()
}

#[test]
fn both_on_their_defaults_serve_the_same_families_and_values() {
    if !peers_present(false) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut p = start_pair();
    // One scrape each already done (the readiness check); a second warms every collector.
    p.nt.scrape().expect("nodetune scrape");
    p.ne.scrape().expect("node_exporter scrape");
    let (ne_200, nt_200) = (p.ne.answered, p.nt.answered);
    let before = parse(&p.ne.scrape().expect("node_exporter scrape"));
    let nt = parse(&p.nt.scrape().expect("nodetune scrape"));
    let after = parse(&p.ne.scrape().expect("node_exporter scrape"));
    let mut report = compare(&before, &nt, &after, &debian_textfile_families());

    // promhttp: the scrapes each has answered before this one, none refused or failed.
    for (who, e, n) in [
        ("node_exporter", &before, ne_200),
        ("nodetune", &nt, nt_200),
    ] {
        for (code, want) in [("200", n as f64), ("500", 0.0), ("503", 0.0)] {
            let got = value(
                e,
                "promhttp_metric_handler_requests_total",
                &[("code", code)],
            );
            if got != Some(want) {
                report.problems.push(format!(
                    "{who}: promhttp_metric_handler_requests_total{{code={code}}} {got:?}, want {want}"
                ));
            }
        }
        if value(e, "promhttp_metric_handler_requests_in_flight", &[]) != Some(1.0) {
            report
                .problems
                .push(format!("{who}: requests_in_flight is not 1"));
        }
    }
    // The process's network bytes are its network namespace's IpExt octets: the same counters
    // node_exporter's netstat collector reads.
    for (process, netstat) in [
        (
            "process_network_receive_bytes_total",
            "node_netstat_IpExt_InOctets",
        ),
        (
            "process_network_transmit_bytes_total",
            "node_netstat_IpExt_OutOctets",
        ),
    ] {
        let (b, v, a) = (
            value(&before, netstat, &[]),
            value(&nt, process, &[]),
            value(&after, netstat, &[]),
        );
        match (b, v, a) {
            (Some(b), Some(v), Some(a)) if b <= v && v <= a => {}
            other => report.problems.push(format!(
                "{process}: (netstat before, it, after) = {other:?}"
            )),
        }
    }
    // Both raise the soft open-files limit to the hard one at start.
    for name in ["process_max_fds", "process_virtual_memory_max_bytes"] {
        let (b, v) = (value(&before, name, &[]), value(&nt, name, &[]));
        if b.is_none() || b != v {
            report
                .problems
                .push(format!("{name}: nodetune {v:?}, node_exporter {b:?}"));
        }
    }
    assert!(
        before.len() > 100 && nt.len() > 100,
        "both served real families"
    );
    report.finish("scrape");
}

/// Series of one job as Prometheus stores them: name and labels, `instance` and `job` left out.
fn stored(prom: &Prometheus, job: &str) -> BTreeMap<String, BTreeSet<Labels>> {
    let q = format!("%7Bjob%3D%22{job}%22%7D");
    let text = prom.query(&q);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out: BTreeMap<String, BTreeSet<Labels>> = BTreeMap::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let Some(m) = s["metric"].as_object() else {
            continue;
        };
        let name = m["__name__"].as_str().unwrap_or("").to_string();
        let mut labels: Labels = m
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "instance" | "job"))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        labels.sort();
        out.entry(name).or_default().insert(labels);
    }
    out
}

/// The differences between what Prometheus stored for the two jobs.
fn stored_differences(prom: &Prometheus, textfile: &BTreeSet<String>) -> Report {
    let (ne, nt) = (stored(prom, "node_exporter"), stored(prom, "nodetune"));
    let mut r = Report::default();
    for (name, series) in &ne {
        if name.starts_with("go_") || textfile.contains(name) {
            continue;
        }
        let Some(mine) = nt.get(name) else {
            if lookup(GONE_IN_1_12, name).is_none() {
                r.missing.push(name.clone());
            }
            continue;
        };
        let added = added_labels(name);
        let mine: BTreeSet<Labels> = mine.iter().map(|l| strip(l, &added)).collect();
        for l in series.difference(&mine) {
            if series_exception(name, l).is_none() {
                r.series_missing(name, l);
            }
        }
        for l in mine.difference(series) {
            if series_exception(name, l).is_none() {
                r.problems
                    .push(format!("{name}{l:?}: series only in nodetune"));
            }
        }
    }
    for name in nt.keys() {
        if !ne.contains_key(name)
            && !name.starts_with("nodetune_")
            && lookup(ADDED_AFTER_1_5, name).is_none()
        {
            r.problems.push(format!("only in nodetune: {name}"));
        }
    }
    r
}

#[test]
fn prometheus_stores_the_same_series_from_both() {
    if !peers_present(true) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let p = start_pair();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n\
         \x20 - job_name: node_exporter\n    static_configs:\n      - targets: ['{}']\n\
         \x20 - job_name: nodetune\n    static_configs:\n      - targets: ['{}']\n",
        p.ne.addr, p.nt.addr
    );
    let prom = Prometheus::start(&cfg);
    let up = |job: &str| {
        let r = prom.query(&format!("up%7Bjob%3D%22{job}%22%7D"));
        r.contains(",\"1\"]")
    };
    assert!(
        wait_until(90, || up("node_exporter") && up("nodetune")),
        "Prometheus never scraped both"
    );
    // A few scrapes of each, then two looks a few scrapes apart: what differs in both is real
    // (a device or mount that came or went in between shows in one look only).
    std::thread::sleep(Duration::from_secs(3));
    let textfile = debian_textfile_families();
    let first = stored_differences(&prom, &textfile);
    std::thread::sleep(Duration::from_secs(3));
    let second = stored_differences(&prom, &textfile);
    let both = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|x| b.contains(x)).cloned().collect()
    };
    let report = Report {
        missing: both(&first.missing, &second.missing),
        collectors: first
            .collectors
            .intersection(&second.collectors)
            .cloned()
            .collect(),
        problems: both(&first.problems, &second.problems),
    };
    let stored_nt = stored(&prom, "nodetune");
    assert!(
        stored_nt.len() > 100,
        "Prometheus stored nodetune's families"
    );
    report.finish("Prometheus");
}

#[test]
fn the_exposition_parser_reads_escapes_and_specials() {
    let e = parse(
        "# HELP a x\n# TYPE a gauge\na{b=\"1\",c=\"q\\\"\\\\\\n,}\"} NaN\na 2.5e+06\n\
         # TYPE s summary\ns_sum 1\ns_count 2\n",
    );
    let a = &e["a"];
    assert_eq!(a.kind, "gauge");
    assert_eq!(a.series[&vec![]], 2.5e6);
    let labels = vec![
        ("b".to_string(), "1".to_string()),
        ("c".to_string(), "q\"\\\n,}".to_string()),
    ];
    assert!(a.series[&labels].is_nan());
    assert_eq!(e["s"].series.len(), 1);
    assert!(compare_value("node_cpu_seconds_total", 1.0, 1.5, 2.0).is_none());
    assert!(compare_value("node_cpu_seconds_total", 1.0, 2.5, 2.0).is_some());
    assert!(compare_value("node_memory_MemFree_bytes", 1e9, 1.01e9, 1e9).is_none());
    assert!(compare_value("node_memory_MemFree_bytes", 1e9, 2e9, 1e9).is_some());
}
