//! textfile collector: metrics from `*.prom` files in the `--collector.textfile.directory`
//! directories (repeatable, glob patterns allowed), written by cron jobs and the like; plus
//! `node_textfile_mtime_seconds{file}` per file read and `node_textfile_scrape_error`.
//!
//! Rules follow node_exporter 1.12:
//! - a file that does not parse, or has client-side timestamps, is skipped whole and sets
//!   `node_textfile_scrape_error 1`; an unreadable directory does too;
//! - a family without HELP gets "Metric read from FILE[, FILE…]" (every file holding it);
//! - a family whose HELP differs from the one seen first is dropped (scrape error 1);
//! - the same family in several files is merged; a family whose type or (generated) HELP
//!   disagrees with the first one is dropped, as client_golang's registry drops it;
//! - series lacking a label other series of the family have get it with an empty value.
//!
//! Not supported: summary and histogram families (the sample model has no `_bucket`/`_sum`
//! series); a file declaring one is skipped as unparsable.

use std::collections::{BTreeMap, HashMap};
use std::time::UNIX_EPOCH;

mod parse;

use parse::{parse, Parsed};

use super::{Collector, Family, MetricType, Options};
use crate::base::glob::{clean, glob};

struct Textfile {
    patterns: Vec<String>,
}

/// What one scrape of the directories found.
struct Found {
    /// (file path, family) in file order.
    fams: Vec<(String, Parsed)>,
    mtimes: BTreeMap<String, f64>,
    error: bool,
}

impl Textfile {
    fn read_all(&self) -> Found {
        let mut found = Found {
            fams: Vec::new(),
            mtimes: BTreeMap::new(),
            error: false,
        };
        // First HELP seen per name, and whether a conflicting one was seen since.
        let mut helps: HashMap<String, (String, bool)> = HashMap::new();
        let mut dirs = Vec::new();
        for p in &self.patterns {
            match glob(p) {
                Some(m) if !m.is_empty() => dirs.extend(m),
                _ => dirs.push(p.clone()),
            }
        }
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(_) => {
                    found.error |= !dir.is_empty();
                    continue;
                }
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".prom"))
                .collect();
            names.sort();
            for name in names {
                let path = clean(&format!("{dir}/{name}"));
                // Opening blocks on a FIFO nobody writes to, as in node_exporter; the scrape
                // orchestrator's per-collector deadline bounds that.
                let parsed = std::fs::File::open(&path)
                    .and_then(|mut f| {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut f, &mut s)?;
                        let mtime = f.metadata()?.modified()?;
                        Ok((s, mtime))
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|(s, m)| parse(&s).map(|f| (f, m)));
                let (fams, mtime) = match parsed {
                    Ok(x) => x,
                    Err(_) => {
                        found.error = true;
                        continue;
                    }
                };
                for f in fams {
                    if let Some((first, conflict)) = helps.get_mut(&f.name) {
                        if f.help.as_ref().is_some_and(|h| h != first) || *conflict {
                            *conflict = true;
                            found.error = true;
                            continue;
                        }
                    }
                    if let Some(h) = &f.help {
                        helps.insert(f.name.clone(), (h.clone(), false));
                    }
                    found.fams.push((path.clone(), f));
                }
                // Whole seconds, as node_exporter exports them.
                let secs = mtime
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as f64)
                    .unwrap_or(0.0);
                found.mtimes.insert(path, secs);
            }
        }
        found
    }
}

impl Collector for Textfile {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let found = self.read_all();
        // node_exporter's HELP for a family without one names every file holding it.
        let mut generated: HashMap<String, String> = HashMap::new();
        for (path, f) in &found.fams {
            match generated.get_mut(&f.name) {
                Some(h) => {
                    h.push_str(", ");
                    h.push_str(path);
                }
                None => {
                    generated.insert(f.name.clone(), format!("Metric read from {path}"));
                }
            }
        }
        // The first family of a name fixes its HELP and type; later disagreeing ones drop.
        let mut merged: Vec<Family> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (_, f) in found.fams {
            let help = match f.help {
                Some(h) => h,
                None => generated.get(&f.name).cloned().unwrap_or_default(),
            };
            let kind = f.kind.unwrap_or(MetricType::Untyped);
            let slot = match index.get(&f.name) {
                Some(&i) if merged[i].help == help && merged[i].kind == kind => i,
                Some(_) => continue,
                None => {
                    index.insert(f.name.clone(), merged.len());
                    merged.push(Family::new(f.name.clone(), help, kind));
                    merged.len() - 1
                }
            };
            merged[slot].samples.extend(f.samples);
        }
        for fam in &mut merged {
            fill_missing_labels(fam);
        }
        out.extend(merged);
        let mut mtimes = Family::new(
            "node_textfile_mtime_seconds",
            "Unixtime mtime of textfiles successfully read.",
            MetricType::Gauge,
        );
        for (path, secs) in &found.mtimes {
            mtimes.push(&[("file", path)], *secs);
        }
        out.push(mtimes);
        out.push(Family::single(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            MetricType::Gauge,
            if found.error { 1.0 } else { 0.0 },
        ));
        Ok(())
    }
}

/// Gives every series the union of the family's label names, missing ones empty.
fn fill_missing_labels(f: &mut Family) {
    let mut names: Vec<&str> = Vec::new();
    for s in &f.samples {
        for (n, _) in s.labels.iter() {
            if !names.contains(&n.as_ref()) {
                names.push(n);
            }
        }
    }
    let names: Vec<String> = names.into_iter().map(str::to_string).collect();
    for s in &mut f.samples {
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !s.labels.iter().any(|(k, _)| k == *n))
            .collect();
        if !missing.is_empty() {
            let mut labels = s.labels.to_vec();
            labels.extend(
                missing
                    .into_iter()
                    .map(|n| (n.clone().into(), String::new())),
            );
            s.labels = labels.into();
        }
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Textfile {
        patterns: opts
            .textfile_directories
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn collect(dirs: &[&Path]) -> Vec<Family> {
        let t = Textfile {
            patterns: dirs.iter().map(|d| d.display().to_string()).collect(),
        };
        let mut out = Vec::new();
        t.collect(&mut out).unwrap();
        out
    }

    fn fam<'a>(fams: &'a [Family], name: &str) -> Option<&'a Family> {
        fams.iter().find(|f| f.name == name)
    }

    fn scrape_error(fams: &[Family]) -> f64 {
        fam(fams, "node_textfile_scrape_error").unwrap().samples[0].value
    }

    #[test]
    fn merges_files_and_flags_errors() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, s: &str| std::fs::write(d.path().join(n), s).unwrap();
        w(
            "a.prom",
            "# HELP m Shared.\n# TYPE m gauge\nm{x=\"1\"} 1\nplain{k=\"v\"} 1\nplain 2\n",
        );
        w(
            "b.prom",
            "# HELP m Shared.\n# TYPE m gauge\nm{x=\"2\"} 2\nnohelp 3\n",
        );
        w("c.prom", "nohelp 4\n");
        w("d.prom", "# HELP m Other help.\nm{x=\"3\"} 3\n");
        w("e.prom", "broken {\n");
        w("ignored.txt", "x 1\n");
        let fams = collect(&[d.path()]);
        let dir = d.path().display().to_string();
        let m = fam(&fams, "m").unwrap();
        assert_eq!(m.help, "Shared.");
        assert_eq!(
            m.samples.len(),
            2,
            "d.prom's conflicting HELP drops its family"
        );
        let nohelp: Vec<&Family> = fams.iter().filter(|f| f.name == "nohelp").collect();
        assert_eq!(nohelp.len(), 1);
        assert_eq!(
            nohelp[0].help,
            format!("Metric read from {dir}/b.prom, {dir}/c.prom")
        );
        assert_eq!(nohelp[0].samples.len(), 2);
        let plain = fam(&fams, "plain").unwrap();
        assert_eq!(plain.samples[1].labels[..], [("k".into(), String::new())]);
        assert_eq!(scrape_error(&fams), 1.0);
        let files: Vec<&str> = fam(&fams, "node_textfile_mtime_seconds")
            .unwrap()
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        // e.prom failed; d.prom parsed (its mtime counts) though its family was dropped.
        let want: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| format!("{dir}/{n}.prom"))
            .collect();
        assert_eq!(files, want);
    }

    #[test]
    fn globs_missing_dirs_and_no_flag() {
        let d = tempfile::tempdir().unwrap();
        for sub in ["one", "two"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
            std::fs::write(d.path().join(sub).join("m.prom"), format!("m_{sub} 1\n")).unwrap();
        }
        let fams = collect(&[&d.path().join("t*o"), &d.path().join("o[m-o]e")]);
        assert!(fam(&fams, "m_one").is_some() && fam(&fams, "m_two").is_some());
        assert_eq!(scrape_error(&fams), 0.0);
        let fams = collect(&[&d.path().join("missing")]);
        assert_eq!(scrape_error(&fams), 1.0);
        let fams = collect(&[]);
        assert_eq!(scrape_error(&fams), 0.0);
    }
}
