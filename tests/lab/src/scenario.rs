//! The scenarios. Each one is a row of the report: the same load twice, in fresh namespaces,
//! on the kernel's defaults and after `nodetune apply` with the shipped profile that targets
//! it, with the daemon in audit mode watching the namespace that suffers.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{self, Load, Outcome, Pattern, Tail};
use crate::counters::Counters;
use crate::netns::{self, in_ns, Pair, SERVER_IP};
use crate::nginx::{self, Nginx, Setup};
use crate::nodetune::{self, AlertLine, Daemon, Recommendation};

/// How big the runs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// `cargo test`: scenarios 1-3, just past the point where the defaults fail.
    Short,
    /// The benchmark behind docs/benchmarks.md.
    Long,
}

/// What a lab run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The nodetune binary under test.
    pub nodetune: PathBuf,
    pub size: Size,
    /// Scratch directory: nginx and daemon files, fake roots, apply state.
    pub work: PathBuf,
    /// Run `nodetune recommend` in the watched namespace after each run.
    pub recommend: bool,
    /// Which of the two runs to make (a short-form test may take one each).
    pub runs: Runs,
}

/// Which runs of a scenario to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    Both,
    Defaults,
    Tuned,
}

/// Which namespace a scenario's profile is applied to and its daemon watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

/// One run of a scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    pub label: String,
    /// The settings that matter, as the kernel (or /proc) shows them during the run.
    pub settings: Vec<(String, String)>,
    /// The apply command, for the tuned run.
    pub apply: Option<String>,
    pub client: Outcome,
    pub connect: Tail,
    /// Time inside connect() (the kernel's source-port search).
    pub connect_call: Tail,
    pub request: Tail,
    pub responses_per_s: f64,
    /// Response payload throughput (wrk runs).
    pub mbytes_per_s: Option<f64>,
    /// Server counters during the load (TcpExt deltas).
    pub server: BTreeMap<String, u64>,
    /// Server TCP retransmissions during the load.
    pub retrans_segs: u64,
    /// Packets dropped at a full per-CPU input queue during the load, host-wide (other
    /// activity on the host counts too).
    pub softnet_dropped: u64,
    /// The row's failure count (what "failures" means is the row's `failures`).
    pub failures: u64,
    pub alerts: Vec<AlertLine>,
    pub recommend: Option<Recommendation>,
    pub notes: Vec<String>,
}

/// One scenario: the row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub title: String,
    /// The load, in words.
    pub load: String,
    /// What the failure count counts.
    pub failures: String,
    pub profile: String,
    /// The keys the row is about.
    pub knobs: Vec<String>,
    /// The alert expected on the defaults.
    pub alert: Option<String>,
    pub side: Side,
    pub defaults: Run,
    pub tuned: Run,
    pub notes: Vec<String>,
}

fn target() -> SocketAddrV4 {
    SocketAddrV4::new(SERVER_IP.parse::<Ipv4Addr>().expect("server ip"), 80)
}

fn log(msg: &str) {
    eprintln!("nodetune-lab: {msg}");
}

/// Starts a scenario's server in the pair's server namespace; returns it with notes.
type StartServer<'a> = dyn Fn(&Pair, PathBuf) -> io::Result<(Nginx, Vec<String>)> + 'a;

/// What differs between scenarios.
struct Spec<'a> {
    id: &'a str,
    tuned: bool,
    /// What the run without the profile runs on (the tuned run is labelled by its profile).
    defaults: &'a str,
    /// The profile audited by the daemon and applied in the tuned run.
    profile: &'a str,
    profile_dir: Option<&'a Path>,
    side: Side,
    /// Runs first, in both runs (e.g. the legacy somaxconn, a bottleneck qdisc).
    prepare: &'a dyn Fn(&Pair) -> io::Result<()>,
    /// Keys recorded from the watched namespace.
    settings: &'a [&'a str],
    nginx: Setup,
    /// Starts the server instead of `Nginx::start` (scenario 4: under the limits of a
    /// systemd unit or of nodetune's drop-in).
    server: Option<&'a StartServer<'a>>,
    /// Report response throughput in MB/s.
    throughput: bool,
    /// Run `recommend` this many seconds into the load instead of after it (scenario 4: while
    /// the connections are held).
    recommend_during: Option<f64>,
    /// The alert the defaults should raise (waited for).
    alert: Option<&'a str>,
    /// The load; returns the client outcome.
    load: &'a dyn Fn(&Pair, &Nginx) -> io::Result<Outcome>,
    /// The failure count of a run from its outcome and server counters.
    failures: &'a dyn Fn(&Outcome, &Counters) -> u64,
}

fn one(cfg: &Config, s: &Spec) -> io::Result<Run> {
    let tag = format!("{}{}", s.id, if s.tuned { "t" } else { "d" });
    let label = if s.tuned {
        format!("after nodetune apply --profile {}", s.profile)
    } else {
        s.defaults.to_string()
    };
    log(&format!("{tag}: {label}"));
    let pair = Pair::new(&tag)?;
    let watched = match s.side {
        Side::Client => pair.client.clone(),
        Side::Server => pair.server.clone(),
    };
    (s.prepare)(&pair)?;
    let mut run = Run {
        label,
        ..Run::default()
    };
    if s.tuned {
        let state = cfg.work.join(format!("{tag}-apply-state"));
        let r = nodetune::apply_netns(&cfg.nodetune, &watched, s.profile, &state, s.profile_dir)?;
        run.apply = Some(
            r.command
                .replace(&watched, &format!("<{:?} netns>", s.side).to_lowercase()),
        );
    }
    for k in s.settings {
        run.settings
            .push((k.to_string(), netns::sysctl(&watched, k)?));
    }
    let dir = cfg.work.join(format!("{tag}-nginx"));
    let server = match s.server {
        Some(start) => {
            let (n, notes) = start(&pair, dir)?;
            run.notes.extend(notes);
            n
        }
        None => Nginx::start(&pair.server, &s.nginx, dir)?,
    };
    if let Some((soft, hard)) = server.worker_nofile() {
        run.settings.push((
            "nginx worker RLIMIT_NOFILE".into(),
            format!("{soft}:{hard}"),
        ));
    }
    let daemon = Daemon::start(
        &cfg.nodetune,
        &watched,
        s.profile,
        s.profile_dir,
        cfg.work.join(format!("{tag}-daemon")),
    )?;
    // The daemon's first alert tick takes the counters' baseline.
    std::thread::sleep(Duration::from_millis(1500));
    let before = Counters::read(&pair.server)?;
    let softnet = Counters::softnet_dropped();
    let start = Instant::now();
    let during = s.recommend_during.filter(|_| cfg.recommend).map(|secs| {
        let (bin, ns) = (cfg.nodetune.clone(), watched.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            nodetune::recommend(&bin, &ns, "1s")
        })
    });
    let outcome = (s.load)(&pair, &server)?;
    let start = outcome.started.unwrap_or(start);
    let delta = Counters::read(&pair.server)?.since(&before);
    run.softnet_dropped = Counters::softnet_dropped().saturating_sub(softnet);
    match (s.tuned, s.alert) {
        (false, Some(a)) => {
            if !daemon.wait_for(start, a, "firing", 10) {
                run.notes.push(format!(
                    "{a} did not fire within 10 s of the end of the load"
                ));
            }
        }
        // Long enough for two alert ticks: an alert would show.
        _ => std::thread::sleep(Duration::from_millis(2500)),
    }
    let rec = match during {
        Some(h) => Some(
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("recommend thread panicked"))),
        ),
        None => cfg
            .recommend
            .then(|| nodetune::recommend(&cfg.nodetune, &watched, "1s")),
    };
    match rec {
        Some(Ok(r)) => run.recommend = Some(r),
        Some(Err(e)) => run.notes.push(format!("recommend: {e}")),
        None => {}
    }
    run.alerts = daemon.alerts(start);
    run.failures = (s.failures)(&outcome, &delta);
    run.connect = Tail::of(&outcome.connect_us);
    run.connect_call = Tail::of(&outcome.connect_call_us);
    run.request = outcome
        .request_tail
        .unwrap_or_else(|| Tail::of(&outcome.request_us));
    if s.throughput && outcome.elapsed_s > 0.0 {
        run.mbytes_per_s = Some(outcome.bytes as f64 / outcome.elapsed_s / 1e6);
    }
    run.responses_per_s = if outcome.elapsed_s > 0.0 {
        outcome.responses as f64 / outcome.elapsed_s
    } else {
        0.0
    };
    run.server = delta.server();
    run.retrans_segs = delta.get("Tcp.RetransSegs");
    run.client = outcome;
    let emfile = server.emfile_lines();
    if emfile > 0 {
        run.notes.push(format!(
            "nginx logged \"Too many open files\" {emfile} times"
        ));
    }
    drop(daemon);
    drop(server);
    drop(pair);
    Ok(run)
}

fn both<'a>(cfg: &Config, mk: &dyn Fn(bool) -> Spec<'a>) -> io::Result<(Run, Run)> {
    let skipped = || Run {
        label: "not run".into(),
        ..Run::default()
    };
    let d = match cfg.runs {
        Runs::Both | Runs::Defaults => one(cfg, &mk(false))?,
        Runs::Tuned => skipped(),
    };
    let t = match cfg.runs {
        Runs::Both | Runs::Tuned => one(cfg, &mk(true))?,
        Runs::Defaults => skipped(),
    };
    Ok((d, t))
}

fn no_prepare(_: &Pair) -> io::Result<()> {
    Ok(())
}

fn client_failures(o: &Outcome, _: &Counters) -> u64 {
    o.error_total() as u64
}

/// Scenario 1: ephemeral port exhaustion. One client opens and closes connections to one
/// backend as fast as it can, closing first, so every connection leaves a TIME_WAIT socket on
/// the client: on the defaults (32768-60999, tcp_tw_reuse = 2, loopback only) the 28,232
/// ports run out.
pub fn ephemeral_ports(cfg: &Config) -> io::Result<Row> {
    // The short form stops at the tenth failure: past the first ones, every connect scans the
    // whole range and the run would last until TIME_WAIT expires (60 s).
    // It also uses two client threads: the kernel's port search, which dominates once the
    // range fills, then runs on two CPUs.
    let (total, requests, stop, threads) = match cfg.size {
        Size::Long => (35_000, 1, 0, 1),
        Size::Short => (29_500, 0, 10, 2),
    };
    let load = move |p: &Pair, _: &Nginx| {
        let l = Load {
            target: target(),
            pattern: Pattern::Storm {
                total,
                concurrency: 1,
            },
            requests,
            path: "/".into(),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(3),
            hold: false,
            stop_after_errors: stop,
        };
        client::run_parallel(&l, threads, &p.client)
    };
    let (defaults, tuned) = both(cfg, &|tuned| Spec {
        id: "s1",
        tuned,
        defaults: "kernel defaults",
        profile: "api-node",
        profile_dir: None,
        side: Side::Client,
        prepare: &no_prepare,
        settings: &["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"],
        nginx: Setup::default(),
        server: None,
        throughput: false,
        recommend_during: None,
        alert: Some("EphemeralPortPressure"),
        load: &load,
        failures: &client_failures,
    })?;
    Ok(Row {
        id: "1".into(),
        title: "Ephemeral port exhaustion".into(),
        load: format!(
            "{total} short connections to one backend (nginx) from {threads} client thread(s), one at a time each, {}; the client closes first{}",
            if requests > 0 { "one request each" } else { "connect and close" },
            if stop > 0 { format!(" (stops at the {stop}th failure)") } else { String::new() }
        ),
        failures: "client connect errors".into(),
        profile: "api-node".into(),
        knobs: vec![
            "net.ipv4.ip_local_port_range".into(),
            "net.ipv4.tcp_tw_reuse".into(),
        ],
        alert: Some("EphemeralPortPressure".into()),
        side: Side::Client,
        defaults,
        tuned,
        notes: Vec::new(),
    })
}

/// Scenario 2: accept-queue overflow during a connection burst. nginx listens with
/// backlog=65535 and stalls (SIGSTOP, as in a long pause) while a burst of connections
/// arrives; the kernel caps the queue at somaxconn and drops the SYNs past it. A client gives
/// up on a connect after 1 s, as a balancer with a 1 s connect timeout does.
pub fn accept_queue(cfg: &Config, legacy: bool) -> io::Result<Row> {
    let burst = 5000;
    let pause = Duration::from_millis(1500);
    let load = move |p: &Pair, n: &Nginx| {
        let l = Load {
            target: target(),
            pattern: Pattern::Burst { total: burst },
            requests: 1,
            path: "/".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(15),
            hold: false,
            stop_after_errors: 0,
        };
        n.pause();
        let pids: Vec<i32> = n.workers();
        let master = n.master();
        let resume = std::thread::spawn(move || {
            std::thread::sleep(pause);
            for pid in pids.into_iter().chain([master]) {
                // SAFETY: kill() has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
        });
        let out = in_ns(&p.client, move || client::run(&l));
        let _ = resume.join();
        out
    };
    let prepare = move |p: &Pair| {
        if legacy {
            netns::set_sysctl(&p.server, "net.core.somaxconn", "128")?;
        }
        Ok(())
    };
    let id = if legacy { "s2b" } else { "s2" };
    let (defaults, tuned) = both(cfg, &|tuned| Spec {
        id,
        tuned,
        defaults: if legacy {
            "somaxconn 128 (the default before Linux 5.4)"
        } else {
            "kernel defaults"
        },
        profile: "api-node",
        profile_dir: None,
        side: Side::Server,
        prepare: &prepare,
        settings: &["net.core.somaxconn"],
        nginx: Setup::default(),
        server: None,
        throughput: false,
        recommend_during: None,
        alert: Some("ListenQueueOverflow"),
        load: &load,
        failures: &client_failures,
    })?;
    Ok(Row {
        id: if legacy { "2b".into() } else { "2".into() },
        title: if legacy {
            "Accept-queue overflow, legacy somaxconn 128".into()
        } else {
            "Accept-queue overflow during a connection burst".into()
        },
        load: format!(
            "{burst} connections at once, one request each, while nginx (listen backlog=65535) \
             is stopped for {:.1} s; connect timeout 1 s",
            pause.as_secs_f64()
        ),
        failures: "client connects timed out (SYNs dropped at a full accept queue)".into(),
        profile: "api-node".into(),
        knobs: vec!["net.core.somaxconn".into()],
        alert: Some("ListenQueueOverflow".into()),
        side: Side::Server,
        defaults,
        tuned,
        notes: Vec::new(),
    })
}

/// Scenario 3: SYN-backlog pressure. Raw SYNs from addresses the client namespace does not own
/// (so nobody answers the SYN-ACKs and the connections stay half-open), then a few real
/// connections. With tcp_syncookies = 1 the SYN queue is capped by the accept backlog
/// (min(listen backlog, somaxconn)); past it the kernel answers with cookies.
pub fn syn_backlog(cfg: &Config, only_syn_backlog: bool) -> io::Result<Row> {
    let syns = match cfg.size {
        Size::Long => 10_000,
        Size::Short => 6_000,
    };
    let load = move |p: &Pair, _: &Nginx| -> io::Result<Outcome> {
        let sent = in_ns(&p.client, move || client::syn_burst(target(), syns))??;
        if sent < syns {
            log(&format!("only {sent} of {syns} SYNs were sent"));
        }
        let l = Load {
            target: target(),
            pattern: Pattern::Storm {
                total: 200,
                concurrency: 1,
            },
            requests: 1,
            path: "/".into(),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(3),
            hold: false,
            stop_after_errors: 0,
        };
        in_ns(&p.client, move || client::run(&l))
    };
    let dir = cfg.work.join("profiles");
    let profile = if only_syn_backlog {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("lab-syn-backlog.toml"),
            "# Lab: net.ipv4.tcp_max_syn_backlog alone, to see what it buys by itself.\n[profile]\nname = \"lab-syn-backlog\"\n[sysctl]\n\"net.ipv4.tcp_max_syn_backlog\" = 65535\n",
        )?;
        "lab-syn-backlog"
    } else {
        "api-node"
    };
    let server_failures = |_: &Outcome, c: &Counters| {
        c.get("TcpExt.SyncookiesSent") + c.get("TcpExt.TCPReqQFullDrop")
    };
    let (defaults, tuned) = both(cfg, &|tuned| Spec {
        id: if only_syn_backlog { "s3b" } else { "s3" },
        tuned,
        defaults: "kernel defaults",
        profile,
        profile_dir: only_syn_backlog.then_some(dir.as_path()),
        side: Side::Server,
        prepare: &no_prepare,
        settings: &[
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.ipv4.tcp_syncookies",
        ],
        nginx: Setup::default(),
        server: None,
        throughput: false,
        recommend_during: None,
        alert: Some("SynBacklogPressure"),
        load: &load,
        failures: &server_failures,
    })?;
    Ok(Row {
        id: if only_syn_backlog {
            "3b".into()
        } else {
            "3".into()
        },
        title: if only_syn_backlog {
            "SYN burst, net.ipv4.tcp_max_syn_backlog alone".into()
        } else {
            "SYN-backlog pressure from a SYN burst".into()
        },
        load: format!(
            "{syns} raw half-open SYNs from the client namespace, then 200 real connections \
             with one request each; nginx listen backlog=65535"
        ),
        failures: "SYNs past the SYN queue (SyncookiesSent + TCPReqQFullDrop)".into(),
        profile: profile.into(),
        knobs: if only_syn_backlog {
            vec!["net.ipv4.tcp_max_syn_backlog".into()]
        } else {
            vec![
                "net.core.somaxconn".into(),
                "net.ipv4.tcp_max_syn_backlog".into(),
            ]
        },
        alert: Some("SynBacklogPressure".into()),
        side: Side::Server,
        defaults,
        tuned,
        notes: Vec::new(),
    })
}

/// The RLIMIT_NOFILE hard limit of the lab itself: without CAP_SYS_RESOURCE nothing it starts
/// can have more.
fn own_nofile_hard() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a local struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_max
}

/// A fake host for host-wide settings: a sysctl tree holding the values of `ns` for every key
/// the profile sets (plus what host facts need), and an empty root for /etc.
fn fake_root(cfg: &Config, ns: &str, profile: &str, profile_dir: &Path) -> io::Result<PathBuf> {
    let dir = cfg.work.join(format!("fake-root-{profile}"));
    let _ = std::fs::remove_dir_all(&dir);
    let show = netns::sh(&[
        &cfg.nodetune.display().to_string(),
        "profile",
        "show",
        profile,
        "-o",
        "json",
        &format!("--profile-dir={}", profile_dir.display()),
    ])?;
    let v: serde_json::Value =
        serde_json::from_str(&show).map_err(|e| io::Error::other(format!("profile show: {e}")))?;
    let mut keys: Vec<String> = vec![
        "kernel.osrelease".into(),
        "net.ipv4.tcp_available_congestion_control".into(),
    ];
    for e in v["entries"].as_array().into_iter().flatten() {
        if e["target"]["type"] == "sysctl" {
            keys.extend(e["target"]["name"].as_str().map(str::to_string));
        }
    }
    for k in keys {
        // Keys the namespace lacks stay absent: the plan marks them unsupported.
        if let Ok(v) = netns::sysctl(ns, &k) {
            let path = dir.join("sys").join(k.replace('.', "/"));
            std::fs::create_dir_all(path.parent().expect("parent"))?;
            std::fs::write(path, format!("{v}\n"))?;
        }
    }
    std::fs::create_dir_all(dir.join("root/etc"))?;
    Ok(dir)
}

/// Scenario 4: file-descriptor exhaustion. nginx starts under systemd's default soft limit of
/// 1024 open files and clients hold 1500 keep-alive connections; then the same after
/// nodetune's `[limits]` (api-node's nofile, for this service): the drop-in it writes sets the
/// service's LimitNOFILE.
pub fn file_descriptors(cfg: &Config) -> io::Result<Row> {
    let conns = 1500;
    let unit = format!("ntlab-{}-nginx.service", std::process::id());
    let pdir = cfg.work.join("profiles");
    std::fs::create_dir_all(&pdir)?;
    std::fs::write(
        pdir.join("lab-nginx-limits.toml"),
        format!(
            "# Lab: api-node, with its [limits] nofile applied to the lab's nginx unit as well.\n[profile]\nname = \"lab-nginx-limits\"\ninclude = [\"api-node\"]\n[limits]\nservices = [\"{unit}\"]\n"
        ),
    )?;
    let systemd = nginx::systemd_running();
    let hard = own_nofile_hard();
    let setup = Setup::default();
    let start = |tuned: bool| {
        let unit = unit.clone();
        let pdir = pdir.clone();
        let setup = setup.clone();
        move |p: &Pair, dir: PathBuf| -> io::Result<(Nginx, Vec<String>)> {
            let mut notes = Vec::new();
            let mut dropin = None;
            if tuned {
                let fake = fake_root(cfg, &p.server, "lab-nginx-limits", &pdir)?;
                let r = nodetune::apply_fake_root(
                    &cfg.nodetune,
                    "lab-nginx-limits",
                    &fake.join("sys"),
                    &fake.join("root"),
                    &pdir,
                )?;
                notes.push(format!(
                    "host-wide part applied to a fake root: {}",
                    r.command
                        .replace(&fake.display().to_string(), "FAKE")
                        .replace(&pdir.display().to_string(), "LAB")
                ));
                let file = fake
                    .join("root/etc/systemd/system")
                    .join(format!("{unit}.d/60-nodetune-nofile.conf"));
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    io::Error::other(format!("nodetune wrote no drop-in {}: {e}", file.display()))
                })?;
                notes.push(format!(
                    "drop-in /etc/systemd/system/{unit}.d/60-nodetune-nofile.conf: {}",
                    text.lines()
                        .filter(|l| !l.starts_with('#'))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
                dropin = Some(file);
            }
            if systemd {
                notes.push("nginx ran as a systemd unit; systemd applied the limits".into());
                let n = Nginx::start_unit(&p.server, &setup, dir, &unit, dropin.as_deref())?;
                return Ok((n, notes));
            }
            // No systemd here: start nginx with the limits systemd would give the unit.
            let limit = match &dropin {
                None => {
                    notes.push(
                        "systemd is not running here: nginx was started with systemd's default \
                         limits (soft 1024, hard 524288) by the lab, not by systemd"
                            .into(),
                    );
                    (1024, 524_288.min(hard))
                }
                Some(file) => {
                    let text = std::fs::read_to_string(file)?;
                    let n: u64 = text
                        .lines()
                        .find_map(|l| l.strip_prefix("LimitNOFILE="))
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| io::Error::other("no LimitNOFILE= in the drop-in"))?;
                    let used = n.min(hard);
                    notes.push(format!(
                        "systemd is not running here: the lab started nginx with the drop-in's \
                         LimitNOFILE={n} itself{}",
                        if used < n {
                            format!(
                                ", capped at {used}: the lab's own hard limit (no CAP_SYS_RESOURCE \
                                 to raise it)"
                            )
                        } else {
                            String::new()
                        }
                    ));
                    (used, used)
                }
            };
            let s = Setup {
                nofile: Some(limit),
                ..setup.clone()
            };
            Ok((Nginx::start(&p.server, &s, dir)?, notes))
        }
    };
    let start_defaults = start(false);
    let start_tuned = start(true);
    let load = move |p: &Pair, _: &Nginx| {
        let l = Load {
            target: target(),
            pattern: Pattern::Burst { total: conns },
            requests: 1,
            path: "/".into(),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(5),
            hold: true,
            stop_after_errors: 0,
        };
        in_ns(&p.client, move || client::run(&l))
    };
    let (defaults, tuned) = both(cfg, &|tuned| Spec {
        id: "s4",
        tuned,
        defaults: "kernel and systemd defaults",
        profile: "lab-nginx-limits",
        profile_dir: Some(pdir.as_path()),
        side: Side::Server,
        prepare: &no_prepare,
        settings: &[],
        nginx: Setup::default(),
        server: Some(if tuned { &start_tuned } else { &start_defaults }),
        throughput: false,
        // While the connections are held: nginx sits at its limit then.
        recommend_during: Some(2.5),
        alert: None,
        load: &load,
        failures: &client_failures,
    })?;
    Ok(Row {
        id: "4".into(),
        title: "File-descriptor exhaustion".into(),
        load: format!(
            "{conns} keep-alive connections held open, one request each, against nginx with \
             worker_connections 16384"
        ),
        failures: "requests without a response within 5 s".into(),
        profile: "api-node [limits] nofile, for the nginx unit".into(),
        knobs: vec!["[limits] nofile".into()],
        alert: None,
        side: Side::Server,
        defaults,
        tuned,
        notes: vec![if systemd {
            "systemd applied the drop-in to a real unit".into()
        } else {
            "systemd is not the init system here, so the drop-in could not be shown taking \
             effect on a real service; its value was applied by the lab"
                .into()
        }],
    })
}

/// Scenario 5: TIME_WAIT under a realistic request rate. An API node calls one backend at a
/// fixed rate, two keep-alive requests per connection, then closes (as a client pool that
/// recycles connections does): each connection leaves a TIME_WAIT socket for 60 s, so above
/// about 470 new connections per second the default range runs out.
pub fn time_wait_rate(cfg: &Config) -> io::Result<Row> {
    let (per_sec, secs) = match cfg.size {
        Size::Long => (500.0, 75.0),
        Size::Short => (500.0, 20.0),
    };
    let load = move |p: &Pair, _: &Nginx| {
        let l = Load {
            target: target(),
            pattern: Pattern::Rate { per_sec, secs },
            requests: 2,
            path: "/".into(),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(3),
            hold: false,
            stop_after_errors: 0,
        };
        in_ns(&p.client, move || client::run(&l))
    };
    let (defaults, tuned) = both(cfg, &|tuned| Spec {
        id: "s5",
        tuned,
        defaults: "kernel defaults",
        profile: "api-node",
        profile_dir: None,
        side: Side::Client,
        prepare: &no_prepare,
        settings: &["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"],
        nginx: Setup::default(),
        server: None,
        throughput: false,
        recommend_during: None,
        alert: Some("EphemeralPortPressure"),
        load: &load,
        failures: &client_failures,
    })?;
    Ok(Row {
        id: "5".into(),
        title: "TIME_WAIT under a steady request rate".into(),
        load: format!(
            "{per_sec:.0} new connections/s for {secs:.0} s to one backend (nginx), 2 keep-alive \
             requests each ({:.0} requests/s), then the client closes",
            per_sec * 2.0
        ),
        failures: "client connect errors".into(),
        profile: "api-node".into(),
        knobs: vec![
            "net.ipv4.ip_local_port_range".into(),
            "net.ipv4.tcp_tw_reuse".into(),
        ],
        alert: Some("EphemeralPortPressure".into()),
        side: Side::Client,
        defaults,
        tuned,
        notes: Vec::new(),
    })
}

const WRK_LUA: &str = r#"-- nodetune lab: wrk's summary as "lab KEY VALUE" lines.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("lab requests %d\nlab bytes %d\nlab duration_us %d\n",
    summary.requests, summary.bytes, summary.duration))
  io.write(string.format("lab errors %d\n", e.connect + e.read + e.write + e.status + e.timeout))
  io.write(string.format("lab p50 %d\nlab p99 %d\nlab p999 %d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// Runs wrk in namespace `ns` and reads its summary.
fn wrk(ns: &str, work: &Path, url: &str, conns: u32, secs: u32) -> io::Result<Outcome> {
    let lua = work.join("lab-wrk.lua");
    std::fs::write(&lua, WRK_LUA)?;
    let start = Instant::now();
    let out = netns::sh_in(
        ns,
        &[
            "wrk",
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--timeout",
            "30s",
            "-s",
            &lua.display().to_string(),
            url,
        ],
    )?;
    let get = |k: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("lab {k} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut o = Outcome {
        attempts: conns as usize,
        responses: get("requests") as usize,
        bytes: get("bytes"),
        elapsed_s: get("duration_us") as f64 / 1e6,
        started: Some(start),
        request_tail: Some(Tail {
            n: get("requests") as usize,
            p50_us: Some(get("p50")),
            p99_us: Some(get("p99")),
            p999_us: Some(get("p999")),
        }),
        ..Outcome::default()
    };
    o.ok = o.responses;
    let errors = get("errors") as usize;
    if errors > 0 {
        o.errors
            .insert("wrk socket errors or non-2xx".into(), errors);
    }
    Ok(o)
}

/// Scenario 6: what BBR buys on a constrained link. The server's side of the veth gets a
/// bottleneck with a shallow buffer (tbf 100 Mbit/s, 30 kB queue; netem adds 20 ms of delay
/// where the kernel has it), and clients fetch 1 MiB responses. The defaults run uses a
/// loss-based algorithm: CUBIC, the distributions' default, where the host allows it in a
/// child namespace, else reno (this kernel's own default may be BBR already).
pub fn bbr(cfg: &Config) -> io::Result<Row> {
    let secs = match cfg.size {
        Size::Long => 20,
        Size::Short => 5,
    };
    let conns = 8;
    let netem = std::cell::Cell::new(false);
    let prepare = |p: &Pair| -> io::Result<()> {
        let s = p.server.as_str();
        // netem as the root with the rate limit below it, where netem exists.
        let with_netem = netns::sh(&[
            "tc", "-n", s, "qdisc", "add", "dev", "veth0", "root", "handle", "1:", "netem",
            "delay", "20ms", "limit", "100000",
        ])
        .is_ok();
        netem.set(with_netem);
        let parent: &[&str] = if with_netem {
            &["parent", "1:", "handle", "2:"]
        } else {
            &["root", "handle", "1:"]
        };
        let mut args = vec!["tc", "-n", s, "qdisc", "add", "dev", "veth0"];
        args.extend_from_slice(parent);
        args.extend_from_slice(&["tbf", "rate", "100mbit", "burst", "15000", "limit", "30000"]);
        netns::sh(&args)?;
        // A loss-based baseline. CUBIC, the distributions' default, can only be chosen in a
        // child namespace when the host lists it in tcp_allowed_congestion_control; reno
        // always can.
        let base = if netns::sysctl(s, "net.ipv4.tcp_allowed_congestion_control")?
            .split_whitespace()
            .any(|a| a == "cubic")
        {
            "cubic"
        } else {
            "reno"
        };
        netns::set_sysctl(s, "net.ipv4.tcp_congestion_control", base)
    };
    let load = move |p: &Pair, n: &Nginx| {
        wrk(
            &p.client,
            &n.dir,
            &format!("http://{SERVER_IP}/big"),
            conns,
            secs,
        )
    };
    let setup = Setup {
        big_bytes: 1 << 20,
        ..Setup::default()
    };
    let wrk_failures = |o: &Outcome, _: &Counters| o.error_total() as u64;
    let (defaults, tuned) = both(cfg, &|tuned| Spec {
        id: "s6",
        tuned,
        defaults: "loss-based congestion control, kernel default buffers",
        profile: "api-gateway",
        profile_dir: None,
        side: Side::Server,
        prepare: &prepare,
        settings: &[
            "net.ipv4.tcp_congestion_control",
            "net.ipv4.tcp_wmem",
            "net.ipv4.tcp_notsent_lowat",
        ],
        nginx: setup.clone(),
        server: None,
        throughput: true,
        recommend_during: None,
        alert: None,
        load: &load,
        failures: &wrk_failures,
    })?;
    let link = if netem.get() {
        "netem delay 20 ms + tbf 100 Mbit/s, 30 kB queue"
    } else {
        "tbf 100 Mbit/s, 30 kB queue (no netem on this kernel: no added delay)"
    };
    Ok(Row {
        id: "6".into(),
        title: "BBR (+ fq where available) on a constrained link".into(),
        load: format!("wrk -t2 -c{conns} -d{secs}s, 1 MiB responses from nginx over {link}"),
        failures: "wrk errors".into(),
        profile: "api-gateway".into(),
        knobs: vec![
            "[congestion] control".into(),
            "[congestion] qdisc".into(),
            "net.ipv4.tcp_wmem".into(),
        ],
        alert: None,
        side: Side::Server,
        defaults,
        tuned,
        notes: Vec::new(),
    })
}
