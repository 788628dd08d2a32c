//! Security properties of the running daemon: the HTTP endpoint never changes state, and
//! credentials never reach the logs, the metrics or the state directory.

use nodetune_e2e::{http_get, http_request, wait_until, Daemon, FakeHost};

/// bcrypt hash of "s3cret", cost 10 (made with Python's crypt, METHOD_BLOWFISH).
const HASH: &str = "$2b$10$ZwQesbPsIsa99zuXWvWOK.K7rlYaK7N7CFvdSPWjPcrLmV.7D6NCG";
/// `prometheus:s3cret`, base64.
const GOOD: &str = "Authorization: Basic cHJvbWV0aGV1czpzM2NyZXQ=";
/// `prometheus:Wr0ngPassw0rd`, base64.
const BAD: &str = "Authorization: Basic cHJvbWV0aGV1czpXcjBuZ1Bhc3N3MHJk";

/// A daemon enforcing a profile on a stand-in host, with basic auth, its state directory
/// inside the host tree so that one snapshot covers kernel keys, files and state.
fn start(h: &FakeHost) -> Daemon {
    h.write(
        "root/etc/nodetune/profiles.d/s.toml",
        "[sysctl]\n\"net.core.somaxconn\" = 65535\n\"fs.file-max\" = 2000000\n",
    );
    h.write(
        "root/etc/nodetune/web.yml",
        &format!("basic_auth_users:\n  prometheus: {HASH}\n"),
    );
    let d = h.daemon(
        &[
            &format!("--state-dir={}", h.path("state").display()),
            &format!(
                "--web.config.file={}",
                h.path("root/etc/nodetune/web.yml").display()
            ),
            "--profile=s",
            "--mode=enforce",
            "--web.listen-address=127.0.0.1:0",
            "--collector.disable-defaults",
            "--collector.loadavg",
        ],
        &[],
    );
    d.addr();
    assert!(
        wait_until(20, || h.sysctl("net.core.somaxconn") == "65535\n"),
        "{}",
        d.stderr()
    );
    d
}

/// Everything in the host tree but the daemon's status document (rewritten as it runs,
/// through a temporary file next to it).
fn snapshot(h: &FakeHost) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut s = h.snapshot();
    s.retain(|(p, _)| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name != "daemon.json" && name != ".daemon.json.nodetune-tmp"
    });
    s
}

#[test]
fn the_endpoint_never_changes_state() {
    let h = FakeHost::new();
    let d = start(&h);
    let addr = d.addr();
    let before = snapshot(&h);
    let paths = [
        "/",
        "/metrics",
        "/metrics?collect[]=loadavg",
        "/-/reload",
        "/-/quit",
        "/api/v1/apply?profile=s",
        "/revert",
        "/metrics/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
    ];
    let body = b"[sysctl]\n\"net.core.somaxconn\" = 128\n";
    let mut tried = 0;
    for method in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
    ] {
        for path in paths {
            // A wrong password costs a bcrypt check (slow on purpose): one path is enough.
            let auths: &[&str] = if path == "/metrics" {
                &[GOOD, BAD, ""]
            } else {
                &[GOOD, ""]
            };
            for &auth in auths {
                let headers: Vec<&str> = [auth].into_iter().filter(|a| !a.is_empty()).collect();
                let (status, head, resp) = http_request(&addr, method, path, &headers, body)
                    .unwrap_or_else(|| panic!("{method} {path}: no answer"));
                tried += 1;
                let want = match (auth == GOOD, method) {
                    (false, _) => 401,
                    (true, "GET" | "HEAD") if path.starts_with("/metrics?") => 200,
                    (true, "GET" | "HEAD") if path == "/" || path == "/metrics" => 200,
                    (true, "GET" | "HEAD") => 404,
                    (true, _) => 405,
                };
                assert_eq!(status, want, "{method} {path} ({auth}): {head}");
                if status == 405 {
                    assert!(head.contains("allow: GET, HEAD"), "{head}");
                }
                let text = String::from_utf8_lossy(&resp);
                assert!(
                    !text.contains("root:x:0:0"),
                    "{method} {path} served a file"
                );
            }
        }
    }
    assert_eq!(tried, 8 * (10 * 2 + 1));
    // The profile's values, every other key, the state directory: byte for byte the same.
    let after = snapshot(&h);
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .chain(before.iter().filter(|f| !after.contains(f)))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "changed: {changed:?}");
    assert_eq!(h.sysctl("net.core.somaxconn"), "65535\n");
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn credentials_never_reach_logs_metrics_or_state() {
    let h = FakeHost::new();
    let d = start(&h);
    let addr = d.addr();
    for auth in [GOOD, BAD, "Authorization: Basic bm9ib2R5OnMzY3JldA=="] {
        http_get(&addr, "/metrics", &[auth]).expect("answer");
    }
    let (status, _, metrics) = http_get(&addr, "/metrics", &[GOOD]).expect("answer");
    assert_eq!(status, 200);
    // A broken new web config that carries a secret where the users' map should be: the
    // error is logged (with file, line and column) and the old settings stay, without the value.
    h.write(
        "root/etc/nodetune/web.yml",
        "basic_auth_users: \"prometheus:Sup3rS3cretPlain\"\n",
    );
    assert!(
        wait_until(20, || {
            http_get(&addr, "/metrics", &[GOOD]).map(|r| r.0) == Some(200)
                && d.stderr().contains("web config changed but is invalid")
        }),
        "{}",
        d.stderr()
    );
    assert_eq!(http_get(&addr, "/metrics", &[BAD]).map(|r| r.0), Some(401));
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("web.yml:1:"), "{log}");

    let mut places = vec![("log".to_string(), log.into_bytes())];
    places.push(("metrics".into(), metrics));
    for (p, content) in h.snapshot() {
        if p.starts_with(h.path("state")) {
            places.push((p.display().to_string(), content));
        }
    }
    let secrets = [
        "s3cret",
        "Wr0ngPassw0rd",
        "Sup3rS3cretPlain",
        "cHJvbWV0aGV1czpzM2NyZXQ",
        "cHJvbWV0aGV1czpXcjBuZ1Bhc3N3MHJk",
        &HASH[7..],
    ];
    for (place, content) in &places {
        let text = String::from_utf8_lossy(content);
        for s in secrets {
            assert!(!text.contains(s), "{s:?} appears in {place}");
        }
    }
    assert!(places.len() > 2, "the state directory has files to check");
}

#[test]
fn key_paths_cannot_escape_the_sysctl_root() {
    let h = FakeHost::new();
    // What a write through the escaping key would create, next to the sysctl root.
    let target = h.path("pwned");
    h.write(
        "root/etc/nodetune/profiles.d/e.toml",
        "[unchecked]\n\"net/../../pwned\" = 1\n\"net.core..x\" = 2\n\"/etc/passwd\" = 3\n",
    );
    let before = h.snapshot();
    let r = h.run(&["apply", "-p", "e"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for line in [
        "e.toml:2:1: net/../../pwned: a key cannot have empty or \"..\" components",
        "e.toml:3:1: net.core..x: a key cannot have empty or \"..\" components",
        "e.toml:4:1: /etc/passwd:",
    ] {
        assert!(r.stderr.contains(line), "{line}\n{}", r.stderr);
    }
    assert!(!target.exists());
    assert_eq!(h.snapshot(), before, "nothing written anywhere in the tree");
}

#[test]
fn wrong_passwords_in_a_loop_do_not_stall_verified_scrapes() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let h = FakeHost::new();
    let d = start(&h);
    let addr = d.addr();
    // Prometheus' credentials, verified once and remembered.
    assert_eq!(http_get(&addr, "/metrics", &[GOOD]).map(|r| r.0), Some(200));
    // Eight clients send wrong passwords until told to stop: every one costs a bcrypt check,
    // and the daemon runs two at a time, so each waits behind the others'.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let waits = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let attackers: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop, answered, waits) =
                (addr.clone(), stop.clone(), answered.clone(), waits.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    assert_eq!(http_get(&addr, "/metrics", &[BAD]).map(|r| r.0), Some(401));
                    waits.lock().unwrap().push(t.elapsed());
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // The checks are queued once every attacker has had an answer.
    assert!(
        wait_until(120, || answered.load(Ordering::Relaxed) >= 8),
        "wrong passwords are not answered"
    );
    let mut verified = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(http_get(&addr, "/metrics", &[GOOD]).map(|r| r.0), Some(200));
        verified.push(t.elapsed());
    }
    let attacking = answered.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().expect("attacker thread");
    }
    // Compared with each other, not with a clock (the machine may be busy): a verified scrape
    // that queued behind the bcrypt checks would wait at least as long as a wrong password
    // does, which waits for the checks ahead of it.
    let mut waits = waits.lock().unwrap().clone();
    waits.sort();
    let median_wrong = waits[waits.len() / 2];
    let slowest_verified = verified.iter().max().copied().unwrap_or_default();
    eprintln!(
        "verified scrapes {verified:?}; {} wrong passwords, median answer {median_wrong:?}",
        waits.len()
    );
    assert!(
        slowest_verified < median_wrong,
        "a verified scrape waited {slowest_verified:?}, as long as a wrong password \
         ({median_wrong:?}: bcrypt checks stall verified scrapes)"
    );
    // The attack went on throughout: wrong passwords were answered after the verified scrapes.
    assert!(
        answered.load(Ordering::Relaxed) > attacking,
        "the attack was over before the verified scrapes"
    );
}
