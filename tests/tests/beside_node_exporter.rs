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
