//! The plan: for every effective entry, its current value, the value to write (if any), its
//! scope in this namespace and why it is there. Computing a plan changes nothing.

use serde::Serialize;

use super::conflicts::{self, Conflict};
use super::kernel::{Current, Kernel};
use super::netns::Netns;
use crate::profile::catalogue::Scope;
use crate::profile::format::IfUnavailable;
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
            match &e.unavailable {
                Some(why) => unavailable(&mut item, why.clone(), e.if_unavailable),
                None => check_congestion(&mut item, kernel, netns, e.if_unavailable),
            }
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

/// The kernel cannot provide the value: skip the key (with the reason) or refuse the profile,
/// as `[congestion] if-unavailable` says.
fn unavailable(item: &mut Item, why: String, policy: IfUnavailable) {
    item.desired = None;
    match policy {
        IfUnavailable::Skip => {
            item.action = Action::Unsupported;
            item.note = format!("{why}; skipped ([congestion] if-unavailable = \"skip\")");
        }
        IfUnavailable::Refuse => {
            item.action = Action::Error;
            item.note = format!(
                "{why}; the profile refuses to apply without it ([congestion] if-unavailable = \"refuse\")"
            );
        }
    }
}

/// A congestion-control algorithm must be available before it can be selected; a missing
/// one is loaded as module tcp_NAME on the host. A child namespace may only choose one the
/// host allows (net.ipv4.tcp_allowed_congestion_control), and cannot load modules.
fn check_congestion(item: &mut Item, kernel: &Kernel, netns: &Netns, policy: IfUnavailable) {
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
        if netns.is_host {
            return;
        }
        let allowed = Target::Sysctl("net.ipv4.tcp_allowed_congestion_control".into());
        let allowed = match kernel.read(&allowed) {
            Ok(Current::Value(v)) => v,
            _ => return,
        };
        if !allowed.split_whitespace().any(|a| a == alg) {
            unavailable(
                item,
                format!(
                    "{alg} is available but not allowed in a child network namespace \
                     (net.ipv4.tcp_allowed_congestion_control = {}, set on the host)",
                    normalize(&allowed)
                ),
                policy,
            );
        }
        return;
    }
    if netns.is_host {
        item.load_module = Some(format!("tcp_{alg}"));
        item.note = format!(
            "{alg} is not available ({}); apply loads module tcp_{alg} first",
            normalize(&list)
        );
    } else {
        unavailable(
            item,
            format!(
                "{alg} is not available ({}); modules load host-wide, so run `modprobe tcp_{alg}` on the host first",
                normalize(&list)
            ),
            policy,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::avail::Avail;
    use crate::profile::{resolve_text, Facts, Library};

    /// A host whose kernel configuration lacks fq (as on the development VM), with a fake
    /// sysctl tree.
    fn host() -> (tempfile::TempDir, Kernel, Facts) {
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, v: &str| {
            let p = d.path().join("sys").join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        w("net/core/default_qdisc", "pfifo_fast\n");
        w("net/core/somaxconn", "4096\n");
        w("net/ipv4/tcp_congestion_control", "bbr\n");
        w(
            "net/ipv4/tcp_available_congestion_control",
            "reno bbr cubic\n",
        );
        w("net/ipv4/tcp_allowed_congestion_control", "reno bbr\n");
        let kernel = Kernel {
            sysctl_root: d.path().join("sys"),
            sysfs: d.path().join("sysfs"),
            root: d.path().join("root"),
        };
        let avail = Avail {
            config: Some((
                "/proc/config.gz".into(),
                crate::profile::avail::parse_config(
                    "CONFIG_NET_SCH_HTB=y\n# CONFIG_NET_SCH_FQ is not set\n",
                ),
            )),
            congestion: Some(vec!["reno".into(), "bbr".into(), "cubic".into()]),
            ..Avail::default()
        };
        let facts = Facts {
            kernel: "6.18.0".into(),
            memory_bytes: 1 << 30,
            cpus: 2,
            virtualized: true,
            avail,
        };
        (d, kernel, facts)
    }

    fn plan_of(text: &str, kernel: &Kernel, facts: &Facts, netns: &Netns) -> Plan {
        let eff = resolve_text(&Library::new(vec![]), "t", text, facts).unwrap();
        plan(&eff, kernel, netns)
    }

    fn item<'a>(p: &'a Plan, key: &str) -> &'a Item {
        p.items
            .iter()
            .find(|i| i.target == Target::Sysctl(key.into()))
            .unwrap()
    }

    #[test]
    fn a_missing_qdisc_is_skipped_by_default_and_refused_on_request() {
        let (_d, kernel, facts) = host();
        let base = "[sysctl]\n\"net.core.somaxconn\" = 65535\n[congestion]\nqdisc = \"fq\"\n";
        let p = plan_of(base, &kernel, &facts, &Netns::host());
        let q = item(&p, "net.core.default_qdisc");
        assert_eq!(q.action, Action::Unsupported);
        assert_eq!(
            q.note,
            "qdisc fq is not available on this kernel: CONFIG_NET_SCH_FQ is not set in /proc/config.gz; skipped ([congestion] if-unavailable = \"skip\")"
        );
        assert_eq!(item(&p, "net.core.somaxconn").action, Action::Change);

        let refuse = format!("{base}if-unavailable = \"refuse\"\n");
        let p = plan_of(&refuse, &kernel, &facts, &Netns::host());
        let q = item(&p, "net.core.default_qdisc");
        assert_eq!(q.action, Action::Error);
        assert!(q.note.ends_with("the profile refuses to apply without it ([congestion] if-unavailable = \"refuse\")"), "{}", q.note);
        // A qdisc the kernel has is a plain change.
        let p = plan_of(
            "[congestion]\nqdisc = \"pfifo\"\n",
            &kernel,
            &facts,
            &Netns::host(),
        );
        assert_eq!(item(&p, "net.core.default_qdisc").action, Action::Change);
    }

    #[test]
    fn a_child_namespace_may_only_choose_allowed_congestion_controls() {
        let (_d, kernel, facts) = host();
        let child = Netns {
            label: "lab".into(),
            is_host: false,
        };
        let p = plan_of(
            "[congestion]\ncontrol = \"cubic\"\n",
            &kernel,
            &facts,
            &child,
        );
        let c = item(&p, "net.ipv4.tcp_congestion_control");
        assert_eq!(c.action, Action::Unsupported);
        assert!(
            c.note.starts_with("cubic is available but not allowed in a child network namespace (net.ipv4.tcp_allowed_congestion_control = reno bbr, set on the host)"),
            "{}",
            c.note
        );
        // The host itself may choose any available one.
        let p = plan_of(
            "[congestion]\ncontrol = \"cubic\"\n",
            &kernel,
            &facts,
            &Netns::host(),
        );
        assert_eq!(
            item(&p, "net.ipv4.tcp_congestion_control").action,
            Action::Change
        );
    }
}
