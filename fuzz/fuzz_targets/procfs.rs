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
use nodetune::expose::selfmetrics::SelfMetrics;

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
    "proc/mdstat",
    "sys/block/md0/md/level",
    "sys/block/md0/md/raid_disks",
    "sys/block/md0/md/degraded",
    "sys/class/dmi/id/product_name",
    "sys/class/dmi/id/sys_vendor",
    "sys/devices/system/edac/mc/mc0/ce_count",
    "sys/devices/system/edac/mc/mc0/ce_noinfo_count",
    "sys/devices/system/edac/mc/mc0/ue_count",
    "sys/devices/system/edac/mc/mc0/ue_noinfo_count",
    "sys/devices/system/edac/mc/mc0/csrow0/ce_count",
    "sys/devices/system/edac/mc/mc0/csrow0/ue_count",
    "sys/devices/system/edac/mc/mc0/csrow0/ch0_ce_count",
    "sys/devices/system/edac/mc/mc0/csrow0/ch0_dimm_label",
    "sys/class/nvme/nvme0/firmware_rev",
    "sys/class/nvme/nvme0/model",
    "sys/class/nvme/nvme0/serial",
    "sys/class/nvme/nvme0/state",
    "sys/class/nvme/nvme0/cntlid",
    "sys/class/nvme/nvme0/nvme0n1/nuse",
    "sys/class/nvme/nvme0/nvme0n1/size",
    "sys/class/nvme/nvme0/nvme0n1/queue/logical_block_size",
    "sys/class/nvme/nvme0/nvme0n1/ana_state",
    "sys/class/powercap/intel-rapl:0/name",
    "sys/class/powercap/intel-rapl:0/max_energy_range_uj",
    "sys/class/powercap/intel-rapl:0/energy_uj",
    "sys/class/power_supply/BAT0/capacity",
    "sys/class/power_supply/BAT0/energy_now",
    "sys/class/power_supply/BAT0/status",
    "sys/class/power_supply/BAT0/model_name",
    "sys/class/watchdog/watchdog0/timeout",
    "sys/class/watchdog/watchdog0/options",
    "sys/class/watchdog/watchdog0/identity",
    "sys/class/scsi_tape/st0/stats/read_cnt",
    "sys/class/scsi_tape/st0/stats/io_ns",
    "sys/class/fc_host/host0/port_state",
    "sys/class/fc_host/host0/port_name",
    "sys/class/fc_host/host0/statistics/rx_frames",
    "sys/class/fc_host/host0/statistics/dumped_frames",
    "proc/self/stat",
    "proc/self/net/netstat",
    "proc/net/arp",
    "proc/net/udp",
    "proc/net/udp6",
    "proc/net/ip_vs_stats",
    "proc/net/ip_vs",
    "proc/net/rpc/nfs",
    "proc/net/rpc/nfsd",
    "sys/class/net/bonding_masters",
    "sys/class/net/bond0/bonding/slaves",
    "sys/class/net/bond0/lower_eth0/bonding_slave/mii_status",
    "sys/class/net/eth0/flags",
    "sys/class/net/eth0/speed",
    "sys/class/net/eth0/address",
    "sys/class/net/eth0/operstate",
    "sys/class/net/eth0/dev_id",
    "sys/class/infiniband/mlx4_0/fw_ver",
    "sys/class/infiniband/mlx4_0/ports/1/link_layer",
    "sys/class/infiniband/mlx4_0/ports/1/state",
    "sys/class/infiniband/mlx4_0/ports/1/phys_state",
    "sys/class/infiniband/mlx4_0/ports/1/rate",
    "sys/class/infiniband/mlx4_0/ports/1/counters/port_rcv_data",
    "sys/class/infiniband/mlx4_0/ports/1/hw_counters/lifespan",
    "proc/1/mountinfo",
    "proc/diskstats",
    "udev/b8:0",
    "sys/block/sda/queue/rotational",
    "etc/os-release",
    "usr/lib/os-release",
    "proc/sys/kernel/random/entropy_avail",
    "proc/sys/kernel/random/poolsize",
    "proc/schedstat",
    "proc/spl/kstat/zfs/arcstats",
    "proc/spl/kstat/zfs/pool1/io",
    "proc/spl/kstat/zfs/pool1/objset-0x36",
    "proc/spl/kstat/zfs/pool1/state",
    "sys/fs/xfs/sda1/stats/stats",
    "sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/label",
    "sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/commit_stats",
    "sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/devices/sda/size",
    "sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/allocation/data/raid5/used_bytes",
    "sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/allocation/metadata/dup/total_bytes",
    "sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/allocation/system/single/total_bytes",
    "sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74/average_key_size",
    "sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74/bdev0/dirty_data",
    "sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74/bdev0/writeback_rate_debug",
    "sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74/cache0/priority_stats",
];

/// Collectors that read only the tree (not netlink, ioctls or the clock): arp and netclass
/// with their file paths (see the flags below); btrfs's ioctls are only tried on btrfs mounts
/// listed in proc/1/mountinfo, which the tree does not have.
const COLLECTORS: &[&str] = &[
    "arp",
    "bcache",
    "bonding",
    "btrfs",
    "conntrack",
    "cpu",
    "cpufreq",
    "diskstats",
    "dmi",
    "edac",
    "entropy",
    "fibrechannel",
    "filefd",
    "filesystem",
    "hwmon",
    "infiniband",
    "ipvs",
    "loadavg",
    "mdadm",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "nfs",
    "nfsd",
    "nvme",
    "os",
    "powersupplyclass",
    "pressure",
    "rapl",
    "schedstat",
    "sockstat",
    "softnet",
    "stat",
    "tapestats",
    "textfile",
    "thermal_zone",
    "udp_queues",
    "vmstat",
    "watchdog",
    "xfs",
    "zfs",
];

struct Tree {
    root: PathBuf,
    opts: Options,
    _dir: tempfile::TempDir,
}

/// The tree's directory. libFuzzer ends the process with exit(), which never drops statics
/// (the TempDir below), so an exit handler removes it.
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_tree() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

extern "C" {
    fn atexit(f: extern "C" fn()) -> std::os::raw::c_int;
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
        if DIR.set(root.clone()).is_ok() {
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { atexit(remove_tree) };
        }
        let mut flags = vec![
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
            format!("--path.rootfs={}", root.display()),
            format!("--path.udev.data={}", root.join("udev").display()),
            format!(
                "--collector.textfile.directory={}",
                root.join("textfile").display()
            ),
            "--collector.netdev.netlink=false".to_string(),
            "--no-collector.arp.netlink".to_string(),
            "--collector.stat.softirq".to_string(),
            "--collector.netstat.fields=.*".to_string(),
            "--collector.vmstat.fields=.*".to_string(),
            "--collector.bcache.priorityStats".to_string(),
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
    // The exporter's own process metrics (the real /proc/self in production), then normalized.
    let me = SelfMetrics::at(&t.root.join("proc/self"), &t.root.join("proc/stat"));
    let fams = me.gather(fams);
    for format in [Format::Text, Format::OpenMetrics] {
        let mut out = String::new();
        encode::encode(&fams, format, &mut out);
    }
});
