//! Small helpers shared by collectors: bounded file reads and number parsing.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Reads a whole (small) file with context in the error.
pub fn read(path: &Path) -> anyhow::Result<String> {
    read_text(path).with_context(|| format!("reading {}", path.display()))
}

/// `std::fs::read_to_string` for /proc and /sys: those report a size of 0, so the standard
/// version's size probe and small first reads only add system calls. Reading into an 8 KiB
/// buffer takes most files in one `read()` plus the one that sees the end.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((buf.len() * 2).max(8192), 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
}

/// Reads a sysfs attribute with one raw `read()` into a small buffer: some hwmon drivers
/// return EAGAIN forever to buffered readers that retry, and attributes are short.
pub fn read_attr(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Reads a sysfs attribute as a number.
pub fn read_num(path: &Path) -> Option<f64> {
    read_attr(path).ok()?.parse::<f64>().ok()
}

/// Go's `strconv.ParseUint(s, 10, 64)`: ASCII digits only, no sign or spaces (Rust's own
/// parser also takes a leading `+`, which node_exporter's parsers reject).
pub fn parse_go_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The entries of `dir` whose names `keep` accepts, as (name, path), sorted by name like Go's
/// `filepath.Glob`. A missing or unreadable directory gives none: Glob ignores I/O errors.
pub fn glob(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, std::path::PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(std::ffi::OsString, String)> = rd
        .flatten()
        .filter_map(|e| {
            let raw = e.file_name();
            let name = raw.to_string_lossy().into_owned();
            keep(&name).then_some((raw, name))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter()
        .map(|(raw, name)| (name, dir.join(raw)))
        .collect()
}

/// A regex flag that may be unset: an empty value means "no filter", as with node_exporter's
/// string flags. `flag` is the flag's name without the dashes, for the error.
pub fn optional_regex(value: &Option<String>, flag: &str) -> anyhow::Result<Option<regex::Regex>> {
    value
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(regex::Regex::new)
        .transpose()
        .with_context(|| format!("--{flag} must be a regular expression"))
}

/// A `--collector.X.fields` regex whose answers are remembered: field names come from a small
/// fixed set (the kernel's), in the same order on every read, so each is matched once instead
/// of once per scrape, and a scrape checks each name against the one at the same place last
/// time instead of hashing it. With every answer remembered, the regex's lazy DFA (whose cache
/// of states grows to hundreds of KiB for node_exporter's default field patterns, and is kept
/// for the life of the process) buys nothing: it is turned off, and the few matches at start
/// use the regex crate's NFA engines.
pub struct FieldFilter {
    re: regex::Regex,
    /// The names of the last read, in order, with their answers.
    seen: std::sync::Mutex<Vec<(String, bool)>>,
}

/// Bounded even if a broken file invents names on every read.
const MAX_FIELDS: usize = 4096;

impl FieldFilter {
    pub fn new(pattern: &str, flag: &str) -> anyhow::Result<FieldFilter> {
        Ok(FieldFilter {
            re: regex::RegexBuilder::new(pattern)
                .dfa_size_limit(0)
                .build()
                .with_context(|| format!("--{flag}"))?,
            seen: Default::default(),
        })
    }

    /// A matcher for one read of the source, names asked in file order.
    pub fn matcher(&self) -> FieldMatcher<'_> {
        FieldMatcher {
            re: &self.re,
            seen: self.seen.lock().unwrap_or_else(|p| p.into_inner()),
            at: 0,
        }
    }
}

pub struct FieldMatcher<'a> {
    re: &'a regex::Regex,
    seen: std::sync::MutexGuard<'a, Vec<(String, bool)>>,
    at: usize,
}

impl FieldMatcher<'_> {
    pub fn is_match(&mut self, name: &str) -> bool {
        if let Some((n, hit)) = self.seen.get(self.at) {
            if n == name {
                self.at += 1;
                return *hit;
            }
        }
        // Out of step: the first read, or the kernel's list changed. Answer from anywhere in
        // the last list, else the regex, and remember the list from here on as this read has it.
        let hit = match self.seen.iter().find(|(n, _)| n == name) {
            Some((_, hit)) => *hit,
            None => self.re.is_match(name),
        };
        if self.at < MAX_FIELDS {
            self.seen.truncate(self.at);
            self.seen.push((name.to_string(), hit));
            self.at += 1;
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::FieldFilter;

    #[test]
    fn field_answers_hold_whatever_the_order() {
        let f = FieldFilter::new("^(a|c|e)$", "collector.test.fields").unwrap();
        let read = |names: &[&str]| -> Vec<bool> {
            let mut m = f.matcher();
            names.iter().map(|n| m.is_match(n)).collect()
        };
        assert_eq!(read(&["a", "b", "c"]), [true, false, true]);
        assert_eq!(read(&["a", "b", "c"]), [true, false, true]);
        // A field appears in the middle, one goes away, the order changes.
        assert_eq!(read(&["a", "e", "b", "c"]), [true, true, false, true]);
        assert_eq!(read(&["c", "a"]), [true, true]);
        assert_eq!(
            read(&["b", "x", "e", "a", "c"]),
            [false, false, true, true, true]
        );
        assert_eq!(
            read(&["b", "x", "e", "a", "c"]),
            [false, false, true, true, true]
        );
        assert_eq!(
            *f.seen.lock().unwrap(),
            [
                ("b", false),
                ("x", false),
                ("e", true),
                ("a", true),
                ("c", true)
            ]
            .map(|(n, h)| (n.to_string(), h))
        );
    }
}
