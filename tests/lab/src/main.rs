//! nodetune-lab: runs the surge lab and writes its report. See tests/lab/run.

use std::path::PathBuf;
use std::time::Instant;

use nodetune_lab::report::{self, Entry, Meta, Report};
use nodetune_lab::{scenario, Config, Runs, Size};

const USAGE: &str =
    "usage: nodetune-lab --nodetune BIN [--short] [--scenario ID]... [--out FILE.md] [--json FILE]

Runs each scenario in throwaway network namespaces, on the kernel's defaults and after
`nodetune apply` with the profile that targets it. Scenarios: 1 ephemeral ports, 2 accept-queue
burst, 2b the same at somaxconn 128, 3 SYN burst, 3b tcp_max_syn_backlog alone, 4 file
descriptors, 5 TIME_WAIT at a fixed rate, 6 BBR on a constrained link. Needs root, iproute2,
nginx and wrk.";

fn main() {
    // First, before any other thread: signals delete the namespaces.
    nodetune_lab::netns::cleanup_on_signals();
    let mut nodetune = None;
    let mut size = Size::Long;
    let mut only: Vec<String> = Vec::new();
    let mut out_md = None;
    let mut out_json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--nodetune" => nodetune = args.next().map(PathBuf::from),
            "--short" => size = Size::Short,
            "--scenario" => only.extend(args.next()),
            "--out" => out_md = args.next().map(PathBuf::from),
            "--json" => out_json = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("nodetune-lab: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let Some(nodetune) = nodetune else {
        eprintln!("nodetune-lab: --nodetune BIN is required\n{USAGE}");
        std::process::exit(2);
    };
    let nodetune = std::fs::canonicalize(&nodetune).unwrap_or(nodetune);
    nodetune_lab::netns::sweep_stale();
    let work = nodetune_lab::netns::work_dir();
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("nodetune-lab: {}: {e}", work.display());
        std::process::exit(1);
    }
    nodetune_lab::netns::register_dir(&work);
    let cfg = Config {
        nodetune,
        size,
        work: work.clone(),
        recommend: true,
        runs: Runs::Both,
    };
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let load_start = loadavg();
    let t0 = Instant::now();
    type Scenario = fn(&Config) -> std::io::Result<nodetune_lab::Row>;
    let all: &[(&str, Scenario)] = &[
        ("1", scenario::ephemeral_ports),
        ("2", |c| scenario::accept_queue(c, false)),
        ("2b", |c| scenario::accept_queue(c, true)),
        ("3", |c| scenario::syn_backlog(c, false)),
        ("3b", |c| scenario::syn_backlog(c, true)),
        ("4", scenario::file_descriptors),
        ("5", scenario::time_wait_rate),
        ("6", scenario::bbr),
    ];
    let mut entries = Vec::new();
    for (id, run) in all {
        if !only.is_empty() && !only.iter().any(|o| o == id) {
            continue;
        }
        entries.push(match run(&cfg) {
            Ok(row) => Entry::Row(Box::new(row)),
            Err(e) => {
                eprintln!("nodetune-lab: scenario {id}: {e}");
                Entry::Failed {
                    id: id.to_string(),
                    error: e.to_string(),
                }
            }
        });
    }
    let sh = |args: &[&str]| nodetune_lab::netns::sh(args).unwrap_or_default();
    let meta = Meta {
        kernel: sh(&["uname", "-r"]).trim().to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        nginx: std::process::Command::new("nginx")
            .arg("-v")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .trim_start_matches("nginx version: nginx/")
                    .to_string()
            })
            .unwrap_or_default(),
        date: sh(&["date", "-u", "+%Y-%m-%d"]).trim().to_string(),
        command: format!(
            "tests/lab/run{}{}",
            if size == Size::Short { " --short" } else { "" },
            only.iter()
                .map(|o| format!(" --scenario {o}"))
                .collect::<String>()
        ),
        size: if size == Size::Short {
            "short".into()
        } else {
            "long".into()
        },
        load_start,
        load_end: loadavg(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let report = Report {
        meta,
        scenarios: entries,
    };
    let md = report::markdown(&report);
    print!("{md}");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    for (path, text) in [(out_md, &md), (out_json, &json)] {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(&p, text) {
                eprintln!("nodetune-lab: writing {}: {e}", p.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let failed = report
        .scenarios
        .iter()
        .any(|e| matches!(e, Entry::Failed { .. }));
    std::process::exit(if failed { 1 } else { 0 });
}
