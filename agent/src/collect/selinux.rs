//! selinux collector: `node_selinux_enabled`, and with SELinux on `node_selinux_config_mode`
//! and `node_selinux_current_mode`, decided the way node_exporter 1.12's go-selinux library
//! does, on the live system (absolute paths; `--path.*` do not apply, as in node_exporter):
//! - SELinux is on when a writable selinuxfs is mounted (`/sys/fs/selinux`, else one found in
//!   /proc/self/mountinfo when /proc/filesystems lists selinuxfs) and this thread's label
//!   (/proc/thread-self/attr/current) is not `kernel`. Decided once per process, as the
//!   library caches it.
//! - Off (Debian, Ubuntu: no selinuxfs): `node_selinux_enabled 0` and nothing else; the
//!   collector succeeds.
//! - config mode: SELINUX= in /etc/selinux/config (`enforcing` 1, `permissive` 0, else -1);
//!   current mode: the selinuxfs `enforce` file as an integer (-1 when unreadable). Both read on
//!   every scrape.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{util, Collector, Family, MetricType, Options};

/// Where go-selinux looks.
#[derive(Debug, Clone)]
pub struct Paths {
    pub selinuxfs: PathBuf,
    pub filesystems: PathBuf,
    pub mountinfo: PathBuf,
    pub current: PathBuf,
    pub config: PathBuf,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            selinuxfs: "/sys/fs/selinux".into(),
            filesystems: "/proc/filesystems".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            current: "/proc/thread-self/attr/current".into(),
            config: "/etc/selinux/config".into(),
        }
    }
}

/// SELINUX_MAGIC, selinuxfs's statfs f_type.
const SELINUX_MAGIC: u32 = 0xf97c_ff8c;

/// True for a writable selinuxfs mount.
fn is_selinuxfs(path: &Path) -> bool {
    use nix::sys::statvfs::FsFlags;
    loop {
        match nix::sys::statfs::statfs(path) {
            Ok(s) => {
                return s.filesystem_type().0 as u32 == SELINUX_MAGIC
                    && !s.flags().contains(FsFlags::ST_RDONLY)
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// The selinuxfs mount points listed in a mountinfo text, in order (the fifth field of each
/// line with " - selinuxfs ").
pub fn selinuxfs_mounts(mountinfo: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    util::scan_lines(mountinfo)
        .filter(|l| l.windows(13).any(|w| w == b" - selinuxfs "))
        .filter_map(|l| {
            let f: Vec<&[u8]> = l.splitn(6, |b| *b == b' ').collect();
            (f.len() >= 6).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(f[4])))
        })
        .collect()
}

/// The selinuxfs mount point, if SELinux has one.
pub fn mount_point(p: &Paths, verify: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    if verify(&p.selinuxfs) {
        return Some(p.selinuxfs.clone());
    }
    let fs = util::read_bytes(&p.filesystems).ok()?;
    if !fs.windows(11).any(|w| w == b"\tselinuxfs\n") {
        return None;
    }
    let info = util::read_bytes(&p.mountinfo).ok()?;
    selinuxfs_mounts(&info).into_iter().find(|m| verify(m))
}

/// go-selinux's GetEnabled: a selinuxfs mount, and a label other than "kernel" (an unreadable
/// label counts as not "kernel").
pub fn enabled(p: &Paths, verify: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    let mnt = mount_point(p, verify)?;
    let label = util::read_bytes(&p.current).unwrap_or_default();
    let label = label.strip_suffix(b"\0").unwrap_or(&label);
    (label != b"kernel").then_some(mnt)
}

/// go-selinux's readConfig: the value of `key=` in the config file, quotes trimmed.
pub fn config_value(text: &[u8], key: &str) -> Option<String> {
    for line in util::scan_lines(text) {
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b';' || line[0] == b'#' {
            continue;
        }
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            continue;
        };
        if &line[..eq] == key.as_bytes() {
            let mut v = &line[eq + 1..];
            while let [b'"', rest @ ..] = v {
                v = rest;
            }
            while let [rest @ .., b'"'] = v {
                v = rest;
            }
            return Some(util::to_valid_utf8(v).into_owned());
        }
    }
    None
}

/// DefaultEnforceMode: 1 enforcing, 0 permissive, -1 otherwise.
pub fn config_mode(text: &[u8]) -> f64 {
    match config_value(text, "SELINUX").as_deref() {
        Some("enforcing") => 1.0,
        Some("permissive") => 0.0,
        _ => -1.0,
    }
}

/// EnforceMode: the enforce file as a Go `strconv.Atoi` (no trimming), -1 on any error.
pub fn current_mode(text: Option<&[u8]>) -> f64 {
    text.and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(-1.0, |v| v as f64)
}

struct Selinux {
    paths: Paths,
    /// The selinuxfs mount when SELinux is on; decided at the first scrape.
    on: OnceLock<Option<PathBuf>>,
}

impl Collector for Selinux {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let on = self.on.get_or_init(|| enabled(&self.paths, &is_selinuxfs));
        out.push(Family::single(
            "node_selinux_enabled",
            "SELinux is enabled, 1 is true, 0 is false",
            MetricType::Gauge,
            if on.is_some() { 1.0 } else { 0.0 },
        ));
        let Some(mnt) = on else {
            return Ok(());
        };
        out.push(Family::single(
            "node_selinux_config_mode",
            "Configured SELinux enforcement mode",
            MetricType::Gauge,
            config_mode(&std::fs::read(&self.paths.config).unwrap_or_default()),
        ));
        out.push(Family::single(
            "node_selinux_current_mode",
            "Current SELinux enforcement mode",
            MetricType::Gauge,
            current_mode(util::read_bytes(&mnt.join("enforce")).ok().as_deref()),
        ));
        Ok(())
    }
}

pub fn build(_: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Selinux {
        paths: Paths::default(),
        on: OnceLock::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(d: &Path) -> Paths {
        Paths {
            selinuxfs: d.join("sys/fs/selinux"),
            filesystems: d.join("filesystems"),
            mountinfo: d.join("mountinfo"),
            current: d.join("current"),
            config: d.join("config"),
        }
    }

    #[test]
    fn enabled_as_go_selinux_decides() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        let alt = d.path().join("alt");
        let yes = |m: &Path| m == p.selinuxfs;
        let never = |_: &Path| false;
        // Debian: no selinuxfs at all.
        assert_eq!(enabled(&p, &never), None);
        // The default mount is selinuxfs, the label is a real one (or unreadable).
        assert_eq!(enabled(&p, &yes), Some(p.selinuxfs.clone()));
        std::fs::write(&p.current, "system_u:system_r:kernel_t:s0\0").unwrap();
        assert_eq!(enabled(&p, &yes), Some(p.selinuxfs.clone()));
        // Before a policy is loaded every process is "kernel": off.
        std::fs::write(&p.current, "kernel\0").unwrap();
        assert_eq!(enabled(&p, &yes), None);
        std::fs::write(&p.current, "x\0").unwrap();
        // Elsewhere, found through mountinfo only when /proc/filesystems has selinuxfs.
        let at_alt = |m: &Path| m == alt;
        std::fs::write(
            &p.mountinfo,
            format!(
                "20 1 0:5 / /bad rw - selinuxfs selinuxfs rw\n21 1 0:6 / {} rw,relatime - selinuxfs selinuxfs rw\n",
                alt.display()
            ),
        )
        .unwrap();
        assert_eq!(enabled(&p, &at_alt), None);
        std::fs::write(&p.filesystems, "nodev\tsysfs\nnodev\tselinuxfs\n").unwrap();
        assert_eq!(enabled(&p, &at_alt), Some(alt.clone()));
    }

    #[test]
    fn modes() {
        let cfg = b"# comment\n; also\nSELINUXTYPE=targeted\nSELINUX=\"enforcing\"\n";
        assert_eq!(config_mode(cfg), 1.0);
        assert_eq!(config_mode(b"SELINUX=permissive\n"), 0.0);
        assert_eq!(config_mode(b"SELINUX=disabled\n"), -1.0);
        assert_eq!(config_mode(b"SELINUX =enforcing\n"), -1.0);
        assert_eq!(config_mode(b""), -1.0);
        assert_eq!(current_mode(Some(b"1")), 1.0);
        assert_eq!(current_mode(Some(b"0")), 0.0);
        assert_eq!(current_mode(Some(b"1\n")), -1.0);
        assert_eq!(current_mode(None), -1.0);
    }

    #[test]
    fn this_host() {
        // Whatever this host has, the collector answers and never fails.
        let c = build(&Options::from_flags(Vec::<String>::new()).unwrap()).unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(out[0].name, "node_selinux_enabled");
        if out[0].samples[0].value == 0.0 {
            assert_eq!(out.len(), 1);
        }
    }
}
