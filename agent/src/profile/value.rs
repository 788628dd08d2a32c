//! Desired values: exact numbers, floors (`>=N`), ceilings (`<=N`), per-field relations for
//! tuple keys (`"4096 87380 >=16777216"`), words, and raw text for unchecked keys.

use serde::Serialize;

use super::catalogue::Kind;

/// A relation one integer field must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "op", content = "value")]
pub enum Rel {
    /// Exactly this value.
    Eq(i64),
    /// At least this value: raise when lower, never lower.
    Ge(i64),
    /// At most this value: lower when higher, never raise.
    Le(i64),
    /// Leave the field as it is (`_`).
    Any,
}

/// What a profile wants a key to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Want {
    /// One relation per whitespace-separated integer field.
    Ints(Vec<Rel>),
    /// An exact word or text, compared after normalising whitespace.
    Text(String),
}

/// Collapses runs of whitespace to one space and trims: the kernel prints tuples with tabs.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Rel {
    fn holds(self, cur: i64) -> bool {
        match self {
            Rel::Eq(v) => cur == v,
            Rel::Ge(v) => cur >= v,
            Rel::Le(v) => cur <= v,
            Rel::Any => true,
        }
    }

    fn apply(self, cur: i64) -> i64 {
        match self {
            Rel::Eq(v) => v,
            Rel::Ge(v) => cur.max(v),
            Rel::Le(v) => cur.min(v),
            Rel::Any => cur,
        }
    }

    /// The number the relation names, if any.
    pub fn number(self) -> Option<i64> {
        match self {
            Rel::Eq(v) | Rel::Ge(v) | Rel::Le(v) => Some(v),
            Rel::Any => None,
        }
    }
}

impl std::fmt::Display for Rel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rel::Eq(v) => write!(f, "{v}"),
            Rel::Ge(v) => write!(f, ">={v}"),
            Rel::Le(v) => write!(f, "<={v}"),
            Rel::Any => f.write_str("_"),
        }
    }
}

impl std::fmt::Display for Want {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Want::Ints(rels) => {
                for (i, r) in rels.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{r}")?;
                }
                Ok(())
            }
            Want::Text(t) => f.write_str(t),
        }
    }
}

fn parse_ints(current: &str) -> Option<Vec<i64>> {
    current
        .split_whitespace()
        .map(|t| t.parse::<i64>().ok())
        .collect()
}

impl Want {
    /// Does the current (kernel) value satisfy this want?
    pub fn satisfied(&self, current: &str) -> bool {
        match self {
            Want::Ints(rels) => match parse_ints(current) {
                Some(cur) if cur.len() == rels.len() => {
                    rels.iter().zip(&cur).all(|(r, c)| r.holds(*c))
                }
                _ => false,
            },
            Want::Text(t) => normalize(current) == normalize(t),
        }
    }

    /// The value to write so that the want holds, moving the current value as little as
    /// possible (a floor keeps a higher current value).
    pub fn target(&self, current: &str) -> Result<String, String> {
        match self {
            Want::Ints(rels) => {
                let needs_current = rels.iter().any(|r| !matches!(r, Rel::Eq(_)));
                let cur = match parse_ints(current) {
                    Some(c) if c.len() == rels.len() => c,
                    _ if !needs_current => vec![0; rels.len()],
                    _ => {
                        return Err(format!(
                            "the current value {:?} is not {} integer(s), so a relation cannot be applied",
                            normalize(current),
                            rels.len()
                        ))
                    }
                };
                let out: Vec<String> = rels
                    .iter()
                    .zip(cur)
                    .map(|(r, c)| r.apply(c).to_string())
                    .collect();
                Ok(out.join(" "))
            }
            Want::Text(t) => Ok(normalize(t)),
        }
    }

    /// The single number of a one-field want (for conntrack sizing, limits).
    pub fn number(&self) -> Option<i64> {
        match self {
            Want::Ints(rels) if rels.len() == 1 => rels[0].number(),
            _ => None,
        }
    }
}

/// Parses one relation token: `N`, `>=N`, `<=N` or `_`.
pub fn parse_rel(token: &str) -> Result<Rel, String> {
    let token = token.trim();
    if token == "_" {
        return Ok(Rel::Any);
    }
    let (ctor, num): (fn(i64) -> Rel, &str) = if let Some(n) = token.strip_prefix(">=") {
        (Rel::Ge, n)
    } else if let Some(n) = token.strip_prefix("<=") {
        (Rel::Le, n)
    } else if token.starts_with(['>', '<', '=']) {
        return Err(format!(
            "{token:?} is not a relation: write \">=N\" (a floor) or \"<=N\" (a ceiling)"
        ));
    } else {
        (Rel::Eq, token)
    };
    let num = num.trim().replace('_', "");
    num.parse::<i64>()
        .map(ctor)
        .map_err(|_| format!("{token:?} is not a number or a relation (N, >=N, <=N, _)"))
}

/// Checks every field against the key's range; returns a message naming the allowed range.
pub fn check_range(want: &Want, kind: Kind) -> Result<(), String> {
    let (min, max) = match kind {
        Kind::Int { min, max } | Kind::Ints { min, max, .. } => (min, max),
        Kind::Word { .. } => return Ok(()),
    };
    if let Want::Ints(rels) = want {
        for r in rels {
            if let Some(v) = r.number() {
                if v < min || v > max {
                    return Err(format!("{v} is out of range: allowed {min}..={max}"));
                }
            }
        }
        if let [Rel::Eq(a), Rel::Eq(b)] = rels.as_slice() {
            if a > b {
                return Err(format!(
                    "the first value ({a}) is greater than the last ({b}): write the lower bound first"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations() {
        assert_eq!(parse_rel(">=65535"), Ok(Rel::Ge(65535)));
        assert_eq!(parse_rel("<= 10"), Ok(Rel::Le(10)));
        assert_eq!(parse_rel("1_000"), Ok(Rel::Eq(1000)));
        assert_eq!(parse_rel("_"), Ok(Rel::Any));
        assert!(parse_rel(">65535").unwrap_err().contains("floor"));
        assert!(parse_rel("abc").is_err());
    }

    #[test]
    fn floors_keep_higher_values_and_whitespace_is_normalised() {
        let w = Want::Ints(vec![Rel::Eq(4096), Rel::Eq(87380), Rel::Ge(16777216)]);
        assert!(w.satisfied("4096\t87380\t33554432"));
        assert!(!w.satisfied("4096\t131072\t33554432"));
        assert_eq!(
            w.target("4096\t131072\t33554432").unwrap(),
            "4096 87380 33554432"
        );
        assert_eq!(
            w.target("4096 131072 6291456").unwrap(),
            "4096 87380 16777216"
        );
        let ceil = Want::Ints(vec![Rel::Le(10)]);
        assert_eq!(ceil.target("60").unwrap(), "10");
        assert_eq!(ceil.target("5").unwrap(), "5");
        assert!(Want::Ints(vec![Rel::Ge(1)]).target("bbr").is_err());
        assert_eq!(Want::Ints(vec![Rel::Eq(3)]).target("").unwrap(), "3");
        assert!(Want::Text("bbr".into()).satisfied(" bbr\n"));
    }

    #[test]
    fn ranges() {
        let k = Kind::Ints {
            n: 2,
            min: 1,
            max: 65535,
        };
        assert!(check_range(&Want::Ints(vec![Rel::Eq(1024), Rel::Eq(65535)]), k).is_ok());
        let e = check_range(&Want::Ints(vec![Rel::Eq(0), Rel::Eq(65535)]), k).unwrap_err();
        assert_eq!(e, "0 is out of range: allowed 1..=65535");
        assert!(check_range(&Want::Ints(vec![Rel::Eq(9000), Rel::Eq(1024)]), k).is_err());
    }
}
