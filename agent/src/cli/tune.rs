//! `nodetune plan`, `check`, `apply`, `revert` and `use`.

use serde::Serialize;

use super::common::{print_json, Output, Roots, TuneArgs};
use super::table;
use crate::profile::resolve;
use crate::tune::{self, Action, ApplyOptions, Outcome, Plan, StepResult};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub tune: TuneArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub tune: TuneArgs,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Also write /etc/sysctl.d/99-zz-nodetune.conf (and modprobe options) so the values
    /// survive a reboot.
    #[arg(long)]
    pub persist: bool,
    /// Command used to load congestion-control modules.
    #[arg(
        long,
        env = "NODETUNE_MODPROBE",
        default_value = "modprobe",
        value_name = "CMD"
    )]
    pub modprobe: String,
    #[command(flatten)]
    pub tune: TuneArgs,
}

#[derive(Debug, clap::Args)]
pub struct RevertArgs {
    /// Revert inside this network namespace (an `ip netns` name or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

#[derive(Debug, clap::Args)]
pub struct UseArgs {
    /// The profile to make active.
    pub profile: String,
    #[command(flatten)]
    pub roots: Roots,
}

/// Resolves the profile and computes the plan; `Err(code)` after printing why.
pub fn make_plan(t: &TuneArgs) -> anyhow::Result<Result<Plan, i32>> {
    let netns = t.roots.netns(t.netns.as_deref())?;
    let name = t.roots.profile_name(t.profile.as_deref())?;
    let facts = t.roots.facts()?;
    let eff = match resolve(&t.roots.library(), &name, &facts) {
        Ok(e) => e,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(Err(1));
        }
    };
    Ok(Ok(tune::plan(&eff, &t.roots.kernel(), &netns)))
}

/// One line per key that sysctl.d, sysctl.conf or tuned's active profile also sets:
/// `conflict:` when that value undoes the profile, `also set:` when the profile accepts it.
fn print_conflicts(plan: &Plan) {
    for c in &plan.conflicts {
        println!(
            "{}: {} = {} at {}:{}: {}",
            if c.differs { "conflict" } else { "also set" },
            c.key,
            c.boot.value,
            c.boot.file,
            c.boot.line,
            c.note
        );
    }
}

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// Prints a plan as a table.
pub fn print_plan(plan: &Plan) {
    println!(
        "profile {} ({}) in {}",
        plan.profile,
        plan.chain.join(" -> "),
        if plan.netns.is_host {
            "the host namespace".to_string()
        } else {
            format!("network namespace {}", plan.netns.label)
        }
    );
    let rows: Vec<Vec<String>> = plan
        .items
        .iter()
        .map(|i| {
            let now = match (&i.action, &i.desired) {
                (Action::Change, Some(d))
                    if !matches!(i.target, crate::profile::Target::File(_)) =>
                {
                    format!("{} -> {d}", dash(&i.current))
                }
                _ => dash(&i.current),
            };
            vec![
                i.target.to_string(),
                i.scope.as_str().to_string(),
                now,
                i.want.clone(),
                i.action.as_str().to_string(),
                if i.note.is_empty() {
                    i.why.clone()
                } else {
                    i.note.clone()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["KEY", "SCOPE", "CURRENT", "WANT", "ACTION", "NOTE"],
            &rows
        )
    );
    print_conflicts(plan);
    println!(
        "{} to change, {} in sync, {} pending, {} out of scope, {} unsupported, {} errors",
        plan.count(Action::Change),
        plan.count(Action::InSync),
        plan.count(Action::Pending),
        plan.count(Action::OutOfScope),
        plan.count(Action::Unsupported),
        plan.count(Action::Error),
    );
}

pub fn plan_main(a: &PlanArgs) -> anyhow::Result<i32> {
    let plan = match make_plan(&a.tune)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    match a.tune.output {
        Output::Json => print_json(&plan)?,
        Output::Table => print_plan(&plan),
    }
    Ok(if plan.count(Action::Error) > 0 { 1 } else { 0 })
}

#[derive(Serialize)]
struct CheckReport<'a> {
    status: &'static str,
    drifted: Vec<&'a tune::Item>,
    errors: Vec<&'a tune::Item>,
    plan: &'a Plan,
}

/// Exit 0 when in sync, 2 when any key drifted, 1 on error.
pub fn check_main(a: &CheckArgs) -> anyhow::Result<i32> {
    let plan = match make_plan(&a.tune)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let drifted: Vec<&tune::Item> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Change)
        .collect();
    let errors: Vec<&tune::Item> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Error)
        .collect();
    let (status, code) = if !errors.is_empty() {
        ("error", 1)
    } else if !drifted.is_empty() {
        ("drifted", 2)
    } else {
        ("in-sync", 0)
    };
    match a.tune.output {
        Output::Json => print_json(&CheckReport {
            status,
            drifted: drifted.clone(),
            errors: errors.clone(),
            plan: &plan,
        })?,
        Output::Table => {
            for i in &errors {
                println!("error: {}: {}", i.target, i.note);
            }
            for i in &drifted {
                println!(
                    "drifted: {} is {} (profile {} wants {})",
                    i.target,
                    dash(&i.current),
                    plan.profile,
                    i.want
                );
            }
            print_conflicts(&plan);
            println!(
                "{}: profile {}: {} in sync, {} drifted, {} pending, {} out of scope",
                status,
                plan.profile,
                plan.count(Action::InSync),
                drifted.len(),
                plan.count(Action::Pending),
                plan.count(Action::OutOfScope)
            );
        }
    }
    Ok(code)
}

fn print_outcome(o: &Outcome) {
    if !o.steps.is_empty() {
        let rows: Vec<Vec<String>> = o
            .steps
            .iter()
            .map(|s| {
                let (result, detail) = match &s.result {
                    StepResult::Applied => ("applied", String::new()),
                    StepResult::Restored => ("restored", String::new()),
                    StepResult::Unchanged => ("unchanged", String::new()),
                    StepResult::RolledBack => ("rolled-back", String::new()),
                    StepResult::Failed(d) => ("FAILED", d.clone()),
                    StepResult::RollbackFailed(d) => ("ROLLBACK-FAILED", d.clone()),
                };
                vec![
                    s.target.to_string(),
                    dash(&s.before),
                    dash(&s.after),
                    result.into(),
                    detail,
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(&["KEY", "BEFORE", "AFTER", "RESULT", "DETAIL"], &rows)
        );
    }
    if o.ok {
        println!("{}", o.message);
    } else {
        eprintln!("nodetune: error: {}", o.message);
    }
}

pub fn apply_main(a: &ApplyArgs) -> anyhow::Result<i32> {
    let plan = match make_plan(&a.tune)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let opts = ApplyOptions {
        persist: a.persist,
        modprobe: a.modprobe.clone(),
    };
    let outcome = tune::apply(&plan, &a.tune.roots.kernel(), &a.tune.roots.store(), &opts)?;
    match a.tune.output {
        Output::Json => print_json(&outcome)?,
        Output::Table => {
            print_outcome(&outcome);
            for i in plan.items.iter().filter(|i| i.action == Action::Pending) {
                println!("pending: {}: {}", i.target, i.note);
            }
            for i in plan
                .items
                .iter()
                .filter(|i| i.action == Action::Unsupported)
            {
                eprintln!("nodetune: warning: {} not applied: {}", i.target, i.note);
            }
            print_conflicts(&plan);
        }
    }
    Ok(if outcome.ok { 0 } else { 1 })
}

pub fn revert_main(a: &RevertArgs) -> anyhow::Result<i32> {
    let netns = a.roots.netns(a.netns.as_deref())?;
    let outcome = tune::revert(&a.roots.kernel(), &a.roots.store(), &netns.label)?;
    match a.output {
        Output::Json => print_json(&outcome)?,
        Output::Table => print_outcome(&outcome),
    }
    Ok(if outcome.ok { 0 } else { 1 })
}

pub fn use_main(a: &UseArgs) -> anyhow::Result<i32> {
    let facts = a.roots.facts()?;
    if let Err(errors) = resolve(&a.roots.library(), &a.profile, &facts) {
        eprintln!("{errors}");
        eprintln!("nodetune: error: profile {} was not made active", a.profile);
        return Ok(1);
    }
    let store = a.roots.store();
    let previous = store.active_profile()?;
    store.set_active_profile(&a.profile)?;
    match previous {
        Some(p) if p != a.profile => println!("active profile: {} (was {p})", a.profile),
        _ => println!("active profile: {}", a.profile),
    }
    if crate::daemon::status::signal_reload(&store.dir)? {
        println!("told the running daemon to reload");
    } else {
        println!("no daemon is running: run `nodetune apply` to apply it now");
    }
    Ok(0)
}
