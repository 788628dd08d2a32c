//! A short fuzz run of every cargo-fuzz target (fuzz/) on its committed corpus: the parsers of
//! profiles, nodetune.toml, web-config.yml, /proc and /sys files, netlink replies and the
//! scrape query string, each for a fixed number of inputs ([`RUNS`]). Any crash, panic,
//! timeout or memory blow-up fails the test and names the input libFuzzer saved. Longer runs: `cd fuzz && cargo +nightly fuzz run TARGET` (docs/reliability.md).

use std::path::PathBuf;
use std::process::Command;

use nodetune_e2e::{require, run_cmd};

/// Inputs each target must run through: a count, not a time, so that a busy machine takes
/// longer but tries as many. Chosen for 10 to 30 s each on the 2-vCPU development VM beside
/// other builds (inputs per second there, 2026-12-01: profile 4,400, config 8,600, webconfig
/// 340 (bcrypt), query 16,000, netlink 30,000, procfs about 65: every input writes its files
/// and builds every collector). Every target `cargo fuzz list` names must be here.
const RUNS: &[(&str, u64)] = &[
    ("profile", 50_000),
    ("config", 50_000),
    ("webconfig", 3_000),
    ("query", 100_000),
    ("netlink", 100_000),
    ("procfs", 1_500),
];

/// Targets whose every input leaks by design, a little (see fuzz/lsan-suppressions.txt):
/// libFuzzer's leak check after each input would find it every time and take most of the run,
/// so only the check at exit runs, with the suppressions (any other leak still fails).
const LEAK_CHECK_AT_EXIT: &[&str] = &["procfs"];

fn cargo_fuzz() -> Command {
    let mut c = Command::new("cargo");
    // The outer `cargo test` may pin its own toolchain for child cargos; fuzzing needs nightly.
    c.env_remove("RUSTUP_TOOLCHAIN").arg("+nightly").arg("fuzz");
    c
}

#[test]
fn fuzz_targets_run_clean_on_their_corpora() {
    let have = cargo_fuzz()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(
        have,
        "cargo-fuzz with a nightly toolchain (rustup toolchain install nightly; cargo install \
         cargo-fuzz)",
    ) {
        return;
    }
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let list = run_cmd(cargo_fuzz().arg("list").current_dir(&fuzz));
    assert_eq!(list.code, 0, "cargo fuzz list:\n{}", list.stderr);
    let targets: Vec<&str> = list.stdout.split_whitespace().collect();
    assert!(!targets.is_empty(), "cargo fuzz list named no target");
    for t in &targets {
        assert!(
            RUNS.iter().any(|(n, _)| n == t),
            "fuzz target {t} has no run count in RUNS (tests/tests/fuzz.rs)"
        );
    }
    let r = run_cmd(cargo_fuzz().arg("build").current_dir(&fuzz));
    assert_eq!(r.code, 0, "cargo fuzz build:\n{}", r.stderr);
    for (target, want) in RUNS.iter().filter(|(n, _)| targets.contains(n)) {
        // New inputs go to a scratch directory; the committed corpus is only read.
        let scratch = tempfile::tempdir().expect("tempdir");
        let corpus = fuzz.join("corpus").join(target);
        assert!(corpus.is_dir(), "no corpus for {target}");
        let r = run_cmd(
            cargo_fuzz()
                .args(["run", target])
                .arg(scratch.path())
                .arg(&corpus)
                .arg("--")
                .arg(format!("-runs={want}"))
                .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
                .args(
                    LEAK_CHECK_AT_EXIT
                        .contains(target)
                        .then_some("-detect_leaks=0"),
                )
                .env(
                    "LSAN_OPTIONS",
                    format!(
                        "suppressions={}",
                        fuzz.join("lsan-suppressions.txt").display()
                    ),
                )
                .current_dir(&fuzz),
        );
        let tail: String = {
            let lines: Vec<&str> = r.stderr.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        assert_eq!(r.code, 0, "fuzz target {target} failed:\n{tail}");
        let runs = r
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            runs >= *want,
            "{target}: {runs} inputs tried, {want} asked for:\n{tail}"
        );
        eprintln!("fuzz {target}: {runs} inputs, no crash");
    }
}
