//! Boot-time conflicts: sysctl.d and sysctl.conf entries that set a managed key to a value
//! the profile does not accept. systemd-sysctl applies them at every boot (and udev re-runs it
//! for new interfaces), so such an entry silently undoes the profile after a reboot.
//!
//! Precedence follows sysctl.d(5): files from /etc/sysctl.d, /run/sysctl.d,
//! /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and /lib/sysctl.d are sorted by file name across
//! directories (a name in an earlier directory masks the same name in a later one) and the last
//! assignment of a key wins. procps `sysctl --system` also reads /etc/sysctl.conf, last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::kernel::{key_components, key_path};
use crate::profile::Want;

/// Directories systemd-sysctl reads, highest priority first.
pub const SYSCTL_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// nodetune's own drop-in (`apply --persist`). Named to sort after Debian's 99-sysctl.conf.
pub const PERSIST_FILE: &str = "/etc/sysctl.d/99-zz-nodetune.conf";

/// One assignment found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub file: String,
    pub line: usize,
    pub value: String,
}

/// A managed key that boot-time configuration sets differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub key: String,
    /// The assignment systemd-sysctl applies last at boot.
    pub boot: Assignment,
    /// True when that value does not satisfy the profile.
    pub differs: bool,
    pub note: String,
}

fn conf_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in SYSCTL_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(&dir[1..])) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                // The first directory (highest priority) keeps the name.
                by_name.entry(name).or_insert_with(|| e.path());
            }
        }
    }
    by_name.into_iter().collect()
}

/// Minimal glob for sysctl.d keys: `*` matches within one component.
fn glob_match(pattern: &Path, key: &Path) -> bool {
    let p: Vec<_> = pattern.iter().collect();
    let k: Vec<_> = key.iter().collect();
    p.len() == k.len()
        && p.iter().zip(&k).all(|(p, k)| {
            let (p, k) = (p.to_string_lossy(), k.to_string_lossy());
            match p.split_once('*') {
                None => p == k,
                Some((pre, post)) => {
                    k.len() >= pre.len() + post.len() && k.starts_with(pre) && k.ends_with(post)
                }
            }
        })
}

fn parse_file(path: &Path, display: &str, out: &mut Vec<(PathBuf, Assignment)>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_start_matches('-');
        // Globs are matched below; key_path refuses '*', so check the syntax without it.
        let canon = if k.contains('*') {
            key_path(&k.replace('*', "x"))
                .ok()
                .map(|_| key_components(k))
        } else {
            key_path(k).ok()
        };
        if let Some(c) = canon {
            out.push((
                c,
                Assignment {
                    file: display.to_string(),
                    line: i + 1,
                    value: crate::profile::value::normalize(v),
                },
            ));
        }
    }
}

/// Finds conflicts for the given managed keys. `root` is prepended to every path.
pub fn find(root: &Path, managed: &[(String, Want)]) -> Vec<Conflict> {
    let mut assignments = Vec::new();
    let persist = Path::new(PERSIST_FILE)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    for (name, path) in conf_files(root) {
        if Some(&name) == persist.as_ref() {
            continue;
        }
        let display = Path::new("/").join(path.strip_prefix(root).unwrap_or(&path));
        parse_file(&path, &display.display().to_string(), &mut assignments);
    }
    let sysctl_conf = root.join("etc/sysctl.conf");
    let mut procps_only = Vec::new();
    parse_file(&sysctl_conf, "/etc/sysctl.conf", &mut procps_only);

    let mut out = Vec::new();
    for (key, want) in managed {
        let Ok(kp) = key_path(key) else { continue };
        // Explicit keys beat globs regardless of order (sysctl.d(5)).
        let explicit = assignments.iter().rev().find(|(p, _)| *p == kp);
        let winner = explicit.or_else(|| {
            assignments
                .iter()
                .rev()
                .find(|(p, _)| p.to_string_lossy().contains('*') && glob_match(p, &kp))
        });
        if let Some((_, a)) = winner {
            let differs = !want.satisfied(&a.value);
            out.push(Conflict {
                key: key.clone(),
                boot: a.clone(),
                differs,
                note: if differs {
                    format!(
                        "systemd-sysctl sets {} at boot, which the profile does not accept ({want}); \
                         `nodetune apply --persist` writes {PERSIST_FILE}, which sorts after it",
                        a.value
                    )
                } else {
                    "set at boot to a value the profile accepts".into()
                },
            });
        }
        if let Some((_, a)) = procps_only.iter().rev().find(|(p, _)| *p == kp) {
            if !want.satisfied(&a.value) {
                out.push(Conflict {
                    key: key.clone(),
                    boot: a.clone(),
                    differs: true,
                    note: format!(
                        "`sysctl --system` and `sysctl -p` apply /etc/sysctl.conf last, setting {} \
                         (the profile wants {want}); remove the line or change it",
                        a.value
                    ),
                });
            }
        }
    }
    out.retain(|c| c.differs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::value::Rel;

    #[test]
    fn precedence_masks_and_globs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in ["etc/sysctl.d", "usr/lib/sysctl.d", "run/sysctl.d"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        // Masked by the /etc copy of the same name.
        std::fs::write(
            r.join("usr/lib/sysctl.d/50-default.conf"),
            "net.core.somaxconn = 1\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/sysctl.d/50-default.conf"),
            "# local\nnet.core.somaxconn = 128\n",
        )
        .unwrap();
        // Sorted later by name, so it wins over 50-default.conf.
        std::fs::write(
            r.join("run/sysctl.d/60-k8s.conf"),
            "net/ipv4/tcp_tw_reuse = 0\nnet.ipv4.conf.*.rp_filter = 2\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/sysctl.d/99-zz-nodetune.conf"),
            "net.core.somaxconn = 65535\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/sysctl.conf"), "net.ipv4.tcp_fastopen=1\n").unwrap();
        let managed = vec![
            (
                "net.core.somaxconn".to_string(),
                Want::Ints(vec![Rel::Ge(4096)]),
            ),
            (
                "net.ipv4.tcp_tw_reuse".to_string(),
                Want::Ints(vec![Rel::Eq(1)]),
            ),
            (
                "net.ipv4.conf.all.rp_filter".to_string(),
                Want::Ints(vec![Rel::Eq(1)]),
            ),
            (
                "net.ipv4.tcp_fastopen".to_string(),
                Want::Ints(vec![Rel::Eq(3)]),
            ),
            (
                "net.core.rmem_max".to_string(),
                Want::Ints(vec![Rel::Eq(3)]),
            ),
        ];
        let c = find(r, &managed);
        let got: Vec<(String, String, usize, String)> = c
            .iter()
            .map(|c| {
                (
                    c.key.clone(),
                    c.boot.file.clone(),
                    c.boot.line,
                    c.boot.value.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "net.core.somaxconn".into(),
                    "/etc/sysctl.d/50-default.conf".into(),
                    2,
                    "128".into()
                ),
                (
                    "net.ipv4.tcp_tw_reuse".into(),
                    "/run/sysctl.d/60-k8s.conf".into(),
                    1,
                    "0".into()
                ),
                (
                    "net.ipv4.conf.all.rp_filter".into(),
                    "/run/sysctl.d/60-k8s.conf".into(),
                    2,
                    "2".into()
                ),
                (
                    "net.ipv4.tcp_fastopen".into(),
                    "/etc/sysctl.conf".into(),
                    1,
                    "1".into()
                ),
            ]
        );
    }
}
