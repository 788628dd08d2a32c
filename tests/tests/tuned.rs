//! tuned awareness with tuned's own profile files (Debian's `tuned` package installs them in
//! /usr/lib/tuned): `nodetune plan` and `check` report the keys tuned's active profile sets,
//! inherited or not, and a fight with a process called tuned names tuned.

use std::path::Path;
use std::process::{Command, Stdio};

use nodetune_e2e::{have_tool, is_root, require, run_cmd, wait_until, Daemon, FakeHost, TestNetns};

const TUNED_PROFILES: &str = "/usr/lib/tuned";

fn have_tuned_profiles() -> bool {
    require(
        Path::new(TUNED_PROFILES)
            .join("throughput-performance/tuned.conf")
            .is_file(),
        "tuned's profiles in /usr/lib/tuned (Debian package tuned)",
    )
}

/// Copies the installed tuned profiles under `root` and makes `active` tuned's active profile.
fn install_tuned(root: &Path, active: &str) {
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(TUNED_PROFILES)
        .arg(root.join("usr/lib/"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir_all(root.join("etc/tuned")).unwrap();
    std::fs::write(root.join("etc/tuned/active_profile"), format!("{active}\n")).unwrap();
}

/// The line of `key=` in a shipped tuned profile (so the test follows package updates).
fn line_of(profile: &str, key: &str) -> usize {
    let text = std::fs::read_to_string(format!("{TUNED_PROFILES}/{profile}/tuned.conf")).unwrap();
    text.lines()
        .position(|l| l.trim_start().starts_with(key) && l.contains('='))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{key} not in tuned's {profile}:\n{text}"))
}

const PROFILE: &str = r#"[sysctl]
"net.core.somaxconn" = 1024
"net.ipv4.tcp_rmem" = "4096 87380 >=16777216"
"net.ipv4.tcp_wmem" = "4096 16384 4194304"
"#;

#[test]
fn plan_and_check_report_what_tuned_also_sets() {
    if !have_tuned_profiles() {
        return;
    }
    let h = FakeHost::new();
    h.write("root/etc/nodetune/profiles.d/t.toml", PROFILE);
    install_tuned(&h.path("root"), "network-throughput");
    let somaxconn = format!(
        "conflict: net.core.somaxconn = >2048 at /usr/lib/tuned/throughput-performance/tuned.conf:{}: \
         tuned's active profile network-throughput (inherited from throughput-performance) sets \
         net.core.somaxconn = >2048, which the profile does not accept (1024)",
        line_of("throughput-performance", "net.core.somaxconn")
    );
    let rmem = format!(
        "also set: net.ipv4.tcp_rmem = 4096 87380 16777216 at /usr/lib/tuned/network-throughput/tuned.conf:{}: \
         tuned's active profile network-throughput also sets net.ipv4.tcp_rmem = 4096 87380 16777216, \
         which the profile accepts",
        line_of("network-throughput", "net.ipv4.tcp_rmem")
    );
    let wmem = format!(
        "conflict: net.ipv4.tcp_wmem = 4096 16384 16777216 at /usr/lib/tuned/network-throughput/tuned.conf:{}:",
        line_of("network-throughput", "net.ipv4.tcp_wmem")
    );
    let r = h.run(&["plan", "-p", "t"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for want in [&somaxconn, &rmem, &wmem] {
        assert!(
            r.stdout.contains(want.as_str()),
            "{want}\nnot in:\n{}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .contains("drop=net.core.somaxconn) or switch tuned's profile"),
        "{}",
        r.stdout
    );
    // check: the same report; the exit code still says drifted (2), not more.
    let r = h.run(&["check", "-p", "t"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    for want in [&somaxconn, &rmem, &wmem] {
        assert!(
            r.stdout.contains(want.as_str()),
            "{want}\nnot in:\n{}",
            r.stdout
        );
    }
    let r = h.run(&["check", "-p", "t", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let tuned: Vec<&serde_json::Value> = doc["plan"]["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "tuned")
        .collect();
    assert_eq!(tuned.len(), 3, "{}", r.stdout);
    assert_eq!(tuned[0]["differs"], true);
    assert_eq!(tuned[1]["differs"], false);

    // A local child profile that drops the inherited key, as the note suggests.
    h.write(
        "root/etc/tuned/site/tuned.conf",
        "[main]\ninclude=network-throughput\n\n[sysctl]\ndrop=net.core.somaxconn\n",
    );
    std::fs::write(h.path("root/etc/tuned/active_profile"), "site\n").unwrap();
    let r = h.run(&["plan", "-p", "t"]);
    assert!(
        !r.stdout.contains("net.core.somaxconn = >2048"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "tuned's active profile site (inherited from network-throughput) also sets net.ipv4.tcp_rmem"
        ),
        "{}",
        r.stdout
    );
    // No active tuned profile: nothing about tuned.
    std::fs::write(h.path("root/etc/tuned/active_profile"), "").unwrap();
    let r = h.run(&["plan", "-p", "t"]);
    assert!(!r.stdout.contains("tuned"), "{}", r.stdout);
}

#[test]
fn a_fight_with_tuned_names_tuned() {
    if !have_tuned_profiles()
        || !require(
            is_root() && have_tool("ip") && have_tool("sysctl"),
            "root with ip and sysctl",
        )
    {
        return;
    }
    let ns = TestNetns::new("tnd");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    install_tuned(&root, "site");
    // tuned's active profile inherits the shipped throughput-performance and sets the key.
    std::fs::create_dir_all(root.join("etc/tuned/site")).unwrap();
    std::fs::write(
        root.join("etc/tuned/site/tuned.conf"),
        "[main]\ninclude=throughput-performance\n\n[sysctl]\nnet.core.somaxconn=1000\n",
    )
    .unwrap();
    let r = run_cmd(
        Command::new("ip").args(["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(&cfg, "mode = \"enforce\"\ndrift-interval = \"100ms\"\n").unwrap();
    let d = Daemon::start(
        &["ip", "netns", "exec", &ns.name],
        &[
            "--profile=api-node",
            &format!("--config={}", cfg.display()),
            &format!("--root={}", root.display()),
            "--web.listen-address=127.0.0.1:9100",
        ],
        &[],
    );
    assert!(
        wait_until(20, || ns.sysctl("net.core.somaxconn") == "65535"),
        "{}",
        d.stderr()
    );
    // A process named tuned, whose PID tuned's PID file holds, resets the key in a loop.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("tuned"),
        "#!/bin/sh\nwhile :; do sysctl -qw net.core.somaxconn=1000; sleep 0.05; done\n",
    )
    .unwrap();
    let st = Command::new("chmod")
        .arg("755")
        .arg(bin.join("tuned"))
        .status()
        .unwrap();
    assert!(st.success());
    let mut tuned = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin.join("tuned"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    std::fs::create_dir_all(root.join("run/tuned")).unwrap();
    std::fs::write(
        root.join("run/tuned/tuned.pid"),
        format!("{}\n", tuned.id()),
    )
    .unwrap();
    let _tuned = Kill(&mut tuned);
    assert!(
        wait_until(15, || d
            .stderr()
            .contains("fight: net.core.somaxconn keeps being changed back")),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr().contains(
            "Likely writer: tuned (running; its active profile /etc/tuned/site/tuned.conf:5 sets 1000;"
        ),
        "{}",
        d.stderr()
    );
}
