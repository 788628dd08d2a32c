//! Big hosts in fixture trees: `nodetune run` serving a synthetic /proc and /sys of hundreds
//! of CPUs and sensors.
//!
//! - On such a host some collectors (cpufreq, hwmon) take tens of milliseconds on every
//!   scrape: they are slow, not stuck, and the worker pool must not start a thread for each
//!   scrape (the threads of the process stay the same ones, scrape after scrape).
//! - The collectors keep each device's attributes open between scrapes and list their
//!   directories to notice change: a CPU or a sensor that appears or goes shows up or vanishes
//!   on the next scrape; a value rewritten in place (as sysfs attributes change) or a file
//!   replaced by another is read afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nodetune_e2e::{http_get, Daemon, FakeHost};

/// A synthetic host: /proc/stat and softnet_stat, CPUs with topology, throttle counters and
/// an intel_pstate-like cpufreq policy, and coretemp-like hwmon chips of eight sensors.
struct Tree {
    dir: tempfile::TempDir,
    cpus: usize,
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, body).expect("write");
}

impl Tree {
    fn new(cpus: usize, chips: usize) -> Tree {
        let mut t = Tree {
            dir: tempfile::tempdir().expect("tempdir"),
            cpus: 0,
        };
        for n in 0..cpus {
            t.add_cpu(n);
        }
        // A configuration of its own (defaults), whatever /etc holds.
        t.write("nodetune.toml", "");
        // The daemon's host facts (profile conditions) read these.
        t.write(
            "proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree:         8000000 kB\n",
        );
        std::fs::create_dir_all(t.path("sys/class/hwmon")).expect("mkdir");
        for c in 0..chips {
            let chip = Tree::chip(c);
            t.write(&format!("{chip}/name"), "coretemp\n");
            std::os::unix::fs::symlink(
                format!("../../../coretemp.{c}"),
                t.path(&format!("{chip}/device")),
            )
            .expect("device link");
            for s in 1..=8 {
                t.sensor(c, s);
            }
            std::os::unix::fs::symlink(t.path(&chip), t.path(&format!("sys/class/hwmon/hwmon{c}")))
                .expect("class link");
        }
        t
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, body: &str) {
        write(&self.path(rel), body);
    }

    fn chip(c: usize) -> String {
        format!("sys/devices/platform/coretemp.{c}/hwmon/hwmon{c}")
    }

    fn sensor(&self, chip: usize, s: usize) {
        let dir = Tree::chip(chip);
        self.write(
            &format!("{dir}/temp{s}_input"),
            &format!("{}\n", 40000 + s * 1000),
        );
        self.write(&format!("{dir}/temp{s}_max"), "84000\n");
        self.write(&format!("{dir}/temp{s}_crit"), "100000\n");
        self.write(&format!("{dir}/temp{s}_label"), &format!("Core {s}\n"));
    }

    /// /proc/stat and softnet_stat for CPUs 0..n.
    fn write_proc(&self, cpus: &[usize]) {
        let mut stat = String::from("cpu  1000 0 500 90000 0 0 0 0 0 0\n");
        let mut softnet = String::new();
        for n in cpus {
            stat.push_str(&format!(
                "cpu{n} {} 0 {} 90000 0 0 0 0 0 0\n",
                100 + n,
                50 + n
            ));
            softnet.push_str(&format!(
                "{:08x} 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 {n:08x}\n",
                1000 + n
            ));
        }
        stat.push_str("intr 1\nctxt 2\nbtime 3\nprocesses 4\nprocs_running 1\nprocs_blocked 0\n");
        self.write("proc/stat", &stat);
        self.write("proc/net/softnet_stat", &softnet);
    }

    fn add_cpu(&mut self, n: usize) {
        let cpu = format!("sys/devices/system/cpu/cpu{n}");
        self.write(&format!("{cpu}/online"), "1\n");
        self.write(&format!("{cpu}/topology/core_id"), &format!("{}\n", n / 2));
        self.write(&format!("{cpu}/topology/physical_package_id"), "0\n");
        self.write(
            &format!("{cpu}/thermal_throttle/core_throttle_count"),
            "0\n",
        );
        self.write(
            &format!("{cpu}/thermal_throttle/package_throttle_count"),
            "0\n",
        );
        let policy = format!("sys/devices/system/cpu/cpufreq/policy{n}");
        for (f, v) in [
            ("cpuinfo_max_freq", "3900000"),
            ("cpuinfo_min_freq", "800000"),
            ("scaling_cur_freq", "2100000"),
            ("scaling_max_freq", "3900000"),
            ("scaling_min_freq", "800000"),
            ("scaling_governor", "powersave"),
            ("scaling_available_governors", "performance powersave"),
        ] {
            self.write(&format!("{policy}/{f}"), &format!("{v}\n"));
        }
        std::os::unix::fs::symlink(
            format!("../cpufreq/policy{n}"),
            self.path(&format!("{cpu}/cpufreq")),
        )
        .expect("cpufreq link");
        self.cpus = self.cpus.max(n + 1);
        self.write_proc(&(0..self.cpus).collect::<Vec<_>>());
    }

    fn remove_cpu(&mut self, n: usize) {
        std::fs::remove_dir_all(self.path(&format!("sys/devices/system/cpu/cpu{n}")))
            .expect("rm cpu");
        std::fs::remove_dir_all(self.path(&format!("sys/devices/system/cpu/cpufreq/policy{n}")))
            .expect("rm policy");
        let left: Vec<usize> = (0..self.cpus).filter(|c| *c != n).collect();
        self.write_proc(&left);
    }

    fn daemon(&self, host: &FakeHost) -> (Daemon, String) {
        let args = [
            format!("--config={}", self.path("nodetune.toml").display()),
            "--web.listen-address=127.0.0.1:0".to_string(),
            format!("--path.procfs={}", self.path("proc").display()),
            format!("--path.sysfs={}", self.path("sys").display()),
            "--collector.disable-defaults".to_string(),
            "--collector.cpu".to_string(),
            "--collector.cpufreq".to_string(),
            "--collector.hwmon".to_string(),
            "--collector.softnet".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = host.daemon(&args, &[]);
        let addr = d.addr();
        (d, addr)
    }
}

/// One scrape as series → value.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let (code, _, body) = http_get(addr, "/metrics", &[]).expect("HTTP answer");
    let body = String::from_utf8(body).expect("UTF-8 body");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn tids(pid: u32) -> BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

const CUR0: &str = "node_cpu_scaling_frequency_hertz{cpu=\"0\"}";
const CUR2: &str = "node_cpu_scaling_frequency_hertz{cpu=\"2\"}";
const IDLE2: &str = "node_cpu_seconds_total{cpu=\"2\",mode=\"idle\"}";
const TEMP1: &str = "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"}";
const TEMP9: &str = "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp9\"}";

#[test]
fn cpus_and_sensors_that_come_and_go_show_on_the_next_scrape() {
    let mut t = Tree::new(2, 1);
    let host = FakeHost::new();
    let (_d, addr) = t.daemon(&host);
    let m = scrape(&addr);
    assert_eq!(m[CUR0], 2.1e9);
    assert!(!m.contains_key(CUR2) && !m.contains_key(IDLE2));
    assert_eq!(m[TEMP1], 41.0);
    assert!(!m.contains_key(TEMP9));

    // A CPU is plugged in, a sensor appears.
    t.add_cpu(2);
    t.sensor(0, 9);
    let m = scrape(&addr);
    assert_eq!(m[CUR2], 2.1e9);
    assert_eq!(m[IDLE2], 900.0);
    assert_eq!(m[TEMP9], 49.0);
    assert_eq!(
        m["node_hwmon_sensor_label{chip=\"platform_coretemp_0\",label=\"Core 9\",sensor=\"temp9\"}"],
        1.0
    );

    // Values change in place, as sysfs attributes do; a file replaced by another is read too.
    t.write(
        "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq",
        "3000000\n",
    );
    t.write(
        "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
        "performance\n",
    );
    let input = t.path(&format!("{}/temp1_input", Tree::chip(0)));
    let fresh = t.path("fresh");
    write(&fresh, "55500\n");
    std::fs::rename(&fresh, &input).expect("replace temp1_input");
    let m = scrape(&addr);
    assert_eq!(m[CUR0], 3e9);
    assert_eq!(
        m["node_cpu_scaling_governor{cpu=\"0\",governor=\"performance\"}"],
        1.0
    );
    assert_eq!(m[TEMP1], 55.5);

    // The CPU is unplugged, the sensor goes.
    t.remove_cpu(2);
    for f in ["input", "max", "crit", "label"] {
        std::fs::remove_file(t.path(&format!("{}/temp9_{f}", Tree::chip(0)))).expect("rm");
    }
    let m = scrape(&addr);
    assert!(
        !m.keys().any(|k| k.contains("cpu=\"2\"")),
        "cpu 2 still there"
    );
    assert!(!m.keys().any(|k| k.contains("temp9")), "temp9 still there");
    assert_eq!(m[CUR0], 3e9);
    assert_eq!(m[TEMP1], 55.5);
    for c in ["cpu", "cpufreq", "hwmon", "softnet"] {
        assert_eq!(
            m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")],
            1.0,
            "{c}"
        );
    }
}

#[test]
fn a_big_host_starts_no_thread_per_scrape() {
    // 256 CPUs and 128 sensors: cpufreq and hwmon each take tens of milliseconds per scrape
    // (more in a debug build), well past the 20 ms after which a worker used to count as
    // stuck and be replaced on every scrape.
    let t = Tree::new(256, 16);
    let host = FakeHost::new();
    let (d, addr) = t.daemon(&host);
    // Warm-up: the first runs teach the pool how long each collector takes.
    for _ in 0..5 {
        scrape(&addr);
    }
    let pid = d.child.id();
    let before = tids(pid);
    for _ in 0..30 {
        let m = scrape(&addr);
        assert_eq!(
            m["node_scrape_collector_success{collector=\"cpufreq\"}"],
            1.0
        );
    }
    let after = tids(pid);
    assert_eq!(
        before, after,
        "threads started or ended during 30 scrapes at steady state"
    );
}

#[test]
fn slow_tasks_are_not_stuck_tasks() {
    // Tasks that take 30 ms on every run, more of them than the pool has workers (it has
    // at most 8), so that runs queue behind them: a pool that judged "stuck" by a fixed 20 ms
    // started workers on every run. Judged by each task's own record, the workers the first
    // run needed are all there is afterwards.
    use nodetune::collect::pool::{threads_started, Done, Runner, Task};
    let tasks: Vec<(&'static str, Task<u32>)> = (0..9)
        .map(|i| {
            let t: Task<u32> = Box::new(move || {
                std::thread::sleep(std::time::Duration::from_millis(30));
                Ok(i)
            });
            ("slow", t)
        })
        .collect();
    let r = Runner::new(tasks, std::time::Duration::from_secs(30));
    let ran = |r: &Runner<u32>| {
        r.run(&|_| true)
            .iter()
            .filter(|(_, d)| matches!(d, Done::Ran { value: Some(_), .. }))
            .count()
    };
    assert_eq!(ran(&r), 9);
    let started = threads_started();
    for _ in 0..8 {
        assert_eq!(ran(&r), 9);
    }
    assert_eq!(
        threads_started(),
        started,
        "workers started after the first run"
    );
}
