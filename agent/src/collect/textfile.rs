//! textfile collector: metrics from `*.prom` files in --collector.textfile.directory (written
//! by cron jobs and the like), node_textfile_mtime_seconds per file and
//! node_textfile_scrape_error. A file that does not parse is skipped whole and flagged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{Collector, Family, MetricType, Options};

struct Textfile {
    dirs: Vec<PathBuf>,
}

/// Parsed labels and the rest of the line.
type Labels<'a> = (Vec<(String, String)>, &'a str);

fn parse_labels(s: &str) -> Result<Labels<'_>, String> {
    // `s` starts right after '{'.
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = rest[..eq].trim().to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((name, value));
        rest = &rest[end + 1..];
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| format!("invalid value {v:?}")),
    }
}

/// Parses one text-format file into families (HELP defaulting to "Metric read from PATH").
pub fn parse(text: &str, path: &Path) -> Result<Vec<Family>, String> {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let default_help = format!("Metric read from {}", path.display());
    let family = |fams: &mut BTreeMap<String, Family>, name: &str| -> Family {
        fams.remove(name)
            .unwrap_or_else(|| Family::new(name, default_help.clone(), MetricType::Untyped))
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let err = |m: String| format!("{}:{}: {m}", path.display(), n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut it = c.trim_start().splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("HELP"), Some(name), help) => {
                    let mut f = family(&mut fams, name);
                    f.help = help
                        .unwrap_or("")
                        .replace("\\n", "\n")
                        .replace("\\\\", "\\");
                    fams.insert(name.to_string(), f);
                }
                (Some("TYPE"), Some(name), Some(t)) => {
                    let mut f = family(&mut fams, name);
                    f.kind = match t.trim() {
                        "counter" => MetricType::Counter,
                        "gauge" => MetricType::Gauge,
                        "untyped" => MetricType::Untyped,
                        other => return Err(err(format!("unsupported metric type {other:?}"))),
                    };
                    fams.insert(name.to_string(), f);
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' ', '\t'])
            .ok_or_else(|| err("sample without a value".into()))?;
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(err(format!("invalid metric name {name:?}")));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(err)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let mut parts = rest.split_whitespace();
        let value = parse_value(
            parts
                .next()
                .ok_or_else(|| err("sample without a value".into()))?,
        )
        .map_err(err)?;
        if parts.next().is_some() {
            return Err(err("client-side timestamps are not supported".into()));
        }
        let mut f = family(&mut fams, name);
        f.samples.push(super::Sample { labels, value });
        fams.insert(name.to_string(), f);
    }
    Ok(fams.into_values().collect())
}

impl Collector for Textfile {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut error = false;
        let mut mtimes = Family::new(
            "node_textfile_mtime_seconds",
            "Unixtime mtime of textfiles successfully read.",
            MetricType::Gauge,
        );
        let mut seen: BTreeMap<String, MetricType> = BTreeMap::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                error = true;
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "prom"))
                .collect();
            files.sort();
            for path in files {
                let parsed = std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| parse(&t, &path));
                let fams = match parsed {
                    Ok(f) => f,
                    Err(_) => {
                        error = true;
                        continue;
                    }
                };
                // The same family with another type in an earlier file makes this one invalid.
                if fams
                    .iter()
                    .any(|f| seen.get(&f.name).is_some_and(|k| *k != f.kind))
                {
                    error = true;
                    continue;
                }
                for f in &fams {
                    seen.insert(f.name.clone(), f.kind);
                }
                if let Ok(m) = std::fs::metadata(&path).and_then(|m| m.modified()) {
                    let secs = m
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    mtimes.push(&[("file", &path.display().to_string())], secs.floor());
                }
                out.extend(fams);
            }
        }
        out.push(mtimes);
        let mut e = Family::new(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            MetricType::Gauge,
        );
        e.push(&[], if error { 1.0 } else { 0.0 });
        out.push(e);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Textfile {
        dirs: opts.textfile_directories.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_format() {
        let p = Path::new("x.prom");
        let f = parse("# HELP a_total Help \\\\ me\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\nb 1.5e3\n", p).unwrap();
        assert_eq!(f[0].name, "a_total");
        assert_eq!(f[0].kind, MetricType::Counter);
        assert_eq!(f[0].help, "Help \\ me");
        assert_eq!(f[0].samples[0].labels[1], ("y".into(), "q\"".into()));
        assert_eq!(f[1].help, "Metric read from x.prom");
        assert_eq!(f[1].samples[0].value, 1500.0);
        assert_eq!(
            parse("a 1 123\n", p).unwrap_err(),
            "x.prom:1: client-side timestamps are not supported"
        );
        assert!(parse("a{x=1} 1\n", p).is_err());
        assert!(parse("a\n", p).is_err());
    }
}
