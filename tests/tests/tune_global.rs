//! Global keys, files and failure handling, through a stand-in sysctl root in a temporary tree.

use nodetune_e2e::{have_tool, is_root, require, run_cmd, wait_until, FakeHost};
use std::process::Command;

fn profile(h: &FakeHost, name: &str, text: &str) {
    h.write(&format!("root/etc/nodetune/profiles.d/{name}.toml"), text);
}

const GLOBAL: &str = r#"
[sysctl]
"fs.file-max" = 2000000
"net.core.rmem_max" = ">=16777216"
"net.core.netdev_max_backlog" = 16384
"net.core.somaxconn" = 65535
[conntrack]
max = 1048576
"#;

#[test]
fn global_keys_apply_check_and_revert() {
    let h = FakeHost::new().with_conntrack();
    profile(&h, "g", GLOBAL);
    let r = h.run(&["apply", "-p", "g"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h.sysctl("fs.file-max"), "2000000\n");
    assert_eq!(h.sysctl("net.core.rmem_max"), "16777216\n");
    assert_eq!(h.sysctl("net.core.netdev_max_backlog"), "16384\n");
    assert_eq!(h.sysctl("net.netfilter.nf_conntrack_max"), "1048576\n");
    assert_eq!(h.run(&["check", "-p", "g"]).code, 0);

    h.write("sys/net/core/rmem_max", "4194304\n");
    let r = h.run(&["check", "-p", "g"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout
            .contains("drifted: net.core.rmem_max is 4194304 (profile g wants >=16777216)"),
        "{}",
        r.stdout
    );

    let r = h.run(&["revert"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h.sysctl("fs.file-max"), "9223372036854775807\n");
    assert_eq!(h.sysctl("net.core.rmem_max"), "212992\n");
    assert_eq!(h.sysctl("net.core.netdev_max_backlog"), "1000\n");
    assert_eq!(h.sysctl("net.netfilter.nf_conntrack_max"), "262144\n");
}

#[test]
fn floors_keep_higher_values() {
    let h = FakeHost::new();
    h.write("sys/net/core/rmem_max", "33554432\n");
    h.write("sys/net/ipv4/tcp_rmem", "4096\t131072\t33554432\n");
    profile(&h, "f", "[sysctl]\n\"net.core.rmem_max\" = \">=16777216\"\n\"net.ipv4.tcp_rmem\" = \"4096 87380 >=16777216\"\n");
    let r = h.run(&["apply", "-p", "f"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        h.sysctl("net.core.rmem_max"),
        "33554432\n",
        "a floor never lowers"
    );
    assert_eq!(h.sysctl("net.ipv4.tcp_rmem"), "4096 87380 33554432\n");
    // Tabs in the kernel's output compare equal to spaces.
    h.write("sys/net/ipv4/tcp_rmem", "4096\t87380\t33554432\n");
    assert_eq!(h.run(&["check", "-p", "f"]).code, 0);
}

#[test]
fn a_rejected_value_rolls_back_what_was_written() {
    // A real kernel refusal, without touching the host: inside a fresh network namespace,
    // the stand-in tree's net.core.netdev_max_backlog is a link to that namespace's
    // tcp_tw_reuse, which accepts only 0..2.
    if !require(
        is_root() && have_tool("unshare"),
        "root with unshare (util-linux)",
    ) {
        return;
    }
    let h = FakeHost::new();
    let link = h.path("sys/net/core/netdev_max_backlog");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/proc/sys/net/ipv4/tcp_tw_reuse", &link).unwrap();
    profile(&h, "g", GLOBAL);
    let r = run_cmd(
        Command::new("unshare")
            .arg("-n")
            .arg(nodetune_e2e::bin())
            .args(["apply", "-p", "g", "--sysctl-root"])
            .arg(h.path("sys"))
            .arg("--path.procfs")
            .arg(h.path("proc"))
            .arg("--path.sysfs")
            .arg(h.path("sysfs"))
            .arg("--root")
            .arg(h.path("root"))
            .arg("--state-dir")
            .arg(h.path("state")),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("net.core.netdev_max_backlog")
            && r.stdout.contains("the kernel rejected the value (EINVAL)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(
            "apply failed and every value written was rolled back: net.core.netdev_max_backlog"
        ),
        "{}",
        r.stderr
    );
    // Keys written before the failure (sorted: fs.file-max first) are back.
    assert!(r.stdout.contains("rolled-back"), "{}", r.stdout);
    assert_eq!(h.sysctl("fs.file-max"), "9223372036854775807\n");
}

#[test]
fn a_read_only_key_rolls_back_what_was_written() {
    // net.core.rmem_max is read-only inside a child namespace, for root too.
    if !require(
        is_root() && have_tool("unshare"),
        "root with unshare (util-linux)",
    ) {
        return;
    }
    let h = FakeHost::new();
    let link = h.path("sys/net/core/rmem_max");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/proc/sys/net/core/rmem_max", &link).unwrap();
    profile(&h, "g", "[sysctl]\n\"fs.file-max\" = 2000000\n\"net.core.netdev_max_backlog\" = 16384\n\"net.core.rmem_max\" = 16777216\n\"net.core.somaxconn\" = 65535\n");
    let r = run_cmd(
        Command::new("unshare")
            .arg("-n")
            .arg(nodetune_e2e::bin())
            .args(["apply", "-p", "g"])
            .env("NODETUNE_SYSCTL_ROOT", h.path("sys"))
            .env("NODETUNE_PROCFS", h.path("proc"))
            .env("NODETUNE_SYSFS", h.path("sysfs"))
            .env("NODETUNE_ROOT", h.path("root"))
            .env("NODETUNE_STATE_DIR", h.path("state")),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("permission denied: the key is read-only here"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("rolled back: net.core.rmem_max"),
        "{}",
        r.stderr
    );
    assert_eq!(h.sysctl("fs.file-max"), "9223372036854775807\n");
    assert_eq!(h.sysctl("net.core.netdev_max_backlog"), "1000\n");
    assert_eq!(
        h.sysctl("net.core.somaxconn"),
        "4096\n",
        "not reached, not written"
    );
}

#[test]
fn pending_module_keys_and_out_of_scope_are_not_errors() {
    let h = FakeHost::new(); // nf_conntrack not loaded
    profile(&h, "c", "[conntrack]\nmax = 1048576\nbuckets = \">=max\"\n[sysctl]\n\"net.core.somaxconn\" = 8192\n");
    let r = h.run(&["plan", "-p", "c"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("module nf_conntrack is not loaded; the value is applied when it is"),
        "{}",
        r.stdout
    );
    let r = h.run(&["apply", "-p", "c"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("pending: net.netfilter.nf_conntrack_max"),
        "{}",
        r.stdout
    );
    assert_eq!(h.run(&["check", "-p", "c"]).code, 0);
    // Once the module appears, the keys are applied.
    let h2 = h.with_conntrack();
    assert_eq!(h2.run(&["check", "-p", "c"]).code, 2);
    assert_eq!(h2.run(&["apply", "-p", "c"]).code, 0);
    assert_eq!(h2.sysctl("net.netfilter.nf_conntrack_max"), "1048576\n");
    assert_eq!(
        h2.read("sysfs/module/nf_conntrack/parameters/hashsize"),
        "1048576\n"
    );
}

#[test]
fn congestion_control_loads_the_module_first() {
    let h = FakeHost::new();
    // A stand-in modprobe that "loads" tcp_bbr by adding it to the available list.
    let avail = h.path("sys/net/ipv4/tcp_available_congestion_control");
    h.write(
        "bin/modprobe",
        &format!(
            "#!/bin/sh\n[ \"$1\" = tcp_bbr ] || exit 1\necho 'reno cubic bbr' > '{}'\n",
            avail.display()
        ),
    );
    let mp = h.path("bin/modprobe");
    std::fs::set_permissions(&mp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    profile(&h, "b", "[congestion]\ncontrol = \"bbr\"\nqdisc = \"fq\"\n");
    let r = h.run(&["plan", "-p", "b"]);
    assert!(
        r.stdout
            .contains("bbr is not available (reno cubic); apply loads module tcp_bbr first"),
        "{}",
        r.stdout
    );
    let r = h.run(&["apply", "-p", "b", "--modprobe", mp.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h.sysctl("net.ipv4.tcp_congestion_control"), "bbr\n");
    assert_eq!(h.sysctl("net.core.default_qdisc"), "fq\n");
    // A module that cannot be loaded fails the apply and rolls back.
    profile(
        &h,
        "x",
        "[congestion]\ncontrol = \"westwood\"\nqdisc = \"fq_codel\"\n",
    );
    let r = h.run(&["apply", "-p", "x", "--modprobe", mp.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("modprobe tcp_westwood failed"),
        "{}",
        r.stdout
    );
    assert_eq!(
        h.sysctl("net.core.default_qdisc"),
        "fq\n",
        "rolled back to the value before this apply"
    );
}

#[test]
fn limits_write_drop_ins_and_revert_removes_them() {
    let h = FakeHost::new();
    profile(
        &h,
        "l",
        "[limits]\nnofile = 2097152\nservices = [\"nginx.service\"]\n",
    );
    let r = h.run(&["apply", "-p", "l"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h.sysctl("fs.nr_open"), "2097152\n");
    assert!(h
        .read("root/etc/systemd/system.conf.d/60-nodetune-nofile.conf")
        .contains("DefaultLimitNOFILE=2097152\n"));
    assert!(h
        .read("root/etc/systemd/system/nginx.service.d/60-nodetune-nofile.conf")
        .contains("[Service]\nLimitNOFILE=2097152\n"));
    assert!(h
        .read("root/etc/security/limits.d/60-nodetune-nofile.conf")
        .contains("* - nofile 2097152\n"));
    assert_eq!(h.run(&["check", "-p", "l"]).code, 0);
    let r = h.run(&["revert"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!h
        .path("root/etc/systemd/system.conf.d/60-nodetune-nofile.conf")
        .exists());
    assert!(!h
        .path("root/etc/security/limits.d/60-nodetune-nofile.conf")
        .exists());
    assert_eq!(h.sysctl("fs.nr_open"), "1048576\n");
}

#[test]
fn persist_and_boot_conflicts() {
    let h = FakeHost::new();
    h.write(
        "root/etc/sysctl.d/60-app.conf",
        "# app tuning\nnet.core.somaxconn = 1024\n",
    );
    h.write("root/etc/sysctl.conf", "net.ipv4.tcp_fastopen = 1\n");
    profile(
        &h,
        "p",
        "[sysctl]\n\"net.core.somaxconn\" = 65535\n\"net.ipv4.tcp_fastopen\" = 3\n",
    );
    let r = h.run(&["plan", "-p", "p"]);
    assert!(
        r.stdout.contains("conflict: net.core.somaxconn = 1024 at /etc/sysctl.d/60-app.conf:2: systemd-sysctl sets 1024 at boot"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("conflict: net.ipv4.tcp_fastopen = 1 at /etc/sysctl.conf:1"),
        "{}",
        r.stdout
    );
    let r = h.run(&["apply", "-p", "p", "--persist"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let dropin = h.read("root/etc/sysctl.d/99-zz-nodetune.conf");
    assert!(
        dropin.contains("net.core.somaxconn = 65535\n")
            && dropin.contains("net.ipv4.tcp_fastopen = 3\n"),
        "{dropin}"
    );
    // Running apply again changes nothing.
    let r = h.run(&["apply", "-p", "p", "--persist"]);
    assert!(r.stdout.contains("already in effect"), "{}", r.stdout);
    assert_eq!(h.run(&["revert"]).code, 0);
    assert!(!h.path("root/etc/sysctl.d/99-zz-nodetune.conf").exists());
    assert_eq!(h.sysctl("net.core.somaxconn"), "4096\n");
}

#[test]
fn unwritable_state_dir_refuses_before_writing() {
    let h = FakeHost::new();
    h.write("state", "a file where the state directory should be");
    profile(&h, "s", "[sysctl]\n\"net.core.somaxconn\" = 65535\n");
    let before = h.snapshot();
    let r = h.run(&["apply", "-p", "s"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("is not writable, so originals cannot be saved; nothing was changed"),
        "{}",
        r.stderr
    );
    assert_eq!(h.snapshot(), before);
}

#[test]
fn full_state_disk_refuses_before_writing() {
    // A real full filesystem: a 64 KiB tmpfs, filled up, mounted over the state directory in
    // a private mount namespace (the host's mounts are untouched, and it vanishes with it).
    if !require(
        is_root() && have_tool("unshare"),
        "root and unshare (mount namespace)",
    ) {
        return;
    }
    let h = FakeHost::new();
    std::fs::create_dir_all(h.path("state")).unwrap();
    profile(&h, "s", "[sysctl]\n\"net.core.somaxconn\" = 65535\n");
    let before = h.snapshot();
    let script = r#"mount -t tmpfs -o size=64k,nr_inodes=64 tmpfs "$NODETUNE_STATE_DIR" || exit 99
dd if=/dev/zero of="$NODETUNE_STATE_DIR/fill" bs=4k 2>/dev/null
df -k "$NODETUNE_STATE_DIR" | tail -1 >&2
exec "$0" apply -p s"#;
    let r = run_cmd(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script])
            .arg(nodetune_e2e::bin())
            .env("NODETUNE_SYSCTL_ROOT", h.path("sys"))
            .env("NODETUNE_PROCFS", h.path("proc"))
            .env("NODETUNE_SYSFS", h.path("sysfs"))
            .env("NODETUNE_ROOT", h.path("root"))
            .env("NODETUNE_STATE_DIR", h.path("state")),
    );
    assert_ne!(r.code, 99, "mount failed: {}", r.stderr);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(" 100% ") || r.stderr.contains(" 0 100%"),
        "the tmpfs was not full: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("is not writable, so originals cannot be saved; nothing was changed")
            && r.stderr.contains("No space left on device"),
        "{}",
        r.stderr
    );
    // Nothing changed: not the kernel keys, not the (host-visible) state directory.
    assert_eq!(h.snapshot(), before);
}

#[test]
fn use_sets_the_active_profile() {
    let h = FakeHost::new();
    let r = h.run(&["plan"]);
    assert!(
        r.stdout.starts_with("profile base "),
        "default profile is base: {}",
        r.stdout
    );
    let r = h.run(&["use", "api-nod"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("api-nod: no such profile (did you mean \"api-node\"?)"),
        "{}",
        r.stderr
    );
    let r = h.run(&["use", "api-node"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(h.read("state/active-profile"), "api-node\n");
    let r = h.run(&["plan", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["profile"], "api-node");
}

/// Starts `apply` of profile "k", kills it with SIGKILL after two of its three keys are
/// written, and checks the originals on disk; then the hung "kernel" key behaves again.
fn killed_apply() -> FakeHost {
    // A FIFO stands in for a key whose write hangs: the plan reads it once (a helper thread
    // feeds the value), then apply blocks opening it for writing, after the keys sorted
    // before it were written. The process is killed there.
    let h = FakeHost::new();
    let fifo = h.path("sys/net/ipv4/tcp_tw_reuse");
    std::fs::remove_file(&fifo).unwrap();
    nix_mkfifo(&fifo);
    profile(&h, "k", "[sysctl]\n\"fs.file-max\" = 2000000\n\"net.core.somaxconn\" = 65535\n\"net.ipv4.tcp_tw_reuse\" = 1\n");
    let feeder = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, "2\n").unwrap())
    };
    let mut child = Command::new(nodetune_e2e::bin())
        .args(["apply", "-p", "k"])
        .env("NODETUNE_SYSCTL_ROOT", h.path("sys"))
        .env("NODETUNE_PROCFS", h.path("proc"))
        .env("NODETUNE_SYSFS", h.path("sysfs"))
        .env("NODETUNE_ROOT", h.path("root"))
        .env("NODETUNE_STATE_DIR", h.path("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    feeder.join().unwrap();
    // Wait (bounded) until the keys before the FIFO are written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while h.sysctl("net.core.somaxconn") != "65535\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never reached the FIFO"
        );
        assert!(child.try_wait().unwrap().is_none(), "apply exited early");
        std::thread::yield_now();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(h.sysctl("fs.file-max"), "2000000\n");

    // The originals were saved, synced, before the first write, all three of them.
    let saved: serde_json::Value =
        serde_json::from_str(&h.read("state/originals/host.json")).unwrap();
    let entries: Vec<(String, String)> = saved["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["target"]["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("fs.file-max".into(), "9223372036854775807\n".into()),
            ("net.core.somaxconn".into(), "4096\n".into()),
            ("net.ipv4.tcp_tw_reuse".into(), "2\n".into()),
        ]
    );
    std::fs::remove_file(&fifo).unwrap();
    h.write("sys/net/ipv4/tcp_tw_reuse", "2\n");
    h
}

#[test]
fn kill_9_mid_apply_keeps_originals_and_revert_restores() {
    let h = killed_apply();
    // Restart: the "kernel" key never changed; revert brings back a known state.
    let r = h.run(&["revert"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h.sysctl("fs.file-max"), "9223372036854775807\n");
    assert_eq!(h.sysctl("net.core.somaxconn"), "4096\n");
    assert_eq!(h.sysctl("net.ipv4.tcp_tw_reuse"), "2\n");
    // Or apply again: the profile ends fully applied.
    assert_eq!(h.run(&["apply", "-p", "k"]).code, 0);
    assert_eq!(h.run(&["check", "-p", "k"]).code, 0);
}

#[test]
fn kill_9_mid_apply_then_daemon_restart_ends_applied() {
    let h = killed_apply();
    // Restart the daemon in enforce mode: it ends with the profile fully applied, and the
    // originals saved by the killed apply are kept (a later revert still restores the values
    // from before any nodetune write, not the half-applied ones).
    let d = h.daemon(
        &[
            &format!("--state-dir={}", h.path("state").display()),
            "--profile=k",
            "--mode=enforce",
            "--web.listen-address=127.0.0.1:0",
        ],
        &[],
    );
    assert!(
        wait_until(20, || {
            h.sysctl("net.ipv4.tcp_tw_reuse") == "1\n" && h.sysctl("fs.file-max") == "2000000\n"
        }),
        "the restarted daemon did not apply the profile:\n{}",
        d.stderr()
    );
    d.addr(); // the status document is written once the daemon handles signals
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(h.run(&["check", "-p", "k"]).code, 0);
    let r = h.run(&["revert"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h.sysctl("fs.file-max"), "9223372036854775807\n");
    assert_eq!(h.sysctl("net.core.somaxconn"), "4096\n");
    assert_eq!(h.sysctl("net.ipv4.tcp_tw_reuse"), "2\n");
}

fn nix_mkfifo(path: &std::path::Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// What this kernel's own description (/proc/config.gz, else /boot/config-RELEASE, else the
/// module tree) says about qdisc `q`: Some(true) when it cannot be provided, None when nothing
/// describes the kernel.
fn qdisc_missing_here(q: &str) -> Option<bool> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let release = release.trim();
    let sym = format!("CONFIG_NET_SCH_{}=", q.to_ascii_uppercase());
    let config = run_cmd(Command::new("zcat").arg("/proc/config.gz"));
    let text = if config.code == 0 {
        Some(config.stdout)
    } else {
        std::fs::read_to_string(format!("/boot/config-{release}")).ok()
    };
    if let Some(t) = text {
        return Some(!t.lines().any(|l| l.starts_with(&sym)));
    }
    let dir = format!("/lib/modules/{release}");
    if !std::path::Path::new(&dir).is_dir() {
        return None;
    }
    let builtin = std::fs::read_to_string(format!("{dir}/modules.builtin")).unwrap_or_default();
    let module = run_cmd(Command::new("find").args([&dir, "-name", &format!("sch_{q}.ko*")]));
    Some(!builtin.contains(&format!("/sch_{q}.ko")) && module.stdout.trim().is_empty())
}

/// Profiles meet kernels that lack a qdisc. The plan reads this kernel's real description
/// (live /proc and /sys; the values live in the fake tree, so nothing on the host changes):
/// api-gateway's fq is unsupported with the reason where the kernel lacks it, apply skips it
/// with a warning and applies the rest, and a profile that says `if-unavailable = "refuse"`
/// changes nothing and names the qdisc.
#[test]
fn a_qdisc_this_kernel_lacks_is_skipped_or_refused() {
    let Some(missing) = qdisc_missing_here("fq") else {
        require(
            false,
            "a kernel description: /proc/config.gz, /boot/config-RELEASE or /lib/modules",
        );
        return;
    };
    let h = FakeHost::new();
    // The fake tree lists this kernel's congestion controls, as the real one would.
    for k in ["tcp_available_congestion_control", "tcp_congestion_control"] {
        let v = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{k}")).unwrap();
        h.write(&format!("sys/net/ipv4/{k}"), &v);
    }
    let env = |extra: &[(&'static str, std::path::PathBuf)]| {
        let mut env = vec![
            ("NODETUNE_SYSCTL_ROOT", h.path("sys")),
            ("NODETUNE_PROCFS", "/proc".into()),
            ("NODETUNE_SYSFS", "/sys".into()),
            ("NODETUNE_ROOT", h.path("root")),
            ("NODETUNE_STATE_DIR", h.path("state")),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    let run = |args: &[&str]| {
        let e = env(&[]);
        let e: Vec<(&str, &std::path::Path)> = e.iter().map(|(k, v)| (*k, v.as_path())).collect();
        nodetune_e2e::nodetune(args, &e)
    };
    let plan = run(&["plan", "--profile", "api-gateway"]);
    let line = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("net.core.default_qdisc"))
        .unwrap_or_else(|| panic!("{}{}", plan.stdout, plan.stderr))
        .to_string();
    if !missing {
        // This kernel has fq: an ordinary change.
        assert!(
            line.contains("pfifo_fast -> fq") && line.contains("change"),
            "{line}"
        );
        return;
    }
    assert!(line.contains("unsupported"), "{line}");
    assert!(
        line.contains("qdisc fq is not available on this kernel: "),
        "{line}"
    );
    assert!(
        line.contains("skipped ([congestion] if-unavailable = \"skip\")"),
        "{line}"
    );

    // The default: skip it with a warning, apply the rest.
    let r = run(&["apply", "--profile", "api-gateway"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "warning: net.core.default_qdisc not applied: qdisc fq is not available on this kernel"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(h.sysctl("net.core.default_qdisc"), "pfifo_fast\n");
    assert_eq!(h.sysctl("net.core.somaxconn"), "65535\n");
    assert_eq!(run(&["revert"]).code, 0);

    // Refuse: nothing is written, and the error names the qdisc.
    profile(
        &h,
        "strict-gateway",
        "[profile]\ninclude = [\"api-gateway\"]\n[congestion]\nif-unavailable = \"refuse\"\n",
    );
    let before = h.snapshot();
    let r = run(&["apply", "--profile", "strict-gateway"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the plan has errors, so nothing was changed")
            && r.stderr
                .contains("net.core.default_qdisc: qdisc fq is not available on this kernel")
            && r.stderr.contains("refuses to apply without it"),
        "{}",
        r.stderr
    );
    assert!(before == h.snapshot(), "a refused apply changed files");
}
