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

/// Client certificates of every kind a client gets wrong, made here: from another CA, expired,
/// for server use only, and X.509 v1 (`openssl x509 -req` without -extfile).
fn bad_client_certificates(dir: &Path) {
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 2 -subj /CN=other-ca 2>/dev/null
         openssl x509 -req -in client.csr -CA other.crt -CAkey other.key -CAcreateserial -out foreign.crt -days 2 -extfile client.ext 2>/dev/null
         printf 'extendedKeyUsage=serverAuth\\n' > server-only.ext
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server-only.crt -days 2 -extfile server-only.ext 2>/dev/null
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out v1.crt -days 2 2>/dev/null
         printf '[ca]\\ndefault_ca = t\\n[t]\\ndatabase = index.txt\\nnew_certs_dir = .\\nserial = serial\\ndefault_md = sha256\\npolicy = p\\n[p]\\ncommonName = supplied\\n' > ca.cnf
         : > index.txt; echo 01 > serial
         openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in client.csr -out expired.crt -startdate 20200101000000Z -enddate 20200102000000Z -extfile client.ext -notext 2>/dev/null",
    );
}

#[test]
fn refused_handshakes_say_why() {
    if !require(
        have_tool("openssl") && have_tool("curl"),
        "openssl and curl",
    ) {
        return;
    }
    let host = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    bad_client_certificates(dir.path());
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n";
    let d = daemon(dir.path(), web, &host);
    let url = format!("https://{}/metrics", d.addr());
    let with = |cert: &str| -> String {
        let mut args = vec!["--cert", cert, "--key", "client.key", url.as_str()];
        if cert.is_empty() {
            args.drain(..4);
        }
        curl(dir.path(), &args).1
    };
    assert_eq!(
        with("client.crt"),
        "200",
        "a v3 clientAuth certificate works"
    );
    for (cert, reason, says) in [
        (
            "",
            "no-client-certificate",
            "the client sent no certificate",
        ),
        (
            "foreign.crt",
            "unknown-ca",
            "not signed by a CA in client_ca_file",
        ),
        (
            "expired.crt",
            "expired",
            "the client certificate has expired",
        ),
        (
            "server-only.crt",
            "wrong-usage",
            "its extendedKeyUsage lacks clientAuth",
        ),
        ("v1.crt", "x509-v1", "the client certificate is X.509 v1"),
    ] {
        assert_ne!(with(cert), "200", "{cert} must be refused");
        assert!(
            wait_until(10, || d.stderr().contains(&format!("reason={reason}"))),
            "no {reason} line:\n{}",
            d.stderr()
        );
        let line = d
            .stderr()
            .lines()
            .find(|l| l.contains(&format!("reason={reason}")))
            .unwrap()
            .to_string();
        assert!(
            line.contains("level=WARN")
                && line.contains("msg=\"TLS handshake from 127.0.0.1:")
                && line.contains(says),
            "{line}"
        );
    }
    // A client limited to TLS 1.2 against min_version TLS13.
    let (code, _) = curl(
        dir.path(),
        &[
            "--tls-max",
            "1.2",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            &url,
        ],
    );
    assert_ne!(code, 0);
    assert!(
        wait_until(10, || d.stderr().contains("reason=unsupported-version")),
        "{}",
        d.stderr()
    );
    // Rate-limited: the same reason again within the minute adds no line.
    assert_ne!(with(""), "200");
    assert_ne!(with(""), "200");
    let err = d.stderr();
    assert_eq!(
        err.matches("reason=no-client-certificate").count(),
        1,
        "{err}"
    );
    // Nothing secret: no key material or certificate in the log.
    assert!(
        !err.contains("PRIVATE KEY") && !err.contains("BEGIN CERTIFICATE"),
        "{err}"
    );
}

/// node_exporter (exporter-toolkit, Go's crypto/tls) accepts an X.509 v1 client certificate;
/// nodetune refuses it and says so (docs/endpoint.md).
#[test]
fn x509_v1_client_certificates_node_exporter_accepts_and_nodetune_refuses() {
    if !require(
        have_tool("openssl") && have_tool("curl") && have_tool("prometheus-node-exporter"),
        "openssl, curl and prometheus-node-exporter",
    ) {
        return;
    }
    let host = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    bad_client_certificates(dir.path());
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n";
    std::fs::write(dir.path().join("ne-web.yml"), web).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ne = Command::new("prometheus-node-exporter")
        .current_dir(dir.path())
        .args([
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.config.file=ne-web.yml",
            "--collector.disable-defaults",
            "--collector.loadavg",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _ne = Kill(&mut ne);
    let v1 = |url: &str| {
        curl(
            dir.path(),
            &["--cert", "v1.crt", "--key", "client.key", url],
        )
        .1
    };
    let ne_url = format!("https://127.0.0.1:{port}/metrics");
    assert!(
        wait_until(20, || v1(&ne_url) == "200"),
        "node_exporter should accept the v1 certificate"
    );
    let d = daemon(dir.path(), web, &host);
    assert_ne!(v1(&format!("https://{}/metrics", d.addr())), "200");
    assert!(
        wait_until(10, || d.stderr().contains("reason=x509-v1")),
        "{}",
        d.stderr()
    );
}
