//! Small helpers shared by collectors: bounded file reads and number parsing.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Reads a whole (small) file with context in the error.
pub fn read(path: &Path) -> anyhow::Result<String> {
    read_text(path).with_context(|| format!("reading {}", path.display()))
}

/// `std::fs::read_to_string` for /proc and /sys: those report a size of 0, so the standard
/// version's size probe and small first reads only add system calls. Reading into an 8 KiB
/// buffer takes most files in one `read()` plus the one that sees the end.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    utf8(read_bytes(path)?)
}

/// Bytes read from a file as text: `InvalidData` if they are not UTF-8.
pub fn utf8(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
}

/// [`read_text`] without the UTF-8 check, for parsers that work on bytes (as node_exporter's
/// Go parsers do) and must not fail on a stray invalid byte.
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    read_all(8192, |buf, _| f.read(buf))
}

/// Reads to the end with `read(buffer, offset)` (a `read` or a `pread`), into a buffer of
/// `size` bytes doubled as it fills; a read interrupted by a signal is tried again.
pub fn read_all(
    size: usize,
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; size.max(1)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match read(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Reads a sysfs attribute with one raw `read()` into a small buffer: some hwmon drivers
/// return EAGAIN forever to buffered readers that retry, and attributes are short.
pub fn read_attr(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Bytes as text with each run of invalid UTF-8 replaced by one U+FFFD, as Go's
/// `strings.ToValidUTF8(s, "\uFFFD")` does (Rust's lossy conversion writes one per bad
/// sequence, which would change label values).
pub fn to_valid_utf8(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut s = String::with_capacity(bytes.len() + 2);
    let mut last_bad = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            s.push_str(chunk.valid());
            last_bad = false;
        }
        if !chunk.invalid().is_empty() && !last_bad {
            s.push('\u{FFFD}');
            last_bad = true;
        }
    }
    std::borrow::Cow::Owned(s)
}

/// The lines of `text` as Go's `bufio.Scanner` gives them: split at '\n', one trailing '\r'
/// dropped from each, no empty line after a final newline (nor for an empty text).
pub fn scan_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.split(|b| *b == b'\n')
        .take(usize::from(!text.is_empty()) * usize::MAX)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// The entries of `dir` whose names `keep` accepts, as (name, path), sorted by name like Go's
/// `filepath.Glob`. A missing or unreadable directory gives none: Glob ignores I/O errors.
pub fn glob(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, std::path::PathBuf)> {
    read_dir_sorted(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| keep(&e.name))
        .map(|e| (e.name, e.path))
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

/// Readers shared by everyone built from the same settings while any of them is alive: a
/// collector and the alert rules' snapshot that read the same devices then hold one set of
/// open files and one cache between them, not one each (on a big host, per-device state is
/// most of the daemon's memory). Dropped by the last holder; a later request makes a new one.
pub struct Shared<K, T>(std::sync::Mutex<Vec<(K, std::sync::Weak<T>)>>);

impl<K: PartialEq, T> Shared<K, T> {
    pub const fn new() -> Self {
        Shared(std::sync::Mutex::new(Vec::new()))
    }

    /// The live reader made from `key`, else a new one from `make`.
    pub fn get(&self, key: K, make: impl FnOnce() -> T) -> std::sync::Arc<T> {
        match self.try_get(key, || Ok::<T, std::convert::Infallible>(make())) {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// [`Shared::get`] with a `make` that may fail (a bad filter); nothing is kept then.
    pub fn try_get<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<std::sync::Arc<T>, E> {
        let mut readers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        readers.retain(|(_, r)| r.strong_count() > 0);
        if let Some(r) = readers
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, r)| r.upgrade())
        {
            return Ok(r);
        }
        let r = std::sync::Arc::new(make()?);
        readers.push((key, std::sync::Arc::downgrade(&r)));
        Ok(r)
    }
}

/// Family names and help texts built from the kernel's own words (a protocol and a field
/// name), made once per distinct key and kept for the life of the process like a
/// [`FieldFilter`]'s: a scrape then allocates nothing for them.
#[derive(Default)]
pub struct Names(std::sync::Mutex<std::collections::HashMap<String, (super::Text, super::Text)>>);

impl Names {
    /// The name and help for `key`, made by `make` the first time.
    pub fn get(
        &self,
        key: &str,
        make: impl FnOnce() -> (String, String),
    ) -> (super::Text, super::Text) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(made) = m.get(key) {
            return made.clone();
        }
        let (n, h) = make();
        let made = (keep(n), keep(h));
        if m.len() < MAX_FIELDS {
            m.insert(key.to_string(), made.clone());
        }
        made
    }

    /// `s` itself, kept once (a name that is its own key).
    pub fn one(&self, s: &str) -> super::Text {
        self.get(s, || (s.to_string(), String::new())).0
    }
}

/// A `--collector.X.fields` regex whose answers are remembered: field names come from a small
/// fixed set (the kernel's), in the same order on every read, so each is matched once instead
/// of once per scrape, and a scrape checks each name against the one at the same place last
/// time instead of hashing it. With every answer remembered, the regex's lazy DFA (whose cache
/// of states grows to hundreds of KiB for node_exporter's default field patterns, and is kept
/// for the life of the process) buys nothing: it is turned off, and the few matches at start
/// use the regex crate's NFA engines.
///
/// A selected field's family name and help text are made once, too ([`FieldMatcher::select`]),
/// and kept for the life of the process: a scrape then allocates nothing for them.
pub struct FieldFilter {
    re: regex::Regex,
    seen: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The names of the last read, in order, with their answers and, once asked for, the
    /// selected fields' family name and help.
    list: Vec<Seen>,
    /// Every selected field's names made so far, for a list that changed.
    made: Vec<(String, (super::Text, super::Text))>,
}

struct Seen {
    name: String,
    hit: bool,
    names: Option<(super::Text, super::Text)>,
}

/// Bounded even if a broken file invents names on every read.
const MAX_FIELDS: usize = 4096;

/// Family names and help texts kept for the life of the process, all filters together: the
/// kernel's field names are a fixed set, so this is reached only by a file that invents names
/// (past it, the names are made on every scrape instead).
const MAX_KEPT: usize = 8192;
static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn keep(s: String) -> super::Text {
    use std::sync::atomic::Ordering;
    let room = KEPT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < MAX_KEPT).then_some(n + 1)
        })
        .is_ok();
    if room {
        std::borrow::Cow::Borrowed(Box::leak(s.into_boxed_str()))
    } else {
        std::borrow::Cow::Owned(s)
    }
}

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
    seen: std::sync::MutexGuard<'a, State>,
    at: usize,
}

impl FieldMatcher<'_> {
    /// The family name and help text for field `name` if the filter selects it: made by
    /// `names` the first time, then kept.
    pub fn select(
        &mut self,
        name: &str,
        names: impl FnOnce() -> (String, String),
    ) -> Option<(super::Text, super::Text)> {
        let Some(e) = self.entry(name) else {
            // Past MAX_FIELDS: not remembered.
            return self.re.is_match(name).then(|| {
                let (n, h) = names();
                (n.into(), h.into())
            });
        };
        if !e.hit {
            return None;
        }
        if let Some(made) = &e.names {
            return Some(made.clone());
        }
        let (n, h) = names();
        let made = (keep(n), keep(h));
        e.names = Some(made.clone());
        if self.seen.made.len() < MAX_FIELDS {
            self.seen.made.push((name.to_string(), made.clone()));
        }
        Some(made)
    }

    /// The remembered answer for `name` (None past MAX_FIELDS).
    fn entry(&mut self, name: &str) -> Option<&mut Seen> {
        let st = &mut *self.seen;
        if st.list.get(self.at).is_some_and(|e| e.name == name) {
            self.at += 1;
            return st.list.get_mut(self.at - 1);
        }
        // Out of step: the first read, or the kernel's list changed. Answer from anywhere in
        // the last list, else the regex, and remember the list from here on as this read has it.
        let hit = match st.list.iter().find(|e| e.name == name) {
            Some(e) => e.hit,
            None => self.re.is_match(name),
        };
        if self.at >= MAX_FIELDS {
            return None;
        }
        let names = st
            .made
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, made)| made.clone());
        st.list.truncate(self.at);
        st.list.push(Seen {
            name: name.to_string(),
            hit,
            names,
        });
        self.at += 1;
        st.list.last_mut()
    }
}

/// Why a [`sys_read`] failed: at open (usually a missing file) or in the read itself (the
/// driver's answer: ENODEV, EINVAL, EIO, EOPNOTSUPP, ...). node_exporter's sysfs readers
/// skip some of these and fail on others, and in places tell the two stages apart (they
/// compare the bare errno text of the read, which an open error never equals).
#[derive(Debug)]
pub struct SysError {
    pub at_open: bool,
    pub err: std::io::Error,
}

impl SysError {
    /// ENOENT, at open or read (Go's `os.IsNotExist`).
    pub fn not_found(&self) -> bool {
        self.err.kind() == std::io::ErrorKind::NotFound
    }

    /// EACCES or EPERM (Go's `os.ErrPermission`).
    pub fn permission(&self) -> bool {
        self.err.kind() == std::io::ErrorKind::PermissionDenied
    }

    /// The read itself (not the open) failed with `errno`.
    pub fn read_errno(&self, errno: i32) -> bool {
        !self.at_open && self.err.raw_os_error() == Some(errno)
    }
}

impl std::fmt::Display for SysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.err.fmt(f)
    }
}

impl std::error::Error for SysError {}

/// node_exporter's sysfs attribute read (procfs' `SysReadFile`): one `read()` of at most 128
/// bytes (a longer value is cut there, as node_exporter cuts it), white space trimmed as Go's
/// `bytes.TrimSpace` trims it, invalid UTF-8 replaced as Go's `strings.ToValidUTF8` does.
pub fn sys_read(path: &Path) -> Result<String, SysError> {
    sys_read_bytes(path).map(|b| to_valid_utf8(go_trim_space(&b)).into_owned())
}

/// [`sys_read`] without the trimming and the UTF-8 check: the bytes of the one read.
pub fn sys_read_bytes(path: &Path) -> Result<Vec<u8>, SysError> {
    let mut f = std::fs::File::open(path).map_err(|err| SysError { at_open: true, err })?;
    let mut buf = [0u8; 128];
    let n = loop {
        match f.read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(SysError {
                    at_open: false,
                    err,
                })
            }
        }
    };
    Ok(buf[..n].to_vec())
}

/// Go's `bytes.TrimSpace`: leading and trailing Unicode white space off, bytes that are not
/// UTF-8 kept (and they stop the trimming).
pub fn go_trim_space(mut b: &[u8]) -> &[u8] {
    while let Some(c) = b
        .utf8_chunks()
        .next()
        .and_then(|chunk| chunk.valid().chars().next())
    {
        if !c.is_whitespace() {
            break;
        }
        b = &b[c.len_utf8()..];
    }
    // The last character starts at the last byte that is not a continuation byte.
    while let Some(i) = (b.len().saturating_sub(4)..b.len())
        .rev()
        .find(|&i| b[i] & 0xC0 != 0x80)
    {
        match std::str::from_utf8(&b[i..]) {
            Ok(s) if s.chars().all(char::is_whitespace) => b = &b[..i],
            _ => break,
        }
    }
    b
}

/// One directory entry: its name as text (each run of invalid UTF-8 as U+FFFD), its path
/// (the real name) and its type, without following a symlink.
pub struct DirItem {
    pub name: String,
    pub path: PathBuf,
    pub file_type: Option<std::fs::FileType>,
}

impl DirItem {
    /// A plain file (Go's `DirEntry.Type().IsRegular()`).
    pub fn is_file(&self) -> bool {
        self.file_type.is_some_and(|t| t.is_file())
    }
}

/// The entries of a sysfs class directory that `keep` admits, each read by `read` (path and
/// name), in name order; `Ok(None)` when the class does not exist.
pub fn read_class<T>(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
    read: impl Fn(&Path, String) -> anyhow::Result<T>,
) -> anyhow::Result<Option<Vec<T>>> {
    let entries = match read_dir_sorted(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    entries
        .into_iter()
        .filter(|e| keep(&e.name))
        .map(|e| read(&e.path, e.name))
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

/// A directory's entries sorted by name, as Go's `os.ReadDir` gives them.
pub fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<DirItem>> {
    let mut entries = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries
        .into_iter()
        .map(|e| {
            use std::os::unix::ffi::OsStrExt;
            DirItem {
                name: to_valid_utf8(e.file_name().as_bytes()).into_owned(),
                path: e.path(),
                file_type: e.file_type().ok(),
            }
        })
        .collect())
}

/// Go's `strconv.ParseUint(s, base, bits)`: no sign; base 0 reads a `0x`/`0o`/`0b`/`0`
/// prefix and allows `_` between digits. procfs parses many kernel fields this way, so a value
/// node_exporter accepts (`0x1003` in sysfs `flags`) is accepted here too, and only those.
pub fn go_parse_uint(s: &str, base: u32, bits: u32) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let base0 = base == 0;
    let (base, digits) = if base0 {
        match b {
            [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &b[2..]),
            [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &b[2..]),
            [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &b[2..]),
            [b'0', ..] => (8, &b[1..]),
            _ => (10, b),
        }
    } else {
        (base, b)
    };
    let mut n: u64 = 0;
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut underscores = false;
    for &c in digits {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u32::from(c - b'0'),
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        if d >= base {
            return None;
        }
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
        if n > max {
            return None;
        }
    }
    if underscores && !base_zero_underscores_ok(b) {
        return None;
    }
    Some(n)
}

/// Go's underscoreOK: `_` only between digits (or after a base prefix).
fn base_zero_underscores_ok(s: &[u8]) -> bool {
    let s = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// Go's `strconv.ParseInt(s, base, 64)`: an optional sign, then as [`go_parse_uint`].
pub fn go_parse_int(s: &str, base: u32) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = go_parse_uint(rest, base, 64)?;
    if neg {
        if n > 1u64 << 63 {
            return None;
        }
        Some((n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// Whether Go's `net.ParseMAC` accepts `s` (6, 8 or 20 bytes; `:`, `-` or `.` separated).
pub fn go_valid_mac(s: &str) -> bool {
    let b = s.as_bytes();
    let hex2 = |x: &[u8]| x.len() >= 2 && x[0].is_ascii_hexdigit() && x[1].is_ascii_hexdigit();
    if b.len() < 14 {
        return false;
    }
    if b[2] == b':' || b[2] == b'-' {
        if (b.len() + 1) % 3 != 0 {
            return false;
        }
        let n = (b.len() + 1) / 3;
        if !matches!(n, 6 | 8 | 20) {
            return false;
        }
        (0..n).all(|i| {
            let x = &b[i * 3..];
            hex2(x) && (x.len() <= 2 || x[2] == b[2])
        })
    } else if b[4] == b'.' {
        if (b.len() + 1) % 5 != 0 {
            return false;
        }
        let n = 2 * (b.len() + 1) / 5;
        if !matches!(n, 6 | 8 | 20) {
            return false;
        }
        (0..n / 2).all(|i| {
            let x = &b[i * 5..];
            hex2(x) && hex2(&x[2..]) && (x.len() <= 4 || x[4] == b'.')
        })
    } else {
        false
    }
}

/// Go's `hex.DecodeString`.
pub fn go_hex_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

/// An IP address as Go's `net.IP.String()` writes it (IPv4-mapped IPv6 in dotted form).
pub fn go_ip_string(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}

/// What identifies a version of a file that is replaced or rewritten (udev data, os-release):
/// a file written again has a new inode, size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// node_exporter's deviceFilter: `--collector.X.device-exclude` / `-include`, both optional.
#[derive(Debug, Default)]
pub struct DeviceFilter {
    pub exclude: Option<regex::Regex>,
    pub include: Option<regex::Regex>,
}

impl DeviceFilter {
    /// Builds the filter from the flags (`name` is the collector's, for the error).
    pub fn new(
        exclude: &Option<String>,
        include: &Option<String>,
        name: &str,
    ) -> anyhow::Result<DeviceFilter> {
        Self::flags(exclude, include, &format!("collector.{name}.device"))
    }

    /// The same with flags named `{prefix}-exclude` / `{prefix}-include`.
    pub fn flags(
        exclude: &Option<String>,
        include: &Option<String>,
        prefix: &str,
    ) -> anyhow::Result<DeviceFilter> {
        Ok(DeviceFilter {
            exclude: optional_regex(exclude, &format!("{prefix}-exclude"))?,
            include: optional_regex(include, &format!("{prefix}-include"))?,
        })
    }

    pub fn ignored(&self, dev: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(dev))
            || self.include.as_ref().is_some_and(|r| !r.is_match(dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_readers_live_while_held() {
        static READERS: Shared<&str, String> = Shared::new();
        let a = READERS.get("a", || "first".to_string());
        let again = READERS.get("a", || "second".to_string());
        assert!(std::sync::Arc::ptr_eq(&a, &again));
        assert_eq!(*READERS.get("b", || "other".to_string()), "other");
        let failed: Result<_, &str> = READERS.try_get("c", || Err("bad filter"));
        assert_eq!(failed.err(), Some("bad filter"));
        assert_eq!(*READERS.get("c", || "made".to_string()), "made");
        drop((a, again));
        assert_eq!(*READERS.get("a", || "new".to_string()), "new");
    }

    #[test]
    fn go_number_and_address_syntax() {
        assert_eq!(go_parse_uint("0x1003", 0, 64), Some(0x1003));
        assert_eq!(go_parse_uint("017", 0, 64), Some(15));
        assert_eq!(go_parse_uint("0", 0, 64), Some(0));
        assert_eq!(go_parse_uint("0b101", 0, 8), Some(5));
        assert_eq!(go_parse_uint("1_000", 0, 64), Some(1000));
        assert_eq!(go_parse_uint("0x_1f", 0, 64), Some(31));
        for bad in [
            "", "+1", "-1", "0x", "1__0", "_1", "1_", "08", "0x1g", "256",
        ] {
            assert_eq!(go_parse_uint(bad, 0, 8), None, "{bad}");
        }
        assert_eq!(go_parse_uint("1_0", 10, 64), None);
        assert_eq!(go_parse_uint("ff", 16, 64), Some(255));
        assert_eq!(go_parse_uint("18446744073709551616", 10, 64), None);
        assert_eq!(go_parse_int("-1", 0), Some(-1));
        assert_eq!(go_parse_int("+0x10", 0), Some(16));
        assert_eq!(go_parse_int("-9223372036854775808", 10), Some(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775808", 10), None);
        assert_eq!(go_parse_int("1.5", 0), None);
        assert!(go_valid_mac("00:00:00:00:00:00"));
        assert!(go_valid_mac("aa-BB-cc-00-11-22"));
        assert!(go_valid_mac("0000.5e00.5301"));
        assert!(go_valid_mac("02:00:5e:10:00:00:00:01"));
        for bad in [
            "00:00:00:00:00",
            "00:00:00:00:00:0g",
            "00:00-00:00:00:00",
            "0000.5e00-5301",
            "x",
        ] {
            assert!(!go_valid_mac(bad), "{bad}");
        }
        assert_eq!(go_hex_decode("0A00ff"), Some(vec![10, 0, 255]));
        assert_eq!(go_hex_decode("0A0"), None);
        assert_eq!(go_hex_decode("zz"), None);
    }

    #[test]
    fn field_answers_hold_whatever_the_order() {
        let f = FieldFilter::new("^(a|c|e)$", "collector.test.fields").unwrap();
        let made = std::cell::Cell::new(0);
        let read = |names: &[&str]| -> Vec<bool> {
            let mut m = f.matcher();
            names
                .iter()
                .map(|n| {
                    let names = m.select(n, || {
                        made.set(made.get() + 1);
                        (format!("node_{n}"), format!("help {n}"))
                    });
                    if let Some((name, help)) = &names {
                        assert_eq!(
                            (&**name, &**help),
                            (&*format!("node_{n}"), &*format!("help {n}"))
                        );
                    }
                    names.is_some()
                })
                .collect()
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
        let seen: Vec<(String, bool)> = f
            .seen
            .lock()
            .unwrap()
            .list
            .iter()
            .map(|e| (e.name.clone(), e.hit))
            .collect();
        assert_eq!(
            seen,
            [
                ("b", false),
                ("x", false),
                ("e", true),
                ("a", true),
                ("c", true)
            ]
            .map(|(n, h)| (n.to_string(), h))
        );
        // Each selected field's names were made once, however the list moved.
        assert_eq!(made.get(), 3);
    }

    #[test]
    fn go_number_rules() {
        assert_eq!(go_parse_uint("0x1f", 0, 64), Some(31));
        assert_eq!(go_parse_uint("0X1F", 0, 64), Some(31));
        assert_eq!(go_parse_uint("017", 0, 64), Some(15));
        assert_eq!(go_parse_uint("0", 0, 64), Some(0));
        assert_eq!(go_parse_uint("0b101", 0, 64), Some(5));
        assert_eq!(go_parse_uint("0o17", 0, 64), Some(15));
        assert_eq!(go_parse_uint("0x", 0, 64), None);
        assert_eq!(go_parse_uint("08", 0, 64), None);
        assert_eq!(go_parse_uint("1_000", 0, 64), Some(1000));
        assert_eq!(go_parse_uint("0x_1f", 0, 64), Some(31));
        assert_eq!(go_parse_uint("1__0", 0, 64), None);
        assert_eq!(go_parse_uint("_1", 0, 64), None);
        assert_eq!(go_parse_uint("1_", 0, 64), None);
        assert_eq!(go_parse_uint("0xffffffffffffffff", 0, 64), Some(u64::MAX));
        assert_eq!(go_parse_uint("18446744073709551616", 0, 64), None);
        assert_eq!(go_parse_uint("+1", 0, 64), None);
        assert_eq!(go_parse_uint(" 1", 0, 64), None);
        assert_eq!(go_parse_uint("", 0, 64), None);
        assert_eq!(go_parse_int("-0x10", 0), Some(-16));
        assert_eq!(go_parse_int("+42", 0), Some(42));
        assert_eq!(go_parse_int("-9223372036854775808", 0), Some(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775807", 0), Some(i64::MAX));
        assert_eq!(go_parse_int("9223372036854775808", 0), None);
        assert_eq!(go_parse_int("+-1", 0), None);
        assert_eq!(go_parse_int("-", 0), None);
        assert_eq!(go_parse_int("1.5", 0), None);
        assert_eq!(go_parse_uint("+1", 10, 64), None);
        assert_eq!(go_parse_uint("007", 10, 64), Some(7));
        assert_eq!(go_parse_uint("0x1", 10, 64), None);
    }

    #[test]
    fn go_text_rules() {
        assert_eq!(go_trim_space(b" \t\x0bab c\n\xc2\xa0"), b"ab c");
        assert_eq!(go_trim_space(b"\xff \n"), b"\xff");
        assert_eq!(go_trim_space(b"\n\x85"), b"\x85");
        assert_eq!(go_trim_space(b"\xe3\x80\x80x\xe3\x80\x80"), b"x");
        assert_eq!(go_trim_space(b" \n "), b"");
        assert_eq!(go_trim_space(b"\x1cx"), b"\x1cx");
        assert_eq!(to_valid_utf8(b"a\xff\xfeb\xffc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(to_valid_utf8("\u{FFFD}ok".as_bytes()), "\u{FFFD}ok");
    }

    #[test]
    fn sys_read_is_one_short_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("attr");
        std::fs::write(&p, format!("  {}\n", "x".repeat(200))).unwrap();
        assert_eq!(sys_read(&p).unwrap(), "x".repeat(126));
        std::fs::write(&p, b"v\xff1\n").unwrap();
        assert_eq!(sys_read(&p).unwrap(), "v\u{FFFD}1");
        let e = sys_read(&d.path().join("gone")).unwrap_err();
        assert!(e.at_open && e.not_found());
        // A directory opens but does not read (EISDIR): a read error.
        let e = sys_read(d.path()).unwrap_err();
        assert!(!e.at_open && e.read_errno(libc::EISDIR));
    }
}
