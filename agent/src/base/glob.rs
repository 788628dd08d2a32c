//! Go's `filepath.Glob`, `filepath.Match` and `filepath.Clean`, for node_exporter-compatible
//! path patterns (`--collector.textfile.directory`), and POSIX fnmatch(3) for systemd's
//! sysctl.d keys. Matching is memoised, so patterns with many `*` take polynomial time.

use std::collections::HashMap;

/// Go's `filepath.Clean`: the path label and HELP name files as node_exporter does.
pub fn clean(path: &str) -> String {
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
pub fn glob_match(pat: &[char], name: &[char]) -> Option<bool> {
    let m = Matcher {
        dialect: Dialect::Go,
        name_len: name.len(),
    };
    m.matches(pat, name, &mut HashMap::new())
}

/// fnmatch(3) with FNM_PERIOD, as glob(3) matches one path component (what systemd-sysctl
/// uses for sysctl.d keys): `*`, `?`, `[...]` with `!` or `^` to negate, `]` first in a class
/// as itself, `[:alpha:]`-style classes, `\` escapes; a leading '.' only matches a literal
/// '.'. Never malformed: an unclosed `[` is itself.
pub fn fnmatch(pat: &str, name: &str) -> bool {
    let pat: Vec<char> = pat.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let m = Matcher {
        dialect: Dialect::Posix,
        name_len: name.len(),
    };
    m.matches(&pat, &name, &mut HashMap::new()) == Some(true)
}

/// True when fnmatch(3) would treat `s` as a pattern (systemd's `string_is_glob`).
pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's filepath.Match, or POSIX fnmatch(3) (glob(3), systemd).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Go,
    Posix,
}

/// Suffixes of one pattern and one name are named by their lengths.
type Memo = HashMap<(usize, usize), Option<bool>>;

struct Matcher {
    dialect: Dialect,
    /// Length of the whole name: a suffix this long is at its start (for FNM_PERIOD).
    name_len: usize,
}

impl Matcher {
    /// Matching on suffixes, each pair decided once: plain backtracking over several '*'
    /// takes exponential time ("a*a*a*…b" against "aaaa…" ran for seconds).
    fn matches(&self, pat: &[char], name: &[char], memo: &mut Memo) -> Option<bool> {
        let key = (pat.len(), name.len());
        if let Some(&r) = memo.get(&key) {
            return r;
        }
        let r = self.match_uncached(pat, name, memo);
        memo.insert(key, r);
        r
    }

    /// FNM_PERIOD: no wildcard matches a '.' that starts the name.
    fn hidden_start(&self, name: &[char]) -> bool {
        self.dialect == Dialect::Posix && name.len() == self.name_len && name.first() == Some(&'.')
    }

    fn match_uncached(&self, pat: &[char], name: &[char], memo: &mut Memo) -> Option<bool> {
        let Some((&p, prest)) = pat.split_first() else {
            return Some(name.is_empty());
        };
        match p {
            '*' => {
                if self.hidden_start(name) {
                    return self.rest_valid(prest, memo).map(|_| false);
                }
                // Try every split; '*' never crosses '/', and names here hold none.
                for i in 0..=name.len() {
                    if self.matches(prest, &name[i..], memo)? {
                        return Some(true);
                    }
                }
                Some(false)
            }
            '?' => match name.split_first() {
                Some(_) if self.hidden_start(name) => self.rest_valid(prest, memo).map(|_| false),
                Some((_, nrest)) => self.matches(prest, nrest, memo),
                None => self.rest_valid(prest, memo).map(|_| false),
            },
            '[' => {
                let class = match self.dialect {
                    Dialect::Go => go_class(prest, name.first().copied())?,
                    Dialect::Posix => match posix_class(prest, name.first().copied()) {
                        Some(c) => c,
                        // No closing ']': the '[' is an ordinary character.
                        None => return self.literal('[', prest, name, memo),
                    },
                };
                let (matched, after) = class;
                match name.first() {
                    Some(_) if self.hidden_start(name) => {
                        self.rest_valid(&prest[after..], memo).map(|_| false)
                    }
                    Some(_) if matched => self.matches(&prest[after..], &name[1..], memo),
                    _ => self.rest_valid(&prest[after..], memo).map(|_| false),
                }
            }
            '\\' => match prest.split_first() {
                Some((&lit, prest)) => self.literal(lit, prest, name, memo),
                // A trailing backslash: malformed in Go, never a match in glibc's fnmatch(3).
                None if self.dialect == Dialect::Posix => Some(false),
                None => None,
            },
            lit => self.literal(lit, prest, name, memo),
        }
    }

    fn literal(&self, lit: char, prest: &[char], name: &[char], memo: &mut Memo) -> Option<bool> {
        match name.split_first() {
            Some((&c, nrest)) if c == lit => self.matches(prest, nrest, memo),
            _ => self.rest_valid(prest, memo).map(|_| false),
        }
    }

    /// Go reports a malformed pattern even when an earlier part already failed to match.
    fn rest_valid(&self, pat: &[char], memo: &mut Memo) -> Option<()> {
        if self.dialect == Dialect::Posix {
            return Some(());
        }
        self.matches(pat, &[], memo).map(|_| ())
    }
}

/// A Go class after its '[': whether `c` is in it and the index just past its ']'; None when
/// malformed.
fn go_class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = p.first() == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &lo = p.get(i)?;
        if lo == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1) != Some(&']') {
            let (h, next) = class_char(p, i + 1)?;
            hi = h;
            i = next;
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    Some((matched != negate, i))
}

/// One (possibly escaped) character inside a Go `[...]` class and the index after it.
fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match p.get(i)? {
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        '-' | ']' => None,
        c => Some((*c, i + 1)),
    }
}

/// A POSIX bracket expression after its '[' (glibc rules): whether `c` is in it and the
/// index just past its ']'; None when it has no closing ']'.
fn posix_class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &ch = p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        if ch == '[' && p.get(i + 1) == Some(&':') {
            // [:class:]
            let rest = &p[i + 2..];
            if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                let name: String = rest[..end].iter().collect();
                if c.is_some_and(|c| char_class(&name, c)) {
                    matched = true;
                }
                i += 2 + end + 2;
                continue;
            }
        }
        let (lo, next) = match ch {
            '\\' => (*p.get(i + 1)?, i + 2),
            ch => (ch, i + 1),
        };
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&n| n != ']') {
            let (h, next) = match p[i + 1] {
                '\\' => (*p.get(i + 2)?, i + 3),
                h => (h, i + 2),
            };
            hi = h;
            i = next;
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    Some((matched != negate, i))
}

/// The POSIX character classes in the C locale.
fn char_class(name: &str, c: char) -> bool {
    match name {
        "alnum" => c.is_ascii_alphanumeric(),
        "alpha" => c.is_ascii_alphabetic(),
        "blank" => c == ' ' || c == '\t',
        "cntrl" => c.is_ascii_control(),
        "digit" => c.is_ascii_digit(),
        "graph" => c.is_ascii_graphic(),
        "lower" => c.is_ascii_lowercase(),
        "print" => c.is_ascii_graphic() || c == ' ',
        "punct" => c.is_ascii_punctuation(),
        "space" => c.is_ascii_whitespace() || c == '\x0b',
        "upper" => c.is_ascii_uppercase(),
        "xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

/// Go's `filepath.Glob`: the sorted paths matching `pattern`; None when it is malformed.
pub fn glob(pattern: &str) -> Option<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// fnmatch(3) rules, checked against the C library's own fnmatch (FNM_PERIOD, as glob(3)
    /// without GLOB_PERIOD matches each path component).
    #[test]
    fn fnmatch_agrees_with_the_c_library() {
        let libc_match = |p: &str, n: &str| {
            let (p, n) = (
                std::ffi::CString::new(p).unwrap(),
                std::ffi::CString::new(n).unwrap(),
            );
            // SAFETY: both are valid NUL-terminated strings.
            unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), libc::FNM_PERIOD) == 0 }
        };
        let patterns = [
            "*",
            "eth*",
            "eth?",
            "e*0",
            "[a-c]x",
            "[!a-c]x",
            "[^a-c]x",
            "[]]x",
            "[!]]x",
            "[a-]x",
            "[-a]x",
            "[[:digit:]]*",
            "[[:alpha:]][[:digit:]]",
            "[[:upper:]]",
            "\\*",
            "a\\",
            "[",
            "a[b",
            "[a",
            "*[",
            "x[!",
            "?",
            "??",
            "*.*",
            ".*",
            "[.]x",
            "eth[0-9]",
            "veth*",
            "*0",
            "a*b*c",
            "[\\]]",
            "[a\\-z]",
            "\\[a]",
            "**",
            "[[:bogus:]]",
            "[z-a]",
            "lo",
        ];
        let names = [
            "", "x", "ax", "bx", "dx", "]x", "-x", "!x", "0", "1a", "a1", "A", "*", "a\\", "a",
            "[", "a[b", ".x", ".hidden", "eth0", "eth10", "ethx", "veth1", "lo", "a.b", "abc",
            "aXbYc", "z", "\\", "x[", "[a",
        ];
        for p in patterns {
            for n in names {
                assert_eq!(fnmatch(p, n), libc_match(p, n), "pattern {p:?} name {n:?}");
            }
        }
        assert!(is_pattern("net.ipv4.conf.*.rp_filter") && is_pattern("eth[01]"));
        assert!(!is_pattern("net.core.somaxconn") && !is_pattern("a\\b"));
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
}
