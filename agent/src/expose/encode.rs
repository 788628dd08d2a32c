//! Text exposition: Prometheus format 0.0.4 and OpenMetrics 1.0, byte-compatible with
//! client_golang's output (families sorted by name, labels sorted by name, series sorted by
//! label values, Go's shortest float formatting).

use crate::collect::{Family, MetricType, Sample};

/// Which format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format from an HTTP Accept header (RFC 9110 12.5.1): of the media ranges
    /// nodetune can serve, the one with the highest quality, a specific type before a
    /// wildcard at equal quality, the earlier one on a tie. `q=0` means "not acceptable".
    /// Without a usable range, the text format (as client_golang).
    pub fn negotiate(accept: Option<&str>) -> Format {
        // (quality, specificity, format) of the best range so far.
        let mut best: Option<(f32, u8, Format)> = None;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    // A malformed quality counts as 0, as in Go's goautoneg.
                    "q" => {
                        q = v
                            .parse()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(v.to_string()),
                    _ => {}
                }
            }
            let v = version.as_deref();
            let (specific, format) = match media.as_str() {
                "application/openmetrics-text" if matches!(v, None | Some("1.0.0" | "0.0.1")) => {
                    (2, Format::OpenMetrics)
                }
                "text/plain" if matches!(v, None | Some("0.0.4")) => (2, Format::Text),
                "text/*" => (1, Format::Text),
                "*/*" => (0, Format::Text),
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, bs, _)| (q, specific) > (bq, bs)) {
                best = Some((q, specific, format));
            }
        }
        best.map_or(Format::Text, |(_, _, f)| f)
    }
}

/// Writes a float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` does: shortest round-trip
/// digits, exponent form when the decimal exponent is < -4 or >= 6 (Go decides with
/// precision 6 when printing the shortest form), at least two exponent digits.
///
/// The shortest digits come from ryu, whose own layout is taken apart here: a scrape writes
/// thousands of floats, and core::fmt's `{:e}` costs several times more per value.
pub fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == 0.0 {
        // client_golang writes -0 as "0" too (its `f == 0` case comes first).
        out.push('0');
    } else if v.fract() == 0.0 && v.abs() < 1e6 {
        // Most samples are counts: the same digits as below, without float formatting.
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(v.abs());
        // ryu writes "123.45", "1e-7" or "1.2345e20": digits, a point, an exponent.
        let (mant, e10) = match s.split_once('e') {
            Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
            None => (s, 0),
        };
        let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
        let mut digits = [0u8; 40];
        let mut nd = 0;
        for &d in int.as_bytes().iter().chain(frac.as_bytes()) {
            if nd < digits.len() {
                digits[nd] = d;
                nd += 1;
            }
        }
        // The value is 0.DIGITS x 10^dp once leading and trailing zeros are gone.
        let mut dp = int.len() as i32 + e10;
        let lead = digits[..nd].iter().take_while(|d| **d == b'0').count();
        digits.copy_within(lead..nd, 0);
        nd -= lead;
        dp -= lead as i32;
        while nd > 1 && digits[nd - 1] == b'0' {
            nd -= 1;
        }
        let d = &digits[..nd];
        if v < 0.0 {
            out.push('-');
        }
        let exp = dp - 1;
        if (-4..6).contains(&exp) {
            if dp <= 0 {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', (-dp) as usize));
                out.push_str(text(d));
            } else if dp as usize >= nd {
                out.push_str(text(d));
                out.extend(std::iter::repeat_n('0', dp as usize - nd));
            } else {
                out.push_str(text(&d[..dp as usize]));
                out.push('.');
                out.push_str(text(&d[dp as usize..]));
            }
        } else {
            out.push_str(text(&d[..1]));
            if nd > 1 {
                out.push('.');
                out.push_str(text(&d[1..]));
            }
            out.push('e');
            out.push(if exp < 0 { '-' } else { '+' });
            if exp.unsigned_abs() < 10 {
                out.push('0');
            }
            out.push_str(itoa::Buffer::new().format(exp.unsigned_abs()));
        }
    }
}

/// ASCII digits as text (they always are: this cannot fail).
fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("0")
}

/// Appends `s` with `\` and newline escaped, and `"` too when `quote` (label values; HELP in
/// OpenMetrics). Copies unescaped runs whole, found with memchr: most strings (a scrape writes
/// about 15 kB of help text and label values) have nothing to escape.
fn escape(out: &mut String, s: &str, quote: bool) {
    let b = s.as_bytes();
    let mut start = 0;
    loop {
        let next = if quote {
            memchr::memchr3(b'\\', b'\n', b'"', &b[start..])
        } else {
            memchr::memchr2(b'\\', b'\n', &b[start..])
        };
        let Some(at) = next.map(|n| start + n) else {
            break;
        };
        out.push_str(&s[start..at]);
        out.push_str(match b[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        start = at + 1;
    }
    out.push_str(&s[start..]);
}

/// Sorts families by name, merges same-named ones, sorts labels and series; drops empty
/// families. Done once per scrape, before encoding.
pub fn normalize(mut fams: Vec<Family>) -> Vec<Family> {
    fams.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Family> = Vec::with_capacity(fams.len());
    for f in fams {
        match out.last_mut() {
            Some(last) if last.name == f.name => last.samples.extend(f.samples),
            _ => out.push(f),
        }
    }
    out.retain(|f| !f.samples.is_empty());
    for f in &mut out {
        for s in &mut f.samples {
            if !s.labels.is_sorted_by(|a, b| a.0 <= b.0) {
                // In place when this series alone holds the set (most do); a set a collector
                // keeps for later scrapes is copied.
                match std::sync::Arc::get_mut(&mut s.labels) {
                    Some(own) => own.sort_by(|a, b| a.0.cmp(&b.0)),
                    None => {
                        let mut sorted = s.labels.to_vec();
                        sorted.sort_by(|a, b| a.0.cmp(&b.0));
                        s.labels = sorted.into();
                    }
                }
            }
        }
        // client_golang's order: fewer labels first, then label values in label-name order.
        // The sort is stable, so of two series with the same labels the first collected stays,
        // and the later one is dropped as client_golang's registry drops it. The collectors
        // with many series give them in this order already: checking costs one pass, and
        // when every series orders strictly after the one before, none can be a duplicate.
        let order = |a: &Sample, b: &Sample| {
            let av = a.labels.iter().map(|l| l.1.as_str());
            let bv = b.labels.iter().map(|l| l.1.as_str());
            a.labels.len().cmp(&b.labels.len()).then_with(|| av.cmp(bv))
        };
        let (mut sorted, mut strictly) = (true, true);
        for w in f.samples.windows(2) {
            match order(&w[0], &w[1]) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => strictly = false,
                std::cmp::Ordering::Greater => {
                    sorted = false;
                    break;
                }
            }
        }
        if !sorted {
            f.samples.sort_by(order);
        }
        if !(sorted && strictly) {
            f.samples
                .dedup_by(|later, first| later.labels == first.labels);
        }
    }
    out
}

/// Encodes normalized families.
pub fn encode(fams: &[Family], format: Format, out: &mut String) {
    let om = format == Format::OpenMetrics;
    for f in fams {
        let type_name = if om && f.kind == MetricType::Counter {
            f.name.strip_suffix("_total").unwrap_or(&f.name)
        } else {
            &f.name
        };
        out.push_str("# HELP ");
        out.push_str(type_name);
        out.push(' ');
        escape(out, &f.help, om);
        out.push('\n');
        out.push_str("# TYPE ");
        out.push_str(type_name);
        out.push_str(match (f.kind, om) {
            (MetricType::Counter, _) => " counter\n",
            (MetricType::Gauge, _) => " gauge\n",
            (MetricType::Untyped, false) => " untyped\n",
            (MetricType::Untyped, true) => " unknown\n",
        });
        for s in &f.samples {
            out.push_str(&f.name);
            if om && f.kind == MetricType::Counter && !f.name.ends_with("_total") {
                out.push_str("_total");
            }
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape(out, v, true);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            let at = out.len();
            write_float(out, s.value);
            // OpenMetrics (client_golang) marks integral values as floats: "1.0", not "1".
            if om && !out[at..].contains(['.', 'e', 'N', 'I']) {
                out.push_str(".0");
            }
            out.push('\n');
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, v);
        s
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(5.0), "5");
        assert_eq!(f(123456.0), "123456");
        assert_eq!(f(1234567.0), "1.234567e+06");
        assert_eq!(f(1e6), "1e+06");
        assert_eq!(f(16696514048.0), "1.6696514048e+10");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(1.8446744073709552e19), "1.8446744073709552e+19");
    }

    /// The layout from core::fmt's shortest `{:e}` digits, as written before ryu: an
    /// independent oracle for `write_float`.
    fn oracle(v: f64) -> String {
        let sci = format!("{v:e}");
        let (mant, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        let (sign, mant) = match mant.strip_prefix('-') {
            Some(m) => ("-", m),
            None => ("", mant),
        };
        let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
        if (-4..6).contains(&exp) {
            if exp < 0 {
                format!("{sign}0.{}{int}{frac}", "0".repeat((-exp - 1) as usize))
            } else if frac.len() > exp as usize {
                let p = exp as usize;
                format!("{sign}{int}{}.{}", &frac[..p], &frac[p..])
            } else {
                format!("{sign}{int}{frac}{}", "0".repeat(exp as usize - frac.len()))
            }
        } else {
            let e = if exp < 0 { '-' } else { '+' };
            format!("{sign}{mant}e{e}{:02}", exp.unsigned_abs())
        }
    }

    #[test]
    fn ryu_layout_matches_the_fmt_layout() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            1e-5,
            1e-4,
            0.000123,
            123456.5,
            999999.9,
            1e6 + 0.5,
            1e22,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            1e21,
            1234567.0,
            0.1,
            100.01,
            3.0e-5,
        ];
        for _ in 0..200_000 {
            // xorshift: every bit pattern class, and plain decimals of every size.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
            values.push((x % 100_000_000) as f64 / 10f64.powi((x >> 60) as i32));
        }
        // The two differ only where two shortest digit strings are equally close: Go (and
        // ryu) round half to even, core::fmt does not. Both then read back as v, with as many
        // digits, in the same notation.
        let digits = |s: &str| {
            let m = s.split('e').next().unwrap();
            m.trim_start_matches(['-', '0', '.'])
                .replace('.', "")
                .trim_end_matches('0')
                .len()
        };
        for v in values.into_iter().filter(|v| v.is_finite() && *v != 0.0) {
            if v.fract() == 0.0 && v.abs() < 1e6 {
                continue;
            }
            let (got, want) = (f(v), oracle(v));
            if got != want {
                assert_eq!(got.parse::<f64>().unwrap(), v, "{got} for {v:e}");
                assert_eq!(digits(&got), digits(&want), "{got} vs {want}");
                assert_eq!(got.contains('e'), want.contains('e'), "{got} vs {want}");
            }
        }
        // A tie (the value is exactly 1658206780088562.25), as node_exporter 1.5 writes it
        // (checked with its textfile collector).
        assert_eq!(f(1_658_206_780_088_562.2), "1.6582067800885622e+15");
    }

    #[test]
    fn plain_notation_has_the_shortest_digits() {
        assert_eq!(f(1234.5), "1234.5");
        assert_eq!(f(-0.00123), "-0.00123");
        assert_eq!(f(999999.5), "999999.5");
        assert_eq!(f(-999999.0), "-999999");
        assert_eq!(f(12.000001), "12.000001");
        // Rust's Display writes the same shortest digits in plain notation: check many values
        // across the range where Go writes plain notation.
        let mut x = 0.000_123_456_789_f64;
        while x < 1e6 {
            for v in [x, -x, x.floor(), x + 0.5] {
                if v.abs() >= 1e-4 && v.abs() < 1e6 && v != 0.0 {
                    assert_eq!(f(v), format!("{v}"), "{v:e}");
                }
            }
            x *= 1.37;
        }
    }

    #[test]
    fn text_and_openmetrics() {
        let mut a = Family::new("node_b_total", "B \\ help\nnext", MetricType::Counter);
        a.push(&[("mode", "user"), ("cpu", "1")], 2.0);
        a.push(&[("mode", "idle"), ("cpu", "0")], 1.0);
        let mut b = Family::new("node_a", "A.", MetricType::Untyped);
        b.push(&[("path", "a\"b\\c\nd")], 1.5);
        let empty = Family::new("node_c", "", MetricType::Gauge);
        let fams = normalize(vec![a, b, empty]);
        let mut out = String::new();
        encode(&fams, Format::Text, &mut out);
        assert_eq!(
            out,
            "# HELP node_a A.\n# TYPE node_a untyped\nnode_a{path=\"a\\\"b\\\\c\\nd\"} 1.5\n\
             # HELP node_b_total B \\\\ help\\nnext\n# TYPE node_b_total counter\n\
             node_b_total{cpu=\"0\",mode=\"idle\"} 1\nnode_b_total{cpu=\"1\",mode=\"user\"} 2\n"
        );
        let mut om = String::new();
        encode(&fams, Format::OpenMetrics, &mut om);
        assert_eq!(
            om,
            "# HELP node_a A.\n# TYPE node_a unknown\nnode_a{path=\"a\\\"b\\\\c\\nd\"} 1.5\n\
             # HELP node_b B \\\\ help\\nnext\n# TYPE node_b counter\n\
             node_b_total{cpu=\"0\",mode=\"idle\"} 1.0\nnode_b_total{cpu=\"1\",mode=\"user\"} 2.0\n\
             # EOF\n"
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        for (accept, want) in [
            // What Prometheus sends.
            ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", Format::OpenMetrics),
            ("application/openmetrics-text;q=0", Format::Text),
            ("application/openmetrics-text; q=0.0, text/plain", Format::Text),
            ("text/plain;q=0.5, application/openmetrics-text;q=0.9", Format::OpenMetrics),
            ("application/openmetrics-text;q=0.4, text/plain;q=0.5", Format::Text),
            ("*/*, application/openmetrics-text", Format::OpenMetrics),
            ("application/openmetrics-text;version=2.0.0", Format::Text),
            ("APPLICATION/OpenMetrics-Text; Q=1", Format::OpenMetrics),
            ("application/openmetrics-text;q=nope", Format::Text),
            ("application/json", Format::Text),
            ("", Format::Text),
        ] {
            assert_eq!(Format::negotiate(Some(accept)), want, "{accept}");
        }
        assert_eq!(Format::negotiate(None), Format::Text);
    }

    #[test]
    fn same_name_families_merge() {
        let mut a = Family::new("x", "h", MetricType::Gauge);
        a.push(&[("k", "b")], 1.0);
        let mut b = Family::new("x", "h", MetricType::Gauge);
        b.push(&[("k", "a")], 2.0);
        let n = normalize(vec![a, b]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].samples[0].labels[0].1, "a");
    }

    #[test]
    fn duplicate_series_keep_the_first_and_fewer_labels_sort_first() {
        let mut a = Family::new("x", "h", MetricType::Gauge);
        a.push(&[("k", "a"), ("z", "")], 1.0);
        a.push(&[("k", "b")], 2.0);
        a.push(&[("k", "b")], 3.0);
        let mut out = String::new();
        encode(&normalize(vec![a]), Format::Text, &mut out);
        assert_eq!(
            out,
            "# HELP x h\n# TYPE x gauge\nx{k=\"b\"} 2\nx{k=\"a\",z=\"\"} 1\n"
        );
        // Already in order: a duplicate is still dropped; equal values under other label
        // names are not a duplicate.
        let mut y = Family::new("y", "h", MetricType::Gauge);
        y.push(&[("j", "a")], 1.0);
        y.push(&[("k", "a")], 2.0);
        y.push(&[("k", "a")], 3.0);
        y.push(&[("k", "b")], 4.0);
        let mut out = String::new();
        encode(&normalize(vec![y]), Format::Text, &mut out);
        assert_eq!(
            out,
            "# HELP y h\n# TYPE y gauge\ny{j=\"a\"} 1\ny{k=\"a\"} 2\ny{k=\"b\"} 4\n"
        );
    }

    #[test]
    fn help_quotes_escaped_only_in_openmetrics() {
        let mut a = Family::new("q", "say \"hi\"", MetricType::Gauge);
        a.push(&[], f64::NAN);
        a.push(&[("x", "1")], 1e21);
        let fams = normalize(vec![a]);
        let mut text = String::new();
        encode(&fams, Format::Text, &mut text);
        assert_eq!(
            text,
            "# HELP q say \"hi\"\n# TYPE q gauge\nq NaN\nq{x=\"1\"} 1e+21\n"
        );
        let mut om = String::new();
        encode(&fams, Format::OpenMetrics, &mut om);
        assert_eq!(
            om,
            "# HELP q say \\\"hi\\\"\n# TYPE q gauge\nq NaN\nq{x=\"1\"} 1e+21\n# EOF\n"
        );
    }
}
