//! Profile errors: each names the file, line and column, the key, what is wrong and, where
//! possible, what would fix it.

use serde::Serialize;

/// One problem in a profile file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileError {
    pub file: String,
    /// 1-based; 0 when the problem has no position (a missing file).
    pub line: usize,
    pub column: usize,
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// All problems found while loading a profile; nothing is applied when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl std::fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProfileErrors {}

impl From<ProfileError> for ProfileErrors {
    fn from(e: ProfileError) -> Self {
        ProfileErrors(vec![e])
    }
}

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The position of byte `offset` in `text` (columns count characters).
    pub fn of(text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        Pos {
            line,
            column: before[start..].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_display() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(Pos::of(text, 0), Pos { line: 1, column: 1 });
        assert_eq!(Pos::of(text, 6), Pos { line: 2, column: 1 });
        assert_eq!(Pos::of(text, 11), Pos { line: 2, column: 6 });
        let e = ProfileError {
            file: "p.toml".into(),
            line: 2,
            column: 1,
            key: Some("k".into()),
            message: "bad".into(),
            hint: Some("did you mean \"x\"?".into()),
        };
        assert_eq!(e.to_string(), "p.toml:2:1: k: bad (did you mean \"x\"?)");
    }
}
