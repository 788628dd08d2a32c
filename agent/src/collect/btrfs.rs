//! btrfs collector: node_btrfs_* from /sys/fs/btrfs/<uuid>/ (label, global reserve,
//! allocation per block-group type and RAID layout, commit stats, device sizes), plus the
//! per-device sizes and error counters node_exporter 1.12 gets by ioctl (BTRFS_IOC_FS_INFO,
//! BTRFS_IOC_DEV_INFO, BTRFS_IOC_GET_DEV_STATS) on the btrfs mount points listed in
//! `{procfs}/1/mountinfo` (else `{procfs}/self/mountinfo`), opened under `{rootfs}`.
//!
//! As in node_exporter: no /sys/fs/btrfs, or no filesystem in it, is success with no families
//! (and then nothing else is read: no mount table, no ioctl); a filesystem whose devices cannot
//! be queried by ioctl (not mounted here, not a subvolume root, no permission) gets the sysfs
//! device sizes instead, labelled {device} only. sysfs values are read as procfs reads them:
//! one read of at most 128 bytes, a missing file or a value that is not a number reads 0, and
//! any other read error is kept until the next allocation directory is read (so only an error
//! in allocation/system or commit_stats fails the collector). Values node_exporter does not
//! export (bytes_may_use, nodesize, features, ...) are not read.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// One filesystem, as /sys/fs/btrfs/<uuid>/ describes it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// `metadata_uuid`, else the directory name.
    pub uuid: String,
    pub label: String,
    pub global_rsv_size: u64,
    /// data, metadata and system, in that order.
    pub allocation: [Allocation; 3],
    /// sysfs device name and size in bytes.
    pub devices: Vec<(String, u64)>,
    pub commit: CommitStats,
}

/// One block-group type (allocation/data, metadata or system).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Allocation {
    pub reserved_bytes: u64,
    /// Layout (RAID profile directory, e.g. "raid1") and its usage.
    pub layouts: Vec<(String, Layout)>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Layout {
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub ratio: f64,
}

/// commit_stats (kernel 6.0+; zero before).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub last_commit_ms: u64,
    pub max_commit_ms: u64,
    pub total_commit_ms: u64,
}

/// One device of a mounted filesystem, by ioctl.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IoctlDevice {
    /// Device path as the kernel knows it (e.g. /dev/sda1).
    pub path: String,
    /// Device UUID, 8-4-4-4-12 hex (or "<zero>").
    pub uuid: String,
    pub bytes_used: u64,
    pub total_bytes: u64,
    /// write, read, flush, corruption, generation.
    pub errors: [u64; 5],
}

const BLOCK_GROUP_TYPES: [&str; 3] = ["data", "metadata", "system"];
const ERROR_TYPES: [&str; 5] = ["write", "read", "flush", "corruption", "generation"];

/// Parses commit_stats: "<key> <value>" lines; another shape or a value that is not a number
/// is an error, unknown keys are ignored.
pub fn parse_commit_stats(text: &str) -> anyhow::Result<CommitStats> {
    let mut c = CommitStats::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(key), Some(value), None) = (w.next(), w.next(), w.next()) else {
            anyhow::bail!("invalid commit_stats line {line:?}");
        };
        let v = util::go_parse_uint(value, 10, 64)
            .with_context(|| format!("error parsing commit_stats line {line:?}"))?;
        match key {
            "commits" => c.commits = v,
            "last_commit_ms" => c.last_commit_ms = v,
            "max_commit_ms" => c.max_commit_ms = v,
            "total_commit_ms" => c.total_commit_ms = v,
            _ => {}
        }
    }
    Ok(c)
}

/// The data-to-disk ratio of a layout (0 for an unknown one), RAID5/6 from the device count.
pub fn layout_ratio(mode: &str, devices: usize) -> f64 {
    let n = devices as f64;
    match mode {
        "single" | "raid0" => 1.0,
        "dup" | "raid1" | "raid10" => 2.0,
        "raid1c3" => 3.0,
        "raid1c4" => 4.0,
        "raid5" => n / (n - 1.0),
        "raid6" => n / (n - 2.0),
        _ => 0.0,
    }
}

/// A btrfs mount from a mountinfo table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount source (the device), for telling filesystems apart.
    pub device: String,
    /// The mount point, with \040 and \011 decoded.
    pub mount_point: String,
}

/// The btrfs mounts of a mountinfo table, in order. Like procfs (and node_exporter's mount
/// list), one malformed line anywhere makes the whole table unusable.
pub fn parse_mountinfo(text: &str) -> anyhow::Result<Vec<Mount>> {
    let mut out = Vec::new();
    let mut f: Vec<&str> = Vec::with_capacity(16);
    for line in text.lines() {
        f.clear();
        f.extend(line.split(' '));
        let n = f.len();
        anyhow::ensure!(n >= 10, "too few fields in mount string {line:?}");
        anyhow::ensure!(f[n - 4] == "-", "couldn't find separator in {line:?}");
        anyhow::ensure!(
            go_atoi(f[0]) && go_atoi(f[1]),
            "bad mount or parent ID in {line:?}"
        );
        let mm = f[2].split_once(':');
        anyhow::ensure!(
            mm.is_some_and(|(a, b)| go_atoi(a) && leading_int(b)),
            "malformed mount point MajorMinorVer: {:?}",
            f[2]
        );
        if f[n - 3] != "btrfs" {
            continue;
        }
        out.push(Mount {
            device: f[n - 2].to_string(),
            mount_point: f[4].replace("\\040", " ").replace("\\011", "\t"),
        });
    }
    Ok(out)
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn go_atoi(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && s.parse::<i64>().is_ok()
}

/// Go's `fmt.Sscanf("%d")`: an optional sign and at least one digit, then anything.
fn leading_int(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    d.starts_with(|c: char| c.is_ascii_digit())
}

/// procfs' SysReadFile: one read() of at most 128 bytes, surrounding white space trimmed.
fn sys_read(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// procfs' btrfs reader: a missing file reads empty; another error is kept (replacing an
/// earlier one), and while one is kept every number reads 0.
struct Reader {
    dir: PathBuf,
    err: Option<anyhow::Error>,
    devices: usize,
}

impl Reader {
    fn text(&mut self, name: &str) -> String {
        let path = self.dir.join(name);
        match sys_read(&path) {
            Ok(s) => s,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.err =
                        Some(anyhow::Error::new(e).context(format!("reading {}", path.display())));
                }
                String::new()
            }
        }
    }

    fn value(&mut self, name: &str) -> u64 {
        let s = self.text(name);
        if self.err.is_some() {
            return 0;
        }
        util::go_parse_uint(&s, 10, 64).unwrap_or(0)
    }

    /// Entries of a subdirectory, sorted, with whether each is a directory (not following
    /// symlinks); a directory that cannot be read is an error.
    fn list(&mut self, name: &str) -> Vec<(String, bool)> {
        let path = self.dir.join(name);
        let rd = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => {
                self.err =
                    Some(anyhow::Error::new(e).context(format!("listing {}", path.display())));
                return Vec::new();
            }
        };
        let mut v: Vec<(String, bool)> = rd
            .flatten()
            .map(|e| {
                let dir = e.file_type().is_ok_and(|t| t.is_dir());
                (e.file_name().to_string_lossy().into_owned(), dir)
            })
            .collect();
        v.sort();
        v
    }

    /// allocation/<kind>: a fresh reader whose error, or its absence, replaces this one's.
    fn allocation(&mut self, kind: &str) -> Allocation {
        let mut sub = Reader {
            dir: self.dir.join("allocation").join(kind),
            err: None,
            devices: self.devices,
        };
        let reserved_bytes = sub.value("bytes_reserved");
        let mut layouts = Vec::new();
        for (mode, is_dir) in sub.list("") {
            if !is_dir {
                continue;
            }
            let total_bytes = sub.value(&format!("{mode}/total_bytes"));
            let used_bytes = sub.value(&format!("{mode}/used_bytes"));
            let ratio = layout_ratio(&mode, sub.devices);
            layouts.push((
                mode,
                Layout {
                    used_bytes,
                    total_bytes,
                    ratio,
                },
            ));
        }
        self.err = sub.err;
        Allocation {
            reserved_bytes,
            layouts,
        }
    }
}

/// Reads one /sys/fs/btrfs/<uuid> directory.
pub fn read_fs(dir: &Path) -> anyhow::Result<Stats> {
    let mut r = Reader {
        dir: dir.to_path_buf(),
        err: None,
        devices: 0,
    };
    let mut devices = Vec::new();
    for (name, _) in r.list("devices") {
        let size = r.value(&format!("devices/{name}/size"));
        devices.push((name, size.wrapping_mul(512)));
    }
    r.devices = devices.len();
    let label = r.text("label");
    let mut uuid = r.text("metadata_uuid");
    let global_rsv_size = r.value("allocation/global_rsv_size");
    let allocation = BLOCK_GROUP_TYPES.map(|kind| r.allocation(kind));
    let path = dir.join("commit_stats");
    let commit = match util::read_text(&path) {
        Ok(text) => match parse_commit_stats(&text) {
            Ok(c) => c,
            Err(e) => {
                r.err = Some(e.context(format!("parsing {}", path.display())));
                CommitStats::default()
            }
        },
        // Kernels before 6.0 have none.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CommitStats::default(),
        Err(e) => {
            r.err = Some(anyhow::Error::new(e).context(format!("reading {}", path.display())));
            CommitStats::default()
        }
    };
    if let Some(e) = r.err {
        return Err(e);
    }
    if uuid.is_empty() {
        uuid = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(Stats {
        uuid,
        label,
        global_rsv_size,
        allocation,
        devices,
        commit,
    })
}

/// The kernel's BTRFS_IOC_* argument structures (sizes fixed by the ABI).
mod ioc {
    #[repr(C)]
    pub struct FsInfo {
        pub max_id: u64,
        pub num_devices: u64,
        pub fsid: [u8; 16],
        pub nodesize: u32,
        pub sectorsize: u32,
        pub clone_alignment: u32,
        pub rest: [u8; 980],
    }

    #[repr(C)]
    pub struct DevInfo {
        pub devid: u64,
        pub uuid: [u8; 16],
        pub bytes_used: u64,
        pub total_bytes: u64,
        pub unused: [u64; 379],
        pub path: [u8; 1024],
    }

    #[repr(C)]
    pub struct DevStats {
        pub devid: u64,
        pub nr_items: u64,
        pub flags: u64,
        pub values: [u64; 5],
        pub unused: [u64; 121],
    }

    const _: () = assert!(std::mem::size_of::<FsInfo>() == 1024);
    const _: () = assert!(std::mem::size_of::<DevInfo>() == 4096);
    const _: () = assert!(std::mem::size_of::<DevStats>() == 1032);

    nix::ioctl_read!(fs_info, 0x94, 31, FsInfo);
    nix::ioctl_readwrite!(dev_info, 0x94, 30, DevInfo);
    nix::ioctl_readwrite!(get_dev_stats, 0x94, 52, DevStats);
}

fn hex(bytes: &[u8], out: &mut String) {
    use std::fmt::Write;
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// A device UUID as dennwc/btrfs prints it.
fn uuid_string(u: &[u8; 16]) -> String {
    if u.iter().all(|b| *b == 0) {
        return "<zero>".to_string();
    }
    let mut s = String::with_capacity(36);
    for (i, part) in [&u[..4], &u[4..6], &u[6..8], &u[8..10], &u[10..]]
        .iter()
        .enumerate()
    {
        if i > 0 {
            s.push('-');
        }
        hex(part, &mut s);
    }
    s
}

/// Opens a mount point the way node_exporter's btrfs library does: it must be a subvolume
/// root (inode 256, a directory) on btrfs.
fn open_subvolume(path: &Path) -> std::io::Result<std::fs::File> {
    let md = std::fs::metadata(path)?;
    let not_btrfs = || std::io::Error::other("not a btrfs subvolume root");
    if md.ino() != 256 || !md.is_dir() {
        return Err(not_btrfs());
    }
    let fs = nix::sys::statfs::statfs(path)?;
    if fs.filesystem_type() != nix::sys::statfs::BTRFS_SUPER_MAGIC {
        return Err(not_btrfs());
    }
    std::fs::File::open(path)
}

/// The filesystem's id (hex, no dashes) and its devices, by ioctl.
fn query_fs(file: &std::fs::File) -> std::io::Result<(String, Vec<IoctlDevice>)> {
    let fd = file.as_raw_fd();
    let mut info = ioc::FsInfo {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        nodesize: 0,
        sectorsize: 0,
        clone_alignment: 0,
        rest: [0; 980],
    };
    // SAFETY: `info` is the kernel's struct btrfs_ioctl_fs_info_args, owned and writable.
    unsafe { ioc::fs_info(fd, &mut info) }?;
    let mut fsid = String::with_capacity(32);
    hex(&info.fsid, &mut fsid);
    let mut devices = Vec::new();
    let mut dev = Box::new(ioc::DevInfo {
        devid: 0,
        uuid: [0; 16],
        bytes_used: 0,
        total_bytes: 0,
        unused: [0; 379],
        path: [0; 1024],
    });
    for id in 0..=info.max_id {
        dev.devid = id;
        dev.uuid = [0; 16];
        // SAFETY: `dev` is the kernel's struct btrfs_ioctl_dev_info_args, owned and writable.
        match unsafe { ioc::dev_info(fd, &mut *dev) } {
            Ok(_) => {}
            // Device ids have gaps.
            Err(nix::errno::Errno::ENODEV) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut st = ioc::DevStats {
            devid: id,
            nr_items: 5,
            flags: 0,
            values: [0; 5],
            unused: [0; 121],
        };
        // SAFETY: `st` is the kernel's struct btrfs_ioctl_get_dev_stats, owned and writable.
        unsafe { ioc::get_dev_stats(fd, &mut st) }?;
        let end = dev
            .path
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(dev.path.len());
        devices.push(IoctlDevice {
            path: String::from_utf8_lossy(&dev.path[..end]).into_owned(),
            uuid: uuid_string(&dev.uuid),
            bytes_used: dev.bytes_used,
            total_bytes: dev.total_bytes,
            errors: st.values,
        });
        if devices.len() as u64 == info.num_devices {
            break;
        }
    }
    Ok((fsid, devices))
}

/// Families for every filesystem; `ioctl` holds the devices of those found by ioctl, by fsid.
fn render(stats: &[Stats], ioctl: &HashMap<String, Vec<IoctlDevice>>, out: &mut Vec<Family>) {
    if stats.is_empty() {
        return;
    }
    let g = MetricType::Gauge;
    let mut info = Family::new("node_btrfs_info", "Filesystem information", g);
    let mut rsv = Family::new(
        "node_btrfs_global_rsv_size_bytes",
        "Size of global reserve.",
        g,
    );
    let mut commits = Family::new(
        "node_btrfs_commits_total",
        "The total number of commits that have occurred.",
        MetricType::Counter,
    );
    let mut last = Family::new(
        "node_btrfs_last_commit_seconds",
        "Duration of the most recent commit, in seconds.",
        g,
    );
    let mut max = Family::new(
        "node_btrfs_max_commit_seconds",
        "Duration of the slowest commit, in seconds.",
        g,
    );
    let mut total = Family::new(
        "node_btrfs_commit_seconds_total",
        "Sum of the duration of all commits, in seconds.",
        MetricType::Counter,
    );
    let mut reserved = Family::new(
        "node_btrfs_reserved_bytes",
        "Amount of space reserved for a data type",
        g,
    );
    let mut used = Family::new(
        "node_btrfs_used_bytes",
        "Amount of used space by a layout/data type",
        g,
    );
    let mut size = Family::new(
        "node_btrfs_size_bytes",
        "Amount of space allocated for a layout/data type",
        g,
    );
    let mut ratio = Family::new(
        "node_btrfs_allocation_ratio",
        "Data allocation ratio for a layout/data type",
        g,
    );
    let mut dev_size = Family::new(
        "node_btrfs_device_size_bytes",
        "Size of a device that is part of the filesystem.",
        g,
    );
    let mut dev_unused = Family::new(
        "node_btrfs_device_unused_bytes",
        "Unused bytes unused on a device that is part of the filesystem.",
        g,
    );
    let mut dev_errors = Family::new(
        "node_btrfs_device_errors_total",
        "Errors reported for the device",
        MetricType::Counter,
    );
    let mut fsid = String::with_capacity(32);
    for s in stats {
        let uuid = s.uuid.as_str();
        info.push(&[("uuid", uuid), ("label", &s.label)], 1.0);
        rsv.push(&[("uuid", uuid)], s.global_rsv_size as f64);
        commits.push(&[("uuid", uuid)], s.commit.commits as f64);
        last.push(&[("uuid", uuid)], s.commit.last_commit_ms as f64 / 1000.0);
        max.push(&[("uuid", uuid)], s.commit.max_commit_ms as f64 / 1000.0);
        total.push(&[("uuid", uuid)], s.commit.total_commit_ms as f64 / 1000.0);
        for (kind, a) in BLOCK_GROUP_TYPES.iter().zip(&s.allocation) {
            reserved.push(
                &[("uuid", uuid), ("block_group_type", kind)],
                a.reserved_bytes as f64,
            );
            for (mode, l) in &a.layouts {
                let labels = [("uuid", uuid), ("block_group_type", kind), ("mode", mode)];
                used.push(&labels, l.used_bytes as f64);
                size.push(&labels, l.total_bytes as f64);
                ratio.push(&labels, l.ratio);
            }
        }
        fsid.clear();
        fsid.extend(uuid.chars().filter(|c| *c != '-'));
        let Some(devices) = ioctl.get(&fsid) else {
            for (name, bytes) in &s.devices {
                dev_size.push(&[("uuid", uuid), ("device", name)], *bytes as f64);
            }
            continue;
        };
        for d in devices {
            let name = d.path.rsplit('/').next().unwrap_or("");
            let labels = [
                ("uuid", uuid),
                ("device", name),
                ("btrfs_dev_uuid", &d.uuid),
            ];
            dev_size.push(&labels, d.total_bytes as f64);
            dev_unused.push(&labels, d.total_bytes.wrapping_sub(d.bytes_used) as f64);
            for (ty, v) in ERROR_TYPES.iter().zip(d.errors) {
                dev_errors.push(
                    &[
                        ("uuid", uuid),
                        ("type", ty),
                        ("device", name),
                        ("btrfs_dev_uuid", &d.uuid),
                    ],
                    v as f64,
                );
            }
        }
    }
    out.extend([
        info, rsv, commits, last, max, total, reserved, used, size, ratio, dev_size, dev_unused,
        dev_errors,
    ]);
}

struct Btrfs {
    dir: PathBuf,
    procfs: PathBuf,
    rootfs: PathBuf,
}

impl Btrfs {
    /// Devices of every btrfs filesystem mounted here that can be queried, by fsid. Any
    /// problem leaves a filesystem (or all of them) out: they fall back to sysfs sizes.
    fn ioctl_stats(&self) -> HashMap<String, Vec<IoctlDevice>> {
        let mut out = HashMap::new();
        let text = match util::read_text(&self.procfs.join("1/mountinfo")) {
            Ok(t) => t,
            // hidepid: our own mount table instead.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match util::read_text(&self.procfs.join("self/mountinfo")) {
                    Ok(t) => t,
                    Err(_) => return out,
                }
            }
            Err(_) => return out,
        };
        let Ok(mounts) = parse_mountinfo(&text) else {
            return out;
        };
        let rootfs = self.rootfs.to_string_lossy();
        let mut done: Vec<&str> = Vec::new();
        for m in &mounts {
            if done.contains(&m.device.as_str()) {
                continue;
            }
            let path = self.under_rootfs(&rootfs, &m.mount_point);
            let Ok(file) = open_subvolume(&path) else {
                continue;
            };
            let Ok((fsid, devices)) = query_fs(&file) else {
                continue;
            };
            if out.contains_key(&fsid) {
                continue;
            }
            done.push(&m.device);
            out.insert(fsid, devices);
        }
        out
    }

    /// node_exporter's rootfsStripPrefix then rootfsFilePath.
    fn under_rootfs(&self, rootfs: &str, mount_point: &str) -> PathBuf {
        let mp = if rootfs == "/" {
            mount_point
        } else {
            match mount_point.strip_prefix(rootfs) {
                Some("") => "/",
                Some(rest) => rest,
                None => mount_point,
            }
        };
        self.rootfs.join(mp.trim_start_matches('/'))
    }
}

impl Collector for Btrfs {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut stats = Vec::new();
        for (_, dir) in util::glob(&self.dir, |n| n.contains('-')) {
            stats.push(read_fs(&dir).context("failed to retrieve Btrfs stats from procfs")?);
        }
        if stats.is_empty() {
            return Ok(());
        }
        render(&stats, &self.ioctl_stats(), out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Btrfs {
        dir: opts.sysfs.join("fs/btrfs"),
        procfs: opts.procfs.clone(),
        rootfs: opts.rootfs.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (p, t) in files {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
    }

    const FS: &str = "fs/btrfs/7f07c59f-6136-449c-ab87-e1cf2328731b";

    /// A three-device RAID5/6 filesystem with its allocation tree.
    fn fixture(root: &Path) {
        let mut files: Vec<(String, &str)> = vec![
            ("label".into(), "backup\n"),
            ("metadata_uuid".into(), "7f07c59f-6136-449c-ab87-e1cf2328731b\n"),
            ("allocation/global_rsv_size".into(), "16777216\n"),
            ("allocation/data/bytes_reserved".into(), "4096\n"),
            ("allocation/data/raid5/total_bytes".into(), "644087808\n"),
            ("allocation/data/raid5/used_bytes".into(), "1024\n"),
            ("allocation/metadata/raid6/total_bytes".into(), "429391872\n"),
            ("allocation/metadata/raid6/used_bytes".into(), "114688\n"),
            ("allocation/system/raid6/total_bytes".into(), "16777216\n"),
            ("allocation/system/raid6/used_bytes".into(), "16384\n"),
            ("allocation/system/total_bytes".into(), "16777216\n"),
            (
                "commit_stats".into(),
                "commits 258051\nlast_commit_ms 1000\nmax_commit_ms 51462\ntotal_commit_ms 47836090\n",
            ),
        ];
        for d in ["loop22", "loop23", "loop24"] {
            files.push((format!("devices/{d}/size"), "20971520\n"));
        }
        let files: Vec<(String, &str)> = files
            .into_iter()
            .map(|(p, t)| (format!("{FS}/{p}"), t))
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        write(root, &refs);
        // Not a filesystem: no dash.
        write(root, &[("fs/btrfs/features/raid56", "0\n")]);
    }

    fn collect(root: &Path) -> anyhow::Result<Vec<Family>> {
        let c = build(
            &Options::from_flags([
                format!("--path.sysfs={}", root.display()),
                format!("--path.procfs={}", root.join("proc").display()),
                format!("--path.rootfs={}", root.display()),
            ])
            .unwrap(),
        )?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out)
    }

    fn series(out: &[Family], name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        out.iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.samples.iter())
            .map(|s| {
                let mut l: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                l.sort();
                (l, s.value)
            })
            .collect()
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    const UUID: &str = "7f07c59f-6136-449c-ab87-e1cf2328731b";

    #[test]
    fn sysfs_filesystem() {
        let d = tempfile::tempdir().unwrap();
        fixture(d.path());
        let out = collect(d.path()).unwrap();
        assert_eq!(
            series(&out, "node_btrfs_info"),
            [(l(&[("uuid", UUID), ("label", "backup")]), 1.0)]
        );
        assert_eq!(
            series(&out, "node_btrfs_allocation_ratio"),
            [
                (
                    l(&[
                        ("uuid", UUID),
                        ("block_group_type", "data"),
                        ("mode", "raid5")
                    ]),
                    1.5
                ),
                (
                    l(&[
                        ("uuid", UUID),
                        ("block_group_type", "metadata"),
                        ("mode", "raid6")
                    ]),
                    3.0
                ),
                (
                    l(&[
                        ("uuid", UUID),
                        ("block_group_type", "system"),
                        ("mode", "raid6")
                    ]),
                    3.0
                ),
            ]
        );
        assert_eq!(
            series(&out, "node_btrfs_reserved_bytes")[0],
            (l(&[("uuid", UUID), ("block_group_type", "data")]), 4096.0)
        );
        assert_eq!(
            series(&out, "node_btrfs_device_size_bytes"),
            ["loop22", "loop23", "loop24"]
                .map(|dev| (l(&[("uuid", UUID), ("device", dev)]), 20971520.0 * 512.0))
        );
        assert_eq!(series(&out, "node_btrfs_max_commit_seconds")[0].1, 51.462);
        assert_eq!(
            series(&out, "node_btrfs_commit_seconds_total")[0].1,
            47836.09
        );
        // Without ioctl data there are no unused-bytes or error series.
        assert!(series(&out, "node_btrfs_device_errors_total").is_empty());
    }

    #[test]
    fn missing_and_broken_pieces() {
        let d = tempfile::tempdir().unwrap();
        // No btrfs at all: success, nothing.
        assert!(collect(d.path()).unwrap().is_empty());
        fixture(d.path());
        let fs = d.path().join(FS);
        // No metadata_uuid: the directory name; no commit_stats: zeros; a garbled number: 0.
        std::fs::remove_file(fs.join("metadata_uuid")).unwrap();
        std::fs::remove_file(fs.join("commit_stats")).unwrap();
        std::fs::write(fs.join("allocation/global_rsv_size"), "lots\n").unwrap();
        let out = collect(d.path()).unwrap();
        assert_eq!(series(&out, "node_btrfs_commits_total")[0].1, 0.0);
        assert_eq!(series(&out, "node_btrfs_global_rsv_size_bytes")[0].1, 0.0);
        assert_eq!(
            series(&out, "node_btrfs_info")[0].0,
            l(&[("uuid", UUID), ("label", "backup")])
        );
        // A garbled commit_stats or a missing allocation/system fails the collector.
        std::fs::write(fs.join("commit_stats"), "commits\n").unwrap();
        assert!(collect(d.path()).is_err());
        std::fs::write(fs.join("commit_stats"), "commits -1\n").unwrap();
        assert!(collect(d.path()).is_err());
        std::fs::write(fs.join("commit_stats"), "commits 1\nfuture 2\n").unwrap();
        assert!(collect(d.path()).is_ok());
        std::fs::remove_dir_all(fs.join("allocation/system")).unwrap();
        assert!(collect(d.path()).is_err());
    }

    #[test]
    fn stale_errors_behave_as_in_procfs() {
        let d = tempfile::tempdir().unwrap();
        fixture(d.path());
        let fs = d.path().join(FS);
        // No devices dir: an error, kept until the allocation reads, so the global reserve
        // reads 0 but the collector succeeds; ratios see 0 devices.
        std::fs::remove_dir_all(fs.join("devices")).unwrap();
        let out = collect(d.path()).unwrap();
        assert_eq!(series(&out, "node_btrfs_global_rsv_size_bytes")[0].1, 0.0);
        assert!(series(&out, "node_btrfs_device_size_bytes").is_empty());
        assert_eq!(series(&out, "node_btrfs_allocation_ratio")[0].1, -0.0);
        // A missing data allocation dir is forgotten once metadata is read.
        std::fs::remove_dir_all(fs.join("allocation/data")).unwrap();
        let out = collect(d.path()).unwrap();
        assert_eq!(series(&out, "node_btrfs_used_bytes").len(), 2);
    }

    #[test]
    fn devices_found_by_ioctl_replace_sysfs_sizes() {
        let s = Stats {
            uuid: UUID.into(),
            devices: vec![("loop22".into(), 1)],
            ..Default::default()
        };
        let other = Stats {
            uuid: "0abb23a9-579b-43e6-ad30-227ef47fcb9d".into(),
            devices: vec![("sdz".into(), 5)],
            ..Default::default()
        };
        let mut ioctl = HashMap::new();
        ioctl.insert(
            UUID.replace('-', ""),
            vec![IoctlDevice {
                path: "/dev/mapper/vg-data".into(),
                uuid: "<zero>".into(),
                bytes_used: 30,
                total_bytes: 100,
                errors: [1, 2, 3, 4, 5],
            }],
        );
        let mut out = Vec::new();
        render(&[s, other], &ioctl, &mut out);
        assert_eq!(
            series(&out, "node_btrfs_device_size_bytes"),
            [
                (
                    l(&[
                        ("uuid", UUID),
                        ("device", "vg-data"),
                        ("btrfs_dev_uuid", "<zero>")
                    ]),
                    100.0
                ),
                (
                    l(&[
                        ("uuid", "0abb23a9-579b-43e6-ad30-227ef47fcb9d"),
                        ("device", "sdz")
                    ]),
                    5.0
                ),
            ]
        );
        assert_eq!(series(&out, "node_btrfs_device_unused_bytes")[0].1, 70.0);
        let errors = series(&out, "node_btrfs_device_errors_total");
        assert_eq!(errors.len(), 5);
        assert_eq!(
            errors[3],
            (
                l(&[
                    ("uuid", UUID),
                    ("type", "corruption"),
                    ("device", "vg-data"),
                    ("btrfs_dev_uuid", "<zero>")
                ]),
                4.0
            )
        );
    }

    #[test]
    fn parsers() {
        assert_eq!(
            parse_commit_stats("commits 3\nmax_commit_ms 7\n").unwrap(),
            CommitStats {
                commits: 3,
                max_commit_ms: 7,
                ..Default::default()
            }
        );
        assert!(parse_commit_stats("commits 1 2\n").is_err());
        assert!(parse_commit_stats("\n").is_err());
        assert!(parse_commit_stats("commits +1\n").is_err());
        assert_eq!(layout_ratio("raid5", 1), f64::INFINITY);
        assert_eq!(layout_ratio("raid10", 4), 2.0);
        assert_eq!(layout_ratio("weird", 4), 0.0);

        let mi = "29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/dm-2 rw\n\
                  30 29 0:40 / /srv/a\\040b rw shared:2 - btrfs /dev/sdb rw,space_cache\n\
                  31 29 0:40 /sub /mnt rw - btrfs /dev/sdb rw\n";
        assert_eq!(
            parse_mountinfo(mi).unwrap(),
            [
                Mount {
                    device: "/dev/sdb".into(),
                    mount_point: "/srv/a b".into()
                },
                Mount {
                    device: "/dev/sdb".into(),
                    mount_point: "/mnt".into()
                }
            ]
        );
        for bad in [
            "29 1 259:2 / / rw - ext4 /dev/dm-2\n",
            "29 1 259:2 / / rw x ext4 /dev/dm-2 rw\n",
            "x 1 259:2 / / rw shared:1 - ext4 /dev/dm-2 rw\n",
            "29 1 2592 / / rw shared:1 - ext4 /dev/dm-2 rw\n",
            "\n",
        ] {
            assert!(parse_mountinfo(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            uuid_string(&[
                0x7f, 0x07, 0xc5, 0x9f, 0x61, 0x36, 0x44, 0x9c, 0xab, 0x87, 0xe1, 0xcf, 0x23, 0x28,
                0x73, 0x1b
            ]),
            UUID
        );
        assert_eq!(uuid_string(&[0; 16]), "<zero>");
    }

    #[test]
    fn mount_points_are_found_under_rootfs() {
        let c = Btrfs {
            dir: PathBuf::new(),
            procfs: PathBuf::new(),
            rootfs: PathBuf::from("/host"),
        };
        assert_eq!(c.under_rootfs("/host", "/host/srv"), Path::new("/host/srv"));
        assert_eq!(c.under_rootfs("/host", "/host"), Path::new("/host/"));
        assert_eq!(c.under_rootfs("/host", "/srv"), Path::new("/host/srv"));
        let c = Btrfs {
            rootfs: PathBuf::from("/"),
            ..c
        };
        assert_eq!(c.under_rootfs("/", "/srv"), Path::new("/srv"));
    }

    #[test]
    fn mounts_that_are_not_btrfs_fall_back_to_sysfs() {
        // The mount table names a btrfs mount at the tree's root, which is not btrfs.
        let d = tempfile::tempdir().unwrap();
        fixture(d.path());
        write(
            d.path(),
            &[(
                "proc/1/mountinfo",
                "30 29 0:40 / / rw shared:2 - btrfs /dev/sdb rw\n",
            )],
        );
        let out = collect(d.path()).unwrap();
        assert_eq!(series(&out, "node_btrfs_device_size_bytes").len(), 3);
    }
}
