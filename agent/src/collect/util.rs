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
/// fixed set (the kernel's), so each is matched once instead of once per scrape. With every
/// answer remembered, the regex's lazy DFA (whose cache of states grows to hundreds of KiB for
/// node_exporter's default field patterns, and is kept for the life of the process) buys
/// nothing: it is turned off, and the few matches at start use the regex crate's NFA engines.
pub struct FieldFilter {
    re: regex::Regex,
    memo: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl FieldFilter {
    pub fn new(pattern: &str, flag: &str) -> anyhow::Result<FieldFilter> {
        Ok(FieldFilter {
            re: regex::RegexBuilder::new(pattern)
                .dfa_size_limit(0)
                .build()
                .with_context(|| format!("--{flag}"))?,
            memo: Default::default(),
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&hit) = memo.get(name) {
            return hit;
        }
        let hit = self.re.is_match(name);
        // Bounded even if a broken file invents names on every read.
        if memo.len() < 4096 {
            memo.insert(name.to_string(), hit);
        }
        hit
    }
}
