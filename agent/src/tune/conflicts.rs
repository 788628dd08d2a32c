//! Boot-time conflicts: sysctl.d and sysctl.conf entries that set a managed key to a value
//! the profile does not accept, and the keys tuned's active profile sets. systemd-sysctl
//! applies sysctl.d at every boot (and udev re-runs it for new interfaces), tuned whenever it
//! starts, so such an entry silently undoes the profile after a reboot.
//!
//! Precedence follows systemd-sysctl (sysctl.d(5)): files from /etc/sysctl.d, /run/sysctl.d,
//! /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and /lib/sysctl.d are sorted by file name across
//! directories (a name in an earlier directory masks the same name in a later one); a later
//! assignment of a key replaces an earlier one; an explicit key beats any glob, whatever the
//! order; of the globs that match (fnmatch(3) per path component: `*`, `?`, `[...]`), the one
//! applied last wins; `-KEY` without a value keeps every glob off that key. procps
//! `sysctl --system` also reads /etc/sysctl.conf, last.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::kernel::{key_components, key_path};
use super::tuned;
use crate::base::glob;
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

/// Which tool applies the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// systemd-sysctl at boot (sysctl.d).
    SysctlD,
    /// procps `sysctl --system` / `sysctl -p` (/etc/sysctl.conf).
    SysctlConf,
    /// tuned's active profile, whenever tuned starts or switches profile.
    Tuned,
}

/// A managed key that boot-time configuration or tuned also sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub key: String,
    pub source: Source,
    /// The assignment that is applied last (at boot, or when tuned starts).
    pub boot: Assignment,
    /// True when that value does not satisfy the profile. tuned's keys are reported either
    /// way: the two tools write the same key.
    pub differs: bool,
    pub note: String,
}

fn conf_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut by_name: std::collections::BTreeMap<String, PathBuf> = Default::default();
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

/// One key of systemd-sysctl's ordered table: its path components (a pattern when any holds
/// a glob character), the value (None: a `-KEY` line that only shields the key from globs),
/// and where it was set.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    pattern: bool,
    value: Option<Assignment>,
}

/// Whether a glob entry's path matches a key's path, component by component (glob(3)).
fn glob_matches(pattern: &Path, key: &Path) -> bool {
    let (p, k): (Vec<_>, Vec<_>) = (pattern.iter().collect(), key.iter().collect());
    p.len() == k.len()
        && p.iter()
            .zip(&k)
            .all(|(p, k)| glob::fnmatch(&p.to_string_lossy(), &k.to_string_lossy()))
}

/// Reads one file into the table, as systemd-sysctl's parse_file does.
fn parse_file(path: &Path, display: &str, table: &mut Vec<Entry>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            // `-` only means "ignore failures" on an assignment.
            Some((k, v)) => (k.trim().trim_start_matches('-').trim(), Some(v)),
            None => match line.strip_prefix('-') {
                Some(k) => (k.trim(), None),
                None => continue,
            },
        };
        let pattern = glob::is_pattern(key);
        let path = if pattern {
            let p = key_components(key);
            let sane = p
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !sane {
                continue;
            }
            p
        } else {
            match key_path(key) {
                Ok(p) => p,
                Err(_) => continue,
            }
        };
        let value = value.map(|v| Assignment {
            file: display.to_string(),
            line: i + 1,
            value: crate::profile::value::normalize(v),
        });
        // An equal re-assignment keeps its place; a different one moves to the end.
        if let Some(pos) = table.iter().position(|e| e.path == path) {
            let same = match (&table[pos].value, &value) {
                (Some(a), Some(b)) => a.value == b.value,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            table.remove(pos);
        }
        table.push(Entry {
            path,
            pattern,
            value,
        });
    }
}

/// The assignment systemd-sysctl applies last to a key, if any.
fn winner<'a>(table: &'a [Entry], key: &Path) -> Option<&'a Assignment> {
    if let Some(e) = table.iter().find(|e| !e.pattern && e.path == key) {
        // An explicit value, or `-KEY`: no glob applies to it.
        return e.value.as_ref();
    }
    table
        .iter()
        .filter(|e| e.pattern && glob_matches(&e.path, key))
        .filter_map(|e| e.value.as_ref())
        .next_back()
}

/// Finds conflicts for the given managed keys. `root` is prepended to every path.
pub fn find(root: &Path, managed: &[(String, Want)]) -> Vec<Conflict> {
    let mut table = Vec::new();
    let persist = Path::new(PERSIST_FILE)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    for (name, path) in conf_files(root) {
        if Some(&name) == persist.as_ref() {
            continue;
        }
        let display = Path::new("/").join(path.strip_prefix(root).unwrap_or(&path));
        parse_file(&path, &display.display().to_string(), &mut table);
    }
    let sysctl_conf = root.join("etc/sysctl.conf");
    let mut procps_only = Vec::new();
    parse_file(&sysctl_conf, "/etc/sysctl.conf", &mut procps_only);
    let tuned = tuned::active(root, &tuned::Host::live());

    let mut out = Vec::new();
    for (key, want) in managed {
        let Ok(kp) = key_path(key) else { continue };
        if let Some(a) = winner(&table, &kp) {
            let differs = !want.satisfied(&a.value);
            out.push(Conflict {
                key: key.clone(),
                source: Source::SysctlD,
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
        if let Some(a) = winner(&procps_only, &kp) {
            if !want.satisfied(&a.value) {
                out.push(Conflict {
                    key: key.clone(),
                    source: Source::SysctlConf,
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
        if let Some(t) = &tuned {
            if let Some(s) = t.sysctl.iter().find(|s| s.path == kp) {
                out.push(tuned_conflict(key, want, t, s));
            }
        }
    }
    out.retain(|c| c.differs || c.source == Source::Tuned);
    out
}

fn tuned_conflict(key: &str, want: &Want, t: &tuned::Active, s: &tuned::Setting) -> Conflict {
    let from = if s.profile == t.name {
        String::new()
    } else {
        format!(" (inherited from {})", s.profile)
    };
    let differs = tuned::conflicts_with(want, &s.value);
    let note = match differs {
        Some(true) => format!(
            "tuned's active profile {}{from} sets {} = {}, which the profile does not accept \
             ({want}); tuned writes it whenever it starts or switches profile. Drop it in a \
             child tuned profile ([main] include={}, [sysctl] drop={}) or switch tuned's profile",
            t.name, s.key, s.value, t.name, s.key
        ),
        Some(false) => format!(
            "tuned's active profile {}{from} also sets {} = {}, which the profile accepts",
            t.name, s.key, s.value
        ),
        None => format!(
            "tuned's active profile {}{from} also sets {} = {} (computed by tuned when it \
             starts; compare with `tuned-adm verify`)",
            t.name, s.key, s.value
        ),
    };
    Conflict {
        key: key.to_string(),
        source: Source::Tuned,
        boot: Assignment {
            file: s.file.clone(),
            line: s.line,
            value: s.value.clone(),
        },
        differs: differs.unwrap_or(false),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::value::Rel;

    fn eq(v: i64) -> Want {
        Want::Ints(vec![Rel::Eq(v)])
    }

    /// systemd-sysctl's rules beyond one `*` per component: `?`, classes, negation, `-KEY`
    /// shields, explicit keys beating later globs, and the last matching glob winning.
    #[test]
    fn globs_follow_systemd_sysctl() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/sysctl.d")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/sysctl.d")).unwrap();
        std::fs::write(
            r.join("usr/lib/sysctl.d/50-default.conf"),
            "net.ipv4.conf.default.rp_filter = 2\n\
             net.ipv4.conf.*.rp_filter = 2\n\
             -net.ipv4.conf.all.rp_filter\n\
             net.ipv4.conf.eth?.accept_redirects = 1\n\
             net.ipv4.conf.[!l]*.log_martians = 1\n\
             net.ipv4.conf.lo.log_martians = 0\n\
             net.ipv4.conf.eth[0-3].arp_ignore = 3\n\
             net/ipv4/conf/ens[[:digit:]]*/arp_ignore = 3\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/sysctl.d/60-site.conf"),
            "net.ipv4.conf.eth0.accept_redirects=0\n\
             net.ipv4.conf.e*.accept_redirects = 1\n\
             net.ipv4.conf.e*.accept_redirects = 5\n",
        )
        .unwrap();
        let keys = [
            ("net.ipv4.conf.all.rp_filter", 1),
            ("net.ipv4.conf.eth1.rp_filter", 1),
            ("net.ipv4.conf.default.rp_filter", 1),
            ("net.ipv4.conf.eth0.accept_redirects", 1),
            ("net.ipv4.conf.eth1.accept_redirects", 0),
            ("net.ipv4.conf.eth10.accept_redirects", 0),
            ("net.ipv4.conf.eth1.log_martians", 0),
            ("net.ipv4.conf.lo.log_martians", 1),
            ("net.ipv4.conf.eth2.arp_ignore", 0),
            ("net.ipv4.conf.eth7.arp_ignore", 0),
            ("net.ipv4.conf.ens5.arp_ignore", 0),
        ];
        let managed: Vec<(String, Want)> =
            keys.iter().map(|(k, v)| (k.to_string(), eq(*v))).collect();
        let got: Vec<(String, String, usize, String)> = find(r, &managed)
            .into_iter()
            .map(|c| (c.key, c.boot.file, c.boot.line, c.boot.value))
            .collect();
        let site = "/etc/sysctl.d/60-site.conf";
        let default = "/usr/lib/sysctl.d/50-default.conf";
        let want: Vec<(String, String, usize, String)> = [
            // all is shielded by `-net.ipv4.conf.all.rp_filter`.
            ("net.ipv4.conf.eth1.rp_filter", default, 2, "2"),
            ("net.ipv4.conf.default.rp_filter", default, 1, "2"),
            // The explicit key wins over the later glob.
            ("net.ipv4.conf.eth0.accept_redirects", site, 1, "0"),
            // The last matching glob: e* (re-assigned, moved to the end) beats eth?.
            ("net.ipv4.conf.eth1.accept_redirects", site, 3, "5"),
            ("net.ipv4.conf.eth10.accept_redirects", site, 3, "5"),
            ("net.ipv4.conf.eth1.log_martians", default, 5, "1"),
            ("net.ipv4.conf.lo.log_martians", default, 6, "0"),
            ("net.ipv4.conf.eth2.arp_ignore", default, 7, "3"),
            ("net.ipv4.conf.ens5.arp_ignore", default, 8, "3"),
        ]
        .iter()
        .map(|(k, f, l, v)| (k.to_string(), f.to_string(), *l, v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

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
