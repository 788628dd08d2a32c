//! Packages and fleet files checked with the real tools: promtool, lintian, rpm, dpkg,
//! systemd-analyze, ansible-playbook, mmdebstrap/umoci/skopeo/podman. Building the packages and
//! installing them changes the machine, so those tests run only in CI (`CI=true`), where they
//! must not skip; they share one build and take turns installing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use nodetune_e2e::{
    beside, have_tool, in_ci, is_root, require, run_cmd, wait_until, Run, TestNetns,
};

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

/// Tests that install the .deb into the machine's root run under CI=true (a machine CI throws
/// away); elsewhere they fail unless NODETUNE_TEST_SKIP names system-install.
fn system_install() -> bool {
    require(
        in_ci(),
        "system-install (this test installs the .deb system-wide: it runs under CI=true, on a \
         throwaway machine)",
    )
}

/// Root and every tool, each through [`require`]; false when one is skipped.
fn require_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| require(have_tool(t), t)) && require(is_root(), "root")
}

/// The .deb and .rpm, built once per test process.
fn packages() -> (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(build_packages).clone()
}

/// Held by each test that installs into the machine's root, so they take turns.
fn system() -> std::sync::MutexGuard<'static, ()> {
    static SYSTEM: Mutex<()> = Mutex::new(());
    SYSTEM.lock().unwrap_or_else(|p| p.into_inner())
}

/// Purges the package on drop, so a failed test leaves no nodetune (or its configuration,
/// which later tests would read) installed.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "nodetune"]).output();
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
    // :9110, not :9100, which node_exporter's DaemonSet holds as a hostPort on every node;
    // the port the container declares is the one the ConfigMap's daemon listens on.
    assert_eq!(port["containerPort"].as_u64(), Some(9110));
    assert_eq!(port["hostPort"], port["containerPort"]);
    assert!(
        s(&cm["data"]["nodetune.toml"]).contains("listen-address = \":9110\""),
        "the ConfigMap's daemon does not listen on the container's port"
    );
    // Ready once the port accepts connections (a TCP probe: it works with TLS and basic auth).
    assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], "metrics");
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
        // For modprobe of tcp_bbr; the stand-in has no modules (bbr is built in or absent).
        "/lib/modules" => host.path("modules"),
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
    // The one change: a free loopback port instead of the node's :9110.
    args.push("--web.listen-address=127.0.0.1:0");
    let root = croot.path().display().to_string();
    let d = nodetune_e2e::Daemon::start(&[], &args, &[("NODETUNE_ROOT", root.as_str())]);
    let addr = d.addr();
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "readiness probe (TCP connect to {addr}):\n{}",
        d.stderr()
    );
    assert_eq!(
        nodetune_e2e::http_get(&addr, "/metrics", &[]).map(|r| r.0),
        Some(200),
        "/metrics:\n{}",
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
    if !(system_install()
        && require_tools(&[
            "cargo-deb",
            "cargo-generate-rpm",
            "cargo-zigbuild",
            "lintian",
            "rpm",
            "dpkg",
            "systemd-analyze",
        ]))
    {
        return;
    }
    let (deb, rpm) = packages();
    let _turn = system();
    let _purge = PurgeOnDrop;

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

    // On a host where node_exporter already serves :9100: the installed binary with the
    // shipped configuration (listen :9100, handoff to Debian's textfile directory), started
    // as the unit's ExecStart starts it (this machine has no systemd as PID 1), and
    // node_exporter as Debian's unit starts it (empty ARGS).
    for tool in [
        "prometheus",
        "promtool",
        "prometheus-node-exporter",
        "ip",
        "sysctl",
    ] {
        require(have_tool(tool), tool);
    }
    let unit = std::fs::read_to_string("/lib/systemd/system/nodetune.service").expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/bin/nodetune run --config /etc/nodetune/nodetune.toml"),
        "{unit}"
    );
    beside::run(beside::Setup {
        bin: Path::new("/usr/bin/nodetune"),
        config: Path::new("/etc/nodetune/nodetune.toml"),
        node_exporter_args: &[],
        textfile_dir: Path::new("/var/lib/prometheus/node-exporter"),
    });

    ok(
        run_cmd(Command::new("dpkg").args(["--purge", "nodetune"])),
        "dpkg --purge",
    );
    assert!(!Path::new("/usr/bin/nodetune").exists());
    assert!(!Path::new("/etc/nodetune/nodetune.toml").exists());
}

/// `PLAY RECAP` counters of one host: (ok, changed, failed).
fn recap(out: &str) -> (u32, u32, u32) {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("changed=") && l.contains("failed="))
        .unwrap_or_else(|| panic!("no PLAY RECAP in:\n{out}"));
    let get = |k: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in {line}"))
    };
    (get("ok"), get("changed"), get("failed"))
}

/// Every file under /etc/nodetune with its content, and the package's state.
fn installed_state() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/etc/nodetune/profiles.d") {
        for e in rd.flatten() {
            out.push((
                e.path().display().to_string(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            ));
        }
    }
    out.push((
        "nodetune.toml".into(),
        std::fs::read_to_string("/etc/nodetune/nodetune.toml").unwrap_or_default(),
    ));
    let st =
        run_cmd(Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", "nodetune"]));
    out.push(("dpkg".into(), st.stdout));
    out.sort();
    out
}

#[test]
fn ansible_role_installs_configures_is_idempotent_checks_and_removes() {
    // The role installs the .deb system-wide.
    if !(system_install() && require_tools(&["ansible-playbook", "ip", "sysctl", "dpkg"])) {
        return;
    }
    let (deb, _) = packages();
    let _turn = system();
    let _purge = PurgeOnDrop;

    // The playbook runs inside a namespace the test made, and the profile holds
    // per-namespace keys only: the apply changes that namespace's kernel values, not the
    // machine's. (--persist writes boot-time files for the host, so nodetune refuses it in a
    // namespace: this test runs with nodetune_persist false.)
    let ns = TestNetns::new("ansible");
    let up = run_cmd(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
    assert_eq!(up.code, 0, "{}", up.stderr);
    let original = ns.sysctl("net.core.somaxconn");

    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    std::fs::write(
        &inventory,
        "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    )
    .expect("inventory");
    let playbook = dir.path().join("play.yml");
    std::fs::write(
        &playbook,
        "- hosts: localhost\n  gather_facts: true\n  roles:\n    - role: nodetune\n",
    )
    .expect("playbook");
    let vars = |mode: &str, state: &str| {
        serde_json::json!({
            "nodetune_state": state,
            "nodetune_package_file": deb.display().to_string(),
            "nodetune_profile": "fleet-ansible",
            "nodetune_mode": mode,
            "nodetune_persist": false,
            "nodetune_local_profiles": {
                "fleet-ansible": "[profile]\nsummary = \"ansible test\"\n[sysctl]\n\"net.core.somaxconn\" = 8192\n\"net.ipv4.tcp_tw_reuse\" = 1\n"
            },
            "nodetune_revert_on_remove": true,
            "nodetune_purge": true,
        })
        .to_string()
    };
    let play = |vars: &str, extra: &[&str]| {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &ns.name, "ansible-playbook"])
                .arg("-i")
                .arg(&inventory)
                .arg(&playbook)
                .args(["-e", vars])
                .args(extra)
                .env("ANSIBLE_ROLES_PATH", repo().join("packaging/ansible/roles"))
                .env("ANSIBLE_NOCOLOR", "1")
                .env("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"))
                .env("ANSIBLE_REMOTE_TEMP", dir.path().join("tmp")),
        );
        let out = r.stdout + &r.stderr;
        assert_eq!(r.code, 0, "ansible-playbook {extra:?} failed:\n{out}");
        out
    };

    // 1. Install, a local profile, the configuration, enforce: applied in the namespace.
    let out = play(&vars("enforce", "present"), &[]);
    let (_, changed, failed) = recap(&out);
    assert!(changed > 0 && failed == 0, "{out}");
    let st = installed_state();
    assert!(
        st.iter()
            .any(|(k, v)| k == "dpkg" && v.starts_with("install ok installed")),
        "{st:?}"
    );
    assert!(
        Path::new("/etc/nodetune/profiles.d/fleet-ansible.toml").is_file(),
        "{out}"
    );
    let conf = std::fs::read_to_string("/etc/nodetune/nodetune.toml").expect("config");
    assert!(
        conf.contains("mode = \"enforce\"") && conf.contains("profile = \"fleet-ansible\""),
        "{conf}"
    );
    assert_eq!(ns.sysctl("net.core.somaxconn"), "8192", "{out}");
    assert_eq!(ns.sysctl("net.ipv4.tcp_tw_reuse"), "1");
    // The package was copied to the managed host before apt read it.
    assert!(Path::new("/var/cache/nodetune")
        .join(deb.file_name().expect("name"))
        .is_file());

    // 2. A second run changes nothing.
    let out = play(&vars("enforce", "present"), &[]);
    assert_eq!(recap(&out).1, 0, "second run not idempotent:\n{out}");

    // 3. Check mode, with drift present: reports, changes nothing.
    ns.set("net.core.somaxconn", "1000");
    let before = installed_state();
    let out = play(&vars("enforce", "present"), &["--check", "--diff"]);
    assert_eq!(
        installed_state(),
        before,
        "check mode changed files:\n{out}"
    );
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        "1000",
        "check mode applied:\n{out}"
    );

    // 4. Audit mode: the configuration changes, the kernel values do not.
    let out = play(&vars("audit", "present"), &[]);
    assert!(recap(&out).1 > 0, "{out}");
    assert!(std::fs::read_to_string("/etc/nodetune/nodetune.toml")
        .expect("config")
        .contains("mode = \"audit\""));
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        "1000",
        "audit mode applied the profile:\n{out}"
    );
    assert!(
        out.contains("net.core.somaxconn is 1000"),
        "drift not reported:\n{out}"
    );

    // 5. A profile that does not validate never lands, and the play fails.
    let bad = vars("audit", "present").replace("8192", "\\\"lots\\\"");
    let r = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "ansible-playbook"])
            .arg("-i")
            .arg(&inventory)
            .arg(&playbook)
            .args(["-e", &bad])
            .env("ANSIBLE_ROLES_PATH", repo().join("packaging/ansible/roles"))
            .env("ANSIBLE_NOCOLOR", "1"),
    );
    assert_ne!(r.code, 0, "a bad profile was accepted:\n{}", r.stdout);
    assert!(
        std::fs::read_to_string("/etc/nodetune/profiles.d/fleet-ansible.toml")
            .expect("profile")
            .contains("8192")
    );

    // 6. Removal: originals back, package and configuration gone.
    let out = play(&vars("audit", "absent"), &[]);
    assert!(recap(&out).1 > 0, "{out}");
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        original,
        "not reverted:\n{out}"
    );
    assert!(!Path::new("/usr/bin/nodetune").exists());
    assert!(
        !Path::new("/etc/nodetune").exists(),
        "purge left /etc/nodetune"
    );
    assert!(!Path::new("/var/cache/nodetune").exists());
    let gone = run_cmd(Command::new("dpkg-query").args(["-W", "-f=${Status}", "nodetune"]));
    assert!(
        gone.code != 0 || gone.stdout.contains("not-installed"),
        "{}",
        gone.stdout
    );
}

/// A podman container or image removed on drop.
struct Podman(Vec<&'static str>, String);

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(&self.0).arg(&self.1).output();
    }
}

#[test]
fn container_image_builds_from_debian_packages_and_runs_as_the_daemonset_runs_it() {
    // Builds the .deb and an image from Debian's mirror; installs nothing on this machine.
    if !require_tools(&[
        "cargo-deb",
        "cargo-generate-rpm",
        "cargo-zigbuild",
        "mmdebstrap",
        "umoci",
        "skopeo",
        "podman",
        "ip",
        "sysctl",
        "curl",
    ]) {
        return;
    }
    let (deb, _) = packages();
    let version = env!("CARGO_PKG_VERSION");

    // The recipe: Debian packages and the nodetune .deb, no registry.
    ok(
        run_cmd(
            Command::new(repo().join("packaging/image/build"))
                .arg(&deb)
                .current_dir(repo()),
        ),
        "packaging/image/build",
    );
    let layout = format!(
        "oci:{}:{version}",
        repo().join("target/image/oci").display()
    );
    let inspect = ok(
        run_cmd(Command::new("skopeo").args(["inspect", "--config", &layout])),
        "skopeo inspect",
    );
    let config: serde_json::Value = serde_json::from_str(&inspect).expect("image config");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/nodetune"])
    );

    // The DaemonSet's container, as written in the shipped manifest.
    let manifest =
        std::fs::read_to_string(repo().join("packaging/kubernetes/nodetune-daemonset.yaml"))
            .expect("manifest");
    let docs: Vec<serde_yaml::Value> = manifest
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).expect("YAML"))
        .collect();
    let find = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let ds = find("DaemonSet");
    let cm = find("ConfigMap");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let image = c["image"].as_str().expect("image").to_string();
    assert_eq!(image, format!("localhost/nodetune:{version}"));
    ok(
        run_cmd(Command::new("skopeo").args([
            "copy",
            &layout,
            &format!("containers-storage:{image}"),
        ])),
        "skopeo copy into podman's storage",
    );
    let _image = Podman(vec!["rmi", "-f"], image.clone());

    // Its files: the ConfigMap's configuration as is; its profile without `include =
    // ["base"]`, whose net.core.netdev_max_backlog is machine-wide (tests never change the
    // machine's kernel state): the rest are per-namespace keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = &cm["data"];
    std::fs::write(
        dir.path().join("nodetune.toml"),
        data["nodetune.toml"].as_str().expect("config"),
    )
    .expect("write");
    let profile = data["k8s-node.toml"].as_str().expect("profile");
    assert!(profile.contains("include = [\"base\"]"));
    std::fs::write(
        dir.path().join("k8s-node.toml"),
        profile.replace("include = [\"base\"]", ""),
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("state")).expect("mkdir");
    let host_path = |name: &str| -> String {
        let vols = ds["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .expect("volumes");
        let v = vols
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"));
        match name {
            "state" => dir.path().join("state").display().to_string(),
            _ => v["hostPath"]["path"]
                .as_str()
                .expect("hostPath")
                .to_string(),
        }
    };
    let mut volumes = Vec::new();
    for m in c["volumeMounts"].as_sequence().expect("mounts") {
        let name = m["name"].as_str().expect("name");
        let target = m["mountPath"].as_str().expect("mountPath");
        let ro = if m["readOnly"].as_bool() == Some(true) {
            ":ro"
        } else {
            ""
        };
        let source = match m["subPath"].as_str() {
            Some(sub) => dir.path().join(sub).display().to_string(),
            None => host_path(name),
        };
        if name == "modules" && !Path::new(&source).exists() {
            continue;
        }
        volumes.push(format!("{source}:{target}{ro}"));
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    let caps: Vec<&str> = sc["capabilities"]["add"]
        .as_sequence()
        .expect("caps")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();

    // Its own network namespace instead of the node's (hostNetwork), so the profile changes
    // that namespace only; the host's PID namespace, as hostPID.
    let ns = TestNetns::new("image");
    let up = run_cmd(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
    assert_eq!(up.code, 0, "{}", up.stderr);
    let name = format!("nodetune-test-{}", std::process::id());
    // runc: crun refuses this machine's hybrid cgroup layout. Explicit limits: without
    // CAP_SYS_RESOURCE here, podman's defaults (nofile 1048576) cannot be set.
    let mut run = Command::new("podman");
    run.args(["--runtime=runc", "run", "--detach", "--name", &name])
        .args(["--ulimit=nofile=4096:4096", "--ulimit=nproc=4096:4096"])
        .arg(format!("--network=ns:/run/netns/{}", ns.name))
        .args(["--pid=host", "--read-only", "--cap-drop=ALL"])
        .arg(format!("--cap-add={}", caps.join(",")))
        .args(["--security-opt=no-new-privileges"]);
    for v in &volumes {
        run.arg("--volume").arg(v);
    }
    run.arg(&image).args(&args);
    ok(run_cmd(&mut run), "podman run");
    let _container = Podman(vec!["rm", "-f"], name.clone());
    let logs = || run_cmd(Command::new("podman").args(["logs", &name])).stderr;

    let port = c["ports"][0]["containerPort"].as_u64().expect("port");
    let scrape = || {
        run_cmd(Command::new("ip").args([
            "netns",
            "exec",
            &ns.name,
            "curl",
            "-sf",
            &format!("http://127.0.0.1:{port}/metrics"),
        ]))
        .stdout
    };
    assert!(
        wait_until(30, || scrape()
            .contains("nodetune_key_in_sync{key=\"net.core.somaxconn\"} 1")),
        "no metrics from the container:\n{}",
        logs()
    );
    let m = scrape();
    assert!(m.contains("node_load1 "), "node metrics missing");
    assert!(
        m.contains("nodetune_web_listening{address=\":9110\"} 1"),
        "{m}"
    );
    assert_eq!(ns.sysctl("net.core.somaxconn"), "65535", "{}", logs());
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "1024 65535");
    // Drift corrected from inside the container.
    ns.set("net.core.somaxconn", "1000");
    assert!(
        wait_until(10, || ns.sysctl("net.core.somaxconn") == "65535"),
        "drift not corrected:\n{}",
        logs()
    );
    let state = run_cmd(Command::new("podman").args([
        "inspect",
        "-f",
        "{{.State.Running}} {{.RestartCount}}",
        &name,
    ]));
    assert_eq!(state.stdout.trim(), "true 0", "{}", logs());
}

#[test]
fn ansible_role_refuses_bad_arguments_before_any_task() {
    if !require(
        have_tool("ansible-playbook"),
        "ansible-playbook (pip install ansible-core)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let playbook = dir.path().join("play.yml");
    std::fs::write(
        &playbook,
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: nodetune\n",
    )
    .expect("playbook");
    let play = |extra: &[&str]| {
        run_cmd(
            Command::new("ansible-playbook")
                .args(["-i", "localhost,", "-c", "local", "--check"])
                .arg(&playbook)
                .args(extra)
                .env("ANSIBLE_ROLES_PATH", repo().join("packaging/ansible/roles"))
                .env("ANSIBLE_NOCOLOR", "1")
                .env("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp")),
        )
    };
    let r = play(&["--syntax-check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // argument_specs: a mode that does not exist stops the play at validation.
    let r = play(&["-e", "nodetune_mode=bogus"]);
    assert_ne!(r.code, 0);
    let out = r.stdout + &r.stderr;
    assert!(
        out.contains("value of nodetune_mode must be one of: enforce, audit, off, got: bogus"),
        "{out}"
    );
    let r = play(&["-e", "{\"nodetune_local_profiles\": \"not a dict\"}"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
}
