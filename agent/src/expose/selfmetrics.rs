//! Metrics about the exporter itself, as node_exporter serves them for itself through
//! client_golang (v1.24, the version node_exporter 1.12 uses):
//!
//! - the process collector, `process_*`: read from the real `/proc/self`, not under
//!   `--path.procfs` (client_golang opens the default `/proc` whatever node_exporter's flags
//!   say). CPU seconds, virtual memory and resident memory from `stat` (ticks at procfs's fixed
//!   100 Hz, pages × page size), open descriptors from `fd` (its size on Linux ≥ 6.2, else a
//!   count of its entries), the soft `RLIMIT_NOFILE` and `RLIMIT_AS` (what `limits` shows),
//!   and `IpExt` `InOctets`/`OutOctets` from `net/netstat` (client_golang's
//!   `process_network_*`: the counters of the process's network namespace; taken from the
//!   scrape's netstat collector when it reads the real /proc, the same file). The start time
//!   (boot time + start ticks) cannot change: computed once. As there, a source that cannot
//!   be read leaves its families out, silently.
//! - promhttp's handler instrumentation: `promhttp_metric_handler_requests_total{code}` (200,
//!   500 and 503 present from the start), `promhttp_metric_handler_requests_in_flight` (the
//!   scrape being served counts itself) and `promhttp_metric_handler_errors_total{cause}`
//!   (`gathering`: a scrape whose collectors gave the same series twice, dropped as
//!   client_golang's registry drops them; `encoding` stays 0: the body is written after the
//!   handler returns, so a client hanging up mid-body is not seen here).
//! - `node_exporter_build_info` (see [`build_info`]): served even with
//!   `--web.disable-exporter-metrics`, as node_exporter registers it with the collectors.
//!
//! `--web.disable-exporter-metrics` leaves out the first two groups (node_exporter also leaves
//! out `go_*`, which nodetune has no equivalent of).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::collect::attr::HeldFile;
use crate::collect::util::read_text;
use crate::collect::{Family, MetricType};
use crate::expose::encode;

/// procfs's USER_HZ, a constant there (not sysconf): the ticks in /proc/PID/stat per second.
const USER_HZ: f64 = 100.0;

/// The fields of /proc/PID/stat the process collector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub utime: u64,
    pub stime: u64,
    pub starttime: u64,
    pub vsize: u64,
    pub rss: i64,
}

/// Parses /proc/PID/stat; the command name (field 2) may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15, starttime 22, vsize 23, rss 24.
    let num = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok());
    Some(ProcStat {
        utime: num(14)?,
        stime: num(15)?,
        starttime: num(22)?,
        vsize: num(23)?,
        rss: f.get(24 - 3)?.parse().ok()?,
    })
}

/// The boot time (`btime`) from /proc/stat.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `IpExt` `InOctets` and `OutOctets` from /proc/PID/net/netstat, 0 when absent; None when the
/// file is garbled (procfs then fails, and client_golang leaves both families out).
pub fn parse_netstat_octets(text: &str) -> Option<(f64, f64)> {
    let (mut inb, mut outb) = (0.0, 0.0);
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let values = lines.next().unwrap_or("");
        // Walked in step, without collecting: this runs on every scrape.
        let (mut names, mut values) = (names.split(' '), values.split(' '));
        let ipext = names.next()?.trim_end_matches(':') == "IpExt";
        values.next()?;
        loop {
            match (names.next(), values.next()) {
                (Some(k), Some(v)) => {
                    let v: f64 = v.parse().ok()?;
                    match (ipext, k) {
                        (true, "InOctets") => inb = v,
                        (true, "OutOctets") => outb = v,
                        _ => {}
                    }
                }
                (None, None) => break,
                // As many names as values, or the file is garbled.
                _ => return None,
            }
        }
    }
    Some((inb, outb))
}

/// Go's names for the architectures Rust calls otherwise.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// `node_exporter_build_info`, which dashboards key on (node-mixin's USE dashboard lists its
/// instances from it). The label names are node_exporter 1.12's (client_golang's version
/// collector), so queries that group or join by them keep working; the values describe
/// nodetune honestly: its version, the platform, and empty (no Go) `goversion`, `branch`,
/// `revision` and `tags`. `nodetune_build_info` tells nodetune hosts apart.
pub fn build_info() -> Family {
    let mut f = Family::new(
        "node_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion \
         from which node_exporter was built, and the goos and goarch for the build.",
        MetricType::Gauge,
    );
    f.push(
        &[
            ("branch", ""),
            ("goarch", goarch()),
            ("goos", std::env::consts::OS),
            ("goversion", ""),
            ("revision", ""),
            ("tags", ""),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    f
}

/// The process and promhttp metrics of one endpoint.
pub struct SelfMetrics {
    /// `/proc/self`, or a stand-in directory in tests.
    proc_self: PathBuf,
    /// `stat` and `net/netstat` of `proc_self`, held open.
    stat: HeldFile,
    netstat: HeldFile,
    start_time: Option<f64>,
    page_size: f64,
    in_flight: AtomicI64,
    /// Responses by status code, in the order first seen.
    codes: Mutex<Vec<(u16, u64)>>,
    gathering_errors: AtomicU64,
    /// The scrape's netstat collector reads the real `/proc/net/netstat`, which is this
    /// process's `net/netstat` (`/proc/net` links to `self/net`): its `IpExt` octets are
    /// taken from the scrape rather than generating the kernel's 400 counters twice.
    octets_in_scrape: bool,
}

/// One request being served by the metrics handler: in flight until dropped.
pub struct InFlight(Arc<SelfMetrics>);

impl InFlight {
    /// Counts the response by its status code (the request stays in flight until dropped).
    pub fn answered(&self, status: u16) {
        let mut codes = self.0.codes.lock().unwrap_or_else(|p| p.into_inner());
        match codes.iter_mut().find(|(c, _)| *c == status) {
            Some((_, n)) => *n += 1,
            None => codes.push((status, 1)),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SelfMetrics {
    /// For this process; `procfs` is the collectors' `--path.procfs`.
    pub fn new(procfs: &Path) -> Arc<SelfMetrics> {
        Self::build(
            Path::new("/proc/self"),
            Path::new("/proc/stat"),
            procfs == Path::new("/proc"),
        )
    }

    /// For the process whose /proc directory is `proc_self`, booted at /proc/stat's `btime`.
    pub fn at(proc_self: &Path, proc_stat: &Path) -> Arc<SelfMetrics> {
        Self::build(proc_self, proc_stat, false)
    }

    fn build(proc_self: &Path, proc_stat: &Path, octets_in_scrape: bool) -> Arc<SelfMetrics> {
        let read = |p: &Path| read_text(p).ok();
        let btime = read(proc_stat).as_deref().and_then(parse_btime);
        let stat = read(&proc_self.join("stat"))
            .as_deref()
            .and_then(parse_stat);
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Arc::new(SelfMetrics {
            proc_self: proc_self.to_path_buf(),
            stat: HeldFile::new(proc_self.join("stat")),
            netstat: HeldFile::new(proc_self.join("net/netstat")),
            start_time: btime
                .zip(stat)
                .map(|(b, s)| b as f64 + s.starttime as f64 / USER_HZ),
            page_size: if page > 0 { page as f64 } else { 4096.0 },
            in_flight: AtomicI64::new(0),
            codes: Mutex::new(vec![(200, 0), (500, 0), (503, 0)]),
            gathering_errors: AtomicU64::new(0),
            octets_in_scrape,
        })
    }

    /// A request has reached the metrics handler.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Adds the process and promhttp families to a scrape and normalizes it (as
    /// [`encode::normalize`]); series given twice count as one gathering error.
    pub fn gather(&self, mut fams: Vec<Family>) -> Vec<Family> {
        self.append(&mut fams);
        let count = |f: &[Family]| f.iter().map(|f| f.samples.len()).sum::<usize>();
        let before = count(&fams);
        let fams = encode::normalize(fams);
        if count(&fams) < before {
            self.gathering_errors.fetch_add(1, Ordering::Relaxed);
        }
        fams
    }

    fn append(&self, out: &mut Vec<Family>) {
        self.process(out);
        let mut requests = Family::new(
            "promhttp_metric_handler_requests_total",
            "Total number of scrapes by HTTP status code.",
            MetricType::Counter,
        );
        for (code, n) in self.codes.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            requests.push(&[("code", &code.to_string())], *n as f64);
        }
        out.push(requests);
        out.push(Family::single(
            "promhttp_metric_handler_requests_in_flight",
            "Current number of scrapes being served.",
            MetricType::Gauge,
            self.in_flight.load(Ordering::Relaxed) as f64,
        ));
        let mut errors = Family::new(
            "promhttp_metric_handler_errors_total",
            "Total number of internal errors encountered by the promhttp metric handler.",
            MetricType::Counter,
        );
        errors.push(&[("cause", "encoding")], 0.0);
        errors.push(
            &[("cause", "gathering")],
            self.gathering_errors.load(Ordering::Relaxed) as f64,
        );
        out.push(errors);
    }

    /// client_golang's process collector; each source that cannot be read is left out.
    fn process(&self, out: &mut Vec<Family>) {
        let stat = self.stat.text().ok();
        if let Some(s) = stat.as_deref().and_then(parse_stat) {
            out.push(Family::single(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricType::Counter,
                (s.utime + s.stime) as f64 / USER_HZ,
            ));
            out.push(Family::single(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                MetricType::Gauge,
                s.vsize as f64,
            ));
            out.push(Family::single(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                MetricType::Gauge,
                s.rss as f64 * self.page_size,
            ));
            if let Some(t) = self.start_time {
                out.push(Family::single(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    MetricType::Gauge,
                    t,
                ));
            }
        }
        let real_proc = self.proc_self.starts_with("/proc");
        if let Some(n) = open_fds(&self.proc_self.join("fd"), real_proc) {
            out.push(Family::single(
                "process_open_fds",
                "Number of open file descriptors.",
                MetricType::Gauge,
                n as f64,
            ));
        }
        if let (Some(nofile), Some(vm)) = (soft_limit(Limit::Files), soft_limit(Limit::Memory)) {
            out.push(Family::single(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                MetricType::Gauge,
                nofile,
            ));
            out.push(Family::single(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                MetricType::Gauge,
                vm,
            ));
        }
        let octets = self
            .octets_in_scrape
            .then(|| scraped_octets(out))
            .flatten()
            .or_else(|| {
                let text = self.netstat.text().ok()?;
                parse_netstat_octets(&text)
            });
        if let Some((inb, outb)) = octets {
            out.push(Family::single(
                "process_network_receive_bytes_total",
                "Number of bytes received by the process over the network.",
                MetricType::Counter,
                inb,
            ));
            out.push(Family::single(
                "process_network_transmit_bytes_total",
                "Number of bytes sent by the process over the network.",
                MetricType::Counter,
                outb,
            ));
        }
    }
}

/// `IpExt` `InOctets` and `OutOctets` as the netstat collector gave them in this scrape; None
/// when it did not run or its field filter left them out.
fn scraped_octets(fams: &[Family]) -> Option<(f64, f64)> {
    let value = |name: &str| {
        let f = fams.iter().find(|f| f.name == name)?;
        Some(f.samples.first()?.value)
    };
    Some((
        value("node_netstat_IpExt_InOctets")?,
        value("node_netstat_IpExt_OutOctets")?,
    ))
}

/// Open descriptors: on the real /proc the size of the fd directory where the kernel reports
/// it (Linux ≥ 6.2), else the number of its entries (as procfs does).
fn open_fds(dir: &Path, real_proc: bool) -> Option<usize> {
    if real_proc {
        let size = std::fs::metadata(dir).ok()?.len();
        if size > 0 {
            return usize::try_from(size).ok();
        }
    }
    Some(std::fs::read_dir(dir).ok()?.count())
}

/// The two limits the process collector reports.
enum Limit {
    Files,
    Memory,
}

/// A soft resource limit; unlimited is the largest 64-bit number, as /proc/PID/limits reads.
fn soft_limit(which: Limit) -> Option<f64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed in.
    let rc = unsafe {
        match which {
            Limit::Files => libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim),
            Limit::Memory => libc::getrlimit(libc::RLIMIT_AS, &mut lim),
        }
    };
    if rc != 0 {
        return None;
    }
    Some(if lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX as f64
    } else {
        lim.rlim_cur as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(fams: &[Family], name: &str, label: Option<&str>) -> Option<f64> {
        fams.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| label.is_none_or(|l| s.labels.iter().any(|(_, v)| v == l)))
            .map(|s| s.value)
    }

    #[test]
    fn stat_fields_after_the_name() {
        let line = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 125 0 0 20 0 5 0 12345 1046941696 3777 18446744073709551615 1 1 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                utime: 250,
                stime: 125,
                starttime: 12345,
                vsize: 1046941696,
                rss: 3777,
            })
        );
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\nprocesses 5\n"),
            Some(1700000000)
        );
        assert_eq!(parse_btime("cpu 1 2\n"), None);
    }

    #[test]
    fn netstat_octets() {
        let text = "TcpExt: SyncookiesSent ListenDrops\nTcpExt: 0 3\n\
                    IpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 1234 5678\n";
        assert_eq!(parse_netstat_octets(text), Some((1234.0, 5678.0)));
        assert_eq!(
            parse_netstat_octets("TcpExt: A\nTcpExt: 1\n"),
            Some((0.0, 0.0))
        );
        assert_eq!(parse_netstat_octets("IpExt: A B\nIpExt: 1\n"), None);
        assert_eq!(parse_netstat_octets("IpExt: InOctets\nIpExt: x\n"), None);
        assert_eq!(parse_netstat_octets(""), Some((0.0, 0.0)));
    }

    #[test]
    fn a_stand_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let me = dir.path().join("self");
        std::fs::create_dir_all(me.join("fd")).unwrap();
        std::fs::create_dir_all(me.join("net")).unwrap();
        for i in 0..3 {
            std::fs::write(me.join("fd").join(i.to_string()), "").unwrap();
        }
        std::fs::write(
            me.join("stat"),
            "7 (nodetune) S 1 7 7 0 -1 0 0 0 0 0 150 50 0 0 20 0 4 0 250 1000000 10 0\n",
        )
        .unwrap();
        std::fs::write(
            me.join("net/netstat"),
            "IpExt: InOctets OutOctets\nIpExt: 10 20\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("stat"), "btime 1000\n").unwrap();
        let m = SelfMetrics::at(&me, &dir.path().join("stat"));
        let fams = m.gather(Vec::new());
        let v = |n| value(&fams, n, None);
        assert_eq!(v("process_cpu_seconds_total"), Some(2.0));
        assert_eq!(v("process_start_time_seconds"), Some(1002.5));
        assert_eq!(v("process_virtual_memory_bytes"), Some(1e6));
        assert_eq!(v("process_resident_memory_bytes"), Some(10.0 * m.page_size));
        assert_eq!(v("process_open_fds"), Some(3.0));
        assert_eq!(v("process_network_receive_bytes_total"), Some(10.0));
        assert_eq!(v("process_network_transmit_bytes_total"), Some(20.0));
        assert!(v("process_max_fds").unwrap() > 0.0);
        assert!(v("process_virtual_memory_max_bytes").unwrap() > 0.0);
        // Missing sources leave their families out, and nothing else.
        std::fs::remove_file(me.join("stat")).unwrap();
        std::fs::remove_file(me.join("net/netstat")).unwrap();
        let fams = m.gather(Vec::new());
        for gone in [
            "process_cpu_seconds_total",
            "process_start_time_seconds",
            "process_network_receive_bytes_total",
        ] {
            assert!(value(&fams, gone, None).is_none(), "{gone}");
        }
        assert!(value(&fams, "process_max_fds", None).is_some());
    }

    #[test]
    fn network_octets_from_the_scrapes_netstat() {
        let dir = tempfile::tempdir().unwrap();
        let me = dir.path().join("self");
        std::fs::create_dir_all(me.join("net")).unwrap();
        std::fs::write(
            me.join("net/netstat"),
            "IpExt: InOctets OutOctets\nIpExt: 10 20\n",
        )
        .unwrap();
        let m = SelfMetrics::build(&me, &dir.path().join("stat"), true);
        let netstat = |name, v| Family::single(name, "h", MetricType::Counter, v);
        let fams = m.gather(vec![
            netstat("node_netstat_IpExt_InOctets", 7.0),
            netstat("node_netstat_IpExt_OutOctets", 8.0),
        ]);
        let v = |f: &[Family], n| value(f, n, None);
        assert_eq!(v(&fams, "process_network_receive_bytes_total"), Some(7.0));
        assert_eq!(v(&fams, "process_network_transmit_bytes_total"), Some(8.0));
        // Without them in the scrape (netstat off, or its fields filtered), the file is read.
        let fams = m.gather(vec![netstat("node_netstat_IpExt_InOctets", 7.0)]);
        assert_eq!(v(&fams, "process_network_receive_bytes_total"), Some(10.0));
        assert_eq!(v(&fams, "process_network_transmit_bytes_total"), Some(20.0));
    }

    #[test]
    fn this_process() {
        let m = SelfMetrics::new(Path::new("/proc"));
        let fams = m.gather(Vec::new());
        let v = |n| value(&fams, n, None).unwrap_or_else(|| panic!("{n}"));
        assert!(v("process_resident_memory_bytes") > 1e6);
        assert!(v("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = v("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
        v("process_network_receive_bytes_total");
        // Every name and help is client_golang's; every family is typed as there.
        for f in &fams {
            assert!(
                f.name.starts_with("process_") || f.name.starts_with("promhttp_"),
                "{}",
                f.name
            );
            assert_eq!(
                f.kind == MetricType::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn promhttp_counters() {
        let m = SelfMetrics::new(Path::new("/proc"));
        let first = m.begin();
        // The scrape being served counts itself in flight, not yet in the totals.
        let fams = m.gather(Vec::new());
        assert_eq!(
            value(&fams, "promhttp_metric_handler_requests_in_flight", None),
            Some(1.0)
        );
        for code in ["200", "500", "503"] {
            assert_eq!(
                value(&fams, "promhttp_metric_handler_requests_total", Some(code)),
                Some(0.0)
            );
        }
        first.answered(200);
        drop(first);
        let second = m.begin();
        second.answered(503);
        let third = m.begin();
        third.answered(406);
        drop((second, third));
        // Two series with the same labels: one is dropped, one gathering error counted
        // (visible from the next scrape on, as in client_golang).
        let mut dup = Family::new("node_x", "h", MetricType::Gauge);
        dup.push(&[("a", "1")], 1.0);
        dup.push(&[("a", "1")], 2.0);
        let fams = m.gather(vec![dup]);
        assert_eq!(
            fams.iter()
                .find(|f| f.name == "node_x")
                .unwrap()
                .samples
                .len(),
            1
        );
        assert_eq!(
            value(
                &fams,
                "promhttp_metric_handler_errors_total",
                Some("gathering")
            ),
            Some(0.0)
        );
        let fams = m.gather(Vec::new());
        let total = |c| value(&fams, "promhttp_metric_handler_requests_total", Some(c));
        assert_eq!(
            (total("200"), total("503"), total("406"), total("500")),
            (Some(1.0), Some(1.0), Some(1.0), Some(0.0))
        );
        assert_eq!(
            value(&fams, "promhttp_metric_handler_requests_in_flight", None),
            Some(0.0)
        );
        assert_eq!(
            value(
                &fams,
                "promhttp_metric_handler_errors_total",
                Some("gathering")
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &fams,
                "promhttp_metric_handler_errors_total",
                Some("encoding")
            ),
            Some(0.0)
        );
    }

    #[test]
    fn build_info_labels() {
        let f = build_info();
        let names: Vec<&str> = f.samples[0].labels.iter().map(|l| &*l.0).collect();
        assert_eq!(
            names,
            [
                "branch",
                "goarch",
                "goos",
                "goversion",
                "revision",
                "tags",
                "version"
            ]
        );
        assert_eq!(f.samples[0].value, 1.0);
        assert!(f.samples[0]
            .labels
            .iter()
            .any(|(k, v)| k == "version" && v == env!("CARGO_PKG_VERSION")));
    }
}
