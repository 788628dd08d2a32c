//! The shipped Prometheus rules compute the same conditions as the daemon's engine, and are
//! the catalogue's output.
//!
//! One timeline of kernel files (written into a fake root, minute by minute, in the kernel's
//! own formats) drives both sides: the engine evaluates the snapshots nodetune reads from the
//! files, with the default thresholds and durations; a real promtool evaluates the shipped
//! rules over the metrics nodetune's collectors (and the daemon's own families) export from
//! the same files. At every minute both must agree on which alerts fire, with which labels.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nodetune::collect::listen_queue::Listener;
use nodetune::collect::Options;
use nodetune::expose::scrape::Scraper;
use nodetune::tune::Kernel;
use nodetune::watch::alerts::{Engine, State, Thresholds};
use nodetune::watch::rules::{self, Evaluator, Scope, CATALOGUE};
use nodetune::watch::saturation::Saturation;
use nodetune::watch::snapshot::Sampler;
use nodetune_e2e::{have_tool, require, run_cmd};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

fn defaults() -> Thresholds {
    nodetune::config::Config::parse("builtin", nodetune::config::DEFAULT)
        .expect("built-in config")
        .alerts
}

#[test]
fn shipped_rules_are_the_catalogue() {
    let shipped = std::fs::read_to_string(repo().join("packaging/prometheus/nodetune-rules.yml"))
        .expect("read shipped rules");
    let generated = nodetune::cli::alerts::rules(&defaults(), "job=\"nodetune\"", "2m");
    assert!(
        shipped == generated,
        "packaging/prometheus/nodetune-rules.yml differs from the catalogue: regenerate it with\n  \
         cargo run -p nodetune -- alerts rules > packaging/prometheus/nodetune-rules.yml"
    );
}

#[test]
fn docs_alert_table_is_the_catalogue() {
    let docs = std::fs::read_to_string(repo().join("docs/alerts.md")).expect("read docs");
    let table =
        nodetune::cli::alerts::list(nodetune::cli::alerts::ListFormat::Markdown).expect("markdown");
    let (begin, end) = ("<!-- catalogue:begin -->\n", "<!-- catalogue:end -->");
    let start = docs.find(begin).expect("begin marker in docs/alerts.md") + begin.len();
    let stop = docs.find(end).expect("end marker in docs/alerts.md");
    assert!(
        docs[start..stop] == table,
        "the table in docs/alerts.md differs from the catalogue: replace it with\n  \
         cargo run -p nodetune -- alerts list -o markdown"
    );
    // Every alert has its runbook section.
    for d in CATALOGUE {
        assert!(
            docs.contains(&format!("## {} (", d.name)),
            "docs/alerts.md has no section for {}",
            d.name
        );
    }
}

const STEPS: usize = 16;

/// Counter that rises by `by` per minute on the steps in `on`, flat otherwise.
fn counter(step: usize, on: std::ops::Range<usize>, by: u64) -> u64 {
    (0..=step).filter(|s| on.contains(s) && *s > 0).count() as u64 * by
}

/// Pick a value per step: `during` inside `on`, else `otherwise`.
fn pick<T>(step: usize, on: std::ops::Range<usize>, during: T, otherwise: T) -> T {
    if on.contains(&step) {
        during
    } else {
        otherwise
    }
}

/// The files of one minute. Each input has its own pattern: a cause, sometimes a value in the
/// hysteresis band, then calm.
fn files(i: usize) -> Vec<(&'static str, String)> {
    let mut f = Vec::new();
    f.push((
        "proc/net/netstat",
        format!(
            "TcpExt: ListenOverflows ListenDrops SyncookiesSent TCPReqQFullDrop TCPMemoryPressures\n\
             TcpExt: {} {} {} {} {}\n",
            counter(i, 1..5, 30),
            counter(i, 1..5, 30),
            counter(i, 2..6, 12),
            counter(i, 4..8, 5),
            counter(i, 3..5, 2),
        ),
    ));
    f.push(("proc/net/snmp", "Tcp: CurrEstab\nTcp: 3\n".into()));
    // Ports: 25,000 of 28,232 (88.6 %), then 21,500 (76 %, inside the band), then calm.
    // Socket memory: 3,800 of tcp_mem's 4,000 pages (95 %), then 100.
    let (inuse, tw) = match i {
        2..=5 => (20000, 5000),
        6 => (20000, 1500),
        _ => (500, 10),
    };
    let mem = pick(i, 3..7, 3800, 100);
    f.push((
        "proc/net/sockstat",
        format!("sockets: used 9\nTCP: inuse {inuse} orphan 0 tw {tw} alloc 9 mem {mem}\n"),
    ));
    f.push((
        "sysctl/net/ipv4/ip_local_port_range",
        "32768\t60999\n".into(),
    ));
    f.push(("sysctl/net/ipv4/tcp_mem", "1000\t2000\t4000\n".into()));
    // conntrack: 95 %, then 87 % (held), then calm; drops on two minutes.
    let entries = match i {
        1..=4 => 950,
        5 | 6 => 870,
        _ => 100,
    };
    f.push((
        "proc/sys/net/netfilter/nf_conntrack_count",
        format!("{entries}\n"),
    ));
    f.push(("proc/sys/net/netfilter/nf_conntrack_max", "1000\n".into()));
    let drop = counter(i, 8..10, 4);
    f.push((
        "proc/net/stat/nf_conntrack",
        format!(
            "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
             00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 {drop:08x} 00000000 00000000  00000000 00000000 00000000 00000000\n"
        ),
    ));
    // fds: 85 % of file-max.
    f.push((
        "proc/sys/fs/file-nr",
        format!("{}\t0\t1000\n", pick(i, 5..9, 850, 100)),
    ));
    // softnet: drops on two CPUs; squeezes fast (3,000/min = 50/s) then slow (60/min = 1/s).
    let dropped = counter(i, 2..4, 7);
    let squeezed = counter(i, 6..9, 3000) + counter(i, 9..12, 60);
    f.push((
        "proc/net/softnet_stat",
        format!(
            "00001000 {dropped:08x} {squeezed:08x} 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
             00001000 {dropped:08x} 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001\n"
        ),
    ));
    // NIC: 1,000 packets a minute; receive errors 5 % on minutes 3-5, 0.5 % on 6-8.
    let rx_packets = counter(i, 0..STEPS, 1000);
    let rx_errs = counter(i, 3..6, 50) + counter(i, 6..9, 5);
    let tx_drop = counter(i, 10..12, 100);
    f.push((
        "proc/net/dev",
        format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
             eth0: 0 {rx_packets} {rx_errs} 0 0 0 0 0 0 {rx_packets} 0 {tx_drop} 0 0 0 0\n"
        ),
    ));
    // CPU: /proc/stat for the cpu collector; throttles rising on minutes 7-8 (core) and 12
    // (package).
    f.push((
        "proc/stat",
        "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\nbtime 1\n".into(),
    ));
    for (rel, v) in [
        ("topology/physical_package_id", 0),
        ("topology/core_id", 0),
        ("thermal_throttle/core_throttle_count", counter(i, 7..9, 3)),
        (
            "thermal_throttle/package_throttle_count",
            counter(i, 12..13, 1),
        ),
    ] {
        f.push((
            match rel {
                "topology/physical_package_id" => {
                    "sys/devices/system/cpu/cpu0/topology/physical_package_id"
                }
                "topology/core_id" => "sys/devices/system/cpu/cpu0/topology/core_id",
                "thermal_throttle/core_throttle_count" => {
                    "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count"
                }
                _ => "sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count",
            },
            format!("{v}\n"),
        ));
    }
    // hwmon: at crit (100 °C) on minutes 2-3, 97 °C (held) on 4, then 60 °C.
    let temp = match i {
        2 | 3 => 100_000,
        4 => 97_000,
        _ => 60_000,
    };
    f.push(("sys/class/hwmon/hwmon0/name", "coretemp\n".into()));
    f.push(("sys/class/hwmon/hwmon0/temp1_input", format!("{temp}\n")));
    f.push(("sys/class/hwmon/hwmon0/temp1_crit", "100000\n".into()));
    f
}

/// Accept queues come from sock_diag, not files: given to the snapshot directly. 95 % full on
/// minutes 9-10, then 88 % (held), then empty.
fn listeners(i: usize) -> Vec<Listener> {
    let queued = match i {
        9 | 10 => 95,
        11 => 88,
        _ => 0,
    };
    vec![Listener {
        port: 8080,
        queued,
        backlog: 100,
        inode: 1,
    }]
}

type Labels = BTreeMap<String, String>;

/// Alerts firing at one minute: (name, labels).
type Firing = BTreeSet<(String, Vec<(String, String)>)>;

#[test]
fn engine_and_shipped_rules_fire_together() {
    if !require(
        have_tool("promtool"),
        "promtool (Debian package prometheus)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let opts = Options::from_flags(
        [
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
            "--collector.netdev.netlink=false".into(),
            "--collector.disable-defaults".into(),
        ]
        .into_iter()
        .chain(
            [
                "netstat",
                "sockstat",
                "conntrack",
                "filefd",
                "softnet",
                "netdev",
                "cpu",
                "hwmon",
            ]
            .iter()
            .map(|c| format!("--collector.{c}")),
        ),
    )
    .expect("options");
    let kernel = Kernel {
        sysctl_root: root.join("sysctl"),
        sysfs: root.join("sys"),
        root: root.to_path_buf(),
    };
    let sampler = Sampler::new(&opts, &kernel).expect("sampler");
    let scraper = Scraper::new(&opts).expect("scraper");
    let thresholds = defaults();
    let mut engine = Engine::new(thresholds.clone());
    let mut evaluator = Evaluator::default();
    let t0 = Instant::now();
    // series → value per minute; engine firing alerts per minute.
    let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut firing: Vec<Firing> = Vec::new();
    for i in 0..STEPS {
        for (rel, text) in files(i) {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        let mut snap = sampler.read();
        snap.listeners = Some(listeners(i));
        let sat = Saturation::of(&snap);
        let at = t0 + Duration::from_secs(60 * i as u64);
        let found = evaluator.evaluate(snap.clone(), at, &sat, &[], "p", &thresholds);
        engine.update(&found, at);
        firing.push(
            engine
                .active()
                .into_iter()
                .filter(|a| a.state == State::Firing)
                .map(|a| (a.name.to_string(), a.labels.clone()))
                .collect(),
        );
        let mut fams = scraper.scrape(&|_| true);
        fams.push(sat.family());
        fams.extend(rules::input_families(&snap));
        for f in fams {
            for s in &f.samples {
                let mut labels: Labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                labels.insert("instance".into(), "h".into());
                labels.insert("job".into(), "nodetune".into());
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let key = format!("{}{{{}}}", f.name, l.join(","));
                series.entry(key).or_insert_with(|| vec![None; STEPS])[i] = Some(s.value);
            }
        }
    }
    // Every host condition the timeline means to exercise fired on the engine side (so the
    // comparison below is not between two empty sets).
    let fired: Firing = firing.iter().flatten().cloned().collect();
    for (alert, label) in [
        ("ListenQueueOverflow", None),
        ("ListenQueueOverflow", Some(("resource", "listen_queue"))),
        ("SynBacklogPressure", None),
        ("SocketMemoryPressure", None),
        ("SocketMemoryPressure", Some(("resource", "socket_memory"))),
        ("ConntrackNearFull", None),
        ("ConntrackNearFull", Some(("resource", "conntrack"))),
        ("EphemeralPortPressure", Some(("resource", "ports"))),
        ("FileDescriptorPressure", Some(("resource", "fds"))),
        ("SoftnetDrops", Some(("counter", "dropped"))),
        ("SoftnetDrops", Some(("counter", "times_squeezed"))),
        ("NicErrors", Some(("direction", "receive"))),
        ("NicErrors", Some(("direction", "transmit"))),
        ("ThermalThrottling", Some(("source", "cpu_core"))),
        ("ThermalThrottling", Some(("source", "hwmon"))),
    ] {
        assert!(
            fired.iter().any(|(a, l)| a == alert
                && match label {
                    None => l.is_empty(),
                    Some((k, v)) => l.iter().any(|(lk, lv)| lk == k && lv == v),
                }),
            "the engine never fired {alert} {label:?}: {fired:#?}"
        );
    }

    // The shipped rules without annotations: this test is about conditions, labels, `for`
    // and keep_firing_for.
    let shipped = std::fs::read_to_string(repo().join("packaging/prometheus/nodetune-rules.yml"))
        .expect("rules");
    let mut bare = String::new();
    let mut skipping = false;
    for line in shipped.lines() {
        if line.trim_start() == "annotations:" {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with("          ") {
            continue;
        }
        skipping = false;
        bare.push_str(line);
        bare.push('\n');
    }
    std::fs::write(dir.path().join("rules.yml"), bare).expect("write rules");
    let mut test = String::from(
        "rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (k, vals) in &series {
        let v: Vec<String> = vals
            .iter()
            .map(|v| v.map_or("_".into(), |v| format!("{v}")))
            .collect();
        test.push_str(&format!(
            "      - series: '{k}'\n        values: '{}'\n",
            v.join(" ")
        ));
    }
    test.push_str("    alert_rule_test:\n");
    for (i, set) in firing.iter().enumerate() {
        for d in CATALOGUE.iter().filter(|d| d.scope == Scope::Host) {
            test.push_str(&format!(
                "      - eval_time: {i}m\n        alertname: {}\n        exp_alerts:\n",
                d.name
            ));
            let mine: Vec<_> = set.iter().filter(|(a, _)| a == d.name).collect();
            if mine.is_empty() {
                test.push_str("          []\n");
            }
            for (_, labels) in mine {
                test.push_str(&format!(
                    "          - exp_labels: {{severity: {}, instance: h, job: nodetune",
                    d.severity
                ));
                for (k, v) in labels {
                    test.push_str(&format!(", {k}: '{v}'"));
                }
                test.push_str("}\n");
            }
        }
    }
    std::fs::write(dir.path().join("test.yml"), &test).expect("write test");
    let r = run_cmd(
        Command::new("promtool")
            .args(["test", "rules", "test.yml"])
            .current_dir(dir.path()),
    );
    assert!(
        r.code == 0 && r.stdout.contains("SUCCESS"),
        "promtool disagrees with the engine:\n{}\n{}",
        r.stdout,
        r.stderr
    );
}
