//! The plan: for every effective entry, its current value, the value to write (if any), its
//! scope in this namespace and why it is there. Computing a plan changes nothing.

use serde::Serialize;

use super::conflicts::{self, Conflict};
use super::kernel::{Current, Kernel};
use super::netns::Netns;
use crate::profile::catalogue::Scope;
use crate::profile::value::normalize;
use crate::profile::{Effective, Target, Want};

/// What apply will do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already satisfies the profile; not written.
    InSync,
    /// Will be written.
    Change,
    /// Provided by a module that is not loaded; applied once it is.
    Pending,
    /// Global key seen from a child network namespace: set it on the host.
    OutOfScope,
    /// The key does not exist on this kernel.
    Unsupported,
    /// The value cannot be read or computed; apply refuses to start.
    Error,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::InSync => "in-sync",
            Action::Change => "change",
            Action::Pending => "pending",
            Action::OutOfScope => "out-of-scope",
            Action::Unsupported => "unsupported",
            Action::Error => "error",
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub target: Target,
    pub scope: Scope,
    /// What the profile wants, as written (`>=65535`, `4096 87380 >=16777216`).
    pub want: String,
    /// The current value, whitespace-normalised (files: their settings); `None` when absent
    /// or not read.
    pub current: Option<String>,
    /// The value apply writes.
    pub desired: Option<String>,
    pub action: Action,
    pub note: String,
    pub origin: String,
    pub why: String,
    /// A module apply loads (with modprobe) before writing, e.g. tcp_bbr.
    pub load_module: Option<String>,
    #[serde(skip)]
    pub want_value: Want,
    /// The exact current content (to save as the original).
    #[serde(skip)]
    pub raw_current: Option<String>,
}

/// A whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub profile: String,
    pub chain: Vec<String>,
    pub netns: Netns,
    pub items: Vec<Item>,
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }
}

/// A configuration file's settings in one line, for tables: its non-comment lines.
pub fn file_summary(content: &str) -> String {
    let lines: Vec<&str> = content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .collect();
    if lines.is_empty() {
        "(empty)".into()
    } else {
        lines.join("; ")
    }
}

fn in_scope(entry_scope: Scope, target: &Target, netns: &Netns) -> bool {
    netns.is_host || (entry_scope == Scope::Netns && matches!(target, Target::Sysctl(_)))
}

/// Computes the plan for an effective profile. Reads only.
pub fn plan(eff: &Effective, kernel: &Kernel, netns: &Netns) -> Plan {
    let mut items = Vec::with_capacity(eff.entries.len());
    for e in &eff.entries {
        let is_file = matches!(e.target, Target::File(_));
        let mut item = Item {
            target: e.target.clone(),
            scope: e.scope,
            want: if is_file {
                match &e.want {
                    Want::Text(t) => file_summary(t),
                    w => w.to_string(),
                }
            } else {
                e.want.to_string()
            },
            current: None,
            desired: None,
            action: Action::InSync,
            note: String::new(),
            origin: e.origin.clone(),
            why: e.why.clone(),
            load_module: None,
            want_value: e.want.clone(),
            raw_current: None,
        };
        if !in_scope(e.scope, &e.target, netns) {
            item.action = Action::OutOfScope;
            item.note = format!(
                "{} setting: not namespaced, so it is set on the host, not in network namespace {}",
                e.scope.as_str(),
                netns.label
            );
            items.push(item);
            continue;
        }
        match kernel.read(&e.target) {
            Err(err) => {
                item.action = Action::Error;
                item.note = format!("{err:#}");
            }
            Ok(Current::Missing) if is_file => {
                item.current = Some("(absent)".into());
                item.action = Action::Change;
                if let Want::Text(t) = &e.want {
                    item.desired = Some(t.clone());
                }
            }
            Ok(Current::Missing) => match &e.module {
                Some(m) => {
                    item.action = Action::Pending;
                    item.note =
                        format!("module {m} is not loaded; the value is applied when it is");
                }
                None => {
                    item.action = Action::Unsupported;
                    item.note = "not present on this kernel; skipped".into();
                }
            },
            Ok(Current::Value(raw)) => {
                item.current = Some(if is_file {
                    file_summary(&raw)
                } else {
                    normalize(&raw)
                });
                let satisfied = if is_file {
                    matches!(&e.want, Want::Text(t) if *t == raw)
                } else {
                    e.want.satisfied(&raw)
                };
                if satisfied {
                    item.action = Action::InSync;
                } else if is_file {
                    item.action = Action::Change;
                    if let Want::Text(t) = &e.want {
                        item.desired = Some(t.clone());
                    }
                } else {
                    match e.want.target(&raw) {
                        Ok(d) => {
                            item.action = Action::Change;
                            item.desired = Some(d);
                        }
                        Err(m) => {
                            item.action = Action::Error;
                            item.note = m;
                        }
                    }
                }
                item.raw_current = Some(raw);
            }
        }
        if item.action == Action::Change {
            check_congestion(&mut item, kernel, netns);
        }
        items.push(item);
    }
    let conflicts = if netns.is_host {
        let managed: Vec<(String, Want)> = items
            .iter()
            .filter_map(|i| match &i.target {
                Target::Sysctl(k) => Some((k.clone(), i.want_value.clone())),
                _ => None,
            })
            .collect();
        conflicts::find(&kernel.root, &managed)
    } else {
        Vec::new()
    };
    Plan {
        profile: eff.name.clone(),
        chain: eff.chain.clone(),
        netns: netns.clone(),
        items,
        conflicts,
    }
}

/// A congestion-control algorithm must be available before it can be selected; a missing
/// one is loaded as module tcp_NAME on the host.
fn check_congestion(item: &mut Item, kernel: &Kernel, netns: &Netns) {
    let Target::Sysctl(key) = &item.target else {
        return;
    };
    if key != "net.ipv4.tcp_congestion_control" {
        return;
    }
    let Want::Text(alg) = &item.want_value else {
        return;
    };
    let available = Target::Sysctl("net.ipv4.tcp_available_congestion_control".into());
    let list = match kernel.read(&available) {
        Ok(Current::Value(v)) => v,
        _ => String::new(),
    };
    if list.split_whitespace().any(|a| a == alg) {
        return;
    }
    if netns.is_host {
        item.load_module = Some(format!("tcp_{alg}"));
        item.note = format!(
            "{alg} is not available ({}); apply loads module tcp_{alg} first",
            normalize(&list)
        );
    } else {
        item.action = Action::Error;
        item.note = format!(
            "{alg} is not available ({}); modules load host-wide, so run `modprobe tcp_{alg}` on the host first",
            normalize(&list)
        );
    }
}
