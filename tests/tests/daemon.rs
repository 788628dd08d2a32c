//! The daemon end to end: enforcement and audit in a throwaway network namespace, fight
//! detection, reloads, systemd notifications, and alerts from a fixture tree whose counters the
//! test advances.

use std::process::{Command, Stdio};

use nodetune_e2e::{
    have_tool, http_get, is_root, require, wait_until, Daemon, FakeHost, TestNetns,
};

fn privileged() -> bool {
    require(
        is_root() && have_tool("ip") && have_tool("sysctl"),
        "root with ip and sysctl",
    )
}

/// Starts the daemon inside the namespace with a config file in `dir`.
fn netns_daemon(ns: &TestNetns, dir: &std::path::Path, config: &str, profile: &str) -> Daemon {
    let r = nodetune_e2e::run_cmd(
        Command::new("ip").args(["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cfg = dir.join("nodetune.toml");
    std::fs::write(&cfg, config).unwrap();
    Daemon::start(
        &["ip", "netns", "exec", &ns.name],
        &[
            &format!("--profile={profile}"),
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:9100",
        ],
        &[],
    )
}

#[test]
fn enforce_mode_restores_a_changed_key_within_two_intervals() {
    if !privileged() {
        return;
    }
    let ns = TestNetns::new("enf");
    // A config path that does not exist is an error (only the packaged default path falls
    // back to the built-in configuration).
    let r = nodetune_e2e::nodetune(&["run", "--config=/nonexistent/nodetune.toml"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("reading /nonexistent/nodetune.toml"),
        "{}",
        r.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let d = netns_daemon(
        &ns,
        dir.path(),
        "mode = \"enforce\"\ndrift-interval = \"100ms\"\n",
        "api-node",
    );
    assert!(
        wait_until(20, || ns.sysctl("net.core.somaxconn") == "65535"),
        "applied at start:\n{}",
        d.stderr()
    );
    assert!(wait_until(20, || d.status().is_some()));
    ns.set("net.core.somaxconn", "1000");
    // Restored and logged (how fast, a tick after the change, is measured by the drift
    // benchmark, not asserted here: the machine may be busy).
    assert!(
        wait_until(20, || ns.sysctl("net.core.somaxconn") == "65535"),
        "not restored:\n{}",
        d.stderr()
    );
    assert!(
        wait_until(20, || d.stderr().contains(
            "drift: net.core.somaxconn is 1000, profile api-node wants 65535"
        )),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr()
            .contains("key=net.core.somaxconn expected=65535 actual=1000 profile=api-node"),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr()
            .contains("corrected: net.core.somaxconn 1000 -> 65535"),
        "{}",
        d.stderr()
    );
    let key = |s: &serde_json::Value| -> serde_json::Value {
        s["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == "net.core.somaxconn")
            .cloned()
            .unwrap()
    };
    assert!(wait_until(20, || d
        .status()
        .map(|s| key(&s)["drift_total"] == 1)
        .unwrap_or(false)));
    assert_eq!(key(&d.status().unwrap())["corrections_total"], 1);
    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tuned values stay in place (rollback-on-stop = false)"),
        "{err}"
    );
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        "65535",
        "no rollback on stop"
    );
}

#[test]
fn audit_mode_only_reports() {
    if !privileged() {
        return;
    }
    let ns = TestNetns::new("aud");
    let before = ns.sysctl("net.core.somaxconn");
    let dir = tempfile::tempdir().unwrap();
    let d = netns_daemon(
        &ns,
        dir.path(),
        "mode = \"audit\"\ndrift-interval = \"100ms\"\n",
        "base",
    );
    assert!(wait_until(20, || d.status().is_some()), "{}", d.stderr());
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        before,
        "audit never applies"
    );
    ns.set("net.ipv4.tcp_syncookies", "0");
    assert!(
        wait_until(20, || d.stderr().contains(
            "drift: net.ipv4.tcp_syncookies is 0, profile base wants 1"
        )),
        "{}",
        d.stderr()
    );
    assert_eq!(
        ns.sysctl("net.ipv4.tcp_syncookies"),
        "0",
        "audit never corrects"
    );
    assert!(!d.stderr().contains("corrected:"));
}

#[test]
fn a_fight_ends_in_sysctl_fight_not_a_loop() {
    if !privileged() {
        return;
    }
    let ns = TestNetns::new("fgt");
    let dir = tempfile::tempdir().unwrap();
    let d = netns_daemon(
        &ns,
        dir.path(),
        "mode = \"enforce\"\ndrift-interval = \"100ms\"\n",
        "api-node",
    );
    assert!(
        wait_until(20, || ns.sysctl("net.core.somaxconn") == "65535"),
        "{}",
        d.stderr()
    );
    // Another writer resets the key in a loop.
    let mut writer = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            "while :; do sysctl -qw net.core.somaxconn=1000; sleep 0.05; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fought = wait_until(15, || {
        d.stderr()
            .contains("fight: net.core.somaxconn keeps being changed back; corrections stopped")
    });
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(fought, "{}", d.stderr());
    assert!(
        d.stderr().contains("Likely writer: unknown"),
        "{}",
        d.stderr()
    );
    let corrections = |s: &str| s.matches("corrected: net.core.somaxconn").count();
    let n = corrections(&d.stderr());
    assert!((3..=4).contains(&n), "corrected {n} times before giving up");
    // No more corrections once fighting; the status file follows the log line.
    let state = |d: &Daemon| -> Option<String> {
        d.key_field("net.core.somaxconn", "state")?
            .as_str()
            .map(str::to_string)
    };
    assert!(
        wait_until(20, || state(&d).as_deref() == Some("fight")),
        "{:?}",
        state(&d)
    );
    assert_eq!(corrections(&d.stderr()), n);
}

fn alert_host() -> (FakeHost, tempfile::TempDir) {
    let h = FakeHost::new().with_conntrack();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/host-a");
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(dir.path().join("host"))
        .status()
        .unwrap();
    assert!(st.success());
    (h, dir)
}

fn set_counter(root: &std::path::Path, overflows: u64, throttles: u64) {
    let p = root.join("proc/net/netstat");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1] = format!("TcpExt: 5 4 3 {overflows} 130 7 8 9 2");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    std::fs::write(
        root.join("sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count"),
        format!("{throttles}\n"),
    )
    .unwrap();
}

fn alerts(d: &Daemon) -> Vec<(String, String)> {
    d.status()
        .map(|s| {
            s["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["name"].as_str().unwrap().to_string(),
                        a["state"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn alerts_fire_and_resolve_from_advancing_counters() {
    let (h, dir) = alert_host();
    let root = dir.path().join("host");
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(
        &cfg,
        "mode = \"audit\"\n[alerts]\ninterval = \"100ms\"\nfor-duration = \"200ms\"\nclear-duration = \"300ms\"\n",
    )
    .unwrap();
    let d = h.daemon(
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
            &format!("--path.procfs={}", root.join("proc").display()),
            &format!("--path.sysfs={}", root.join("sys").display()),
        ],
        &[],
    );
    let addr = d.addr();
    // Counters rise every tick: overflows and package throttles.
    let mut n = 0u64;
    let firing = |want: &str, d: &Daemon| alerts(d).iter().any(|(a, s)| a == want && s == "firing");
    let ok = wait_until(15, || {
        n += 1;
        set_counter(&root, 120 + n * 10, 17 + n);
        firing("ListenQueueOverflow", &d) && firing("ThermalThrottling", &d)
    });
    assert!(ok, "alerts: {:?}\n{}", alerts(&d), d.stderr());
    // Static conditions from the fixture: conntrack at 90 % and a sensor at its crit limit.
    assert!(firing("ConntrackNearFull", &d), "{:?}", alerts(&d));
    let (code, _, body) = http_get(&addr, "/metrics", &[]).unwrap();
    assert_eq!(code, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("nodetune_alert{alertname=\"ListenQueueOverflow\",severity=\"warning\",state=\"firing\"} 1"), "{body}");
    assert!(
        body.contains("nodetune_saturation_ratio{resource=\"conntrack\"} 0.9"),
        "{body}"
    );
    assert!(
        d.stderr().contains("alert ListenQueueOverflow firing"),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr()
            .contains("Remedy: accept queues overflow: raise net.core.somaxconn"),
        "{}",
        d.stderr()
    );
    // Counters stop: the counter alerts resolve after the clear duration.
    assert!(
        wait_until(15, || !alerts(&d)
            .iter()
            .any(|(a, _)| a == "ListenQueueOverflow")),
        "{:?}",
        alerts(&d)
    );
    assert!(
        d.stderr().contains("alert ListenQueueOverflow resolved"),
        "{}",
        d.stderr()
    );
}

#[test]
fn alertmanager_receives_firing_and_resolved() {
    if !require(
        have_tool("prometheus-alertmanager"),
        "prometheus-alertmanager (Debian package)",
    ) {
        return;
    }
    let (h, dir) = alert_host();
    let root = dir.path().join("host");
    let am_dir = dir.path().join("am");
    std::fs::create_dir_all(&am_dir).unwrap();
    std::fs::write(
        am_dir.join("am.yml"),
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut am = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", am_dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", am_dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
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
    let _am = Kill(&mut am);
    let am_addr = format!("127.0.0.1:{port}");
    assert!(wait_until(20, || http_get(&am_addr, "/-/ready", &[])
        .map(|r| r.0 == 200)
        .unwrap_or(false)));
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(
        &cfg,
        format!("mode = \"audit\"\n[alerts]\ninterval = \"100ms\"\nfor-duration = \"200ms\"\nclear-duration = \"300ms\"\nalertmanager-url = \"http://{am_addr}\"\n"),
    )
    .unwrap();
    let d = h.daemon(
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
            &format!("--path.procfs={}", root.join("proc").display()),
            &format!("--path.sysfs={}", root.join("sys").display()),
        ],
        &[],
    );
    let am_alerts = || -> Vec<serde_json::Value> {
        http_get(&am_addr, "/api/v2/alerts", &[])
            .and_then(|(_, _, b)| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
            .unwrap_or_default()
    };
    let has = |name: &str| am_alerts().iter().any(|a| a["labels"]["alertname"] == name);
    let mut n = 0u64;
    let got = wait_until(20, || {
        n += 1;
        set_counter(&root, 200 + n * 10, 17);
        has("ListenQueueOverflow")
    });
    assert!(
        got,
        "Alertmanager never got the alert; nodetune said:\n{}",
        d.stderr()
    );
    let a = am_alerts()
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "ListenQueueOverflow")
        .unwrap();
    assert_eq!(a["labels"]["severity"], "warning");
    assert_eq!(a["labels"]["job"], "nodetune");
    assert!(a["annotations"]["remedy"]
        .as_str()
        .unwrap()
        .contains("net.core.somaxconn"));
    // Counters stop rising: nodetune sends the resolution and Alertmanager drops the alert.
    assert!(
        wait_until(20, || !has("ListenQueueOverflow")),
        "still active: {:?}\n{}",
        am_alerts(),
        d.stderr()
    );
}

/// A real Alertmanager on loopback, with an optional web-config.yml; killed on drop.
struct Am {
    child: std::process::Child,
    port: u16,
}

impl Am {
    fn start(dir: &std::path::Path, name: &str, web: Option<&str>) -> Am {
        let am_dir = dir.join(name);
        std::fs::create_dir_all(&am_dir).unwrap();
        std::fs::write(
            am_dir.join("am.yml"),
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("prometheus-alertmanager");
        cmd.arg(format!("--config.file={}", am_dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", am_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        if let Some(web) = web {
            std::fs::write(am_dir.join("web.yml"), web).unwrap();
            cmd.arg(format!(
                "--web.config.file={}",
                am_dir.join("web.yml").display()
            ));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Am { child, port }
    }
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// bcrypt hash of "s3cret", cost 10.
const S3CRET_HASH: &str = "$2b$10$ZwQesbPsIsa99zuXWvWOK.K7rlYaK7N7CFvdSPWjPcrLmV.7D6NCG";

#[test]
fn alertmanager_ha_pair_over_tls_gets_every_alert() {
    if !require(
        have_tool("prometheus-alertmanager") && have_tool("openssl") && have_tool("curl"),
        "prometheus-alertmanager, openssl and curl",
    ) {
        return;
    }
    let (h, dir) = alert_host();
    let root = dir.path().join("host");
    let d0 = dir.path();
    // A CA made here, a server certificate for 127.0.0.1 and a client certificate.
    let r = nodetune_e2e::run_cmd(Command::new("sh").arg("-ec").current_dir(d0).arg(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=am-test-ca 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=nodetune 2>/dev/null
         printf 'extendedKeyUsage=clientAuth\\n' > client.ext
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext 2>/dev/null
         printf 's3cret\\n' > password",
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let tls = format!(
        "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\n",
        d0.display()
    );
    // One member requires a client certificate, the other basic auth.
    let am1 = Am::start(
        d0,
        "am1",
        Some(&format!(
            "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}/ca.crt\n",
            d0.display()
        )),
    );
    let am2 = Am::start(
        d0,
        "am2",
        Some(&format!(
            "{tls}basic_auth_users:\n  nodetune: {S3CRET_HASH}\n"
        )),
    );
    let get = |port: u16, path: &str| -> (String, String) {
        let r = nodetune_e2e::run_cmd(Command::new("curl").current_dir(d0).args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--cacert",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "-u",
            "nodetune:s3cret",
            &format!("https://127.0.0.1:{port}{path}"),
        ]));
        let (body, code) = r.stdout.rsplit_once('\n').unwrap_or(("", ""));
        (code.to_string(), body.to_string())
    };
    for am in [&am1, &am2] {
        assert!(
            wait_until(20, || get(am.port, "/-/ready").0 == "200"),
            "Alertmanager on {} not ready",
            am.port
        );
    }
    // A third member is down: it must not hold up the other two.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(
        &cfg,
        format!(
            "mode = \"audit\"\n[alerts]\ninterval = \"100ms\"\nfor-duration = \"200ms\"\nclear-duration = \"300ms\"\n\
             [alerts.alertmanager]\nurls = [\"https://127.0.0.1:{}\", \"https://127.0.0.1:{}\", \"https://127.0.0.1:{dead}\"]\n\
             ca-file = \"{d}/ca.crt\"\ncert-file = \"{d}/client.crt\"\nkey-file = \"{d}/client.key\"\n\
             username = \"nodetune\"\npassword-file = \"{d}/password\"\ntimeout = \"2s\"\n",
            am1.port,
            am2.port,
            d = d0.display()
        ),
    )
    .unwrap();
    let d = h.daemon(
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
            &format!("--path.procfs={}", root.join("proc").display()),
            &format!("--path.sysfs={}", root.join("sys").display()),
        ],
        &[],
    );
    let has = |port: u16, name: &str| {
        serde_json::from_str::<Vec<serde_json::Value>>(&get(port, "/api/v2/alerts").1)
            .map(|v| v.iter().any(|a| a["labels"]["alertname"] == name))
            .unwrap_or(false)
    };
    let mut n = 0u64;
    let got = wait_until(30, || {
        n += 1;
        set_counter(&root, 200 + n * 10, 17);
        has(am1.port, "ListenQueueOverflow") && has(am2.port, "ListenQueueOverflow")
    });
    assert!(
        got,
        "both members must get the alert; nodetune said:\n{}",
        d.stderr()
    );
    // Counters stop: both get the resolution.
    assert!(
        wait_until(30, || !has(am1.port, "ListenQueueOverflow")
            && !has(am2.port, "ListenQueueOverflow")),
        "{}",
        d.stderr()
    );
    // The dead member is reported (after its retries), without secrets.
    let warned = format!(
        "alertmanager https://127.0.0.1:{dead}: connecting to 127.0.0.1:{dead}: Connection refused"
    );
    assert!(
        wait_until(20, || d.stderr().contains(&warned)),
        "{}",
        d.stderr()
    );
    assert!(!d.stderr().contains("s3cret"), "{}", d.stderr());
}

#[test]
fn notify_socket_gets_ready_watchdog_and_status() {
    let h = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let d = h.daemon(
        &[
            "--web.listen-address=127.0.0.1:0",
            "--config=/etc/nodetune/nodetune.toml",
        ],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("READY=1")
        && seen.contains("WATCHDOG=1")
        && seen.contains("STATUS=profile base (audit)"))
    {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({e}); got {seen:?}\n{}", d.stderr()));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.contains("keys in sync"), "{seen}");
    let (code, _) = d.stop();
    assert_eq!(code, 0);
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let h = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(&cfg, "mode = \"audit\"\nprofile = \"api-node\"\n").unwrap();
    let d = h.daemon(
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
        ],
        &[],
    );
    let addr = d.addr();
    std::fs::write(&cfg, "mode = \"enforce\"\nprofile = [broken\n").unwrap();
    d.signal(1);
    assert!(
        wait_until(10, || d.stderr().contains(
            "reload (SIGHUP) failed, keeping the running configuration"
        )),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr().contains(&format!("{}:2:", cfg.display())),
        "the error names file and line:\n{}",
        d.stderr()
    );
    let (code, _, body) = http_get(&addr, "/metrics", &[]).unwrap();
    assert_eq!(code, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("nodetune_profile_info{mode=\"audit\",profile=\"api-node\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("nodetune_config_last_reload_successful 0"),
        "{body}"
    );
    assert_eq!(d.status().unwrap()["profile"], "api-node");
    // A good config reloads.
    std::fs::write(&cfg, "mode = \"audit\"\nprofile = \"base\"\n").unwrap();
    d.signal(1);
    assert!(
        wait_until(10, || d
            .status()
            .map(|s| s["profile"] == "base")
            .unwrap_or(false)),
        "{}",
        d.stderr()
    );
    let (_, _, body) = http_get(&addr, "/metrics", &[]).unwrap();
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("nodetune_config_last_reload_successful 1"));
}

#[test]
fn status_use_and_profile_file_changes() {
    let h = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(&cfg, "mode = \"audit\"\n").unwrap();
    let env = [
        (
            "NODETUNE_SYSCTL_ROOT",
            h.path("sys").to_str().unwrap().to_string(),
        ),
        (
            "NODETUNE_ROOT",
            h.path("root").to_str().unwrap().to_string(),
        ),
        (
            "NODETUNE_PROCFS",
            h.path("proc").to_str().unwrap().to_string(),
        ),
        (
            "NODETUNE_SYSFS",
            h.path("sysfs").to_str().unwrap().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = nodetune_e2e::nodetune(
        &["status", &format!("--state-dir={}", h.path("st").display())],
        &[],
    );
    assert_eq!(r.code, 3, "no daemon: exit 3");
    assert!(r.stdout.contains("daemon: not running"), "{}", r.stdout);
    let d = Daemon::start(
        &[],
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
        ],
        &env,
    );
    d.addr();
    let state = format!("--state-dir={}", d.state.display());
    let envp: Vec<(&str, &std::path::Path)> = vec![
        ("NODETUNE_SYSCTL_ROOT", std::path::Path::new(env[0].1)),
        ("NODETUNE_ROOT", std::path::Path::new(env[1].1)),
        ("NODETUNE_PROCFS", std::path::Path::new(env[2].1)),
        ("NODETUNE_SYSFS", std::path::Path::new(env[3].1)),
    ];
    let r = nodetune_e2e::nodetune(&["status", &state], &envp);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("profile: base (from default), mode audit"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("net.core.somaxconn"), "{}", r.stdout);
    // `use` records the choice and tells the daemon, which reloads.
    let r = nodetune_e2e::nodetune(&["use", "api-node", &state], &envp);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("told the running daemon to reload"),
        "{}",
        r.stdout
    );
    assert!(
        wait_until(10, || d
            .status()
            .map(|s| s["profile"] == "api-node")
            .unwrap_or(false)),
        "{}",
        d.stderr()
    );
    assert_eq!(d.status().unwrap()["profile_source"], "nodetune use");
    // A profile file changing on disk is picked up without a signal.
    h.write(
        "root/etc/nodetune/profiles.d/api-node.toml",
        "[profile]\ninclude = [\"base\"]\n[sysctl]\n\"net.core.somaxconn\" = 32768\n",
    );
    let want = |d: &Daemon| -> Option<String> {
        d.key_field("net.core.somaxconn", "want")?
            .as_str()
            .map(str::to_string)
    };
    assert!(
        wait_until(15, || want(&d).as_deref() == Some("32768")),
        "{:?}\n{}",
        want(&d),
        d.stderr()
    );
    assert!(
        d.stderr()
            .contains("reloaded (configuration or profile files changed)"),
        "{}",
        d.stderr()
    );
}

#[test]
fn recommend_names_profile_and_knobs() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/host-a");
    let h = FakeHost::new();
    let r = nodetune_e2e::nodetune(
        &[
            "recommend",
            "--interval=100ms",
            &format!("--path.procfs={}", fixture.join("proc").display()),
            &format!("--path.sysfs={}", fixture.join("sys").display()),
            &format!("--sysctl-root={}", h.path("sys").display()),
            &format!("--root={}", h.path("root").display()),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The fixture's counters show past accept-queue overflows and SYN cookies: the profile
    // that changes somaxconn fixes them, and each knob comes with the counter behind it.
    assert!(
        r.stdout.starts_with(
            "suggested profile: api-node (fixes what it measured: ListenQueueOverflow, SynBacklogPressure; no TCP listeners found)"
        ),
        "{}",
        r.stdout
    );
    for want in [
        "past ListenQueueOverflow: TcpExt ListenOverflows 120, TcpExt ListenDrops 130 in total\n  knobs: net.core.somaxconn 4096 -> 65535\n",
        "past SynBacklogPressure: TcpExt SyncookiesSent 5 in total\n  knobs: net.core.somaxconn 4096 -> 65535, net.ipv4.tcp_max_syn_backlog 512 -> 65535\n",
        "firing ConntrackNearFull [resource=conntrack]: conntrack entries 900 of 1,000\n  remedy: the conntrack table is nearly full or dropping: raise [conntrack] max",
        "firing ThermalThrottling",
    ] {
        assert!(r.stdout.contains(want), "{want:?} not in:\n{}", r.stdout);
    }
}

#[test]
fn start_up_code_is_released_and_scrapes_still_work() {
    // Reads the live host, changes nothing (--mode=off).
    let d = Daemon::start(
        &[],
        &["--mode=off", "--web.listen-address=127.0.0.1:0"],
        &[],
    );
    let addr = d.addr();
    assert!(
        wait_until(20, || d.stderr().contains("start-up done: released")),
        "{}",
        d.stderr()
    );
    let log = d.stderr();
    let kb: u64 = log
        .split(" released_kb=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no released_kb in {log}"));
    // The debug binary alone maps megabytes of start-up code.
    assert!(kb > 500, "released only {kb} kB: {log}");
    // The code the steady state needs comes back from the page cache.
    for _ in 0..5 {
        let (code, _, body) = http_get(&addr, "/metrics", &[]).expect("scrape");
        assert_eq!(code, 200);
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("node_scrape_collector_success{collector=\"cpu\"} 1"),
            "{body}"
        );
    }
    let (code, _) = d.stop();
    assert_eq!(code, 0);
}

/// A running process's environment as it is in its memory now. glibc's start-up writes a NUL
/// after each tunable it parses in GLIBC_TUNABLES, so those show as entries of their own.
fn environ_of(pid: u32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    environ
        .split(|b| *b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect()
}

#[test]
fn the_daemon_starts_itself_again_without_glibc_thread_caches() {
    // An operator's own tunable is kept and the cache setting added to it; the process is
    // the same one (PID, name), and serves.
    let d = Daemon::start(
        &[],
        &["--mode=off", "--web.listen-address=127.0.0.1:0"],
        &[("GLIBC_TUNABLES", "glibc.malloc.perturb=0")],
    );
    let addr = d.addr();
    let pid = d.child.id();
    let env = environ_of(pid);
    let at = env
        .iter()
        .position(|kv| kv == "GLIBC_TUNABLES=glibc.malloc.perturb=0")
        .unwrap_or_else(|| panic!("no GLIBC_TUNABLES in {env:?}"));
    assert_eq!(
        env.get(at + 1).map(String::as_str),
        Some("glibc.malloc.tcache_count=0"),
        "{env:?}\n{}",
        d.stderr()
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(comm.trim(), "nodetune");
    let (code, _, _) = http_get(&addr, "/metrics", &[]).expect("scrape");
    assert_eq!(code, 200);
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("thread caches stay on"), "{log}");

    // A count the operator set is left as it is: no second start.
    let d = Daemon::start(
        &[],
        &["--mode=off", "--web.listen-address=127.0.0.1:0"],
        &[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")],
    );
    d.addr();
    let env = environ_of(d.child.id());
    assert!(
        env.iter()
            .any(|kv| kv == "GLIBC_TUNABLES=glibc.malloc.tcache_count=7"),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|kv| kv.contains("tcache_count=0")),
        "{env:?}"
    );
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}
