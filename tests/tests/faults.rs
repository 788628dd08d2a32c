//! Faults in sources: real kernel faults planted in a copy of the host-a fixture while
//! `nodetune run` serves it. Each test proves that the scrape still completes (200, ends with
//! the exporter's own families), that the faulty collector reports
//! node_scrape_collector_success 0 (or, where node_exporter skips a legitimately gone item,
//! that only that item is missing and success stays 1), and that every other collector's series
//! equal a clean baseline scrape of the same daemon.
//!
//! Faults: EIO from a symlink to /proc/self/mem; files gone between listing and open
//! (dangling symlinks); reads that block forever (named pipes); EAGAIN, ENODEV, a file removed
//! after open and a file that shrinks mid-read from a small FUSE filesystem
//! (tests/fault-fs/faultfs.py); network devices gone before the ethtool ioctl, both planted and
//! raced with veth churn in a throwaway namespace; nf_conntrack appearing after start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodetune_e2e::{
    have_tool, http_get, is_root, require, run_cmd, wait_until, Daemon, FakeHost, FaultFs,
};

type Series = BTreeMap<String, f64>;

/// A writable copy of tests/fixtures/host-a (without broken.prom, so a textfile error shows),
/// and a place outside it for the files a fault replaces (collectors list directories, so a
/// file set aside inside the tree would be read too).
struct Tree {
    dir: tempfile::TempDir,
    stash: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/host-a");
        let st = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", fixture.display()))
            .arg(dir.path())
            .status()
            .expect("cp");
        assert!(st.success());
        std::fs::remove_file(dir.path().join("textfile/broken.prom")).expect("rm broken.prom");
        Tree {
            dir,
            stash: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn stashed(&self, rel: &str) -> PathBuf {
        self.stash.path().join(rel.replace('/', "%"))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replaces `rel` with a symlink to `target` (keeping the original aside for `restore`).
    fn link(&self, rel: &str, target: &Path) {
        let p = self.path(rel);
        if p.symlink_metadata().is_ok() {
            std::fs::rename(&p, self.stashed(rel)).expect("set aside");
        }
        std::os::unix::fs::symlink(target, &p).expect("symlink");
    }

    /// Replaces `rel` with a named pipe nobody writes to.
    fn fifo(&self, rel: &str) {
        let p = self.path(rel);
        std::fs::rename(&p, self.stashed(rel)).expect("set aside");
        let st = Command::new("mkfifo").arg(&p).status().expect("mkfifo");
        assert!(st.success());
    }

    /// Undoes `link` or `fifo`.
    fn restore(&self, rel: &str) {
        let p = self.path(rel);
        std::fs::remove_file(&p).expect("remove fault");
        let orig = self.stashed(rel);
        if orig.symlink_metadata().is_ok() {
            std::fs::rename(orig, p).expect("restore");
        }
    }

    /// `nodetune run` on this tree with the default collectors (time and timex off: they read
    /// the live clock, which moves),
    /// /proc/net/dev read from the tree, and a 1 s collector timeout.
    fn daemon(&self, host: &FakeHost, extra: &[&str]) -> (Daemon, String) {
        let mut args = vec![
            "--config=/etc/nodetune/nodetune.toml".to_string(),
            "--web.listen-address=127.0.0.1:0".to_string(),
            format!("--path.procfs={}", self.path("proc").display()),
            format!("--path.sysfs={}", self.path("sys").display()),
            format!("--path.rootfs={}", self.dir.path().display()),
            format!(
                "--collector.textfile.directory={}",
                self.path("textfile").display()
            ),
            "--collector.netdev.netlink=false".to_string(),
            "--no-collector.time".to_string(),
            "--no-collector.timex".to_string(),
            "--collector.timeout=1s".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = host.daemon(&args, &[]);
        let addr = d.addr();
        (d, addr)
    }
}

/// One scrape: asserts it answered 200 and is complete; returns series → value.
fn scrape(addr: &str) -> Series {
    let (code, _, body) = http_get(addr, "/metrics", &[]).expect("HTTP answer");
    let body = String::from_utf8(body).expect("UTF-8 body");
    assert_eq!(code, 200, "{body}");
    // Families are sorted by name: nodetune's own, then the exporter's process_* and
    // promhttp_* ones, come last, so a cut body would not end with the last of them.
    let last = body.lines().rev().find(|l| !l.starts_with('#'));
    assert!(
        body.ends_with('\n')
            && body.contains("\nnodetune_")
            && last.is_some_and(|l| l.starts_with("promhttp_metric_handler_requests_total")),
        "incomplete scrape:\n{body}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// What the daemon says a collector took this scrape (0 when it skipped a stuck one).
fn duration(m: &Series, collector: &str) -> f64 {
    let k = format!("node_scrape_collector_duration_seconds{{collector=\"{collector}\"}}");
    *m.get(&k).unwrap_or_else(|| panic!("{k} missing"))
}

fn success(m: &Series, collector: &str) -> f64 {
    let k = format!("node_scrape_collector_success{{collector=\"{collector}\"}}");
    *m.get(&k).unwrap_or_else(|| panic!("{k} missing"))
}

/// Series that move between scrapes by themselves, or that nodetune derives from several
/// collectors (its own saturation and alert families), and the exporter's own process_* and
/// promhttp_* families.
fn volatile(k: &str) -> bool {
    k.starts_with("node_scrape_collector_duration_seconds")
        || k.starts_with("nodetune_")
        || k.starts_with("process_")
        || k.starts_with("promhttp_")
}

/// `got` equals `base` except: series starting with one of `lost` (the faulty collector's or
/// item's) may be missing, and the collectors in `failed` report success 0. Nothing new may
/// appear either.
fn same_except(base: &Series, got: &Series, lost: &[&str], failed: &[&str]) {
    let is_lost = |k: &str| lost.iter().any(|p| k.starts_with(p));
    for (k, v) in base {
        if volatile(k) || is_lost(k) {
            continue;
        }
        let want = if failed
            .iter()
            .any(|c| *k == format!("node_scrape_collector_success{{collector=\"{c}\"}}"))
        {
            0.0
        } else {
            *v
        };
        match got.get(k) {
            Some(g) => assert_eq!(*g, want, "{k}"),
            None => panic!("{k} lost"),
        }
    }
    for k in got.keys() {
        assert!(
            volatile(k) || is_lost(k) || base.contains_key(k),
            "{k} appeared"
        );
    }
}

/// Asserts that no series starts with `prefix`.
fn none_with(m: &Series, prefix: &str) {
    let hit: Vec<_> = m.keys().filter(|k| k.starts_with(prefix)).collect();
    assert!(hit.is_empty(), "{prefix}…: {hit:?}");
}

const TEMP1: &str = "node_hwmon_temp_celsius{chip=\"platform_nct6775_2592\",sensor=\"temp1\"}";
const HWMON1: &str = "sys/devices/platform/nct6775.2592/hwmon/hwmon1";

#[test]
fn eio_fails_a_whole_file_and_skips_an_attribute() {
    // Reading offset 0 of one's own /proc/self/mem is EIO (page 0 is never mapped).
    let mem = Path::new("/proc/self/mem");
    let t = Tree::new();
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &[]);
    let base = scrape(&addr);
    assert_eq!(success(&base, "meminfo"), 1.0);
    assert_eq!(base["node_textfile_scrape_error"], 0.0);

    t.link("proc/meminfo", mem);
    t.link(&format!("{HWMON1}/temp1_input"), mem);
    t.link("textfile/eio.prom", mem);
    t.link("proc/pressure/io", mem);
    let m = scrape(&addr);
    // pressure: cpu read, io unreadable → failed (node_exporter's "failed to retrieve pressure
    // stats"); only an absent resource file is skipped.
    assert_eq!(success(&m, "pressure"), 0.0);
    none_with(&m, "node_pressure_");
    // meminfo: one file, unreadable → the collector fails and exports nothing.
    assert_eq!(success(&m, "meminfo"), 0.0);
    none_with(&m, "node_memory_");
    // hwmon: node_exporter's addValueFile skips an unreadable attribute; the sensor's other
    // attributes (crit, max, label) stay.
    assert_eq!(success(&m, "hwmon"), 1.0);
    assert!(!m.contains_key(TEMP1));
    // textfile: the file is flagged, the other files are still read.
    assert_eq!(m["node_textfile_scrape_error"], 1.0);
    same_except(
        &base,
        &m,
        &[
            "node_memory_",
            TEMP1,
            "node_textfile_scrape_error",
            "node_pressure_",
        ],
        &["meminfo", "pressure"],
    );

    // Faults gone: the next scrape is the baseline again.
    t.restore("proc/meminfo");
    t.restore(&format!("{HWMON1}/temp1_input"));
    t.restore("textfile/eio.prom");
    t.restore("proc/pressure/io");
    same_except(&base, &scrape(&addr), &[], &[]);
}

#[test]
fn eio_at_start_fails_the_collector_not_the_daemon() {
    // The cpu collector reads the isolated CPUs once; EIO then used to stop the daemon from
    // starting. Now it starts, cpu fails until the file reads, then recovers.
    let t = Tree::new();
    t.link(
        "sys/devices/system/cpu/isolated",
        Path::new("/proc/self/mem"),
    );
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &[]);
    let during = scrape(&addr);
    assert_eq!(success(&during, "cpu"), 0.0);
    none_with(&during, "node_cpu_seconds_total");
    t.restore("sys/devices/system/cpu/isolated");
    let after = scrape(&addr);
    assert_eq!(success(&after, "cpu"), 1.0);
    assert_eq!(after["node_cpu_isolated{cpu=\"1\"}"], 1.0);
    let cpu = [
        "node_cpu_seconds_total",
        "node_cpu_guest_seconds_total",
        "node_cpu_core_throttles_total",
        "node_cpu_package_throttles_total",
        "node_cpu_isolated",
        "node_cpu_online",
    ];
    same_except(&after, &during, &cpu, &["cpu"]);
}

#[test]
fn files_gone_between_listing_and_open_are_skipped() {
    let t = Tree::new();
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &[]);
    let base = scrape(&addr);
    // Dangling symlinks: listed by readdir, ENOENT on open, as for a device or file removed
    // right after the directory was read.
    let gone = Path::new("../../devices/platform/gone/hwmon/hwmon9");
    t.link("sys/class/hwmon/hwmon9", gone);
    t.link("sys/class/thermal/thermal_zone9", gone);
    t.link("sys/class/thermal/cooling_device9", gone);
    t.link(&format!("{HWMON1}/fan1_input"), gone);
    t.link("textfile/gone.prom", gone);
    let m = scrape(&addr);
    for c in ["hwmon", "thermal_zone", "textfile"] {
        assert_eq!(success(&m, c), 1.0, "{c}");
    }
    let fan1 = "node_hwmon_fan_rpm{chip=\"platform_nct6775_2592\",sensor=\"fan1\"}";
    assert!(!m.contains_key(fan1));
    // A .prom file that cannot be read is an error in node_exporter's textfile collector.
    assert_eq!(m["node_textfile_scrape_error"], 1.0);
    same_except(&base, &m, &[fan1, "node_textfile_scrape_error"], &[]);
}

#[test]
fn a_read_that_blocks_forever_costs_one_timeout() {
    if !require(have_tool("mkfifo"), "mkfifo") {
        return;
    }
    let t = Tree::new();
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &[]);
    let base = scrape(&addr);
    // A sensor whose read never returns, and a procfs file likewise.
    let input = format!("{HWMON1}/temp1_input");
    t.fifo(&input);
    t.fifo("proc/loadavg");
    for round in 0..3 {
        let m = scrape(&addr);
        // The daemon's own account (no clock in the test): a scrape either waits the 1 s
        // timeout for a stuck collector and gives up, or skips it at once (duration 0) once
        // its read has been stuck for longer than the timeout, which it has by the third.
        for c in ["hwmon", "loadavg"] {
            let took = duration(&m, c);
            assert!(
                took == 0.0 && round > 0 || took >= 1.0 && round < 2,
                "round {round}: {c} took {took} s"
            );
        }
        assert_eq!(success(&m, "hwmon"), 0.0);
        assert_eq!(success(&m, "loadavg"), 0.0);
        same_except(
            &base,
            &m,
            &["node_hwmon_", "node_load"],
            &["hwmon", "loadavg"],
        );
    }
    // Unblock the readers (write a value and close) and put the files back: both recover.
    for (rel, value) in [
        (input.as_str(), "42000\n"),
        ("proc/loadavg", "1 1 1 1/1 1\n"),
    ] {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(t.path(rel))
            .expect("open fifo for writing");
        let _ = w.write_all(value.as_bytes());
        drop(w);
        t.restore(rel);
    }
    assert!(
        wait_until(10, || {
            let m = scrape(&addr);
            success(&m, "hwmon") == 1.0 && success(&m, "loadavg") == 1.0
        }),
        "collectors never recovered"
    );
    same_except(&base, &scrape(&addr), &[], &[]);
}

#[test]
fn fuse_errnos_vanishing_and_shrinking_files() {
    if !require(
        FaultFs::available(),
        "FUSE (root, /dev/fuse, python3-fusepy)",
    ) {
        return;
    }
    let t = Tree::new();
    let dev = std::fs::read_to_string(t.path("proc/net/dev")).expect("net/dev");
    let fs = FaultFs::mount(&[
        ("loadavg", "", "read:EAGAIN"),
        ("snmp", "", "vanish"),
        ("temp1_input", "", "read:EAGAIN"),
        ("fan1_input", "", "read:ENODEV"),
        ("vmstat", "", "open:EIO"),
        // Header lines and lo kept; eth0 goes while the file is being read.
        ("dev", &dev, "shrink:3"),
    ]);
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &[]);
    let base = scrape(&addr);
    t.link("proc/loadavg", &fs.file("loadavg"));
    t.link("proc/net/snmp", &fs.file("snmp"));
    t.link("proc/vmstat", &fs.file("vmstat"));
    t.link("proc/net/dev", &fs.file("dev"));
    t.link(&format!("{HWMON1}/temp1_input"), &fs.file("temp1_input"));
    t.link(&format!("{HWMON1}/fan1_input"), &fs.file("fan1_input"));
    let m = scrape(&addr);
    // Whole-file faults fail their collector.
    for c in ["loadavg", "netstat", "vmstat"] {
        assert_eq!(success(&m, c), 0.0, "{c}");
    }
    none_with(&m, "node_load");
    none_with(&m, "node_netstat_");
    // hwmon skips the two attributes (EAGAIN, ENODEV), as node_exporter does.
    assert_eq!(success(&m, "hwmon"), 1.0);
    let fan1 = "node_hwmon_fan_rpm{chip=\"platform_nct6775_2592\",sensor=\"fan1\"}";
    assert!(!m.contains_key(TEMP1) && !m.contains_key(fan1));
    // netdev reads what the file held by the end: lo only, eth0 is gone (not an error).
    assert_eq!(success(&m, "netdev"), 1.0);
    none_with(&m, "node_network_receive_bytes_total{device=\"eth0\"}");
    assert_eq!(
        m["node_network_receive_bytes_total{device=\"lo\"}"],
        base["node_network_receive_bytes_total{device=\"lo\"}"]
    );
    none_with(&m, "node_vmstat_");
    let lost = [
        "node_load",
        "node_netstat_",
        "node_vmstat_",
        TEMP1,
        fan1,
        "node_network_",
    ];
    same_except(&base, &m, &lost, &["loadavg", "netstat", "vmstat"]);
    // Only eth0's series went from netdev.
    for (k, v) in base.iter().filter(|(k, _)| k.starts_with("node_network_")) {
        if !k.contains("device=\"eth0\"") {
            assert_eq!(m.get(k), Some(v), "{k}");
        }
    }
    for rel in [
        "proc/loadavg",
        "proc/net/snmp",
        "proc/vmstat",
        "proc/net/dev",
        &format!("{HWMON1}/temp1_input"),
        &format!("{HWMON1}/fan1_input"),
    ] {
        t.restore(rel);
    }
    same_except(&base, &scrape(&addr), &[], &[]);
}

#[test]
fn nf_conntrack_loaded_after_start() {
    let t = Tree::new();
    let netfilter = t.path("proc/sys/net/netfilter");
    let stat = t.path("proc/net/stat/nf_conntrack");
    let saved_stat = std::fs::read(&stat).expect("read stat");
    let saved_count = std::fs::read(netfilter.join("nf_conntrack_count")).expect("count");
    let saved_max = std::fs::read(netfilter.join("nf_conntrack_max")).expect("max");
    std::fs::remove_dir_all(&netfilter).expect("rm netfilter");
    std::fs::remove_file(&stat).expect("rm stat");
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &[]);
    // No module: no data, which node_exporter's execute() reports as success 0 (ErrNoData is
    // only logged at debug level).
    let without = scrape(&addr);
    assert_eq!(success(&without, "conntrack"), 0.0);
    none_with(&without, "node_nf_conntrack_");
    // The module loads: its files appear and the next scrape has them, without a restart.
    std::fs::create_dir_all(&netfilter).expect("mkdir");
    std::fs::write(netfilter.join("nf_conntrack_max"), saved_max).expect("write");
    std::fs::write(netfilter.join("nf_conntrack_count"), saved_count).expect("write");
    std::fs::write(&stat, saved_stat).expect("write");
    let with = scrape(&addr);
    assert_eq!(success(&with, "conntrack"), 1.0);
    assert_eq!(with["node_nf_conntrack_entries"], 900.0);
    assert!(with.contains_key("node_nf_conntrack_stat_drop"));
    // Nothing else changed in between.
    same_except(&with, &without, &["node_nf_conntrack_"], &["conntrack"]);
}

#[test]
fn ethtool_on_a_listed_device_that_does_not_exist() {
    if !require(is_root(), "root") {
        return;
    }
    let t = Tree::new();
    // lo is always there (ethtool answers EOPNOTSUPP for it): node_exporter fails the
    // collector when sysfs lists no device at all.
    std::fs::create_dir_all(t.path("sys/class/net/lo")).expect("mkdir");
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host, &["--collector.ethtool"]);
    let base = scrape(&addr);
    assert_eq!(success(&base, "ethtool"), 1.0);
    // sysfs lists a device the kernel does not have (removed after the listing): every
    // ethtool ioctl answers ENODEV, which node_exporter only logs.
    let ghost = format!("ntghost{}", std::process::id() % 100_000);
    std::fs::create_dir_all(t.path(&format!("sys/class/net/{ghost}"))).expect("mkdir");
    let m = scrape(&addr);
    assert_eq!(success(&m, "ethtool"), 1.0);
    assert!(
        !m.keys()
            .any(|k| k.contains(&ghost) && k.starts_with("node_ethtool")),
        "{ghost} series"
    );
    // netclass (on by default) lists the ghost's empty sysfs directory, as node_exporter's
    // does: its node_network_* series are expected; nothing else changes.
    assert_eq!(success(&m, "netclass"), 1.0);
    same_except(&base, &m, &["node_network_"], &[]);
}

extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// Moves the calling thread into the network namespace `name` (namespaces are per thread).
fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
    const CLONE_NEWNET: i32 = 0x4000_0000;
    // SAFETY: a valid namespace fd; only this thread changes namespace.
    let rc = unsafe { setns(f.as_raw_fd(), CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}");
}

#[test]
fn devices_come_and_go_while_scraped() {
    if !require(is_root() && have_tool("ip"), "root with ip") {
        return;
    }
    let ns = nodetune_e2e::TestNetns::new("churn");
    let ip = |args: &[&str]| run_cmd(Command::new("ip").arg("-n").arg(&ns.name).args(args));
    assert_eq!(ip(&["link", "set", "lo", "up"]).code, 0);
    // Real /sys and /proc of the namespace (ip netns exec mounts its own /sys).
    let host = FakeHost::new();
    let env = host.env(&[]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start(
        &["ip", "netns", "exec", &ns.name],
        &[
            "--config=/etc/nodetune/nodetune.toml",
            "--web.listen-address=127.0.0.1:0",
            "--collector.disable-defaults",
            "--collector.ethtool",
            "--collector.netdev",
            "--collector.timeout=2s",
        ],
        &env,
    );
    let addr = d.addr();
    // Churn: two threads create and delete veth pairs as fast as ip can, until the scrapes
    // are done, so devices vanish between the sysfs listing and the ioctls.
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU32::new(0));
    let churners: Vec<_> = (0..2)
        .map(|t| {
            let (stop, cycles, name) = (stop.clone(), cycles.clone(), ns.name.clone());
            std::thread::spawn(move || {
                let ip = |args: &[&str]| {
                    let _ = Command::new("ip")
                        .arg("-n")
                        .arg(&name)
                        .args(args)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                };
                let mut n = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let (a, b) = (format!("ntc{t}{}a", n % 3), format!("ntc{t}{}b", n % 3));
                    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
                    ip(&["link", "set", &a, "up"]);
                    ip(&["link", "del", &a]);
                    cycles.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            })
        })
        .collect();
    // At least 100 scrapes, and on until the churn did 50 cycles (a minute at most).
    let scraper = {
        let (name, cycles) = (ns.name.clone(), cycles.clone());
        std::thread::spawn(move || {
            enter_netns(&name);
            let deadline = Instant::now() + Duration::from_secs(60);
            let (mut scrapes, mut seen_veth) = (0, 0);
            while scrapes < 100 || (cycles.load(Ordering::SeqCst) < 50 && Instant::now() < deadline)
            {
                let m = scrape(&addr);
                assert_eq!(success(&m, "netdev"), 1.0, "scrape {scrapes}");
                assert_eq!(success(&m, "ethtool"), 1.0, "scrape {scrapes}");
                assert!(m.contains_key("node_network_receive_bytes_total{device=\"lo\"}"));
                if m.keys().any(|k| k.contains("device=\"ntc")) {
                    seen_veth += 1;
                }
                scrapes += 1;
            }
            (scrapes, seen_veth)
        })
    };
    let scraped = scraper.join();
    stop.store(true, Ordering::SeqCst);
    for c in churners {
        c.join().expect("churn thread");
    }
    let (scrapes, seen_veth) = scraped.expect("scrapes");
    let cycles = cycles.load(Ordering::SeqCst);
    eprintln!("{cycles} veth cycles, {seen_veth}/{scrapes} scrapes saw a veth");
    assert!(
        cycles >= 50 && seen_veth > 0,
        "too little churn: {cycles} cycles"
    );
    // Still alive after the race (stop signals it) and exits cleanly.
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
