//! filesystem collector: statfs(2) on every mount of `{procfs}/1/mountinfo` (falling back to
//! `{procfs}/self/mountinfo` when PID 1's is hidden, as with `hidepid`), as node_exporter
//! 1.12 does: the same default excludes, labels (`\040` and `\011` in mount points decoded,
//! nothing else; `--path.rootfs` stripped from the front), `device_error` label values (Go's
//! errno words, or `mountpoint timeout`), `readonly` from the mount and superblock options,
//! and `purgeable_bytes` 0 (1.12 exports the macOS family on Linux too). A garbled line fails
//! the collector, as procfs's parser does.
//!
//! statfs runs on the stat threads of [`stat_pool`] for any mount that could block: a mount
//! that does not answer within `--collector.filesystem.mount-timeout` is reported with
//! `device_error` 1 and skipped by later scrapes until its statfs returns (node_exporter's
//! stuck-mount rule), while every other mount is still reported. Where node_exporter's
//! first scrape after a mount hangs blocks until the HTTP timeout, nodetune answers after the
//! mount timeout (at most 9/10 of `--collector.timeout`, so that the scrape still gets the
//! other mounts). Mounts whose statfs the kernel answers from memory ([`ANSWERS_FROM_MEMORY`]:
//! ext4, xfs, tmpfs, …), with every listed mount above them of those types too (the path walk
//! crosses them), are asked on the scrape's own thread: handing them to a stat thread and back
//! cost two context switches a scrape, about 8 % of a small host's scrape.
//!
//! The parsed mount list is kept while the mountinfo text stays the same (it rarely changes);
//! the text itself is read on every scrape.

mod errno;
pub mod stat_pool;

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;

use self::stat_pool::{Answer, Pool};
use super::attr::HeldFile;
use super::{util, Collector, Family, Labels, MetricType, Options};

/// node_exporter 1.12's default `--collector.filesystem.mount-points-exclude`.
pub const MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter 1.12's default `--collector.filesystem.fs-types-exclude`.
pub const FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

#[derive(Debug, Clone, clap::Args)]
// Every collector's struct is called Flags: clap needs distinct group names.
#[group(id = "filesystem_flags")]
pub struct Flags {
    /// Regexp of mount points to exclude for filesystem collector. (mutually exclusive to
    /// mount-points-include) [default: node_exporter 1.12's]
    #[arg(long = "collector.filesystem.mount-points-exclude")]
    pub mount_points_exclude: Option<String>,
    /// Regexp of mount points to ignore for filesystem collector (node_exporter 1.5 name).
    #[arg(long = "collector.filesystem.ignored-mount-points", hide = true)]
    pub ignored_mount_points: Option<String>,
    /// Regexp of mount points to include for filesystem collector. (mutually exclusive to
    /// mount-points-exclude)
    #[arg(long = "collector.filesystem.mount-points-include")]
    pub mount_points_include: Option<String>,
    /// Regexp of filesystem types to exclude for filesystem collector. (mutually exclusive to
    /// fs-types-include) [default: node_exporter 1.12's]
    #[arg(long = "collector.filesystem.fs-types-exclude")]
    pub fs_types_exclude: Option<String>,
    /// Regexp of filesystem types to ignore for filesystem collector (node_exporter 1.5 name).
    #[arg(long = "collector.filesystem.ignored-fs-types", hide = true)]
    pub ignored_fs_types: Option<String>,
    /// Regexp of filesystem types to include for filesystem collector. (mutually exclusive to
    /// fs-types-exclude)
    #[arg(long = "collector.filesystem.fs-types-include")]
    pub fs_types_include: Option<String>,
    /// How long to wait for a mount to respond before marking it as stale.
    #[arg(long = "collector.filesystem.mount-timeout", default_value = "5s",
          value_parser = crate::base::duration::parse_duration, hide = true)]
    pub mount_timeout: Duration,
    /// How many stat calls to process simultaneously.
    #[arg(
        long = "collector.filesystem.stat-workers",
        default_value_t = 4,
        hide = true,
        allow_negative_numbers = true
    )]
    pub stat_workers: i64,
}

/// One mount as node_exporter labels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    /// The mount point with `--path.rootfs` stripped (the label).
    pub mount_point: String,
    pub fs_type: String,
    pub major: String,
    pub minor: String,
    /// "ro" in the mount options, or "ro"/"emergency_ro" in the superblock options.
    pub ro: bool,
    /// Project quotas on: ext4's and xfs's statfs then look up a quota record, which may
    /// read the disk.
    pub project_quota: bool,
}

/// Go's `strconv.Atoi`.
fn atoi(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Go's `fmt.Sscanf(s, "%d:%d")`: signed decimals, leading blanks skipped, anything after the
/// second number ignored.
fn major_minor(s: &[u8]) -> Option<(i64, i64)> {
    fn int(s: &[u8]) -> Option<(i64, &[u8])> {
        let s = &s[s
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c))
            .unwrap_or(s.len())..];
        let sign = usize::from(matches!(s.first(), Some(b'+' | b'-')));
        let digits = s[sign..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n = std::str::from_utf8(&s[..sign + digits])
            .ok()?
            .parse()
            .ok()?;
        Some((n, &s[sign + digits..]))
    }
    let (major, rest) = int(s)?;
    let (minor, _) = int(rest.strip_prefix(b":")?)?;
    Some((major, minor))
}

/// The value an option list (`a,b=c`) gives `key` when read into a map the way procfs does:
/// split at ',', then at '=' (the value is the part between the first and second '='), the
/// last occurrence winning.
fn option<'a>(opts: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut found = None;
    for opt in opts.split(|b| *b == b',') {
        let mut parts = opt.split(|b| *b == b'=');
        if parts.next() == Some(key) {
            found = Some(parts.next().unwrap_or(b""));
        }
    }
    found
}

/// Replaces every `from` with `to`.
fn replace(s: Vec<u8>, from: &[u8], to: u8) -> Vec<u8> {
    if !s.windows(from.len()).any(|w| w == from) {
        return s;
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.push(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// node_exporter's rootfsStripPrefix: the rootfs flag as written, removed from the front of the
/// path as a string ("/" when nothing is left); nothing is removed when the rootfs is "/".
fn strip_rootfs<'a>(path: &'a [u8], rootfs: &[u8]) -> &'a [u8] {
    if rootfs == b"/" {
        return path;
    }
    match path.strip_prefix(rootfs) {
        Some([]) => b"/",
        Some(rest) => rest,
        None => path,
    }
}

/// Go's `filepath.Clean`.
fn clean(p: &[u8]) -> Vec<u8> {
    let rooted = p.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(last) if *last != b".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(seg),
            },
            _ => parts.push(seg),
        }
    }
    let mut out = Vec::with_capacity(p.len() + 1);
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `filepath.Join(rootfs, name)`.
fn join(rootfs: &[u8], name: &[u8]) -> Vec<u8> {
    match (rootfs.is_empty(), name.is_empty()) {
        (true, true) => Vec::new(),
        (true, false) => clean(name),
        (false, true) => clean(rootfs),
        (false, false) => clean(&[rootfs, b"/", name].concat()),
    }
}

/// Parses /proc/PID/mountinfo as procfs and node_exporter do; `rootfs` is `--path.rootfs` as
/// written. Any malformed line fails the whole file.
pub fn parse_mountinfo(text: &[u8], rootfs: &[u8]) -> anyhow::Result<Vec<Mount>> {
    let mut out = Vec::new();
    for line in util::scan_lines(text) {
        let f: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let n = f.len();
        let show = || util::to_valid_utf8(line).into_owned();
        anyhow::ensure!(n >= 10, "too few fields in mount string: {}", show());
        anyhow::ensure!(
            f[n - 4] == b"-",
            "couldn't find separator in expected field: {}",
            util::to_valid_utf8(f[n - 4])
        );
        anyhow::ensure!(
            atoi(f[0]).is_some() && atoi(f[1]).is_some(),
            "bad mount or parent ID: {}",
            show()
        );
        let (major, minor) = major_minor(f[2]).with_context(|| {
            format!(
                "malformed mount point MajorMinorVer: {:?}",
                util::to_valid_utf8(f[2])
            )
        })?;
        let mp = replace(replace(f[4].to_vec(), b"\\040", b' '), b"\\011", b'\t');
        let (opts, super_opts) = (f[5], f[n - 1]);
        let ro = option(opts, b"ro") == Some(b"")
            || option(super_opts, b"ro") == Some(b"")
            || option(super_opts, b"emergency_ro") == Some(b"");
        let project_quota = [&b"prjquota"[..], b"pquota", b"pqnoenforce"]
            .iter()
            .any(|o| option(super_opts, o).is_some() || option(opts, o).is_some());
        out.push(Mount {
            device: util::to_valid_utf8(f[n - 2]).into_owned(),
            mount_point: util::to_valid_utf8(strip_rootfs(&mp, rootfs)).into_owned(),
            fs_type: util::to_valid_utf8(f[n - 3]).into_owned(),
            major: major.to_string(),
            minor: minor.to_string(),
            ro,
            project_quota,
        });
    }
    Ok(out)
}

/// A mount to ask, as parsed and filtered: its labels and the path statfs gets (None when the
/// path cannot be passed to the kernel: Go's statfs answers EINVAL for a NUL byte).
struct Entry {
    mount: Mount,
    path: Option<Arc<CString>>,
    /// Asked on the scrape's thread (see [`inline`]), not handed to a stat thread.
    inline: bool,
    /// The mount's label sets, made at its first scrape and kept with the entry: those of its
    /// series without a device error, and `node_filesystem_mount_info`'s.
    labels: OnceLock<(Labels, Labels)>,
}

/// In label-name order: the encoder's sort then finds them sorted.
fn usage_set(m: &Mount, err: &str) -> Labels {
    super::labels(&[
        ("device", m.device.as_str()),
        ("device_error", err),
        ("fstype", m.fs_type.as_str()),
        ("mountpoint", m.mount_point.as_str()),
    ])
}

impl Entry {
    fn new(mount: Mount, path: Option<Arc<CString>>, inline: bool) -> Entry {
        Entry {
            mount,
            path,
            inline,
            labels: OnceLock::new(),
        }
    }

    /// The label set of this mount's series with `device_error` `err` (kept for "").
    fn usage_labels(&self, err: &str) -> Labels {
        if err.is_empty() {
            return self.kept().0.clone();
        }
        usage_set(&self.mount, err)
    }

    fn kept(&self) -> &(Labels, Labels) {
        let m = &self.mount;
        self.labels.get_or_init(|| {
            (
                usage_set(m, ""),
                super::labels(&[
                    ("device", m.device.as_str()),
                    ("major", m.major.as_str()),
                    ("minor", m.minor.as_str()),
                    ("mountpoint", m.mount_point.as_str()),
                ]),
            )
        })
    }
}

/// Filesystems whose statfs is answered from counters in memory, with no I/O and no server
/// to wait for (ext4_statfs, xfs_fs_statfs, shmem_statfs, ...). Not btrfs (it takes the
/// chunk mutex), not overlay (it asks its upper filesystem, whatever that is), nothing
/// networked or FUSE.
const ANSWERS_FROM_MEMORY: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "tmpfs", "ramfs", "devtmpfs", "vfat",
];

/// Which of `mounts` (all of the mount list, before the filters) may be asked on the scrape's
/// own thread: a mount of a type in [`ANSWERS_FROM_MEMORY`], without project quotas, whose
/// listed ancestors (the mounts the path walk to it crosses) are all of such types too.
/// `paths` are the mounts' statfs paths, `--path.rootfs` joined.
fn inline(mounts: &[Mount], paths: &[Vec<u8>]) -> Vec<bool> {
    let local = |m: &Mount| ANSWERS_FROM_MEMORY.contains(&m.fs_type.as_str());
    // The paths of the other mounts: a hash lookup per ancestor, not a pass over every mount
    // per mount (hosts with thousands of mounts set this up again whenever one comes or goes).
    let others: HashSet<&[u8]> = mounts
        .iter()
        .zip(paths)
        .filter(|(m, _)| !local(m))
        .map(|(_, p)| p.as_slice())
        .collect();
    // Itself (a mount stacked on the same path is what statfs would reach), the root, and
    // every directory on the way.
    let root_other = others.contains(&b"/"[..]);
    let crosses_other = |path: &[u8]| {
        root_other
            || others.contains(path)
            || (1..path.len()).any(|i| path[i] == b'/' && others.contains(&path[..i]))
    };
    mounts
        .iter()
        .zip(paths)
        .map(|(m, path)| local(m) && !m.project_quota && !crosses_other(path))
        .collect()
}

/// The last mount list read, parsed and filtered.
#[derive(Default)]
struct Cache {
    text: Vec<u8>,
    entries: Arc<Vec<Entry>>,
}

struct Filesystem {
    /// PID 1's mountinfo, and this process's for when PID 1's is hidden; held open.
    mountinfo: [HeldFile; 2],
    rootfs: Vec<u8>,
    mount_points: util::DeviceFilter,
    fs_types: util::DeviceFilter,
    wait: Duration,
    pool: Arc<Pool>,
    cache: Mutex<Cache>,
}

impl Filesystem {
    fn read_mountinfo(&self) -> anyhow::Result<Vec<u8>> {
        let [pid1, own] = &self.mountinfo;
        match pid1.bytes() {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => own
                .bytes()
                .with_context(|| format!("reading {}", own.path().display())),
            Err(e) => Err(e).with_context(|| format!("reading {}", pid1.path().display())),
        }
    }

    /// The mounts to ask this scrape: the cached list while the text is unchanged.
    fn entries(&self) -> anyhow::Result<Arc<Vec<Entry>>> {
        let text = self.read_mountinfo()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.text != text || cache.entries.is_empty() {
            let mounts = parse_mountinfo(&text, &self.rootfs)
                .with_context(|| format!("parsing {}", self.mountinfo[0].path().display()))?;
            let paths: Vec<Vec<u8>> = mounts
                .iter()
                .map(|m| join(&self.rootfs, m.mount_point.as_bytes()))
                .collect();
            let inline = inline(&mounts, &paths);
            let entries = mounts
                .into_iter()
                .zip(paths)
                .zip(inline)
                .filter(|((m, _), _)| !self.mount_points.ignored(&m.mount_point))
                .filter(|((m, _), _)| !self.fs_types.ignored(&m.fs_type))
                .map(|((m, path), inline)| {
                    Entry::new(m, CString::new(path).ok().map(Arc::new), inline)
                })
                .collect();
            *cache = Cache {
                text,
                entries: Arc::new(entries),
            };
        }
        Ok(cache.entries.clone())
    }
}

/// Families in the order node_exporter sends them (the encoder sorts anyway).
const HELP: [(&str, &str); 9] = [
    (
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    ),
    ("node_filesystem_readonly", "Filesystem read-only status."),
    ("node_filesystem_size_bytes", "Filesystem size in bytes."),
    (
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    ),
    (
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    ),
    ("node_filesystem_files", "Filesystem total file nodes."),
    (
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    ),
    (
        "node_filesystem_mount_info",
        "Filesystem mount information.",
    ),
    (
        "node_filesystem_purgeable_bytes",
        "Filesystem space available including purgeable space (MacOS specific).",
    ),
];

/// The `device_error` label for an answer.
fn error_label(a: &Answer) -> Cow<'static, str> {
    match a {
        Answer::Usage(_) => Cow::Borrowed(""),
        Answer::Error(e) => errno::text(*e),
        Answer::TimedOut => Cow::Borrowed("mountpoint timeout"),
    }
}

/// What makes two mounts the same series: device, mount point, type, error, major, minor.
type SeriesKey<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Cow<'static, str>,
    &'a str,
    &'a str,
);

/// Turns the answers into families. A mount listed twice with the same labels is reported
/// once (node_exporter's `seen` map).
fn render(entries: &[Entry], answers: &[Answer], out: &mut Vec<Family>) {
    let mut fams: Vec<Family> = HELP
        .iter()
        .map(|(n, h)| {
            let mut f = Family::new(*n, *h, MetricType::Gauge);
            f.samples.reserve(entries.len());
            f
        })
        .collect();
    let mut seen: HashSet<SeriesKey> = HashSet::with_capacity(entries.len());
    for (e, a) in entries.iter().zip(answers) {
        let m = &e.mount;
        let err = error_label(a);
        if !seen.insert((
            &m.device,
            &m.mount_point,
            &m.fs_type,
            err.clone(),
            &m.major,
            &m.minor,
        )) {
            continue;
        }
        // One label set for the mount's many series.
        let labels = e.usage_labels(&err);
        // A stuck mount's read-only flag is not looked at (node_exporter reports 0).
        let ro = matches!(a, Answer::Usage(_) | Answer::Error(_)) && m.ro;
        let u = match a {
            Answer::Usage(u) => u,
            _ => {
                fams[0].push_labels(&labels, 1.0);
                fams[1].push_labels(&labels, f64::from(u8::from(ro)));
                continue;
            }
        };
        let bsize = u.bsize as f64;
        for (f, v) in fams.iter_mut().zip([
            0.0,
            f64::from(u8::from(ro)),
            u.blocks as f64 * bsize,
            u.bfree as f64 * bsize,
            u.bavail as f64 * bsize,
            u.files as f64,
            u.ffree as f64,
        ]) {
            f.push_labels(&labels, v);
        }
        fams[7].push_labels(&e.kept().1, 1.0);
        fams[8].push_labels(&labels, 0.0);
    }
    out.extend(fams);
}

impl Collector for Filesystem {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let entries = self.entries()?;
        let asked: Vec<Arc<CString>> = entries
            .iter()
            .filter(|e| !e.inline)
            .filter_map(|e| e.path.clone())
            .collect();
        let mut answers = if asked.is_empty() {
            Vec::new()
        } else {
            self.pool.stat_all(&asked, self.wait)
        }
        .into_iter();
        let answers: Vec<Answer> = entries
            .iter()
            .map(|e| match &e.path {
                Some(path) if e.inline => self.pool.stat_here(path),
                Some(_) => answers.next().unwrap_or(Answer::TimedOut),
                None => Answer::Error(libc::EINVAL),
            })
            .collect();
        render(&entries, &answers, out);
        Ok(())
    }
}

/// node_exporter's filter flags: the 1.5 name stands in for an unset exclude; an include
/// without an explicit exclude drops the default exclude; both set is an error.
fn filter(
    exclude: &Option<String>,
    old: &Option<String>,
    include: &Option<String>,
    default: &str,
    what: &str,
    old_name: &str,
) -> anyhow::Result<util::DeviceFilter> {
    let flag = format!("collector.filesystem.{what}-exclude");
    let mut ex = match (exclude, old.as_deref().filter(|s| !s.is_empty())) {
        (None, Some(o)) => o.to_string(),
        (Some(_), Some(_)) => {
            anyhow::bail!("--collector.filesystem.{old_name} and --{flag} are mutually exclusive")
        }
        (Some(e), None) => e.clone(),
        (None, None) => default.to_string(),
    };
    let inc = include.clone().unwrap_or_default();
    if !inc.is_empty() && exclude.is_none() {
        ex.clear();
    }
    anyhow::ensure!(
        ex.is_empty() || inc.is_empty(),
        "--{flag} and --collector.filesystem.{what}-include are mutually exclusive"
    );
    Ok(util::DeviceFilter {
        exclude: util::optional_regex(&Some(ex), &flag)?,
        include: util::optional_regex(&Some(inc), &format!("collector.filesystem.{what}-include"))?,
    })
}

/// The process's stat threads, shared by every filesystem collector built (one per scraper:
/// `nodetune run` and tests may build several).
fn shared_pool(workers: usize) -> Arc<Pool> {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(workers, stat_pool::statfs))
        .clone()
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let f = &opts.filesystem;
    let mount_points = filter(
        &f.mount_points_exclude,
        &f.ignored_mount_points,
        &f.mount_points_include,
        MOUNT_POINTS_EXCLUDE,
        "mount-points",
        "ignored-mount-points",
    )?;
    let fs_types = filter(
        &f.fs_types_exclude,
        &f.ignored_fs_types,
        &f.fs_types_include,
        FS_TYPES_EXCLUDE,
        "fs-types",
        "ignored-fs-types",
    )?;
    let workers = usize::try_from(f.stat_workers.max(1)).unwrap_or(1);
    Ok(Box::new(Filesystem {
        mountinfo: [
            HeldFile::new(opts.procfs.join("1/mountinfo")),
            HeldFile::new(opts.procfs.join("self/mountinfo")),
        ],
        rootfs: opts.rootfs.as_os_str().as_bytes().to_vec(),
        mount_points,
        fs_types,
        wait: f.mount_timeout.min(opts.timeout * 9 / 10),
        pool: shared_pool(workers),
        cache: Mutex::new(Cache::default()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
21 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
24 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
30 24 0:25 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=1620352k,mode=755
31 24 259:1 / /boot/efi ro,relatime shared:9 - vfat /dev/nvme0n1p1 rw,fmask=0077
32 24 0:40 / /mnt/with\\040space\\011tab rw,relatime - ext4 /dev/sdb1 rw
33 24 0:41 / /mnt/back\\134slash rw,relatime - ext4 /dev/sdb2 rw
34 24 8:3 / /srv rw,relatime master:1 shared:2 - xfs /dev/sda3 ro
35 24 8:4 / /data rw - ext4 /dev/sda4 rw,emergency_ro
36 24 8:5 / /opt rw,ro=1 - ext4 /dev/sda5 rw
";

    #[test]
    fn mountinfo_as_node_exporter_reads_it() {
        let m = parse_mountinfo(INFO.as_bytes(), b"/").unwrap();
        assert_eq!(m.len(), 9);
        assert_eq!(
            m[1],
            Mount {
                device: "/dev/nvme0n1p2".into(),
                mount_point: "/".into(),
                fs_type: "ext4".into(),
                major: "259".into(),
                minor: "2".into(),
                ro: false,
                project_quota: false,
            }
        );
        // ro in the mount options, in the superblock's, emergency_ro; "ro=1" is not ro.
        let ro: Vec<bool> = m.iter().map(|m| m.ro).collect();
        assert_eq!(
            ro,
            [false, false, false, true, false, false, true, true, false]
        );
        // \040 and \011 are decoded, \134 (backslash) is not: node_exporter's rule.
        assert_eq!(m[4].mount_point, "/mnt/with space\ttab");
        assert_eq!(m[5].mount_point, "/mnt/back\\134slash");
        // Optional fields (master:1 shared:2) shift nothing.
        assert_eq!(
            (m[6].fs_type.as_str(), m[6].device.as_str()),
            ("xfs", "/dev/sda3")
        );
    }

    #[test]
    fn rootfs_is_stripped_as_a_string_and_joined_back() {
        let m = parse_mountinfo(
            b"1 0 8:1 / /host rw - ext4 /dev/sda1 rw\n2 1 8:2 / /host/var rw - ext4 /dev/sda2 rw\n3 1 0:5 / /proc rw - proc proc rw\n",
            b"/host",
        )
        .unwrap();
        let mps: Vec<&str> = m.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(mps, ["/", "/var", "/proc"]);
        assert_eq!(join(b"/host", b"/var"), b"/host/var");
        assert_eq!(join(b"/", b"/var/"), b"/var");
        assert_eq!(join(b"/host/", b"/x/./y//z/"), b"/host/x/y/z");
        assert_eq!(join(b"/host", b"/../x"), b"/x");
        assert_eq!(join(b"/", b"/.."), b"/");
        assert_eq!(clean(b"a/../../b"), b"../b");
        assert_eq!(clean(b""), b".");
    }

    #[test]
    fn only_mounts_answering_from_memory_are_asked_inline() {
        let text = "\
24 1 259:2 / / rw - ext4 /dev/sda1 rw
25 24 0:50 / /mnt/nfs rw - nfs4 srv:/x rw
26 25 259:3 / /mnt/nfs/inner rw - ext4 /dev/sdb1 rw
27 24 259:4 / /data rw - xfs /dev/sdc1 rw
28 27 0:51 / /data/remote rw - fuse.sshfs me@srv: rw
29 24 0:26 / /run rw - tmpfs tmpfs rw
30 24 259:5 / /srv rw - btrfs /dev/sdd1 rw
31 24 259:6 / /stacked rw - ext4 /dev/sde1 rw
32 24 0:52 / /stacked rw - nfs srv:/y rw
33 24 259:7 / /datafile rw - ext4 /dev/sdf1 rw
34 24 259:8 / /quota rw - xfs /dev/sdg1 rw,prjquota
";
        for rootfs in ["", "/host"] {
            let mounts = parse_mountinfo(text.as_bytes(), rootfs.as_bytes()).unwrap();
            let paths: Vec<Vec<u8>> = mounts
                .iter()
                .map(|m| join(rootfs.as_bytes(), m.mount_point.as_bytes()))
                .collect();
            let got: Vec<(&str, bool)> = mounts
                .iter()
                .map(|m| m.mount_point.as_str())
                .zip(inline(&mounts, &paths))
                .collect();
            assert_eq!(
                got,
                [
                    ("/", true),
                    ("/mnt/nfs", false),
                    // Under an NFS mount: the path walk crosses it.
                    ("/mnt/nfs/inner", false),
                    ("/data", true),
                    ("/data/remote", false),
                    ("/run", true),
                    ("/srv", false),
                    // Covered by an NFS mount on the same path, which statfs would reach.
                    ("/stacked", false),
                    ("/stacked", false),
                    // A sibling whose name starts like /data's is not under it.
                    ("/datafile", true),
                    ("/quota", false),
                ],
                "rootfs {rootfs:?}"
            );
        }
    }

    #[test]
    fn garbled_mountinfo_fails_the_file() {
        for bad in [
            "24 1 259:2 / / rw - ext4\n",                        // too few fields
            "24 1 259:2 / / rw shared:1 ext4 /dev/x rw extra\n", // no separator
            "x 1 259:2 / / rw - ext4 /dev/x rw\n",               // mount ID
            "24 1 259 / / rw - ext4 /dev/x rw\n",                // MajorMinorVer
            "24 1 a:b / / rw - ext4 /dev/x rw\n",
            "24 1 259:2 / / rw - ext4 /dev/x rw\n\n", // an empty line
            "24  1 259:2 / / rw - ext4 /dev/x rw\n",  // two spaces shift the fields
        ] {
            assert!(parse_mountinfo(bad.as_bytes(), b"/").is_err(), "{bad:?}");
        }
        // What Go's Sscanf("%d:%d") and Atoi accept.
        let m = parse_mountinfo(b"+24 -1 08:+01x / / rw - ext4 /dev/x rw", b"/").unwrap();
        assert_eq!((m[0].major.as_str(), m[0].minor.as_str()), ("8", "1"));
        assert!(parse_mountinfo(b"", b"/").unwrap().is_empty());
        // Bytes that are not UTF-8: one U+FFFD per run, as Go's ToValidUTF8.
        let m =
            parse_mountinfo(b"1 0 8:1 / /mnt/\xff\xfe rw - ext4 /dev/\xc3 rw\r\n", b"/").unwrap();
        assert_eq!(m[0].mount_point, "/mnt/\u{FFFD}");
        assert_eq!(m[0].device, "/dev/\u{FFFD}");
    }

    fn usage(blocks: u64) -> Answer {
        Answer::Usage(stat_pool::Usage {
            bsize: 4096,
            blocks,
            bfree: 10,
            bavail: 5,
            files: 1000,
            ffree: 900,
        })
    }

    fn series(fams: &[Family]) -> Vec<String> {
        let mut v = Vec::new();
        for f in fams {
            for s in &f.samples {
                let mut l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                l.sort();
                v.push(format!("{} {} {}", f.name, l.join(","), s.value));
            }
        }
        v.sort();
        v
    }

    #[test]
    fn render_ok_error_stuck_and_duplicates() {
        let m = parse_mountinfo(INFO.as_bytes(), b"/").unwrap();
        let entries: Vec<Entry> = [1, 3, 1, 2, 2]
            .map(|i| Entry::new(m[i].clone(), None, false))
            .into();
        let answers = [
            usage(100),
            Answer::Error(libc::EACCES),
            usage(100),
            Answer::TimedOut,
            Answer::TimedOut,
        ];
        let mut out = Vec::new();
        render(&entries, &answers, &mut out);
        // Again, with the kept label sets.
        let mut again = Vec::new();
        render(&entries, &answers, &mut again);
        assert_eq!(out, again);
        let got = series(&out);
        let want = [
            "node_filesystem_avail_bytes device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 20480",
            "node_filesystem_device_error device=/dev/nvme0n1p1,device_error=permission denied,fstype=vfat,mountpoint=/boot/efi 1",
            "node_filesystem_device_error device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 0",
            "node_filesystem_device_error device=tmpfs,device_error=mountpoint timeout,fstype=tmpfs,mountpoint=/run 1",
            "node_filesystem_files device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 1000",
            "node_filesystem_files_free device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 900",
            "node_filesystem_free_bytes device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 40960",
            "node_filesystem_mount_info device=/dev/nvme0n1p2,major=259,minor=2,mountpoint=/ 1",
            "node_filesystem_purgeable_bytes device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 0",
            "node_filesystem_readonly device=/dev/nvme0n1p1,device_error=permission denied,fstype=vfat,mountpoint=/boot/efi 1",
            "node_filesystem_readonly device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 0",
            "node_filesystem_readonly device=tmpfs,device_error=mountpoint timeout,fstype=tmpfs,mountpoint=/run 0",
            "node_filesystem_size_bytes device=/dev/nvme0n1p2,device_error=,fstype=ext4,mountpoint=/ 409600",
        ];
        assert_eq!(got, want);
    }

    fn opts(flags: &[&str]) -> Options {
        Options::from_flags(flags.iter().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn filter_flags_as_node_exporter() {
        let f = |flags: &[&str]| {
            let o = opts(flags);
            let x = &o.filesystem;
            filter(
                &x.mount_points_exclude,
                &x.ignored_mount_points,
                &x.mount_points_include,
                MOUNT_POINTS_EXCLUDE,
                "mount-points",
                "ignored-mount-points",
            )
        };
        let d = f(&[]).unwrap();
        assert!(d.ignored("/proc") && d.ignored("/sys/fs/cgroup") && d.ignored("/dev"));
        assert!(!d.ignored("/") && !d.ignored("/home") && !d.ignored("/devices"));
        // The 1.5 name replaces the default.
        let d = f(&["--collector.filesystem.ignored-mount-points=^/home"]).unwrap();
        assert!(d.ignored("/home") && !d.ignored("/proc"));
        assert!(f(&[
            "--collector.filesystem.ignored-mount-points=^/home",
            "--collector.filesystem.mount-points-exclude=^/x"
        ])
        .is_err());
        // An include alone drops the default exclude.
        let d = f(&["--collector.filesystem.mount-points-include=^/(proc|srv)"]).unwrap();
        assert!(!d.ignored("/proc") && d.ignored("/home"));
        assert!(f(&[
            "--collector.filesystem.mount-points-include=^/srv",
            "--collector.filesystem.mount-points-exclude=^/x"
        ])
        .is_err());
        // An explicit empty exclude with an include is fine.
        assert!(f(&[
            "--collector.filesystem.mount-points-include=^/srv",
            "--collector.filesystem.mount-points-exclude="
        ])
        .is_ok());
        assert!(f(&["--collector.filesystem.mount-points-exclude=("]).is_err());
        let o = opts(&[]);
        let t = filter(
            &o.filesystem.fs_types_exclude,
            &o.filesystem.ignored_fs_types,
            &o.filesystem.fs_types_include,
            FS_TYPES_EXCLUDE,
            "fs-types",
            "ignored-fs-types",
        )
        .unwrap();
        assert!(!t.ignored("tmpfs") && t.ignored("cgroup2") && t.ignored("overlay"));
        assert_eq!(o.filesystem.mount_timeout, Duration::from_secs(5));
        assert_eq!(o.filesystem.stat_workers, 4);
    }

    #[test]
    fn collects_real_mounts_vanished_and_odd_paths() {
        // A fake mountinfo whose mount points are directories of a temp dir (statfs works on
        // any directory), one that does not exist, one with a space, one excluded.
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("proc/1")).unwrap();
        std::fs::create_dir_all(root.join("a dir")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        let r = root.display().to_string();
        let esc = r.replace(' ', "\\040");
        std::fs::write(
            root.join("proc/1/mountinfo"),
            format!(
                "1 0 8:1 / {esc}/a\\040dir rw - ext4 /dev/a rw\n\
                 2 0 8:2 / {esc}/b rw - ext4 /dev/b ro\n\
                 3 0 8:3 / {esc}/gone rw - ext4 /dev/c rw\n\
                 4 0 0:4 / {esc}/b rw - proc proc rw\n"
            ),
        )
        .unwrap();
        let o = opts(&[&format!("--path.procfs={}", root.join("proc").display())]);
        let c = build(&o).unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let got = series(&out);
        let err = |mp: &str, e: &str, v: u8| {
            format!("node_filesystem_device_error device=/dev/{mp},device_error={e},fstype=ext4,mountpoint={r}/{} {v}",
                match mp { "a" => "a dir", "b" => "b", _ => "gone" })
        };
        assert!(got.contains(&err("a", "", 0)), "{got:#?}");
        assert!(got.contains(&err("b", "", 0)));
        assert!(got.contains(&err("c", "no such file or directory", 1)));
        assert!(got.contains(&format!(
            "node_filesystem_readonly device=/dev/b,device_error=,fstype=ext4,mountpoint={r}/b 1"
        )));
        assert!(!got.iter().any(|s| s.contains("fstype=proc")));
        assert!(!got
            .iter()
            .any(|s| s.starts_with("node_filesystem_size_bytes device=/dev/c")));
        // The same text again: the cached list, the same answer.
        let mut again = Vec::new();
        c.collect(&mut again).unwrap();
        let strip = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .filter(|s| !s.contains("free") && !s.contains("avail"))
                .collect()
        };
        assert_eq!(strip(series(&again)), strip(got));
        // Garbled now: the collector fails; the PID-1 file hidden: self/mountinfo is read.
        std::fs::write(root.join("proc/1/mountinfo"), "garbage\n").unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::remove_file(root.join("proc/1/mountinfo")).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(
            root.join("proc/self/mountinfo"),
            format!("1 0 8:1 / {esc}/b rw - ext4 /dev/b rw\n"),
        )
        .unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert!(series(&out).contains(&err("b", "", 0)));
    }
}
