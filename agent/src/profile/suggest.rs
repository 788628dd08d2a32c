//! "Did you mean" suggestions for mistyped names.

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo
/// (at most a third of the word's length, and at least one edit).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over characters, counting a swap of two neighbours as one edit
/// (optimal string alignment), so "bsae" is one edit from "base".
fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn distances() {
        assert_eq!(super::distance("kitten", "sitting"), 3);
        assert_eq!(super::distance("", "abc"), 3);
        assert_eq!(super::distance("bsae", "base"), 1);
        assert_eq!(
            super::closest("sysctl", ["sysctl", "limits"]),
            Some("sysctl")
        );
        assert_eq!(
            super::closest("limit", ["sysctl", "limits"]),
            Some("limits")
        );
        assert_eq!(super::closest("xyz", ["sysctl", "limits"]), None);
    }
}
