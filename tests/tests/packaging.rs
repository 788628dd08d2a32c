//! Packages and fleet files checked with the real tools: promtool, lintian, rpm, dpkg,
//! systemd-analyze. Building and installing the .deb changes the machine, so that test runs
//! only in CI (`CI=true`), where it must not skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use nodetune_e2e::{have_tool, in_ci, is_root, require, run_cmd, Run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what} failed:\n{}{}", r.stdout, r.stderr);
    r.stdout + &r.stderr
}

#[test]
fn prometheus_rules_check_and_unit_tests() {
    if !require(
        have_tool("promtool"),
        "promtool (Debian package prometheus)",
    ) {
        return;
    }
    let dir = repo().join("packaging/prometheus");
    let out = ok(
        run_cmd(
            Command::new("promtool")
                .args(["check", "rules", "nodetune-rules.yml"])
                .current_dir(&dir),
        ),
        "promtool check rules",
    );
    assert!(out.contains("SUCCESS: 14 rules found"), "{out}");
    let out = ok(
        run_cmd(
            Command::new("promtool")
                .args(["test", "rules", "nodetune-rules.test.yml"])
                .current_dir(&dir),
        ),
        "promtool test rules",
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

fn build_packages() -> (PathBuf, PathBuf) {
    ok(
        run_cmd(Command::new(repo().join("packaging/build")).current_dir(repo())),
        "packaging/build",
    );
    let out = repo().join("target/packages");
    let find = |ext: &str| {
        std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == ext))
            .unwrap_or_else(|| panic!("no .{ext} in {}", out.display()))
    };
    (find("deb"), find("rpm"))
}

#[test]
fn packages_build_lint_install_and_purge() {
    // Installs into the machine's root: CI only.
    if !in_ci() {
        eprintln!("skipping: builds and installs the .deb system-wide; runs in CI (CI=true)");
        return;
    }
    for tool in [
        "cargo-deb",
        "cargo-generate-rpm",
        "cargo-zigbuild",
        "lintian",
        "rpm",
        "dpkg",
        "systemd-analyze",
    ] {
        require(have_tool(tool), tool);
    }
    require(is_root(), "root");
    let (deb, rpm) = build_packages();

    // lintian: no errors (warnings are listed in docs/install.md).
    let r = run_cmd(
        Command::new("lintian")
            .arg("--no-tag-display-limit")
            .arg(&deb),
    );
    let errors: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", r.stdout);

    let files = ok(
        run_cmd(Command::new("rpm").arg("-qpl").arg(&rpm)),
        "rpm -qpl",
    );
    for f in [
        "/usr/bin/nodetune",
        "/etc/nodetune/nodetune.toml",
        "/usr/lib/systemd/system/nodetune.service",
        "/usr/share/nodetune/profiles/api-gateway.toml",
        "/usr/share/man/man1/nodetune.1.gz",
        "/usr/share/bash-completion/completions/nodetune",
        "/usr/share/nodetune/prometheus/nodetune-rules.yml",
    ] {
        assert!(
            files.lines().any(|l| l == f),
            "{f} missing from the rpm:\n{files}"
        );
    }
    let config = ok(
        run_cmd(Command::new("rpm").args(["-qpc"]).arg(&rpm)),
        "rpm -qpc",
    );
    assert!(config.contains("/etc/nodetune/nodetune.toml"), "{config}");
    let scripts = ok(
        run_cmd(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm)),
        "rpm -qp --scripts",
    );
    assert!(
        scripts.contains("postinstall scriptlet")
            && scripts.contains("systemctl --no-reload preset nodetune.service"),
        "{scripts}"
    );
    assert!(
        scripts.contains("preuninstall scriptlet")
            && scripts.contains("disable --now nodetune.service"),
        "{scripts}"
    );

    // Install, use, verify the unit, purge.
    ok(run_cmd(Command::new("dpkg").arg("-i").arg(&deb)), "dpkg -i");
    let v = ok(
        run_cmd(Command::new("/usr/bin/nodetune").arg("--version")),
        "nodetune --version",
    );
    assert!(v.starts_with("nodetune "), "{v}");
    let list = ok(
        run_cmd(Command::new("/usr/bin/nodetune").args(["profile", "list"])),
        "profile list",
    );
    assert!(
        list.contains("/usr/share/nodetune/profiles/api-gateway.toml"),
        "installed profiles are used:\n{list}"
    );
    let verify = run_cmd(
        Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/nodetune.service"]),
    );
    assert_eq!(
        verify.code, 0,
        "systemd-analyze verify:\n{}{}",
        verify.stdout, verify.stderr
    );
    assert!(Path::new("/etc/nodetune/profiles.d").is_dir());
    ok(
        run_cmd(Command::new("dpkg").args(["--purge", "nodetune"])),
        "dpkg --purge",
    );
    assert!(!Path::new("/usr/bin/nodetune").exists());
    assert!(!Path::new("/etc/nodetune/nodetune.toml").exists());
}
