//! The Prometheus text exposition format, as node_exporter's textfile collector accepts it
//! (client_golang's text parser): HELP and TYPE lines, labels with escapes, values in Go's
//! float syntax; client-side timestamps, summaries and histograms are refused.

use std::collections::BTreeMap;

use crate::collect::{MetricType, Sample};

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
pub struct Parsed {
    pub name: String,
    pub help: Option<String>,
    pub kind: Option<MetricType>,
    pub samples: Vec<Sample>,
}

/// Parses one text-format file. Families come back sorted by name, empty ones dropped.
pub fn parse(text: &str) -> Result<Vec<Parsed>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
