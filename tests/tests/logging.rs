//! `--log.level` and `--log.format` as node_exporter has them: logfmt or JSON lines on stderr
//! when it is a terminal or a file, and native journal fields when systemd connected stderr to
//! the journal (checked with a stand-in journald in a mount namespace made by the test).

use std::process::Command;

use nodetune_e2e::{have_tool, is_root, require, run_cmd, wait_until, FakeHost};

/// `--path.procfs` and `--path.sysfs` of the fake host (most /proc files absent).
fn roots(h: &FakeHost) -> (String, String) {
    (
        format!("--path.procfs={}", h.path("proc").display()),
        format!("--path.sysfs={}", h.path("sysfs").display()),
    )
}

fn lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn logfmt_lines_and_levels_like_node_exporter() {
    let h = FakeHost::new();
    let (procfs, sysfs) = roots(&h);
    let d = h.daemon(
        &[
            "--web.listen-address=127.0.0.1:0",
            "--log.level=debug",
            &procfs,
            &sysfs,
        ],
        &[],
    );
    let _ = d.addr();
    // The fake host lacks most /proc files: each failing collector is a debug line.
    assert!(
        wait_until(20, || d.stderr().contains("level=DEBUG")),
        "{}",
        d.stderr()
    );
    let err = d.stderr();
    let started = lines(&err)
        .into_iter()
        .find(|l| l.contains("msg=\"started: "))
        .unwrap_or_else(|| panic!("no start line:\n{err}"));
    // time=2026-12-01T12:00:00.000Z level=INFO source=daemon/mod.rs:NN msg="started: …" …
    let fields: Vec<&str> = started.splitn(5, ' ').collect();
    assert!(
        fields[0].starts_with("time=20") && fields[0].ends_with('Z') && fields[0].len() == 29,
        "{started}"
    );
    assert_eq!(fields[1], "level=INFO", "{started}");
    assert!(fields[2].starts_with("source=daemon/"), "{started}");
    assert!(started.contains(" profile=base mode=audit"), "{started}");
    assert!(
        err.contains("level=DEBUG source=collect/pool.rs:")
            && err.contains("msg=\"collector ")
            && err.contains(" collector="),
        "{err}"
    );
    assert!(
        !err.contains("<5>") && !err.contains("PROFILE=\""),
        "no journal prefixes or upper-case fields on a file:\n{err}"
    );
    drop(d);

    // warn: informational lines are gone, warnings stay.
    let r = h.run(&[
        "metrics",
        &procfs,
        "--log.level=warn",
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.buddyinfo",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let l = lines(&r.stderr);
    assert_eq!(l.len(), 1, "{}", r.stderr);
    assert!(
        l[0].contains("level=WARN") && l[0].contains("--collector.buddyinfo: not implemented"),
        "{}",
        r.stderr
    );
    let r = h.run(&["metrics", "--log.level=error", "--collector.buddyinfo"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stderr, "", "error hides warnings");
    let r = h.run(&["metrics", "--log.level=verbose"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("invalid value 'verbose' for '--log.level <LEVEL>'")
            && r.stderr.contains("debug, info, warn, error"),
        "{}",
        r.stderr
    );
}

#[test]
fn json_lines() {
    let h = FakeHost::new();
    let (procfs, _) = roots(&h);
    let r = h.run(&[
        "metrics",
        &procfs,
        "--log.format=json",
        "--log.level=debug",
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.buddyinfo",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let docs: Vec<serde_json::Value> = lines(&r.stderr)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let warn = docs
        .iter()
        .find(|d| d["level"] == "WARN")
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(warn["msg"]
        .as_str()
        .unwrap()
        .starts_with("--collector.buddyinfo: not implemented"));
    assert!(warn["time"].as_str().unwrap().ends_with('Z'));
    assert!(warn["source"]
        .as_str()
        .unwrap()
        .starts_with("cli/metrics.rs:"));
    // The fixture has no /proc/loadavg: a debug line with the collector as a field.
    let debug = docs
        .iter()
        .find(|d| d["level"] == "DEBUG")
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert_eq!(debug["collector"], "loadavg", "{debug}");
}

/// A stand-in journald: prints every datagram it receives on its socket, NUL-separated.
const FAKE_JOURNALD: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
s.settimeout(20)
with open(sys.argv[3], "wb") as out:
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        out.write(d + b"\0")
        out.flush()
"#;

#[test]
fn native_journal_fields_under_systemd() {
    if !require(
        is_root() && have_tool("unshare") && have_tool("python3") && have_tool("stat"),
        "root, unshare and python3 (a private /run/systemd/journal)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("journald.py"), FAKE_JOURNALD).unwrap();
    // In a private mount namespace, a tmpfs over /run/systemd/journal holds the stand-in's
    // socket; stderr is a file whose dev:ino is $JOURNAL_STREAM, as systemd sets it.
    let script = format!(
        r#"set -e
mkdir -p /run/systemd/journal
mount -t tmpfs nodetune-test /run/systemd/journal
python3 {d}/journald.py /run/systemd/journal/socket {d}/ready {d}/journal &
journald=$!
while [ ! -e {d}/ready ]; do sleep 0.05; done
exec 2>{d}/stderr
JOURNAL_STREAM=$(stat -c %d:%i {d}/stderr) {bin} metrics --collector.disable-defaults --collector.buddyinfo >/dev/null
JOURNAL_STREAM=$(stat -c %d:%i {d}/stderr) {bin} metrics --log.format=logfmt --collector.disable-defaults --collector.loadavg --collector.drbd >/dev/null
sleep 0.2
kill $journald
"#,
        d = d.display(),
        bin = nodetune_e2e::bin().display()
    );
    let r = run_cmd(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let journal = std::fs::read(d.join("journal")).unwrap();
    let entries: Vec<String> = journal
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    for want in [
        "PRIORITY=4\n",
        "SYSLOG_IDENTIFIER=nodetune\n",
        "MESSAGE=--collector.buddyinfo: not implemented",
        "CODE_FILE=cli/metrics.rs\n",
        "CODE_LINE=",
    ] {
        assert!(e.contains(want), "{want} missing in {e:?}");
    }
    // With --log.format given, lines go to stderr (the journal stream) in that format.
    let stderr = std::fs::read_to_string(d.join("stderr")).unwrap();
    assert!(
        stderr.contains("level=WARN") && stderr.contains("msg=\"--collector.drbd: not implemented"),
        "{stderr}"
    );
    assert!(!stderr.contains("collector.buddyinfo"), "{stderr}");
}
