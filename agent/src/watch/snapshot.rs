//! The typed inputs of the alert rules, the saturation ratios and `recommend`, read once per
//! alert tick. Each field comes from the same reader the matching collector renders
//! node_exporter's families from (`collect::netstat::read_tcp_ext`, `collect::hwmon::Reader`,
//! …), so the rules and /metrics read one thing two ways, and a rule that needs an input the
//! snapshot lacks does not compile.
//!
//! The reads run on the collectors' worker pool with the collector timeout: a hung sensor
//! costs its own input for that tick (the field stays `None`), never the daemon's event loop.

use crate::collect::attr::HeldFile;
use crate::collect::pool::{Done, Runner, Task};
use crate::collect::{
    conntrack, cpu, filefd, gpu, hwmon, listen_queue, netdev, netstat, sockstat, softnet, Options,
};
use crate::profile::Target;
use crate::tune::kernel::{Current, Kernel};

/// The sysctl limits the ratios compare usage with.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// net.ipv4.ip_local_port_range: (low, high).
    pub port_range: Option<(u64, u64)>,
    /// net.ipv4.tcp_mem: (low, pressure, high) in pages.
    pub tcp_mem: Option<[u64; 3]>,
}

impl Limits {
    /// How many ephemeral ports the range holds.
    pub fn ports(&self) -> Option<u64> {
        self.port_range
            .and_then(|(lo, hi)| hi.checked_sub(lo))
            .map(|n| n + 1)
    }
}

/// One reading of every input. A field is `None` when its source could not be read this tick
/// (no nf_conntrack module, no hwmon, a read that hung or failed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub tcp_ext: Option<netstat::TcpExt>,
    pub tcp_sockets: Option<sockstat::TcpSockets>,
    pub conntrack: Option<conntrack::Table>,
    pub file_nr: Option<filefd::FileNr>,
    pub softnet: Option<Vec<softnet::Row>>,
    pub listeners: Option<Vec<listen_queue::Listener>>,
    pub nics: Option<Vec<netdev::Nic>>,
    pub throttles: Option<cpu::Throttles>,
    pub temps: Option<Vec<hwmon::Temp>>,
    pub gpus: Option<Vec<gpu::Reading>>,
    pub limits: Limits,
}

/// What one read produced: one input of the snapshot.
#[derive(Clone)]
enum Part {
    TcpExt(netstat::TcpExt),
    TcpSockets(Option<sockstat::TcpSockets>),
    Conntrack(conntrack::Table),
    FileNr(filefd::FileNr),
    Softnet(Vec<softnet::Row>),
    Listeners(Vec<listen_queue::Listener>),
    Nics(Vec<netdev::Nic>),
    Throttles(cpu::Throttles),
    Temps(Vec<hwmon::Temp>),
    Gpus(Vec<gpu::Reading>),
    Limits(Limits),
}

impl Snapshot {
    fn add(&mut self, part: Part) {
        match part {
            Part::TcpExt(v) => self.tcp_ext = Some(v),
            Part::TcpSockets(v) => self.tcp_sockets = v,
            Part::Conntrack(v) => self.conntrack = Some(v),
            Part::FileNr(v) => self.file_nr = Some(v),
            Part::Softnet(v) => self.softnet = Some(v),
            Part::Listeners(v) => self.listeners = Some(v),
            Part::Nics(v) => self.nics = Some(v),
            Part::Throttles(v) => self.throttles = Some(v),
            Part::Temps(v) => self.temps = Some(v),
            Part::Gpus(v) => self.gpus = Some(v),
            Part::Limits(v) => self.limits = v,
        }
    }

    fn from_results(results: Vec<(&'static str, Done<Part>)>) -> Snapshot {
        let mut s = Snapshot::default();
        for (_, done) in results {
            if let Done::Ran {
                value: Some(part), ..
            } = done
            {
                s.add(part);
            }
        }
        s
    }
}

/// The numeric fields of a sysctl, if it exists and parses.
fn sysctl_fields(kernel: &Kernel, key: &str) -> Option<Vec<u64>> {
    match kernel.read(&Target::Sysctl(key.into())).ok()? {
        Current::Value(v) => v.split_whitespace().map(|f| f.parse().ok()).collect(),
        Current::Missing => None,
    }
}

/// Reads snapshots: the readers are built once from the collector settings (roots, device
/// and chip filters, netlink or /proc), whichever collectors /metrics has switched on.
pub struct Sampler {
    runner: Runner<Part>,
}

impl Sampler {
    pub fn new(opts: &Options, kernel: &Kernel) -> anyhow::Result<Sampler> {
        let procfs = opts.procfs.clone();
        let mut tasks: Vec<(&'static str, Task<Part>)> = Vec::new();
        let p = procfs.clone();
        tasks.push((
            "netstat",
            Box::new(move || netstat::read_tcp_ext(&p).map(Part::TcpExt)),
        ));
        let p = procfs.clone();
        tasks.push((
            "sockstat",
            Box::new(move || sockstat::read_tcp(&p).map(Part::TcpSockets)),
        ));
        let p = procfs.clone();
        tasks.push((
            "conntrack",
            Box::new(move || conntrack::read(&p).map(Part::Conntrack)),
        ));
        let file = HeldFile::new(procfs.join("sys/fs/file-nr"));
        tasks.push((
            "filefd",
            Box::new(move || filefd::read(&file).map(Part::FileNr)),
        ));
        let file = HeldFile::new(procfs.join("net/softnet_stat"));
        tasks.push((
            "softnet",
            Box::new(move || softnet::read(&file).map(Part::Softnet)),
        ));
        tasks.push((
            "listen_queue",
            Box::new(|| Ok(Part::Listeners(listen_queue::read()?))),
        ));
        let nics = netdev::Reader::new(opts)?;
        tasks.push(("netdev", Box::new(move || nics.nics().map(Part::Nics))));
        let throttles = cpu::ThrottleReader::shared(&opts.sysfs);
        tasks.push((
            "cpu",
            Box::new(move || Ok(Part::Throttles(throttles.read()))),
        ));
        // The collector's reader when it is on (one set of sensor files for both); else one
        // of its own that holds no files, read every alert interval, not every scrape.
        let hwmon = if opts.enabled().contains(&"hwmon") {
            hwmon::Reader::shared(opts)?
        } else {
            std::sync::Arc::new(hwmon::Reader::for_alerts(opts)?)
        };
        tasks.push(("hwmon", Box::new(move || hwmon.temps().map(Part::Temps))));
        // NVML is loaded only where the gpu collector is switched on, as for /metrics.
        if opts.enabled().contains(&"gpu") {
            let source = gpu::source();
            tasks.push(("gpu", Box::new(move || source.read().map(Part::Gpus))));
        }
        let kernel = kernel.clone();
        tasks.push((
            "sysctl",
            Box::new(move || {
                Ok(Part::Limits(Limits {
                    port_range: sysctl_fields(&kernel, "net.ipv4.ip_local_port_range")
                        .filter(|f| f.len() == 2)
                        .map(|f| (f[0], f[1])),
                    tcp_mem: sysctl_fields(&kernel, "net.ipv4.tcp_mem")
                        .and_then(|f| f.try_into().ok()),
                }))
            }),
        ));
        Ok(Sampler {
            runner: Runner::new(tasks, opts.timeout),
        })
    }

    /// Reads every input, blocking the caller (at most the collector timeout).
    pub fn read(&self) -> Snapshot {
        Snapshot::from_results(self.runner.run(&|_| true))
    }

    /// Reads every input without blocking the event loop.
    pub fn read_async(&self) -> impl std::future::Future<Output = Snapshot> + Send + '_ {
        let run = self.runner.run_async(&|_| true);
        async move { Snapshot::from_results(run.await) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    /// Every input from a fake root written in the kernel's own formats.
    #[test]
    fn reads_every_input_from_its_files() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/net/netstat", "TcpExt: ListenOverflows ListenDrops SyncookiesSent TCPReqQFullDrop TCPMemoryPressures\nTcpExt: 1 2 3 4 5\n");
        write(
            r,
            "proc/net/sockstat",
            "sockets: used 10\nTCP: inuse 7 orphan 0 tw 3 alloc 9 mem 12\n",
        );
        write(r, "proc/sys/net/netfilter/nf_conntrack_count", "90\n");
        write(r, "proc/sys/net/netfilter/nf_conntrack_max", "100\n");
        write(r, "proc/sys/fs/file-nr", "50\t0\t1000\n");
        write(r, "proc/net/softnet_stat", "00000010 00000002 00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n");
        write(r, "proc/net/dev", "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  eth0: 100 10 1 2 3 0 0 0 200 20 4 5 0 0 0 0\n");
        write(
            r,
            "sys/devices/system/cpu/cpu0/topology/physical_package_id",
            "0\n",
        );
        write(r, "sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
        write(
            r,
            "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
            "6\n",
        );
        write(
            r,
            "sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count",
            "8\n",
        );
        write(r, "sys/class/hwmon/hwmon0/name", "coretemp\n");
        write(r, "sys/class/hwmon/hwmon0/temp1_input", "101000\n");
        write(r, "sys/class/hwmon/hwmon0/temp1_crit", "100000\n");
        write(r, "sys/class/hwmon/hwmon0/fan1_input", "1200\n");
        write(r, "sysctl/net/ipv4/ip_local_port_range", "32768\t60999\n");
        write(r, "sysctl/net/ipv4/tcp_mem", "1000\t2000\t4000\n");
        let opts = Options::from_flags([
            format!("--path.procfs={}", r.join("proc").display()),
            format!("--path.sysfs={}", r.join("sys").display()),
            "--collector.netdev.netlink=false".to_string(),
        ])
        .unwrap();
        let kernel = Kernel {
            sysctl_root: r.join("sysctl"),
            sysfs: r.join("sys"),
            root: r.to_path_buf(),
        };
        let s = Sampler::new(&opts, &kernel).unwrap().read();
        assert_eq!(
            s.tcp_ext,
            Some(netstat::TcpExt {
                listen_overflows: Some(1),
                listen_drops: Some(2),
                syncookies_sent: Some(3),
                req_q_full_drop: Some(4),
                memory_pressures: Some(5),
            })
        );
        assert_eq!(
            s.tcp_sockets,
            Some(sockstat::TcpSockets {
                inuse: 7,
                tw: 3,
                mem_pages: 12
            })
        );
        let ct = s.conntrack.unwrap();
        assert_eq!((ct.entries, ct.limit, ct.drop()), (90.0, 100.0, None));
        assert_eq!(s.file_nr.unwrap().allocated, 50.0);
        let sn = &s.softnet.unwrap()[0];
        assert_eq!((sn.dropped(), sn.times_squeezed()), (2, 3));
        let nic = &s.nics.unwrap()[0];
        assert_eq!(
            (
                nic.device.as_str(),
                nic.receive_errs,
                nic.receive_drop,
                nic.transmit_errs
            ),
            ("eth0", 1, 2, 4)
        );
        let th = s.throttles.unwrap();
        assert_eq!((th.cores[&(0, 0)], th.packages[&0]), (6, 8));
        assert_eq!(
            s.temps.unwrap(),
            vec![hwmon::Temp {
                chip: "coretemp".into(),
                sensor: "temp1".into(),
                celsius: 101.0,
                crit: Some(100.0),
                max: None
            }]
        );
        assert!(s.listeners.is_some(), "sock_diag works in any namespace");
        assert!(s.gpus.is_none(), "gpu collector off");
        assert_eq!(s.limits.ports(), Some(28232));
        assert_eq!(s.limits.tcp_mem, Some([1000, 2000, 4000]));
    }

    #[test]
    fn a_missing_source_leaves_its_input_empty() {
        let d = tempfile::tempdir().unwrap();
        let opts = Options::from_flags([
            format!("--path.procfs={}", d.path().display()),
            format!("--path.sysfs={}", d.path().display()),
            "--collector.netdev.netlink=false".to_string(),
        ])
        .unwrap();
        let kernel = Kernel {
            sysctl_root: d.path().into(),
            sysfs: d.path().into(),
            root: d.path().into(),
        };
        let s = Sampler::new(&opts, &kernel).unwrap().read();
        assert!(s.tcp_ext.is_none() && s.conntrack.is_none() && s.temps.is_none());
        assert_eq!(s.limits, Limits::default());
    }
}
