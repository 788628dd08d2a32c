//! Drift: re-reading the managed keys every interval, noticing when something else changed
//! one, correcting it in enforce mode, and noticing a fight (another writer that flips the key
//! back each time) instead of looping forever.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::mode::Mode;
use crate::collect::{Family, Labels, MetricType};
use crate::profile::value::normalize;
use crate::profile::{Target, Want};
use crate::tune::kernel::{Current, Kernel};
use crate::tune::plan::{Action, Plan};
use crate::tune::state::{Original, Store};
use crate::tune::{conflicts, tuned};

/// Corrections of one key within [`FIGHT_WINDOW`] that make a fight.
pub const FIGHT_CORRECTIONS: usize = 3;
/// The window in which repeated corrections count as a fight.
pub const FIGHT_WINDOW: Duration = Duration::from_secs(120);

/// Something the drift watcher noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// A managed key no longer satisfies the profile.
    Drifted {
        key: String,
        expected: String,
        actual: String,
    },
    /// Enforce mode wrote the profile's value back.
    Corrected {
        key: String,
        from: String,
        to: String,
    },
    /// The correction failed.
    CorrectionFailed { key: String, error: String },
    /// The key keeps flipping back: corrections stop and the likely writer is named.
    Fight { key: String, writer: String },
    /// A drifted key satisfies the profile again (by itself or after a correction).
    InSync { key: String },
    /// A key whose module was not loaded appeared and was applied.
    PendingApplied { key: String, value: String },
}

#[derive(Debug)]
struct Watched {
    target: Target,
    /// `key="..."`, the label set of its series (made once).
    key: Labels,
    want: Want,
    in_sync: bool,
    pending: bool,
    /// Last value read.
    actual: Option<String>,
    drift_total: u64,
    corrections_total: u64,
    recent: VecDeque<Instant>,
    fight: Option<String>,
    /// The last correction failed (reported once, not every tick).
    failing: bool,
}

/// The drift watcher for one profile.
pub struct DriftWatch {
    profile: String,
    mode: Mode,
    kernel: Kernel,
    store: Store,
    netns: String,
    procfs: PathBuf,
    items: Vec<Watched>,
}

/// A key's state, for `nodetune status` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct KeyState {
    pub key: String,
    pub want: String,
    pub actual: Option<String>,
    pub in_sync: bool,
    pub pending: bool,
    pub drift_total: u64,
    pub corrections_total: u64,
    pub fight: Option<String>,
}

impl DriftWatch {
    /// Watches every in-scope item of a plan (after it was applied, or not, per mode).
    pub fn new(plan: &Plan, mode: Mode, kernel: Kernel, store: Store, procfs: &Path) -> DriftWatch {
        let items = plan
            .items
            .iter()
            .filter(|i| matches!(i.action, Action::InSync | Action::Change | Action::Pending))
            .map(|i| Watched {
                key: crate::collect::labels(&[("key", &i.target.to_string())]),
                target: i.target.clone(),
                want: i.want_value.clone(),
                in_sync: i.action == Action::InSync,
                pending: i.action == Action::Pending,
                actual: i.raw_current.as_deref().map(normalize),
                drift_total: 0,
                corrections_total: 0,
                recent: VecDeque::new(),
                fight: None,
                failing: false,
            })
            .collect();
        DriftWatch {
            profile: plan.profile.clone(),
            mode,
            kernel,
            store,
            netns: plan.netns.label.clone(),
            procfs: procfs.to_path_buf(),
            items,
        }
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Re-reads every managed key once; returns what changed since the last tick.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if self.mode == Mode::Off {
            return events;
        }
        for i in 0..self.items.len() {
            self.check(i, now, &mut events);
        }
        events
    }

    fn check(&mut self, idx: usize, now: Instant, events: &mut Vec<Event>) {
        let enforce = self.mode == Mode::Enforce;
        let item = &mut self.items[idx];
        let is_file = matches!(item.target, Target::File(_));
        let raw = match self.kernel.read(&item.target) {
            Ok(Current::Value(v)) => v,
            Ok(Current::Missing) if item.pending => return,
            Ok(Current::Missing) => String::new(),
            Err(_) => return,
        };
        let key = item.target.to_string();
        if item.pending {
            // The module appeared: apply the key like a first apply (original saved first).
            item.pending = false;
            if enforce && !item.want.satisfied(&raw) {
                let Ok(value) = item.want.target(&raw) else {
                    return;
                };
                let saved = self.store.save_new(
                    &self.netns,
                    &[Original {
                        target: item.target.clone(),
                        value: Some(raw.clone()),
                    }],
                );
                if saved.is_ok() && self.kernel.write(&item.target, &value).is_ok() {
                    item.in_sync = true;
                    item.actual = Some(value.clone());
                    events.push(Event::PendingApplied { key, value });
                    return;
                }
            }
        }
        let ok = if is_file {
            matches!(&item.want, Want::Text(t) if *t == raw)
        } else {
            item.want.satisfied(&raw)
        };
        let actual = if is_file {
            crate::tune::plan::file_summary(&raw)
        } else {
            normalize(&raw)
        };
        item.actual = Some(actual.clone());
        if ok {
            item.failing = false;
            if !item.in_sync {
                item.in_sync = true;
                events.push(Event::InSync { key });
            }
            return;
        }
        let was_in_sync = item.in_sync;
        item.in_sync = false;
        if was_in_sync {
            item.drift_total += 1;
            events.push(Event::Drifted {
                key: key.clone(),
                expected: item.want.to_string(),
                actual: actual.clone(),
            });
        }
        if !enforce || item.fight.is_some() {
            return;
        }
        while item
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > FIGHT_WINDOW)
        {
            item.recent.pop_front();
        }
        if item.recent.len() >= FIGHT_CORRECTIONS {
            let writer = likely_writer(&self.kernel.root, &self.procfs, &key);
            item.fight = Some(writer.clone());
            events.push(Event::Fight { key, writer });
            return;
        }
        let value = if is_file {
            match &item.want {
                Want::Text(t) => t.clone(),
                _ => return,
            }
        } else {
            match item.want.target(&raw) {
                Ok(v) => v,
                Err(e) => {
                    if !std::mem::replace(&mut item.failing, true) {
                        events.push(Event::CorrectionFailed { key, error: e });
                    }
                    return;
                }
            }
        };
        match self.kernel.write(&item.target, &value) {
            Ok(()) => {
                item.corrections_total += 1;
                item.recent.push_back(now);
                item.in_sync = true;
                events.push(Event::Corrected {
                    key,
                    from: actual,
                    to: if is_file {
                        "profile content".into()
                    } else {
                        value
                    },
                });
            }
            Err(e) => {
                if !std::mem::replace(&mut item.failing, true) {
                    events.push(Event::CorrectionFailed {
                        key,
                        error: format!("{e:#}"),
                    });
                }
            }
        }
    }

    /// Per-key states.
    pub fn states(&self) -> Vec<KeyState> {
        self.items
            .iter()
            .map(|i| KeyState {
                key: i.target.to_string(),
                want: i.want.to_string(),
                actual: i.actual.clone(),
                in_sync: i.in_sync,
                pending: i.pending,
                drift_total: i.drift_total,
                corrections_total: i.corrections_total,
                fight: i.fight.clone(),
            })
            .collect()
    }

    /// Number of keys in sync and drifted (pending keys count as neither).
    pub fn counts(&self) -> (usize, usize) {
        let active = self.items.iter().filter(|i| !i.pending);
        let (mut ok, mut bad) = (0, 0);
        for i in active {
            if i.in_sync {
                ok += 1
            } else {
                bad += 1
            }
        }
        (ok, bad)
    }

    /// nodetune's own families for the managed keys.
    pub fn families(&self) -> Vec<Family> {
        let mut info = Family::new(
            "nodetune_profile_info",
            "The active profile and mode (always 1).",
            MetricType::Gauge,
        );
        info.push(
            &[("profile", &self.profile), ("mode", self.mode.as_str())],
            1.0,
        );
        let mut in_sync = Family::new(
            "nodetune_key_in_sync",
            "Whether a managed key satisfies the profile (1) or has drifted (0).",
            MetricType::Gauge,
        );
        let mut desired = Family::new(
            "nodetune_key_desired",
            "The number a single-value key is held at, floor or ceiling (relation label).",
            MetricType::Gauge,
        );
        let mut actual = Family::new(
            "nodetune_key_actual",
            "The current value of a single-value numeric key.",
            MetricType::Gauge,
        );
        let mut drift = Family::new(
            "nodetune_drift_events_total",
            "Times a managed key was found changed away from the profile.",
            MetricType::Counter,
        );
        let mut corrections = Family::new(
            "nodetune_corrections_total",
            "Times enforce mode wrote a drifted key back.",
            MetricType::Counter,
        );
        let mut fight = Family::new(
            "nodetune_key_fight",
            "1 while another writer keeps changing the key and corrections are suspended.",
            MetricType::Gauge,
        );
        let mut pending = Family::new(
            "nodetune_key_pending",
            "1 while the module that provides the key is not loaded.",
            MetricType::Gauge,
        );
        for i in &self.items {
            let l = &i.key;
            in_sync.push_labels(l, if i.in_sync { 1.0 } else { 0.0 });
            drift.push_labels(l, i.drift_total as f64);
            corrections.push_labels(l, i.corrections_total as f64);
            fight.push_labels(l, if i.fight.is_some() { 1.0 } else { 0.0 });
            pending.push_labels(l, if i.pending { 1.0 } else { 0.0 });
            if let Want::Ints(rels) = &i.want {
                if let [rel] = rels.as_slice() {
                    if let Some(n) = rel.number() {
                        let relation = match rel {
                            crate::profile::value::Rel::Ge(_) => "floor",
                            crate::profile::value::Rel::Le(_) => "ceiling",
                            _ => "exact",
                        };
                        desired.push(&[("key", &l[0].1), ("relation", relation)], n as f64);
                    }
                    if let Some(v) = i.actual.as_deref().and_then(|a| a.parse::<f64>().ok()) {
                        actual.push_labels(l, v);
                    }
                }
            }
        }
        vec![
            info,
            in_sync,
            desired,
            actual,
            drift,
            corrections,
            fight,
            pending,
        ]
    }
}

/// Names the likely other writer of a key: tuned (when its active profile sets the key), a
/// sysctl.d entry, kube-proxy (conntrack keys), bpftune (the buffer and backlog keys it
/// tunes), or "unknown".
pub fn likely_writer(root: &Path, procfs: &Path, key: &str) -> String {
    let mut found = Vec::new();
    // Any boot-time entry for the key (with "accept nothing" every assignment differs).
    let never = Want::Text("\u{0}".into());
    for c in conflicts::find(root, &[(key.to_string(), never)]) {
        let at = format!("{}:{} sets {}", c.boot.file, c.boot.line, c.boot.value);
        if c.source == conflicts::Source::Tuned {
            let state = if tuned::running(root, procfs) {
                "running"
            } else {
                "not running now"
            };
            found.insert(
                0,
                format!(
                    "tuned ({state}; its active profile {at}; it writes the key whenever it \
                     starts or switches profile: drop the key from the tuned profile)"
                ),
            );
        } else {
            found.push(at);
        }
    }
    let running = |name: &str| -> bool {
        std::fs::read_dir(procfs)
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        && std::fs::read_to_string(e.path().join("comm"))
                            .map(|c| c.trim() == name)
                            .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    };
    if key.starts_with("net.netfilter.nf_conntrack") && running("kube-proxy") {
        found.push(
            "kube-proxy (it sets conntrack limits; run it with --conntrack-max-per-core=0)".into(),
        );
    }
    const BPFTUNE_KEYS: &[&str] = &[
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_mem",
        "net.core.netdev_max_backlog",
        "net.core.netdev_budget",
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_syncookies",
    ];
    if BPFTUNE_KEYS.contains(&key)
        && (running("bpftune") || root.join("var/run/bpftune/server-port").exists())
    {
        found.push("bpftune (it tunes this key itself)".into());
    }
    if found.is_empty() {
        "unknown: another process writes it (audit with `auditctl -w /proc/sys/...` to find it)"
            .into()
    } else {
        found.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{resolve, Facts, Library};
    use crate::tune::{self, Netns};

    fn setup(mode: Mode) -> (tempfile::TempDir, Kernel, DriftWatch) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("sys/net/core")).unwrap();
        std::fs::create_dir_all(p.join("proc/1")).unwrap();
        std::fs::write(p.join("sys/net/core/somaxconn"), "65535\n").unwrap();
        std::fs::write(p.join("proc/1/comm"), "init\n").unwrap();
        std::fs::create_dir_all(p.join("profiles")).unwrap();
        std::fs::write(
            p.join("profiles/t.toml"),
            "[sysctl]\n\"net.core.somaxconn\" = 65535\n\"net.netfilter.nf_conntrack_max\" = 1048576\n",
        )
        .unwrap();
        let facts = Facts {
            kernel: "6.1".into(),
            memory_bytes: 1 << 30,
            cpus: 2,
            virtualized: false,
            avail: Default::default(),
        };
        let eff = resolve(&Library::new(vec![p.join("profiles")]), "t", &facts).unwrap();
        let kernel = Kernel {
            sysctl_root: p.join("sys"),
            sysfs: p.join("sysfs"),
            root: p.join("root"),
        };
        let plan = tune::plan(&eff, &kernel, &Netns::host());
        let w = DriftWatch::new(
            &plan,
            mode,
            kernel.clone(),
            Store::new(p.join("state")),
            &p.join("proc"),
        );
        (d, kernel, w)
    }

    fn somaxconn(k: &Kernel) -> String {
        std::fs::read_to_string(k.sysctl_root.join("net/core/somaxconn")).unwrap()
    }

    #[test]
    fn enforce_corrects_and_then_detects_a_fight() {
        let (_d, k, mut w) = setup(Mode::Enforce);
        let t0 = Instant::now();
        assert!(w.tick(t0).is_empty());
        let mut corrections = 0;
        for round in 0..FIGHT_CORRECTIONS {
            std::fs::write(k.sysctl_root.join("net/core/somaxconn"), "128\n").unwrap();
            let ev = w.tick(t0 + Duration::from_secs(round as u64));
            assert!(
                ev.contains(&Event::Drifted {
                    key: "net.core.somaxconn".into(),
                    expected: "65535".into(),
                    actual: "128".into()
                }),
                "{ev:?}"
            );
            assert!(
                ev.iter().any(|e| matches!(e, Event::Corrected { .. })),
                "{ev:?}"
            );
            assert_eq!(somaxconn(&k), "65535\n");
            corrections += 1;
        }
        std::fs::write(k.sysctl_root.join("net/core/somaxconn"), "128\n").unwrap();
        let ev = w.tick(t0 + Duration::from_secs(10));
        assert!(
            matches!(&ev[1], Event::Fight { key, writer } if key == "net.core.somaxconn" && writer.starts_with("unknown")),
            "{ev:?}"
        );
        assert_eq!(somaxconn(&k), "128\n", "no more corrections once fighting");
        assert!(
            w.tick(t0 + Duration::from_secs(11)).is_empty(),
            "no endless loop"
        );
        let s = &w.states()[0];
        assert_eq!(
            (s.corrections_total, s.drift_total),
            (corrections as u64, 4)
        );
        assert_eq!(w.counts(), (0, 1));
    }

    #[test]
    fn a_fight_with_tuned_names_tuned() {
        let d = tempfile::tempdir().unwrap();
        let (root, procfs) = (d.path().join("root"), d.path().join("proc"));
        let write = |p: &Path, text: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let key = "net.core.somaxconn";
        assert!(likely_writer(&root, &procfs, key).starts_with("unknown"));
        write(&root.join("etc/tuned/active_profile"), "site\n");
        write(
            &root.join("usr/lib/tuned/site/tuned.conf"),
            "[main]\nsummary=s\n\n[sysctl]\nnet.core.somaxconn=1024\n",
        );
        write(
            &root.join("etc/sysctl.d/50-x.conf"),
            "net.core.somaxconn = 512\n",
        );
        let w = likely_writer(&root, &procfs, key);
        assert!(
            w.starts_with(
                "tuned (not running now; its active profile /usr/lib/tuned/site/tuned.conf:5 sets 1024;"
            ),
            "{w}"
        );
        assert!(w.ends_with("; /etc/sysctl.d/50-x.conf:1 sets 512"), "{w}");
        // Running: the PID file names a process whose comm is tuned.
        write(&root.join("run/tuned/tuned.pid"), "4242\n");
        write(&procfs.join("4242/comm"), "tuned\n");
        assert!(likely_writer(&root, &procfs, key).starts_with("tuned (running;"));
        assert!(!likely_writer(&root, &procfs, "net.core.rmem_max").contains("tuned"));
    }

    #[test]
    fn audit_only_reports_and_pending_keys_wait() {
        let (_d, k, mut w) = setup(Mode::Audit);
        std::fs::write(k.sysctl_root.join("net/core/somaxconn"), "128\n").unwrap();
        let ev = w.tick(Instant::now());
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(somaxconn(&k), "128\n", "audit never writes");
        assert_eq!(w.counts(), (0, 1));
        std::fs::write(k.sysctl_root.join("net/core/somaxconn"), "65535\n").unwrap();
        assert_eq!(
            w.tick(Instant::now()),
            vec![Event::InSync {
                key: "net.core.somaxconn".into()
            }]
        );
        let fams = w.families();
        let drift = fams
            .iter()
            .find(|f| f.name == "nodetune_drift_events_total")
            .unwrap();
        assert_eq!(drift.samples[0].value, 1.0);
        assert!(w.states()[1].pending);
    }

    #[test]
    fn pending_key_is_applied_when_the_module_appears() {
        let (_d, k, mut w) = setup(Mode::Enforce);
        std::fs::create_dir_all(k.sysctl_root.join("net/netfilter")).unwrap();
        std::fs::write(
            k.sysctl_root.join("net/netfilter/nf_conntrack_max"),
            "262144\n",
        )
        .unwrap();
        let ev = w.tick(Instant::now());
        assert_eq!(
            ev,
            vec![Event::PendingApplied {
                key: "net.netfilter.nf_conntrack_max".into(),
                value: "1048576".into()
            }]
        );
        assert_eq!(
            w.store.originals("host").unwrap()[0].value.as_deref(),
            Some("262144\n")
        );
    }
}
