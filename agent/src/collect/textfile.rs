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

use super::{Collector, Family, MetricType, Options, Sample};

struct Textfile {
    patterns: Vec<String>,
}

fn is_name_start(c: char, colon: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (colon && c == ':')
}

fn is_name_char(c: char, colon: bool) -> bool {
    is_name_start(c, colon) || c.is_ascii_digit()
}

/// A valid metric name (`colon`) or label name, in the legacy (pre-UTF-8) character set.
fn valid_name(s: &str, colon: bool) -> bool {
    let mut it = s.chars();
    it.next().is_some_and(|c| is_name_start(c, colon)) && it.all(|c| is_name_char(c, colon))
}

/// Parsed labels and the rest of the line.
type Labels<'a> = (Vec<(String, String)>, &'a str);

fn parse_labels(s: &str) -> Result<Labels<'_>, String> {
    // `s` starts right after '{'.
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = rest[..eq].trim();
        if !valid_name(name, false) {
            return Err(format!("invalid label name {name:?}"));
        }
        if name == "__name__" {
            return Err("label name \"__name__\" is reserved".into());
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate label name {name:?}"));
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
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("invalid escape sequence in label value".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((name.to_string(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

/// HELP text unescaping: `\\` and `\n` only, as the text format defines.
fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            _ => return Err("invalid escape sequence in HELP".into()),
        }
    }
    Ok(out)
}

fn parse_value(v: &str) -> Result<f64, String> {
    // Rust accepts what Go's ParseFloat does for the text format: Inf/+Inf/-Inf/NaN in any
    // case, exponents.
    v.parse::<f64>().map_err(|_| format!("invalid value {v:?}"))
}

/// One family parsed from a file: HELP is None when the file gives none.
struct Parsed {
    name: String,
    help: Option<String>,
    kind: Option<MetricType>,
    samples: Vec<Sample>,
}

/// Parses one text-format file. Families come back sorted by name, empty ones dropped.
fn parse(text: &str) -> Result<Vec<Parsed>, String> {
    let mut fams: BTreeMap<String, Parsed> = BTreeMap::new();
    fn get<'a>(fams: &'a mut BTreeMap<String, Parsed>, name: &str) -> &'a mut Parsed {
        fams.entry(name.to_string()).or_insert_with(|| Parsed {
            name: name.to_string(),
            help: None,
            kind: None,
            samples: Vec::new(),
        })
    }
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}", n + 1);
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim_start_matches([' ', '\t']);
            let (keyword, rest) = c.split_once([' ', '\t']).unwrap_or((c, ""));
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // an ordinary comment
            }
            let rest = rest.trim_start_matches([' ', '\t']);
            let (name, arg) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            if !valid_name(name, true) {
                return Err(err(format!("invalid metric name {name:?} in {keyword}")));
            }
            let f = get(&mut fams, name);
            if keyword == "HELP" {
                if f.help.is_some() {
                    return Err(err(format!("second HELP line for {name}")));
                }
                f.help = Some(unescape_help(arg).map_err(err)?);
            } else {
                if f.kind.is_some() || !f.samples.is_empty() {
                    return Err(err(format!(
                        "second TYPE line for {name}, or TYPE after its samples"
                    )));
                }
                f.kind = Some(match arg.trim() {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "untyped" => MetricType::Untyped,
                    t @ ("summary" | "histogram") => {
                        return Err(err(format!("{t} families are not supported")))
                    }
                    t => return Err(err(format!("unknown metric type {t:?}"))),
                });
            }
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(err(format!("invalid metric name {name:?}")));
        }
        let (labels, rest) = match line[name_end..].trim_start().strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(err)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let mut parts = rest.split_ascii_whitespace();
        let value = parse_value(
            parts
                .next()
                .ok_or_else(|| err("sample without a value".into()))?,
        )
        .map_err(err)?;
        if parts.next().is_some() {
            return Err(err("client-side timestamps are not supported".into()));
        }
        let f = get(&mut fams, name);
        f.kind.get_or_insert(MetricType::Untyped);
        f.samples.push(Sample {
            labels: labels.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            value,
        });
    }
    Ok(fams
        .into_values()
        .filter(|f| !f.samples.is_empty())
        .collect())
}

/// Go's `filepath.Clean`: the path label and HELP name files as node_exporter does.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Match` for one path element; None when the pattern is malformed.
fn glob_match(pat: &[char], name: &[char]) -> Option<bool> {
    matches(pat, name, &mut HashMap::new())
}

/// Suffixes of one pattern and one name are named by their lengths.
type Memo = HashMap<(usize, usize), Option<bool>>;

/// [`glob_match`] on suffixes, each pair decided once: plain backtracking over several '*'
/// takes exponential time ("a*a*a*…b" against "aaaa…" ran for seconds).
fn matches(pat: &[char], name: &[char], memo: &mut Memo) -> Option<bool> {
    let key = (pat.len(), name.len());
    if let Some(&r) = memo.get(&key) {
        return r;
    }
    let r = match_uncached(pat, name, memo);
    memo.insert(key, r);
    r
}

fn match_uncached(pat: &[char], name: &[char], memo: &mut Memo) -> Option<bool> {
    let Some((&p, prest)) = pat.split_first() else {
        return Some(name.is_empty());
    };
    match p {
        '*' => {
            // Try every split; '*' never crosses '/', and names here hold none.
            for i in 0..=name.len() {
                if matches(prest, &name[i..], memo)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match name.split_first() {
            Some((_, nrest)) => matches(prest, nrest, memo),
            None => rest_valid(prest, memo).map(|_| false),
        },
        '[' => {
            let mut i = 0;
            let negate = prest.first() == Some(&'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            let c = name.first().copied();
            let mut first = true;
            loop {
                let &lo = prest.get(i)?;
                if lo == ']' && !first {
                    i += 1;
                    break;
                }
                first = false;
                let (lo, next) = class_char(prest, i)?;
                i = next;
                let mut hi = lo;
                if prest.get(i) == Some(&'-') && prest.get(i + 1) != Some(&']') {
                    let (h, next) = class_char(prest, i + 1)?;
                    hi = h;
                    i = next;
                }
                if c.is_some_and(|c| lo <= c && c <= hi) {
                    matched = true;
                }
            }
            match c {
                Some(_) if matched != negate => matches(&prest[i..], &name[1..], memo),
                _ => rest_valid(&prest[i..], memo).map(|_| false),
            }
        }
        '\\' => {
            let (&lit, prest) = prest.split_first()?;
            match name.split_first() {
                Some((&c, nrest)) if c == lit => matches(prest, nrest, memo),
                _ => rest_valid(prest, memo).map(|_| false),
            }
        }
        lit => match name.split_first() {
            Some((&c, nrest)) if c == lit => matches(prest, nrest, memo),
            _ => rest_valid(prest, memo).map(|_| false),
        },
    }
}

/// Go reports a malformed pattern even when an earlier part already failed to match.
fn rest_valid(pat: &[char], memo: &mut Memo) -> Option<()> {
    matches(pat, &[], memo).map(|_| ())
}

/// One (possibly escaped) character inside a `[...]` class and the index after it.
fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match p.get(i)? {
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        '-' | ']' => None,
        c => Some((*c, i + 1)),
    }
}

/// Go's `filepath.Glob`: the sorted paths matching `pattern`; None when it is malformed.
fn glob(pattern: &str) -> Option<Vec<String>> {
    if !has_meta(pattern) {
        return Some(if std::fs::symlink_metadata(pattern).is_ok() {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        });
    }
    let (dir, file) = match pattern.rfind('/') {
        Some(i) => (&pattern[..=i], &pattern[i + 1..]),
        None => ("", pattern),
    };
    let dir = match dir {
        "" => ".".to_string(),
        "/" => "/".to_string(),
        d => d[..d.len() - 1].to_string(),
    };
    let file: Vec<char> = file.chars().collect();
    // Validate the element pattern once, like Go does before reading any directory.
    glob_match(&file, &[])?;
    let dirs = if has_meta(&dir) {
        glob(&dir)?
    } else {
        vec![dir]
    };
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let chars: Vec<char> = n.chars().collect();
            if glob_match(&file, &chars)? {
                out.push(clean(&format!("{d}/{n}")));
            }
        }
    }
    Some(out)
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
        let mut e = Family::new(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            MetricType::Gauge,
        );
        e.push(&[], if found.error { 1.0 } else { 0.0 });
        out.push(e);
        Ok(())
    }
}

/// Gives every series the union of the family's label names, missing ones empty.
fn fill_missing_labels(f: &mut Family) {
    let mut names: Vec<&str> = Vec::new();
    for s in &f.samples {
        for (n, _) in &s.labels {
            if !names.contains(&n.as_ref()) {
                names.push(n);
            }
        }
    }
    let names: Vec<String> = names.into_iter().map(str::to_string).collect();
    for s in &mut f.samples {
        for n in &names {
            if !s.labels.iter().any(|(k, _)| k == n) {
                s.labels.push((n.clone().into(), String::new()));
            }
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
    fn parses_text_format() {
        let f = parse(
            "# HELP a_total Help \\\\ me\\n2\n# TYPE a_total counter\n\
             a_total{x=\"1\",y=\"q\\\"\",} 3\nb 1.5e3\n# just a comment\nc +Inf\n",
        )
        .unwrap();
        assert_eq!(f[0].name, "a_total");
        assert_eq!(f[0].kind, Some(MetricType::Counter));
        assert_eq!(f[0].help.as_deref(), Some("Help \\ me\n2"));
        assert_eq!(f[0].samples[0].labels[1], ("y".into(), "q\"".into()));
        assert_eq!(f[1].help, None);
        assert_eq!(f[1].kind, Some(MetricType::Untyped));
        assert_eq!(f[1].samples[0].value, 1500.0);
        assert_eq!(f[2].samples[0].value, f64::INFINITY);
        for bad in [
            "a 1 123\n",
            "a{x=1} 1\n",
            "a\n",
            "a{x=\"1\",x=\"2\"} 1\n",
            "a{x=\"\\t\"} 1\n",
            "1a 1\n",
            "a one\n",
            "# TYPE a gauge\n# TYPE a gauge\n",
            "a 1\n# TYPE a gauge\n",
            "# HELP a x\n# HELP a y\n",
            "# TYPE a histogram\na_bucket{le=\"1\"} 1\n",
            "# TYPE a nonsense\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        // HELP/TYPE without samples leaves nothing.
        assert!(parse("# HELP a x\n# TYPE a gauge\n").unwrap().is_empty());
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean("a/b/"), "a/b");
        assert_eq!(clean("a//b/./c/../d"), "a/b/d");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn glob_patterns_like_go() {
        let m = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(m("*.d", "x.d"), Some(true));
        assert_eq!(m("*.d", ".d"), Some(true));
        assert_eq!(m("a?c", "abc"), Some(true));
        assert_eq!(m("[a-c]x", "bx"), Some(true));
        assert_eq!(m("[^a-c]x", "bx"), Some(false));
        assert_eq!(m("\\*", "*"), Some(true));
        assert_eq!(m("[", "a"), None);
        assert_eq!(m("a*b*c", "aXbYc"), Some(true));
        assert_eq!(m("a**c", "ac"), Some(true));
        assert_eq!(m("*[", "abc"), None);
    }

    /// Found by the `procfs` fuzz target: backtracking over many '*' took seconds per name
    /// (a scrape-time hang with a pattern from --collector.textfile.directory).
    #[test]
    fn many_stars_match_in_polynomial_time() {
        let pat: Vec<char> = format!("0{}S0", "*S".repeat(30)).chars().collect();
        let name: Vec<char> = format!("0{}", "S".repeat(200)).chars().collect();
        let t = std::time::Instant::now();
        assert_eq!(glob_match(&pat, &name), Some(false));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        let name: Vec<char> = format!("0{}0", "S".repeat(200)).chars().collect();
        assert_eq!(glob_match(&pat, &name), Some(true));
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
        assert_eq!(plain.samples[1].labels, vec![("k".into(), String::new())]);
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
