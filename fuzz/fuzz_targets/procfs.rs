//! The /proc and /sys parsers, through the collectors themselves: the input is split on 0xFF
//! bytes into the contents of the files below (missing chunks mean missing files), the
//! collectors read that tree, and what they produce is encoded in both formats. Any input
//! must give samples or a collector error, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nodetune::collect::{Options, ALL};
use nodetune::expose::encode::{self, Format};

/// Files the collectors (and the host facts) read, in the order chunks fill them.
const FILES: &[&str] = &[
    "proc/meminfo",
    "proc/stat",
    "proc/loadavg",
    "proc/vmstat",
    "proc/net/netstat",
    "proc/net/snmp",
    "proc/net/snmp6",
    "proc/net/sockstat",
    "proc/net/sockstat6",
    "proc/net/dev",
    "proc/sys/fs/file-nr",
    "proc/pressure/cpu",
    "proc/pressure/io",
    "proc/pressure/memory",
    "proc/sys/net/netfilter/nf_conntrack_count",
    "proc/sys/net/netfilter/nf_conntrack_max",
    "proc/net/stat/nf_conntrack",
    "proc/net/softnet_stat",
    "proc/cpuinfo",
    "textfile/fuzz.prom",
    "sys/class/hwmon/hwmon0/name",
    "sys/class/hwmon/hwmon0/temp1_input",
    "sys/class/hwmon/hwmon0/temp1_label",
    "sys/class/hwmon/hwmon0/fan1_input",
    "sys/class/thermal/thermal_zone0/type",
    "sys/class/thermal/thermal_zone0/temp",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/isolated",
    "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
    "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
    "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
    "sys/devices/system/cpu/cpu0/topology/core_id",
    "proc/sys/kernel/osrelease",
];

/// Collectors that read only the tree (not netlink, ioctls or the clock).
const COLLECTORS: &[&str] = &[
    "conntrack",
    "cpu",
    "cpufreq",
    "filefd",
    "hwmon",
    "loadavg",
    "meminfo",
    "netdev",
    "netstat",
    "pressure",
    "sockstat",
    "softnet",
    "stat",
    "textfile",
    "thermal_zone",
    "vmstat",
];

struct Tree {
    root: PathBuf,
    opts: Options,
    _dir: tempfile::TempDir,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        // Under /dev/shm when there is one: millions of small writes.
        let dir = tempfile::Builder::new()
            .prefix("nodetune-fuzz")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let mut flags = vec![
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
            format!("--path.rootfs={}", root.display()),
            format!(
                "--collector.textfile.directory={}",
                root.join("textfile").display()
            ),
            "--collector.netdev.netlink=false".to_string(),
            "--collector.stat.softirq".to_string(),
            "--collector.netstat.fields=.*".to_string(),
            "--collector.vmstat.fields=.*".to_string(),
        ];
        flags.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
        let opts = Options::from_flags(flags).expect("collector flags");
        Tree {
            root,
            opts,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tree();
    let mut chunks = data.split(|b| *b == 0xFF);
    for rel in FILES {
        let path = t.root.join(rel);
        let _ = std::fs::remove_file(&path);
        if let Some(chunk) = chunks.next() {
            let _ = std::fs::create_dir_all(path.parent().expect("parent"));
            let _ = std::fs::write(&path, chunk);
        }
    }
    let mut fams = Vec::new();
    for entry in ALL.iter().filter(|e| COLLECTORS.contains(&e.name)) {
        // Built every time: some collectors read files once, when they are built.
        let Ok(c) = (entry.build)(&t.opts) else {
            continue;
        };
        let mut out = Vec::new();
        if c.collect(&mut out).is_ok() {
            fams.extend(out);
        }
    }
    // The host facts profiles' conditions use (memory, CPU count) come from the same files.
    let _ = nodetune::profile::Facts::read(
        &t.root.join("proc/sys"),
        &t.root.join("proc"),
        &t.root.join("sys"),
        &t.root,
    );
    let fams = encode::normalize(fams);
    for format in [Format::Text, Format::OpenMetrics] {
        let mut out = String::new();
        encode::encode(&fams, format, &mut out);
    }
});
