//! Reading and writing what a profile sets: sysctl files under a sysctl root (normally
//! /proc/sys), module parameters under a sysfs root, and configuration files under a root
//! directory. Tests point all three at temporary trees.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::profile::format::check_key_syntax;
use crate::profile::Target;

/// The roots a profile is applied to.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Normally /proc/sys.
    pub sysctl_root: PathBuf,
    /// Normally /sys (module parameters).
    pub sysfs: PathBuf,
    /// Normally / (configuration files such as /etc/sysctl.d drop-ins).
    pub root: PathBuf,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Value(String),
    /// The key or file does not exist.
    Missing,
}

/// Largest value nodetune reads from a sysctl or parameter file: they are short, and a single
/// bounded read keeps a misbehaving file (or a device node) from stalling a read.
const MAX_VALUE: usize = 64 * 1024;

/// Turns a sysctl key into its path below the sysctl root. Like systemd-sysctl, when the first
/// separator is a dot, dots separate components and slashes stand for literal dots (so
/// `net.ipv4.conf.eth0/100.forwarding` reaches the VLAN interface `eth0.100`).
pub fn key_path(key: &str) -> anyhow::Result<PathBuf> {
    check_key_syntax(key).map_err(|m| anyhow::anyhow!("{key}: {m}"))?;
    let path = key_components(key);
    // Defence in depth: the syntax check already refuses these.
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        anyhow::bail!("{key}: the key would leave the sysctl root");
    }
    Ok(path)
}

/// Splits a key into path components without validating it (see [`key_path`]).
pub fn key_components(key: &str) -> PathBuf {
    let dot_first = key
        .find(['.', '/'])
        .is_none_or(|i| key.as_bytes()[i] == b'.');
    if dot_first {
        key.split('.').map(|p| p.replace('/', ".")).collect()
    } else {
        key.split('/').collect()
    }
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(256);
    Read::by_ref(&mut f)
        .take(MAX_VALUE as u64)
        .read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl Kernel {
    /// The file behind a target.
    pub fn path(&self, target: &Target) -> anyhow::Result<PathBuf> {
        match target {
            Target::Sysctl(key) => Ok(self.sysctl_root.join(key_path(key)?)),
            Target::ModuleParam(module, param) => {
                for part in [module, param] {
                    if part.is_empty()
                        || !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        anyhow::bail!("invalid module parameter name {part:?}");
                    }
                }
                Ok(self
                    .sysfs
                    .join("module")
                    .join(module)
                    .join("parameters")
                    .join(param))
            }
            Target::File(path) => self.file_path(path),
        }
    }

    /// An absolute configuration path placed under the root.
    pub fn file_path(&self, path: &str) -> anyhow::Result<PathBuf> {
        let rel = Path::new(path)
            .strip_prefix("/")
            .with_context(|| format!("{path}: not an absolute path"))?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            anyhow::bail!("{path}: the path would leave the root");
        }
        Ok(self.root.join(rel))
    }

    /// Reads the current value (whitespace kept as the kernel prints it).
    pub fn read(&self, target: &Target) -> anyhow::Result<Current> {
        let path = self.path(target)?;
        match read_bounded(&path) {
            Ok(s) => Ok(Current::Value(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Current::Missing),
            Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// Writes a value. Kernel files are written in place with one write (the kernel parses
    /// each write separately); configuration files are replaced atomically (temporary file,
    /// fsync, rename, fsync of the directory) so a crash never leaves half a file.
    pub fn write(&self, target: &Target, value: &str) -> anyhow::Result<()> {
        let path = self.path(target)?;
        match target {
            Target::File(_) => write_file_atomically(&path, value.as_bytes()),
            _ => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| describe_write_error(&path, e))?;
                f.write_all(format!("{value}\n").as_bytes())
                    .map_err(|e| match e.raw_os_error() {
                        // The key exists (it opened): the kernel found nothing by that name.
                        Some(libc::ENOENT) => missing_name(target, &path, value, e),
                        _ => describe_write_error(&path, e),
                    })
            }
        }
    }

    /// Removes a configuration file (restoring "it did not exist").
    pub fn remove_file(&self, target: &Target) -> anyhow::Result<()> {
        let path = self.path(target)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::anyhow!("removing {}: {e}", path.display())),
        }
    }
}

/// A write refused with ENOENT by a key that exists: the value names something the kernel
/// does not have (a qdisc or congestion control neither built in nor loadable).
fn missing_name(target: &Target, path: &Path, value: &str, e: std::io::Error) -> anyhow::Error {
    let what = match target {
        Target::Sysctl(k) if k == "net.core.default_qdisc" => {
            format!("this kernel has no qdisc {value:?}: it is not built in and no module sch_{value} could be loaded")
        }
        Target::Sysctl(k) if k == "net.ipv4.tcp_congestion_control" => format!(
            "this kernel has no congestion control {value:?}: it is not built in and no module tcp_{value} could be loaded"
        ),
        _ => format!("the kernel has nothing named {value:?} for this key"),
    };
    anyhow::anyhow!("writing {}: {what}: {e}", path.display())
}

fn describe_write_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    let why = match e.raw_os_error() {
        Some(libc::EINVAL) => "the kernel rejected the value (EINVAL)",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied: the key is read-only here (in a child network namespace, \
             global keys are read-only) or nodetune lacks CAP_SYS_ADMIN/CAP_NET_ADMIN"
        }
        Some(libc::EROFS) => {
            "read-only file system (is /proc/sys mounted read-only, as in a container?)"
        }
        Some(libc::ENOENT) => "the key does not exist",
        Some(libc::EBUSY) => "the kernel refused the change while the resource is in use (EBUSY)",
        _ => "",
    };
    if why.is_empty() {
        anyhow::anyhow!("writing {}: {e}", path.display())
    } else {
        anyhow::anyhow!("writing {}: {why}: {e}", path.display())
    }
}

/// Replaces a file atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_file_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.nodetune-tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("writing {}: {e}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        assert_eq!(
            key_path("net.core.somaxconn").unwrap(),
            PathBuf::from("net/core/somaxconn")
        );
        assert_eq!(
            key_path("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            PathBuf::from("net/ipv4/conf/eth0.100/forwarding")
        );
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in [
            "../etc/passwd",
            "net/../../etc",
            "/etc/passwd",
            "net..core",
            "a\0b",
            "net.core./x",
        ] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_stay_under_root() {
        let k = Kernel {
            sysctl_root: "/tmp/s".into(),
            sysfs: "/tmp/y".into(),
            root: "/tmp/r".into(),
        };
        assert_eq!(
            k.file_path("/etc/x.conf").unwrap(),
            PathBuf::from("/tmp/r/etc/x.conf")
        );
        assert!(k.file_path("/etc/../../x").is_err());
        assert!(k.file_path("etc/x").is_err());
        assert!(k
            .path(&Target::ModuleParam("nf_conntrack".into(), "../x".into()))
            .is_err());
    }

    #[test]
    fn read_write_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let k = Kernel {
            sysctl_root: d.path().join("sys"),
            sysfs: d.path().join("sysfs"),
            root: d.path().join("root"),
        };
        std::fs::create_dir_all(d.path().join("sys/net/core")).unwrap();
        std::fs::write(d.path().join("sys/net/core/somaxconn"), "4096\n").unwrap();
        let t = Target::Sysctl("net.core.somaxconn".into());
        assert_eq!(k.read(&t).unwrap(), Current::Value("4096\n".into()));
        k.write(&t, "65535").unwrap();
        assert_eq!(k.read(&t).unwrap(), Current::Value("65535\n".into()));
        let missing = Target::Sysctl("net.core.nothing".into());
        assert_eq!(k.read(&missing).unwrap(), Current::Missing);
        assert!(k
            .write(&missing, "1")
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        let e = missing_name(
            &Target::Sysctl("net.core.default_qdisc".into()),
            Path::new("/proc/sys/net/core/default_qdisc"),
            "fq",
            std::io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            e.to_string(),
            "writing /proc/sys/net/core/default_qdisc: this kernel has no qdisc \"fq\": it is not built in and no module sch_fq could be loaded: No such file or directory (os error 2)"
        );
        let f = Target::File("/etc/a/b.conf".into());
        assert_eq!(k.read(&f).unwrap(), Current::Missing);
        k.write(&f, "x=1\n").unwrap();
        assert_eq!(k.read(&f).unwrap(), Current::Value("x=1\n".into()));
        k.remove_file(&f).unwrap();
        assert_eq!(k.read(&f).unwrap(), Current::Missing);
    }
}
