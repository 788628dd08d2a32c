//! Go's `filepath.Glob`, `filepath.Match` and `filepath.Clean`, for node_exporter-compatible
//! path patterns (`--collector.textfile.directory`). Matching is memoised, so patterns with
//! many `*` take polynomial time.

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
