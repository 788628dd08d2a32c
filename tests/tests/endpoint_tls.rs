//! /metrics over TLS with basic auth and client certificates, configured with the same
//! web-config.yml node_exporter uses; checked with curl and a real Prometheus.

use std::path::Path;
use std::process::Command;

use nodetune_e2e::{have_tool, http_get, require, run_cmd, wait_until, Daemon, FakeHost};

fn sh(dir: &Path, script: &str) {
    let r = run_cmd(Command::new("sh").arg("-ec").arg(script).current_dir(dir));
    assert_eq!(r.code, 0, "{script}\n{}{}", r.stdout, r.stderr);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
fn pki(dir: &Path) {
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=prometheus 2>/dev/null
         printf 'extendedKeyUsage=clientAuth\\n' > client.ext
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext 2>/dev/null",
    );
}

/// bcrypt hash of "s3cret", cost 10 (made with Python's crypt, METHOD_BLOWFISH).
const HASH: &str = "$2b$10$ZwQesbPsIsa99zuXWvWOK.K7rlYaK7N7CFvdSPWjPcrLmV.7D6NCG";

fn daemon(dir: &Path, web: &str, host: &FakeHost) -> Daemon {
    std::fs::write(dir.join("web.yml"), web).unwrap();
    host.daemon(
        &[
            "--web.listen-address=127.0.0.1:0",
            &format!("--web.config.file={}", dir.join("web.yml").display()),
            "--collector.disable-defaults",
            "--collector.loadavg",
        ],
        &[],
    )
}

fn curl(dir: &Path, args: &[&str]) -> (i32, String) {
    let r = run_cmd(
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                "ca.crt",
            ])
            .args(args)
            .current_dir(dir),
    );
    (r.code, r.stdout)
}

#[test]
fn tls_basic_auth_and_client_certificates() {
    if !require(
        have_tool("openssl") && have_tool("curl"),
        "openssl and curl",
    ) {
        return;
    }
    let host = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {HASH}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    );
    let d = daemon(dir.path(), &web, &host);
    let url = format!("https://{}/metrics", d.addr());
    assert_eq!(curl(dir.path(), &[&url]).1, "401", "no credentials");
    assert_eq!(curl(dir.path(), &["-u", "prometheus:wrong", &url]).1, "401");
    assert_eq!(curl(dir.path(), &["-u", "nobody:s3cret", &url]).1, "401");
    assert_eq!(
        curl(dir.path(), &["-u", "prometheus:s3cret", &url]).1,
        "200"
    );
    let r = run_cmd(
        Command::new("curl")
            .args([
                "-s",
                "-D",
                "-",
                "--cacert",
                "ca.crt",
                "-u",
                "prometheus:s3cret",
                &url,
            ])
            .current_dir(dir.path()),
    );
    assert!(
        r.stdout
            .to_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("node_load1 "));
    // Plain HTTP to the TLS port gets nothing useful.
    assert!(http_get(&d.addr(), "/metrics", &[])
        .map(|r| r.0 != 200)
        .unwrap_or(true));
    drop(d);

    // Client certificates required: without one the handshake fails; with one it works.
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\n";
    let d = daemon(dir.path(), web, &host);
    let url = format!("https://{}/metrics", d.addr());
    let (code, status) = curl(dir.path(), &[&url]);
    assert!(
        code != 0 && status == "000",
        "a client without a certificate must be rejected: {code} {status}"
    );
    assert_eq!(
        curl(
            dir.path(),
            &["--cert", "client.crt", "--key", "client.key", &url]
        )
        .1,
        "200"
    );
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    if !require(
        have_tool("openssl") && have_tool("prometheus"),
        "openssl and prometheus",
    ) {
        return;
    }
    let host = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let web = format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {HASH}\n");
    let d = daemon(dir.path(), &web, &host);
    std::fs::write(dir.path().join("password"), "s3cret").unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: nodetune\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password_file: {pw}\n    static_configs:\n      - targets: ['{addr}']\n",
        ca = dir.path().join("ca.crt").display(),
        pw = dir.path().join("password").display(),
        addr = d.addr()
    );
    let prom = nodetune_e2e::Prometheus::start(&cfg);
    let query = |q: &str| prom.query(q);
    let up = wait_until(60, || query("up").contains(",\"1\"]"));
    let load = query("node_load1");
    drop(prom);
    assert!(up, "up never became 1 over TLS with basic auth");
    assert!(load.contains("\"__name__\":\"node_load1\""), "{load}");
}
