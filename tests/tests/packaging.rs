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
    assert!(out.contains("SUCCESS: 22 rules found"), "{out}");
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

#[test]
fn grafana_dashboard_has_a_panel_for_each_signal() {
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("packaging/grafana/nodetune-dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targets"][0]["expr"].as_str().unwrap().to_string())
        .collect();
    for m in [
        "nodetune_key_in_sync",
        "nodetune_alert",
        "nodetune_saturation_ratio",
        "nodetune_drift_events_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(m)),
            "dashboard has no panel for {m}"
        );
    }
}

/// Every document of a YAML file.
fn yaml_docs(rel: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

fn s(v: &serde_yaml::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The Kubernetes manifests, read as Kubernetes would: the Service and the ServiceMonitor
/// find the DaemonSet's pods and port, and the container runs: the DaemonSet's own arguments,
/// with the ConfigMap's files mounted where its volumeMounts put them and stand-ins for the
/// host paths, start a daemon that applies the ConfigMap's profile and answers the readiness
/// probe.
#[test]
fn kubernetes_manifests_wire_up_and_run_as_written() {
    let docs = yaml_docs("packaging/kubernetes/nodetune-daemonset.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} in the manifest"))
    };
    let (ns, cm, ds, svc) = (
        kind("Namespace"),
        kind("ConfigMap"),
        kind("DaemonSet"),
        kind("Service"),
    );
    let namespace = s(&ns["metadata"]["name"]);
    for d in [cm, ds, svc] {
        assert_eq!(s(&d["metadata"]["namespace"]), namespace, "{:?}", d["kind"]);
    }
    let pod = &ds["spec"]["template"];
    let selects = |sel: &serde_yaml::Value, labels: &serde_yaml::Value| {
        let sel = sel.as_mapping().expect("selector labels");
        !sel.is_empty() && sel.iter().all(|(k, v)| labels[k] == *v)
    };
    assert!(
        selects(
            &ds["spec"]["selector"]["matchLabels"],
            &pod["metadata"]["labels"]
        ),
        "the DaemonSet's selector does not match its pods"
    );
    assert!(
        selects(&svc["spec"]["selector"], &pod["metadata"]["labels"]),
        "the Service does not select the DaemonSet's pods"
    );
    let c = &pod["spec"]["containers"][0];
    let port = c["ports"]
        .as_sequence()
        .expect("container ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert_eq!(port["containerPort"].as_u64(), Some(9100));
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    let svc_port = &svc["spec"]["ports"][0];
    assert_eq!(svc_port["targetPort"], "metrics");
    // The ServiceMonitor scrapes the Service's port by name, with job="nodetune" as the
    // shipped rules select; so does the plain scrape configuration.
    let sm = &yaml_docs("packaging/kubernetes/nodetune-servicemonitor.yaml")[0];
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(s(&sm["metadata"]["namespace"]), namespace);
    assert!(selects(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"], svc_port["name"]);
    let job = ep["relabelings"]
        .as_sequence()
        .expect("relabelings")
        .iter()
        .find(|r| r["targetLabel"] == "job")
        .expect("a job relabeling");
    let rules = std::fs::read_to_string(repo().join("packaging/prometheus/nodetune-rules.yml"))
        .expect("rules");
    let selector = format!("job=\"{}\"", s(&job["replacement"]));
    assert!(
        rules.contains(&selector),
        "the shipped rules do not select {selector}"
    );
    let scrape = &yaml_docs("packaging/prometheus/scrape-config.yml")[0];
    assert_eq!(
        format!("job=\"{}\"", s(&scrape["scrape_configs"][0]["job_name"])),
        selector
    );

    // The container's file system, in a temporary root: the ConfigMap's files where the
    // volumeMounts put them, and stand-ins for the host's /proc and /sys (a stand-in sysctl
    // tree: nothing on this host changes) and for the state directory.
    let host = nodetune_e2e::FakeHost::new();
    std::os::unix::fs::symlink(host.path("sys"), host.path("proc/sys")).expect("symlink");
    let croot = tempfile::tempdir().expect("tempdir");
    let stand_in = |host_path: &str| match host_path {
        "/proc" => host.path("proc"),
        "/sys" => host.path("sysfs"),
        "/var/lib/nodetune" => host.path("state"),
        other => panic!("no stand-in for the hostPath volume {other}"),
    };
    let volumes = pod["spec"]["volumes"].as_sequence().expect("volumes");
    for m in c["volumeMounts"].as_sequence().expect("volumeMounts") {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("no volume {:?}", m["name"]));
        let at = croot
            .path()
            .join(s(&m["mountPath"]).trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        if v["configMap"]["name"] == cm["metadata"]["name"] {
            let key = s(&m["subPath"]);
            std::fs::write(&at, s(&cm["data"][key])).expect("write the ConfigMap file");
        } else {
            let hp = s(&v["hostPath"]["path"]);
            let target = stand_in(hp);
            std::fs::create_dir_all(&target).expect("mkdir");
            std::os::unix::fs::symlink(target, &at).expect("symlink");
        }
    }
    // The DaemonSet's arguments, their paths taken inside the container's root: each must be
    // there (a path the manifest does not mount would not be).
    let args: Vec<String> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| match s(a).split_once("=/") {
            Some((flag, path)) => {
                let p = croot.path().join(path);
                assert!(p.exists(), "{} is not in the container", s(a));
                format!("{flag}={}", p.display())
            }
            None => s(a).to_string(),
        })
        .collect();
    assert_eq!(args[0], "run");
    let mut args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    // The one change: a free loopback port instead of the node's :9100.
    args.push("--web.listen-address=127.0.0.1:0");
    let root = croot.path().display().to_string();
    let d = nodetune_e2e::Daemon::start(&[], &args, &[("NODETUNE_ROOT", root.as_str())]);
    let addr = d.addr();
    let probe = s(&c["readinessProbe"]["httpGet"]["path"]);
    assert_eq!(
        nodetune_e2e::http_get(&addr, probe, &[]).map(|r| r.0),
        Some(200),
        "readiness probe {probe}:\n{}",
        d.stderr()
    );
    // The ConfigMap's profile, enforced on the stand-in tree.
    assert!(
        nodetune_e2e::wait_until(30, || host.sysctl("net.core.somaxconn") == "65535\n"),
        "k8s-node was not applied:\n{}",
        d.stderr()
    );
    for (key, want) in [
        ("net.ipv4.tcp_max_syn_backlog", "65535"),
        ("net.ipv4.ip_local_port_range", "1024 65535"),
        ("net.ipv4.tcp_tw_reuse", "1"),
        ("net.ipv4.tcp_syncookies", "1"),
    ] {
        let got = host.sysctl(key);
        assert_eq!(
            got.split_whitespace().collect::<Vec<_>>().join(" "),
            want,
            "{key}"
        );
    }
    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
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
    // Installs into the machine's root, so it runs under CI=true (a machine CI throws away);
    // elsewhere it fails unless NODETUNE_TEST_SKIP names system-install.
    if !require(
        in_ci(),
        "system-install (this test installs the .deb system-wide: it runs under CI=true, on a \
         throwaway machine)",
    ) {
        return;
    }
    let tools = [
        "cargo-deb",
        "cargo-generate-rpm",
        "cargo-zigbuild",
        "lintian",
        "rpm",
        "dpkg",
        "systemd-analyze",
    ];
    if !(tools.iter().all(|t| require(have_tool(t), t)) && require(is_root(), "root")) {
        return;
    }
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
