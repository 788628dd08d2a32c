//! The sysfs class collectors (dmi, edac, mdadm, nvme, rapl, powersupplyclass, watchdog,
//! tapestats, fibrechannel) through the binary, on a tree built here: flags, registration,
//! that a broken source fails only its own collector, and real errnos from a FUSE filesystem
//! (tests/fault-fs) handled as node_exporter handles them.

use std::collections::BTreeMap;
use std::path::Path;

use nodetune_e2e::{nodetune, require, FaultFs};

const COLLECTORS: &[&str] = &[
    "dmi",
    "edac",
    "fibrechannel",
    "mdadm",
    "nvme",
    "powersupplyclass",
    "rapl",
    "tapestats",
    "watchdog",
];

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

fn tree(root: &Path) {
    write(
        root,
        "proc/mdstat",
        "Personalities : [raid1]\n\nmd0 : active raid1 vdb[1] vda[0]\n      1024 blocks super 1.2 [2/1] [U_]\n      [=>...]  recovery = 10.0% (100/1024) finish=1.0min speed=100K/sec\n\nunused devices: <none>\n",
    );
    write(root, "sys/block/md0/md/level", "raid1\n");
    write(root, "sys/block/md0/md/raid_disks", "2\n");
    write(root, "sys/block/md0/md/degraded", "1\n");
    write(root, "sys/class/dmi/id/sys_vendor", "Example Co\n");
    for (f, v) in [
        ("ce_count", "1\n"),
        ("ce_noinfo_count", "0\n"),
        ("ue_count", "0\n"),
        ("ue_noinfo_count", "0\n"),
    ] {
        write(root, &format!("sys/devices/system/edac/mc/mc0/{f}"), v);
    }
    for (f, v) in [
        ("firmware_rev", "F1\n"),
        ("model", "Disk\n"),
        ("serial", "S1\n"),
        ("state", "live\n"),
        ("cntlid", "1\n"),
        ("nvme0n1/nuse", "1\n"),
        ("nvme0n1/size", "2\n"),
        ("nvme0n1/queue/logical_block_size", "512\n"),
    ] {
        write(root, &format!("sys/class/nvme/nvme0/{f}"), v);
    }
    for (z, name, uj) in [
        ("intel-rapl:0", "package-0\n", "2000000\n"),
        ("intel-rapl:0:0", "core\n", "1000000\n"),
    ] {
        write(root, &format!("sys/class/powercap/{z}/name"), name);
        write(
            root,
            &format!("sys/class/powercap/{z}/max_energy_range_uj"),
            "9999999999\n",
        );
        write(root, &format!("sys/class/powercap/{z}/energy_uj"), uj);
    }
    write(root, "sys/class/power_supply/AC/online", "1\n");
    write(root, "sys/class/power_supply/BAT0/capacity", "80\n");
    write(root, "sys/class/watchdog/watchdog0/timeout", "30\n");
    write(root, "sys/class/scsi_tape/st0/stats/read_cnt", "5\n");
    write(root, "sys/class/fc_host/host0/port_state", "Online\n");
    write(
        root,
        "sys/class/fc_host/host0/statistics/rx_frames",
        "0x10\n",
    );
}

fn scrape(root: &Path, extra: &[&str]) -> BTreeMap<String, f64> {
    let procfs = format!("--path.procfs={}", root.join("proc").display());
    let sysfs = format!("--path.sysfs={}", root.join("sys").display());
    let toggles: Vec<String> = COLLECTORS
        .iter()
        .map(|c| format!("--collector.{c}"))
        .collect();
    let mut args = vec!["metrics", &procfs, &sysfs, "--collector.disable-defaults"];
    args.extend(toggles.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let r = nodetune(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn success(m: &BTreeMap<String, f64>, c: &str) -> f64 {
    m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")]
}

#[test]
fn sysfs_collectors_read_their_classes() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    tree(r);
    let m = scrape(r, &[]);
    for c in COLLECTORS {
        assert_eq!(success(&m, c), 1.0, "{c}");
    }
    let sysfs = r.join("sys").display().to_string();
    for (k, v) in [
        ("node_dmi_info{system_vendor=\"Example Co\"}".to_string(), 1.0),
        ("node_edac_correctable_errors_total{controller=\"0\"}".into(), 1.0),
        ("node_md_state{device=\"md0\",state=\"recovering\"}".into(), 1.0),
        ("node_md_blocks_synced{device=\"md0\"}".into(), 100.0),
        ("node_md_disks{device=\"md0\",state=\"active\"}".into(), 1.0),
        ("node_md_degraded{device=\"md0\"}".into(), 1.0),
        ("node_nvme_namespace_size_bytes{device=\"nvme0\",nsid=\"1\"}".into(), 1024.0),
        (
            format!("node_rapl_package_joules_total{{index=\"0\",path=\"{sysfs}/class/powercap/intel-rapl:0\"}}"),
            2.0,
        ),
        ("node_power_supply_online{power_supply=\"AC\"}".into(), 1.0),
        ("node_power_supply_capacity{power_supply=\"BAT0\"}".into(), 80.0),
        ("node_watchdog_timeout_seconds{name=\"watchdog0\"}".into(), 30.0),
        ("node_tape_reads_completed_total{device=\"st0\"}".into(), 5.0),
        ("node_fibrechannel_rx_frames_total{fc_host=\"host0\"}".into(), 16.0),
    ] {
        assert_eq!(m.get(&k), Some(&v), "{k}");
    }

    // The flags.
    let m = scrape(
        r,
        &[
            "--collector.rapl.enable-zone-label",
            "--collector.powersupply.ignored-supplies=^BAT",
            "--collector.tapestats.ignored-devices=^st0$",
        ],
    );
    assert_eq!(
        m.get(&format!(
            "node_rapl_joules_total{{index=\"0\",path=\"{sysfs}/class/powercap/intel-rapl:0:0\",rapl_zone=\"core\"}}"
        )),
        Some(&1.0)
    );
    assert!(!m.keys().any(|k| k.starts_with("node_rapl_core_")));
    assert!(!m.keys().any(|k| k.contains("BAT0")));
    assert!(m.contains_key("node_power_supply_online{power_supply=\"AC\"}"));
    assert!(!m.keys().any(|k| k.starts_with("node_tape_")));
}

#[test]
fn broken_sources_fail_only_their_collector() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    tree(r);
    write(
        r,
        "proc/mdstat",
        "Personalities : [raid1]\nmd0 : active raid1\n",
    );
    write(r, "sys/class/power_supply/BAT0/capacity", "full\n");
    write(r, "sys/class/scsi_tape/st0/stats/read_cnt", "-1\n");
    std::fs::remove_file(r.join("sys/class/nvme/nvme0/nvme0n1/size")).unwrap();
    let m = scrape(r, &[]);
    for c in ["mdadm", "powersupplyclass", "tapestats", "nvme"] {
        assert_eq!(success(&m, c), 0.0, "{c}");
    }
    for c in ["dmi", "edac", "rapl", "watchdog", "fibrechannel"] {
        assert_eq!(success(&m, c), 1.0, "{c}");
    }
    assert!(!m.keys().any(|k| k.starts_with("node_md_")));
    // Nothing there at all: no data, and still an answer.
    let empty = tempfile::tempdir().unwrap();
    let m = scrape(empty.path(), &[]);
    for c in [
        "dmi",
        "mdadm",
        "nvme",
        "rapl",
        "powersupplyclass",
        "watchdog",
        "tapestats",
        "fibrechannel",
    ] {
        assert_eq!(success(&m, c), 0.0, "{c}");
    }
    // edac has no "no data" case in node_exporter: an empty scrape succeeds.
    assert_eq!(success(&m, "edac"), 1.0);
}

fn link(root: &Path, rel: &str, to: &Path) {
    let p = root.join(rel);
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(to, p).unwrap();
}

#[test]
fn attribute_errnos_as_node_exporter_handles_them() {
    if !require(
        FaultFs::available(),
        "FUSE (root, /dev/fuse, python3-fusepy)",
    ) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    tree(r);
    // A battery whose voltage and current reads fail with ENODEV and EOPNOTSUPP and whose
    // model name vanishes once opened (ENODEV): all skipped. The same mount serves a watchdog
    // attribute failing with EINVAL and an md attribute failing with EIO.
    let bat0 = FaultFs::mount(&[
        ("capacity", "50\n", "none"),
        ("voltage_now", "", "read:ENODEV"),
        ("current_now", "", "read:EOPNOTSUPP"),
        ("model_name", "X\n", "vanish"),
        ("timeleft", "", "read:EINVAL"),
        ("degraded", "", "read:EIO"),
    ]);
    // A battery whose temperature read fails with ENODATA: node_exporter fails the collector.
    let bat1 = FaultFs::mount(&[("temp", "", "read:ENODATA")]);
    // FC statistics, one unsupported.
    let stats = FaultFs::mount(&[
        ("rx_frames", "0x5\n", "none"),
        ("fcp_packet_aborts", "", "read:EOPNOTSUPP"),
    ]);
    std::fs::remove_dir_all(r.join("sys/class/power_supply/BAT0")).unwrap();
    link(r, "sys/class/power_supply/BAT0", bat0.dir());
    link(r, "sys/class/fc_host/host0/statistics", stats.dir());
    link(
        r,
        "sys/class/watchdog/watchdog0/timeleft",
        &bat0.file("timeleft"),
    );
    link(r, "sys/block/md0/md/degraded", &bat0.file("degraded"));
    let m = scrape(r, &[]);
    assert_eq!(success(&m, "powersupplyclass"), 1.0);
    assert_eq!(m["node_power_supply_capacity{power_supply=\"BAT0\"}"], 50.0);
    assert!(m.contains_key("node_power_supply_info{power_supply=\"BAT0\"}"));
    assert!(!m
        .keys()
        .any(|k| k.contains("voltage_volt") || k.contains("current_ampere")));
    assert_eq!(success(&m, "fibrechannel"), 1.0);
    assert_eq!(
        m["node_fibrechannel_rx_frames_total{fc_host=\"host0\"}"],
        5.0
    );
    assert!(!m
        .keys()
        .any(|k| k.starts_with("node_fibrechannel_fcp_packet_aborts")));
    assert_eq!(success(&m, "watchdog"), 0.0);
    // The md attribute failing drops the sysfs families only (see docs/metrics.md).
    assert_eq!(success(&m, "mdadm"), 1.0);
    assert!(m.contains_key("node_md_state{device=\"md0\",state=\"recovering\"}"));
    assert!(!m
        .keys()
        .any(|k| k.starts_with("node_md_degraded") || k.starts_with("node_md_raid_disks")));

    link(r, "sys/class/power_supply/BAT1", bat1.dir());
    let m = scrape(r, &[]);
    assert_eq!(success(&m, "powersupplyclass"), 0.0);
    assert!(!m.keys().any(|k| k.starts_with("node_power_supply_")));
    assert_eq!(success(&m, "fibrechannel"), 1.0);
}
