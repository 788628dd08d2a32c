//! `nodetune profile list|show|validate|keys`.

use std::path::PathBuf;

use serde::Serialize;

use super::common::{print_json, Output, Roots};
use super::table;
use crate::profile::catalogue::{self, Kind};
use crate::profile::{resolve, resolve_file, Effective, ProfileError, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// List the available profiles and where each comes from.
    List(ListArgs),
    /// Show a profile's effective values after includes, with the file and line of each.
    Show(ShowArgs),
    /// Check profile files: syntax, keys, ranges, includes. Exit 1 on any problem.
    Validate(ValidateArgs),
    /// List every key of the catalogue: type, range, scope, description.
    Keys(KeysArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    pub name: String,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub roots: Roots,
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// Print a Markdown table (as in docs/profiles.md).
    #[arg(long, conflicts_with = "output")]
    pub markdown: bool,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
}

pub fn main(args: &Args) -> anyhow::Result<i32> {
    match &args.command {
        Sub::List(a) => list(a),
        Sub::Show(a) => show(a),
        Sub::Validate(a) => validate(a),
        Sub::Keys(a) => keys(a),
    }
}

fn list(a: &ListArgs) -> anyhow::Result<i32> {
    let list = a.roots.library().list()?;
    match a.output {
        Output::Json => print_json(&list)?,
        Output::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone(),
                        l.origin.clone(),
                        l.summary.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print!("{}", table::render(&["NAME", "FROM", "SUMMARY"], &rows));
        }
    }
    Ok(0)
}

/// One effective value, as `profile show` prints it.
pub fn entry_rows(eff: &Effective) -> Vec<Vec<String>> {
    eff.entries
        .iter()
        .map(|e| {
            let value = match (&e.target, &e.want) {
                (Target::File(_), crate::profile::Want::Text(t)) => {
                    crate::tune::plan::file_summary(t)
                }
                (_, w) => w.to_string(),
            };
            vec![
                e.target.to_string(),
                value,
                e.scope.as_str().to_string(),
                e.origin.clone(),
            ]
        })
        .collect()
}

fn show(a: &ShowArgs) -> anyhow::Result<i32> {
    let facts = a.roots.facts()?;
    let eff = match resolve(&a.roots.library(), &a.name, &facts) {
        Ok(e) => e,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(1);
        }
    };
    match a.output {
        Output::Json => print_json(&eff)?,
        Output::Table => {
            println!("profile {} ({})", eff.name, eff.origin);
            if let Some(s) = &eff.summary {
                println!("  {s}");
            }
            println!("  merge order: {}", eff.chain.join(" -> "));
            println!();
            print!(
                "{}",
                table::render(&["KEY", "VALUE", "SCOPE", "SET IN"], &entry_rows(&eff))
            );
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct Validation {
    file: String,
    ok: bool,
    settings: usize,
    errors: Vec<ProfileError>,
}

fn validate(a: &ValidateArgs) -> anyhow::Result<i32> {
    let facts = a.roots.facts()?;
    let library = a.roots.library();
    let results: Vec<Validation> = a
        .files
        .iter()
        .map(|f| match resolve_file(&library, f, &facts) {
            Ok(eff) => Validation {
                file: f.display().to_string(),
                ok: true,
                settings: eff.entries.len(),
                errors: Vec::new(),
            },
            Err(e) => Validation {
                file: f.display().to_string(),
                ok: false,
                settings: 0,
                errors: e.0,
            },
        })
        .collect();
    let ok = results.iter().all(|r| r.ok);
    match a.output {
        Output::Json => print_json(&results)?,
        Output::Table => {
            for r in &results {
                if r.ok {
                    println!("{}: ok ({} settings)", r.file, r.settings);
                } else {
                    for e in &r.errors {
                        println!("{e}");
                    }
                }
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn kind_text(k: Kind) -> (String, String) {
    match k {
        Kind::Int { min, max } => ("integer".into(), format!("{min}..={max}")),
        Kind::Ints { n, min, max } => (format!("{n} integers"), format!("each {min}..={max}")),
        Kind::Word { choices: [] } => ("text".into(), String::new()),
        Kind::Word { choices } => ("word".into(), choices.join(", ")),
    }
}

#[derive(Serialize)]
struct KeyRow {
    key: &'static str,
    kind: String,
    range: String,
    unit: &'static str,
    scope: &'static str,
    module: Option<&'static str>,
    notes: &'static str,
    description: &'static str,
}

fn keys(a: &KeysArgs) -> anyhow::Result<i32> {
    let rows: Vec<KeyRow> = catalogue::KEYS
        .iter()
        .map(|k| {
            let (kind, range) = kind_text(k.kind);
            KeyRow {
                key: k.name,
                kind,
                range,
                unit: k.unit,
                scope: k.scope.as_str(),
                module: k.module,
                notes: k.notes,
                description: k.description,
            }
        })
        .collect();
    if a.markdown {
        println!("| key | type | range | unit | scope | description | notes |");
        println!("|---|---|---|---|---|---|---|");
        for r in &rows {
            let notes = match r.module {
                Some(m) => format!("module {m}; {}", r.notes)
                    .trim_end_matches("; ")
                    .to_string(),
                None => r.notes.to_string(),
            };
            println!(
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                r.key, r.kind, r.range, r.unit, r.scope, r.description, notes
            );
        }
        println!();
        println!("Refused keys:");
        println!();
        for r in catalogue::REFUSED {
            println!("- `{}`: {}", r.name, r.reason);
        }
        return Ok(0);
    }
    match a.output {
        Output::Json => print_json(&rows)?,
        Output::Table => {
            let t: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.key.to_string(),
                        r.kind.clone(),
                        r.range.clone(),
                        r.scope.to_string(),
                        r.description.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["KEY", "TYPE", "RANGE", "SCOPE", "DESCRIPTION"], &t)
            );
        }
    }
    Ok(0)
}
