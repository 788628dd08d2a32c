//! A short fuzz run of every cargo-fuzz target (fuzz/) on its committed corpus: the parsers of
//! profiles, nodetune.toml, web-config.yml, /proc and /sys files, and the scrape query string.
//! Any crash, panic, timeout or memory blow-up fails the test and names the input libFuzzer
//! saved. Longer runs: `cd fuzz && cargo +nightly fuzz run TARGET` (docs/reliability.md).

use std::path::PathBuf;
use std::process::Command;

use nodetune_e2e::{require, run_cmd};

const TARGETS: &[&str] = &["profile", "config", "webconfig", "query", "procfs"];
/// Seconds per target: enough for tens of thousands of inputs each, within CI's budget.
const SECONDS: u32 = 20;

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
        "cargo +nightly fuzz (rustup toolchain install nightly; cargo install cargo-fuzz)",
    ) {
        return;
    }
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let r = run_cmd(cargo_fuzz().arg("build").current_dir(&fuzz));
    assert_eq!(r.code, 0, "cargo fuzz build:\n{}", r.stderr);
    for target in TARGETS {
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
                .arg(format!("-max_total_time={SECONDS}"))
                .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
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
        assert!(runs > 100, "{target}: only {runs} inputs tried:\n{tail}");
        eprintln!("fuzz {target}: {runs} inputs in {SECONDS} s, no crash");
    }
}
