//! Network namespaces: entering one named by `--netns`, and telling whether nodetune runs in
//! the host's (initial) namespace or a child one (`ip netns exec NAME nodetune …`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// The network namespace nodetune works in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Netns {
    /// "host" for the initial namespace, the `ip netns` name when one matches, else
    /// "netns-INODE".
    pub label: String,
    /// True in the initial namespace: every scope may be written.
    pub is_host: bool,
}

impl Netns {
    pub fn host() -> Netns {
        Netns {
            label: "host".into(),
            is_host: true,
        }
    }
}

/// Where `ip netns add` keeps named namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

fn inode(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Enters the namespace named `spec`: an `ip netns` name or a path such as /proc/PID/ns/net.
/// Must run before any other thread starts (setns changes only the calling thread).
pub fn enter(spec: &str) -> anyhow::Result<()> {
    let path = if spec.contains('/') {
        PathBuf::from(spec)
    } else {
        if spec.is_empty() || spec == "." || spec == ".." {
            anyhow::bail!("invalid network namespace name {spec:?}");
        }
        Path::new(NETNS_RUN_DIR).join(spec)
    };
    let f = std::fs::File::open(&path).with_context(|| {
        format!(
            "opening network namespace {} (does `ip netns list` show it?)",
            path.display()
        )
    })?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering network namespace {}", path.display()))?;
    Ok(())
}

/// Identifies the current namespace. The host's (initial) namespace is the only one where
/// the global `net.core` table exists, so `/proc/sys/net/core/netdev_max_backlog` tells them
/// apart without needing access to PID 1 (which containers and sandboxes often deny).
pub fn current() -> Netns {
    if Path::new("/proc/sys/net/core/netdev_max_backlog").exists() {
        return Netns::host();
    }
    let me = inode(Path::new("/proc/self/ns/net")).ok();
    let named = me.and_then(|me| {
        std::fs::read_dir(NETNS_RUN_DIR)
            .ok()?
            .filter_map(Result::ok)
            .find_map(|e| {
                (inode(&e.path()).ok() == Some(me))
                    .then(|| e.file_name().to_string_lossy().into_owned())
            })
    });
    Netns {
        label: named.unwrap_or_else(|| format!("netns-{}", me.map(|m| m.1).unwrap_or(0))),
        is_host: false,
    }
}
