//! Applying a plan as a transaction, and reverting to the saved originals.
//!
//! Apply: refuse if the plan has errors → prove the state directory is writable → save the
//! originals of everything about to change (once, synced) → write each value → read it back →
//! on any failure write back every value already written, newest first, and report per key.
//! Nothing is left half-applied.

use std::process::Command;

use anyhow::Context;
use serde::Serialize;

use super::conflicts::PERSIST_FILE;
use super::kernel::{Current, Kernel};
use super::plan::{Action, Item, Plan};
use super::state::{Original, Store};
use crate::profile::value::normalize;
use crate::profile::{Target, Want};

/// Where `--persist` puts the conntrack hash size (module options apply at module load).
pub const MODPROBE_FILE: &str = "/etc/modprobe.d/nodetune.conf";

/// What happened to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "detail")]
pub enum StepResult {
    /// Written and read back.
    Applied,
    /// Restored to its original value.
    Restored,
    /// Already had its original value.
    Unchanged,
    /// Writing it failed; this is why the transaction was rolled back.
    Failed(String),
    /// Written, then put back because a later step failed.
    RolledBack,
    /// Written, and putting it back failed too: needs attention.
    RollbackFailed(String),
}

/// One step of an apply or revert.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub target: Target,
    pub before: Option<String>,
    pub after: Option<String>,
    pub result: StepResult,
}

/// The outcome of an apply or revert.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub steps: Vec<Step>,
    /// Originals newly saved by this apply.
    pub originals_saved: usize,
    pub message: String,
}

/// Options for apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Also write the sysctl.d drop-in (and modprobe.d options) so boot keeps the values.
    pub persist: bool,
    /// The modprobe command used to load congestion-control modules.
    pub modprobe: String,
}

struct Change {
    target: Target,
    want: Want,
    desired: String,
    original: Option<String>,
    load_module: Option<String>,
}

fn is_file(t: &Target) -> bool {
    matches!(t, Target::File(_))
}

fn display(t: &Target, v: &Option<String>) -> Option<String> {
    v.as_ref().map(|v| {
        if is_file(t) {
            super::plan::file_summary(v)
        } else {
            normalize(v)
        }
    })
}

/// The drop-ins `--persist` writes: every in-scope sysctl with the value it will have, so
/// systemd-sysctl restores it at boot. Module-provided keys get a `-` prefix so a boot without
/// the module does not fail systemd-sysctl.
fn persist_files(plan: &Plan) -> Vec<(Target, String)> {
    let mut sysctl =
        String::from("# Written by `nodetune apply --persist`; `nodetune revert` removes it.\n");
    sysctl.push_str(&format!("# Profile: {}\n", plan.profile));
    let mut modprobe = None;
    for i in &plan.items {
        let value = match i.action {
            Action::Change => i.desired.clone(),
            Action::InSync => i.current.clone(),
            Action::Pending => match &i.want_value {
                Want::Ints(r)
                    if r.iter()
                        .all(|r| matches!(r, crate::profile::value::Rel::Eq(_))) =>
                {
                    i.want_value.target("").ok()
                }
                _ => None,
            },
            _ => None,
        };
        let Some(value) = value else { continue };
        match &i.target {
            Target::Sysctl(k) => {
                let from_module =
                    crate::profile::catalogue::lookup(k).is_some_and(|k| k.module.is_some());
                let dash = if from_module { "-" } else { "" };
                sysctl.push_str(&format!("{dash}{k} = {value}\n"));
            }
            Target::ModuleParam(m, p) => {
                modprobe = Some(format!(
                    "# Written by `nodetune apply --persist`; `nodetune revert` removes it.\noptions {m} {p}={value}\n"
                ));
            }
            Target::File(_) => {}
        }
    }
    let mut out = vec![(Target::File(PERSIST_FILE.into()), sysctl)];
    if let Some(m) = modprobe {
        out.push((Target::File(MODPROBE_FILE.into()), m));
    }
    out
}

fn read_raw(kernel: &Kernel, t: &Target) -> anyhow::Result<Option<String>> {
    Ok(match kernel.read(t)? {
        Current::Value(v) => Some(v),
        Current::Missing => None,
    })
}

fn load_module(modprobe: &str, module: &str) -> anyhow::Result<()> {
    let out = Command::new(modprobe)
        .arg(module)
        .output()
        .with_context(|| format!("running {modprobe} {module}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{modprobe} {module} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Writes one value and reads it back.
fn write_verified(kernel: &Kernel, t: &Target, want: &Want, value: &str) -> anyhow::Result<String> {
    kernel.write(t, value)?;
    let back = read_raw(kernel, t)?.unwrap_or_default();
    let ok = if is_file(t) {
        back == value
    } else {
        want.satisfied(&back)
    };
    if !ok {
        anyhow::bail!(
            "read back {:?} after writing {:?}: the kernel adjusted or ignored the value",
            normalize(&back),
            value
        );
    }
    Ok(back)
}

/// Puts an original back (removing a file that did not exist).
fn restore(kernel: &Kernel, t: &Target, original: &Option<String>) -> anyhow::Result<()> {
    match original {
        None => kernel.remove_file(t),
        Some(v) => {
            let value = if is_file(t) { v.clone() } else { normalize(v) };
            let want = Want::Text(value.clone());
            write_verified(kernel, t, &want, &value).map(|_| ())
        }
    }
}

/// Applies a plan. An `Err` means nothing was written.
pub fn apply(
    plan: &Plan,
    kernel: &Kernel,
    store: &Store,
    opts: &ApplyOptions,
) -> anyhow::Result<Outcome> {
    let errors: Vec<String> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Error)
        .map(|i| format!("{}: {}", i.target, i.note))
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "the plan has errors, so nothing was changed:\n  {}",
            errors.join("\n  ")
        );
    }
    if opts.persist && !plan.netns.is_host {
        anyhow::bail!(
            "--persist writes boot-time configuration for the host; network namespace {} is not \
             restored at boot, so nothing was changed",
            plan.netns.label
        );
    }
    let mut changes: Vec<Change> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Change)
        .map(|i: &Item| Change {
            target: i.target.clone(),
            want: i.want_value.clone(),
            desired: i.desired.clone().unwrap_or_default(),
            original: i.raw_current.clone(),
            load_module: i.load_module.clone(),
        })
        .collect();
    if opts.persist {
        for (target, content) in persist_files(plan) {
            let original = read_raw(kernel, &target)?;
            if original.as_deref() != Some(content.as_str()) {
                changes.push(Change {
                    want: Want::Text(content.clone()),
                    target,
                    desired: content,
                    original,
                    load_module: None,
                });
            }
        }
    }
    if changes.is_empty() {
        return Ok(Outcome {
            ok: true,
            steps: Vec::new(),
            originals_saved: 0,
            message: format!(
                "profile {} is already in effect; nothing to change",
                plan.profile
            ),
        });
    }
    store.check_writable()?;
    let originals: Vec<Original> = changes
        .iter()
        .map(|c| Original {
            target: c.target.clone(),
            value: c.original.clone(),
        })
        .collect();
    let saved = store
        .save_new(&plan.netns.label, &originals)
        .context("saving original values; nothing was changed")?;

    let mut steps: Vec<Step> = Vec::new();
    let mut failure = None;
    for c in &changes {
        let result = c
            .load_module
            .as_ref()
            .map_or(Ok(()), |m| load_module(&opts.modprobe, m))
            .and_then(|()| write_verified(kernel, &c.target, &c.want, &c.desired));
        match result {
            Ok(back) => steps.push(Step {
                target: c.target.clone(),
                before: display(&c.target, &c.original),
                after: display(&c.target, &Some(back)),
                result: StepResult::Applied,
            }),
            Err(e) => {
                steps.push(Step {
                    target: c.target.clone(),
                    before: display(&c.target, &c.original),
                    after: None,
                    result: StepResult::Failed(format!("{e:#}")),
                });
                failure = Some(format!("{}: {e:#}", c.target));
                break;
            }
        }
    }
    let Some(failure) = failure else {
        return Ok(Outcome {
            ok: true,
            message: format!("applied profile {} ({} changed)", plan.profile, steps.len()),
            steps,
            originals_saved: saved,
        });
    };
    // Roll back, newest first.
    let written = steps.len() - 1;
    for i in (0..written).rev() {
        let c = &changes[i];
        steps[i].result = match restore(kernel, &c.target, &c.original) {
            Ok(()) => StepResult::RolledBack,
            Err(e) => StepResult::RollbackFailed(format!("{e:#}")),
        };
    }
    let clean = steps
        .iter()
        .all(|s| !matches!(s.result, StepResult::RollbackFailed(_)));
    Ok(Outcome {
        ok: false,
        message: if clean {
            format!("apply failed and every value written was rolled back: {failure}")
        } else {
            format!(
                "apply failed ({failure}) and some values could not be rolled back; their originals \
                 are kept in {}",
                store.originals_path(&plan.netns.label).display()
            )
        },
        steps,
        originals_saved: saved,
    })
}

/// Restores every saved original of a namespace, newest first. Originals restored (or found
/// already in place) are dropped from the state; failures stay for a later retry.
pub fn revert(kernel: &Kernel, store: &Store, netns: &str) -> anyhow::Result<Outcome> {
    let originals = store.originals(netns)?;
    if originals.is_empty() {
        return Ok(Outcome {
            ok: true,
            steps: Vec::new(),
            originals_saved: 0,
            message: format!(
                "no saved originals for {netns}: nothing was applied, or it was already reverted"
            ),
        });
    }
    let mut steps = Vec::new();
    let mut left = Vec::new();
    for o in originals.iter().rev() {
        let current = read_raw(kernel, &o.target);
        let already = match (&current, &o.value) {
            (Ok(None), None) => true,
            (Ok(Some(c)), Some(v)) if is_file(&o.target) => c == v,
            (Ok(Some(c)), Some(v)) => normalize(c) == normalize(v),
            _ => false,
        };
        let before = current.as_ref().ok().and_then(|c| display(&o.target, c));
        let result = if already {
            StepResult::Unchanged
        } else {
            match restore(kernel, &o.target, &o.value) {
                Ok(()) => StepResult::Restored,
                Err(e) => {
                    left.push(o.clone());
                    StepResult::Failed(format!("{e:#}"))
                }
            }
        };
        steps.push(Step {
            target: o.target.clone(),
            before,
            after: display(&o.target, &o.value).or_else(|| Some("(removed)".into())),
            result,
        });
    }
    left.reverse();
    let ok = left.is_empty();
    store.write(netns, left)?;
    Ok(Outcome {
        ok,
        message: if ok {
            format!("restored {} original value(s) for {netns}", steps.len())
        } else {
            format!(
                "some originals could not be restored; they stay saved in {}",
                store.originals_path(netns).display()
            )
        },
        steps,
        originals_saved: 0,
    })
}
