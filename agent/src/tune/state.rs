//! nodetune's state directory: the original values saved before the first write (so `revert`
//! can put every value back), and the active profile chosen with `nodetune use`.
//!
//! Originals are saved once per key: a second apply, even of another profile, never
//! overwrites a value saved earlier. They are written atomically and synced before the first
//! kernel write, so a crash mid-apply leaves them intact.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::kernel::write_file_atomically;
use crate::profile::Target;

/// One saved original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    pub target: Target,
    /// The value before nodetune's first write; `None` for a file that did not exist.
    pub value: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OriginalsFile {
    version: u32,
    /// The network namespace the values belong to ("host" or a namespace label).
    netns: String,
    /// In the order they were first saved; revert restores in reverse.
    entries: Vec<Original>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

fn safe_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// The originals file for a namespace label.
    pub fn originals_path(&self, netns: &str) -> PathBuf {
        self.dir
            .join("originals")
            .join(format!("{}.json", safe_label(netns)))
    }

    /// The saved originals for a namespace (empty when none were saved).
    pub fn originals(&self, netns: &str) -> anyhow::Result<Vec<Original>> {
        let path = self.originals_path(netns);
        match std::fs::read(&path) {
            Ok(data) => {
                let f: OriginalsFile = serde_json::from_slice(&data).with_context(|| {
                    format!(
                        "{} is damaged; it holds the values `nodetune revert` restores, so it is \
                         left as it is for you to inspect",
                        path.display()
                    )
                })?;
                Ok(f.entries)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// Saves the originals of targets not saved before; returns how many were added.
    pub fn save_new(&self, netns: &str, items: &[Original]) -> anyhow::Result<usize> {
        let mut entries = self.originals(netns)?;
        let before = entries.len();
        for item in items {
            if !entries.iter().any(|e| e.target == item.target) {
                entries.push(item.clone());
            }
        }
        let added = entries.len() - before;
        if added > 0 {
            self.write(netns, entries)?;
        }
        Ok(added)
    }

    /// Replaces the saved originals (after a revert restored some of them).
    pub fn write(&self, netns: &str, entries: Vec<Original>) -> anyhow::Result<()> {
        let path = self.originals_path(netns);
        if entries.is_empty() {
            return match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(anyhow::anyhow!("removing {}: {e}", path.display())),
            };
        }
        let file = OriginalsFile {
            version: 1,
            netns: netns.to_string(),
            entries,
        };
        let data = serde_json::to_vec_pretty(&file).context("encoding originals")?;
        write_file_atomically(&path, &data)
    }

    /// Proves the state directory takes writes before anything else is touched: creates it
    /// and writes, syncs and removes a probe file (a full disk or read-only mount fails here).
    pub fn check_writable(&self) -> anyhow::Result<()> {
        let probe = self.dir.join(".write-probe");
        let r = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&probe, b"probe"))
            .and_then(|()| std::fs::File::open(&probe)?.sync_all())
            .and_then(|()| std::fs::remove_file(&probe));
        r.with_context(|| {
            format!(
                "the state directory {} is not writable, so originals cannot be saved; nothing was changed",
                self.dir.display()
            )
        })
    }

    fn active_path(&self) -> PathBuf {
        self.dir.join("active-profile")
    }

    /// The profile chosen with `nodetune use`, if any.
    pub fn active_profile(&self) -> anyhow::Result<Option<String>> {
        read_optional(&self.active_path())
            .map(|o| o.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    }

    pub fn set_active_profile(&self, name: &str) -> anyhow::Result<()> {
        write_file_atomically(&self.active_path(), format!("{name}\n").as_bytes())
    }
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orig(key: &str, v: &str) -> Original {
        Original {
            target: Target::Sysctl(key.into()),
            value: Some(v.into()),
        }
    }

    #[test]
    fn originals_are_saved_once() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        assert!(s.originals("host").unwrap().is_empty());
        assert_eq!(
            s.save_new("host", &[orig("a", "1"), orig("b", "2")])
                .unwrap(),
            2
        );
        assert_eq!(
            s.save_new("host", &[orig("a", "99"), orig("c", "3")])
                .unwrap(),
            1
        );
        let got = s.originals("host").unwrap();
        assert_eq!(got, vec![orig("a", "1"), orig("b", "2"), orig("c", "3")]);
        assert!(s.originals("other").unwrap().is_empty());
        s.write("host", vec![]).unwrap();
        assert!(!s.originals_path("host").exists());
    }

    #[test]
    fn damaged_originals_are_an_error_not_a_reset() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        std::fs::create_dir_all(d.path().join("originals")).unwrap();
        std::fs::write(s.originals_path("host"), "{ half").unwrap();
        let e = s.save_new("host", &[orig("a", "1")]).unwrap_err();
        assert!(format!("{e:#}").contains("is damaged"));
        assert_eq!(
            std::fs::read_to_string(s.originals_path("host")).unwrap(),
            "{ half"
        );
    }

    #[test]
    fn active_profile_and_writability() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path().join("state"));
        s.check_writable().unwrap();
        assert_eq!(s.active_profile().unwrap(), None);
        s.set_active_profile("api-node").unwrap();
        assert_eq!(s.active_profile().unwrap().as_deref(), Some("api-node"));
        let blocked = Store::new(d.path().join("file/state"));
        std::fs::write(d.path().join("file"), "not a dir").unwrap();
        assert!(blocked.check_writable().is_err());
    }
}
