//! nodetune beside node_exporter on the same port, with the built binary: the listen address
//! is busy, tuning and drift enforcement go on, nodetune's metrics reach the Prometheus that
//! scrapes node_exporter, and nodetune takes the port over once node_exporter stops
//! (tests/src/beside.rs has the scenario; tests/tests/packaging.rs runs it on the installed
//! package).

use nodetune_e2e::{beside, bin, have_tool, is_root, require};

#[test]
fn busy_listen_address_keeps_tuning_and_hands_metrics_to_node_exporter() {
    if !require(
        is_root()
            && have_tool("ip")
            && have_tool("sysctl")
            && have_tool("prometheus")
            && have_tool("promtool")
            && have_tool("prometheus-node-exporter"),
        "root, ip, sysctl, prometheus, promtool and prometheus-node-exporter",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let textfile = dir.path().join("textfile");
    std::fs::create_dir(&textfile).expect("mkdir");
    let config = dir.path().join("nodetune.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten-address = \":9100\"\ntextfile-handoff-dirs = [\"{}\"]\n",
            textfile.display()
        ),
    )
    .expect("write config");
    let textfile_flag = format!("--collector.textfile.directory={}", textfile.display());
    beside::run(beside::Setup {
        bin: &bin(),
        config: &config,
        node_exporter_args: &[&textfile_flag],
        textfile_dir: &textfile,
    });
}

#[test]
fn handoff_file_is_written_while_busy_and_withdrawn_on_stop() {
    // Any process holding the port will do; this one is the test's own listener.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr").to_string();
    let host = nodetune_e2e::FakeHost::new();
    let textfile = host.path("textfile");
    std::fs::create_dir(&textfile).expect("mkdir");
    let config = host.path("nodetune.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten-address = \"{addr}\"\ntextfile-handoff-dirs = [\"{}\", \"{}\"]\n",
            textfile.display(),
            host.path("absent").display()
        ),
    )
    .expect("write config");
    let d = host.daemon(&[&format!("--config={}", config.display())], &[]);
    let file = textfile.join("nodetune.prom");
    assert!(
        nodetune_e2e::wait_until(20, || std::fs::read_to_string(&file)
            .unwrap_or_default()
            .contains(&format!("nodetune_web_listening{{address=\"{addr}\"}} 0"))),
        "no handoff file:\n{}",
        d.stderr()
    );
    let text = std::fs::read_to_string(&file).expect("handoff");
    assert!(text.contains("# TYPE nodetune_key_in_sync gauge"), "{text}");
    // A directory that does not exist is not created.
    assert!(!host.path("absent").exists());
    // Signal handlers are in place once the loop runs (its first alert tick logs this).
    assert!(nodetune_e2e::wait_until(20, || d
        .stderr()
        .contains("start-up")));
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        !file.exists(),
        "handoff file left behind after stop:\n{log}"
    );
    drop(holder);
}
