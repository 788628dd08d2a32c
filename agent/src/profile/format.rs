//! The profile file format (TOML): parsing one file into a [`ProfileFile`], checking every key
//! and value against the catalogue and reporting every problem with its position.

use std::borrow::Cow;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::catalogue::{self, Kind};
use super::error::{ProfileError, ProfileErrors};
use super::facts::Condition;
use super::suggest;
use super::value::{self, Rel, Want};
use crate::base::pos::Pos;

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
}

/// One `key = value` of `[sysctl]`, `[unchecked]` or a `[when.sysctl]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub want: Want,
    pub pos: Pos,
}

/// `[conntrack] max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConntrackMax {
    /// Sized from memory (see `facts::auto_conntrack_max`).
    Auto,
    Value(Rel),
}

/// `[conntrack] buckets`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Buckets {
    /// At least the effective `max` (`">=max"`).
    AtLeastMax,
    Value(Rel),
}

/// `[congestion] if-unavailable`: what happens when the kernel cannot provide the qdisc or
/// congestion control the profile names (neither built in nor a loadable module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IfUnavailable {
    /// Leave that key alone, apply the rest, and say so (the default).
    #[default]
    Skip,
    /// Apply nothing: the plan has an error.
    Refuse,
}

impl IfUnavailable {
    pub fn parse(text: &str) -> Option<IfUnavailable> {
        match text {
            "skip" => Some(IfUnavailable::Skip),
            "refuse" => Some(IfUnavailable::Refuse),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IfUnavailable::Skip => "skip",
            IfUnavailable::Refuse => "refuse",
        }
    }
}

/// A `[[when]]` block: sysctl settings that apply only when every condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    pub conditions: Vec<At<Condition>>,
    pub sysctl: Vec<Setting>,
    pub pos: Pos,
}

/// One profile file as written (before includes are merged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFile {
    pub name: Option<At<String>>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub include: Vec<At<String>>,
    pub sysctl: Vec<Setting>,
    pub unchecked: Vec<Setting>,
    pub congestion_control: Option<At<String>>,
    pub qdisc: Option<At<String>>,
    pub if_unavailable: Option<At<IfUnavailable>>,
    pub conntrack_max: Option<At<ConntrackMax>>,
    pub conntrack_buckets: Option<At<Buckets>>,
    pub nofile: Option<At<i64>>,
    pub services: Option<At<Vec<String>>>,
    pub when: Vec<When>,
}

const SECTIONS: &[&str] = &[
    "profile",
    "sysctl",
    "unchecked",
    "congestion",
    "conntrack",
    "limits",
    "when",
];
const PROFILE_FIELDS: &[&str] = &["name", "summary", "description", "include"];
const CONGESTION_FIELDS: &[&str] = &["control", "qdisc", "if-unavailable"];
const CONNTRACK_FIELDS: &[&str] = &["max", "buckets"];
const LIMITS_FIELDS: &[&str] = &["nofile", "services"];
const WHEN_FIELDS: &[&str] = &["kernel", "memory", "cpus", "virtualized", "sysctl"];

/// Largest `[limits] nofile`: the kernel's ceiling for `fs.nr_open` on 64-bit.
pub const NOFILE_MAX: i64 = 2_147_483_584;

struct Parser<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ProfileError>,
}

type Val<'i> = Spanned<DeValue<'i>>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn did_you_mean(word: &str, options: &[&str]) -> Option<String> {
    suggest::closest(word, options.iter().copied()).map(|s| format!("did you mean {s:?}?"))
}

impl<'a> Parser<'a> {
    fn pos(&self, offset: usize) -> Pos {
        Pos::of(self.text, offset)
    }

    fn error(&mut self, offset: usize, key: Option<&str>, message: String, hint: Option<String>) {
        let pos = self.pos(offset);
        self.errors.push(ProfileError {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            key: key.map(str::to_string),
            message,
            hint,
        });
    }

    fn unknown_field(&mut self, key: &Spanned<Cow<'_, str>>, section: &str, allowed: &[&str]) {
        let hint = did_you_mean(key.get_ref(), allowed)
            .or_else(|| Some(format!("allowed: {}", allowed.join(", "))));
        let where_ = if section.is_empty() {
            "unknown section".to_string()
        } else {
            format!("unknown field in [{section}]")
        };
        self.error(key.span().start, Some(key.get_ref()), where_, hint);
    }

    fn string(&mut self, key: &str, v: &Val<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.error(
                    v.span().start,
                    Some(key),
                    format!("expected a string, found {}", type_name(other)),
                    None,
                );
                None
            }
        }
    }

    fn integer(&mut self, key: &str, v: &Val<'_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                let (neg, digits) = match digits.strip_prefix('-') {
                    Some(d) => (true, d.to_string()),
                    None => (false, digits.trim_start_matches('+').to_string()),
                };
                let digits = digits
                    .trim_start_matches("0x")
                    .trim_start_matches("0o")
                    .trim_start_matches("0b");
                match i64::from_str_radix(digits, i.radix()) {
                    Ok(n) => Some(if neg { -n } else { n }),
                    Err(_) => {
                        self.error(v.span().start, Some(key), "integer too large".into(), None);
                        None
                    }
                }
            }
            other => {
                self.error(
                    v.span().start,
                    Some(key),
                    format!("expected an integer, found {}", type_name(other)),
                    None,
                );
                None
            }
        }
    }

    fn table<'t, 'i>(
        &mut self,
        key: &Spanned<Cow<'_, str>>,
        v: &'t Val<'i>,
    ) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(
                    v.span().start,
                    Some(key.get_ref()),
                    format!("expected a table, found {}", type_name(other)),
                    Some(format!(
                        "write it as [{}] with keys below it",
                        key.get_ref()
                    )),
                );
                None
            }
        }
    }

    /// Parses a checked sysctl setting against the catalogue.
    fn sysctl(&mut self, key: &Spanned<Cow<'_, str>>, v: &Val<'_>) -> Option<Setting> {
        let name = key.get_ref().as_ref();
        let at = key.span().start;
        if let Err(msg) = check_key_syntax(name) {
            self.error(at, Some(name), msg, None);
            return None;
        }
        if let Some(reason) = catalogue::refused(name) {
            self.error(at, Some(name), format!("refused: {reason}"), None);
            return None;
        }
        let Some(info) = catalogue::lookup(name) else {
            let hint = match catalogue::suggest(name) {
                Some(s) => format!("did you mean {s:?}? To set a key the catalogue does not know, put it under [unchecked]"),
                None => "not in the catalogue (nodetune profile keys lists it); to set it anyway, put it under [unchecked]".into(),
            };
            self.error(at, Some(name), "unknown key".into(), Some(hint));
            return None;
        };
        let want = self.want(name, info.kind, v)?;
        if let Err(msg) = value::check_range(&want, info.kind) {
            self.error(v.span().start, Some(name), msg, None);
            return None;
        }
        Some(Setting {
            key: name.to_string(),
            want,
            pos: self.pos(at),
        })
    }

    /// Parses a value for a key of the given kind.
    fn want(&mut self, name: &str, kind: Kind, v: &Val<'_>) -> Option<Want> {
        let at = v.span().start;
        let result: Result<Want, (String, Option<String>)> = match (kind, v.get_ref()) {
            (Kind::Int { .. }, DeValue::Integer(_)) => {
                return self.integer(name, v).map(|n| Want::Ints(vec![Rel::Eq(n)]))
            }
            (Kind::Int { min: 0, max: 1 }, DeValue::Boolean(b)) => {
                Ok(Want::Ints(vec![Rel::Eq(i64::from(*b))]))
            }
            (Kind::Int { .. }, DeValue::String(s)) => value::parse_rel(s)
                .map(|r| Want::Ints(vec![r]))
                .map_err(|m| (m, None)),
            (Kind::Ints { n, .. }, DeValue::String(s)) => {
                let fields: Vec<&str> = s.split_whitespace().collect();
                if fields.len() != n {
                    Err((
                        format!(
                            "expected {n} whitespace-separated fields, found {}",
                            fields.len()
                        ),
                        Some(format!("for example {:?}", example(n))),
                    ))
                } else {
                    fields
                        .iter()
                        .map(|f| value::parse_rel(f))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Want::Ints)
                        .map_err(|m| (m, None))
                }
            }
            (Kind::Ints { n, .. }, DeValue::Array(items)) => {
                let mut rels = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Integer(_) => rels.push(Rel::Eq(self.integer(name, item)?)),
                        DeValue::String(s) => match value::parse_rel(s) {
                            Ok(r) => rels.push(r),
                            Err(m) => {
                                self.error(item.span().start, Some(name), m, None);
                                return None;
                            }
                        },
                        other => {
                            self.error(
                                item.span().start,
                                Some(name),
                                format!(
                                    "expected an integer or a relation, found {}",
                                    type_name(other)
                                ),
                                None,
                            );
                            return None;
                        }
                    }
                }
                if rels.len() == n {
                    Ok(Want::Ints(rels))
                } else {
                    Err((format!("expected {n} fields, found {}", rels.len()), None))
                }
            }
            (Kind::Word { choices }, DeValue::String(s)) => {
                let s = value::normalize(s);
                if !choices.is_empty() && !choices.contains(&s.as_str()) {
                    Err((
                        format!("{s:?} is not one of: {}", choices.join(", ")),
                        did_you_mean(&s, choices),
                    ))
                } else {
                    Ok(Want::Text(s))
                }
            }
            (Kind::Int { min, max }, other) => Err((
                format!(
                    "expected an integer or a relation string, found {}",
                    type_name(other)
                ),
                Some(format!(
                    "for example {} or \">={}\" (allowed {min}..={max})",
                    min.max(1),
                    min.max(1)
                )),
            )),
            (Kind::Ints { n, .. }, other) => Err((
                format!(
                    "expected a string of {n} fields, found {}",
                    type_name(other)
                ),
                Some(format!("for example {:?}", example(n))),
            )),
            (Kind::Word { .. }, other) => Err((
                format!("expected a string, found {}", type_name(other)),
                None,
            )),
        };
        match result {
            Ok(w) => Some(w),
            Err((msg, hint)) => {
                self.error(at, Some(name), msg, hint);
                None
            }
        }
    }

    fn sysctl_table(&mut self, t: &DeTable<'_>, out: &mut Vec<Setting>) {
        for (k, v) in t.iter() {
            if let DeValue::Table(_) = v.get_ref() {
                self.error(
                    k.span().start,
                    Some(k.get_ref()),
                    "sysctl keys must be quoted".into(),
                    Some(format!(
                        "write \"{}.…\" = value with the whole key in quotes",
                        k.get_ref()
                    )),
                );
                continue;
            }
            if let Some(s) = self.sysctl(k, v) {
                out.push(s);
            }
        }
    }

    fn unchecked_table(&mut self, t: &DeTable<'_>, out: &mut Vec<Setting>) {
        for (k, v) in t.iter() {
            let name = k.get_ref().as_ref();
            if let Err(msg) = check_key_syntax(name) {
                self.error(k.span().start, Some(name), msg, None);
                continue;
            }
            if let Some(reason) = catalogue::refused(name) {
                self.error(
                    k.span().start,
                    Some(name),
                    format!("refused: {reason}"),
                    None,
                );
                continue;
            }
            let text = match v.get_ref() {
                DeValue::String(s) => value::normalize(s),
                DeValue::Integer(_) => match self.integer(name, v) {
                    Some(n) => n.to_string(),
                    None => continue,
                },
                other => {
                    self.error(
                        v.span().start,
                        Some(name),
                        format!(
                            "expected a string or an integer, found {}",
                            type_name(other)
                        ),
                        None,
                    );
                    continue;
                }
            };
            out.push(Setting {
                key: name.to_string(),
                want: Want::Text(text),
                pos: self.pos(k.span().start),
            });
        }
    }

    fn at<T>(&self, v: &Val<'_>, value: T) -> At<T> {
        At {
            value,
            pos: self.pos(v.span().start),
        }
    }

    fn profile_section(&mut self, t: &DeTable<'_>, out: &mut ProfileFile) {
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "name" => out.name = self.string("name", v).map(|s| self.at(v, s)),
                "summary" => out.summary = self.string("summary", v),
                "description" => out.description = self.string("description", v),
                "include" => match v.get_ref() {
                    DeValue::Array(items) => {
                        for item in items.iter() {
                            if let Some(s) = self.string("include", item) {
                                out.include.push(self.at(item, s));
                            }
                        }
                    }
                    DeValue::String(s) => out.include.push(self.at(v, s.to_string())),
                    other => self.error(
                        v.span().start,
                        Some("include"),
                        format!(
                            "expected an array of profile names, found {}",
                            type_name(other)
                        ),
                        Some("for example include = [\"base\"]".into()),
                    ),
                },
                _ => self.unknown_field(k, "profile", PROFILE_FIELDS),
            }
        }
    }

    fn congestion_section(&mut self, t: &DeTable<'_>, out: &mut ProfileFile) {
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "control" => {
                    if let Some(s) = self.string("congestion.control", v) {
                        if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            self.error(
                                v.span().start,
                                Some("congestion.control"),
                                format!("{s:?} is not an algorithm name"),
                                Some("for example \"bbr\" or \"cubic\"".into()),
                            );
                        } else {
                            out.congestion_control = Some(self.at(v, s));
                        }
                    }
                }
                "if-unavailable" => {
                    if let Some(text) = self.string("congestion.if-unavailable", v) {
                        match IfUnavailable::parse(&text) {
                            Some(p) => out.if_unavailable = Some(self.at(v, p)),
                            None => self.error(
                                v.span().start,
                                Some("congestion.if-unavailable"),
                                format!("{text:?} is not one of: skip, refuse"),
                                did_you_mean(&text, &["skip", "refuse"]).or_else(|| {
                                    Some(
                                        "\"skip\" applies the rest of the profile with a warning; \"refuse\" applies nothing"
                                            .into(),
                                    )
                                }),
                            ),
                        }
                    }
                }
                "qdisc" => {
                    let info = catalogue::lookup("net.core.default_qdisc");
                    if let (Some(info), Some(_)) = (info, self.string("congestion.qdisc", v)) {
                        if let Some(Want::Text(s)) = self.want("congestion.qdisc", info.kind, v) {
                            out.qdisc = Some(self.at(v, s));
                        }
                    }
                }
                _ => self.unknown_field(k, "congestion", CONGESTION_FIELDS),
            }
        }
    }

    fn conntrack_section(&mut self, t: &DeTable<'_>, out: &mut ProfileFile) {
        let range = catalogue::lookup("net.netfilter.nf_conntrack_max").map(|k| k.kind);
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "max" => {
                    let parsed = match v.get_ref() {
                        DeValue::String(s) if s.trim() == "auto" => Some(ConntrackMax::Auto),
                        _ => match range.and_then(|kind| self.want("conntrack.max", kind, v)) {
                            Some(w @ Want::Ints(_)) => match (range, &w) {
                                (Some(kind), Want::Ints(r)) => match value::check_range(&w, kind) {
                                    Ok(()) => Some(ConntrackMax::Value(r[0])),
                                    Err(m) => {
                                        self.error(v.span().start, Some("conntrack.max"), m, None);
                                        None
                                    }
                                },
                                _ => None,
                            },
                            _ => None,
                        },
                    };
                    out.conntrack_max = parsed.map(|p| self.at(v, p));
                }
                "buckets" => {
                    let parsed = match v.get_ref() {
                        DeValue::String(s) if value::normalize(s).replace(' ', "") == ">=max" => {
                            Some(Buckets::AtLeastMax)
                        }
                        _ => {
                            let kind = Kind::Int {
                                min: 1,
                                max: i32::MAX as i64,
                            };
                            match self.want("conntrack.buckets", kind, v) {
                                Some(w @ Want::Ints(_)) => match value::check_range(&w, kind) {
                                    Ok(()) => match w {
                                        Want::Ints(r) => Some(Buckets::Value(r[0])),
                                        Want::Text(_) => None,
                                    },
                                    Err(m) => {
                                        self.error(
                                            v.span().start,
                                            Some("conntrack.buckets"),
                                            m,
                                            None,
                                        );
                                        None
                                    }
                                },
                                _ => None,
                            }
                        }
                    };
                    out.conntrack_buckets = parsed.map(|p| self.at(v, p));
                }
                _ => self.unknown_field(k, "conntrack", CONNTRACK_FIELDS),
            }
        }
    }

    fn limits_section(&mut self, t: &DeTable<'_>, out: &mut ProfileFile) {
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "nofile" => {
                    if let Some(n) = self.integer("limits.nofile", v) {
                        if !(1024..=NOFILE_MAX).contains(&n) {
                            self.error(
                                v.span().start,
                                Some("limits.nofile"),
                                format!("{n} is out of range: allowed 1024..={NOFILE_MAX}"),
                                None,
                            );
                        } else {
                            out.nofile = Some(self.at(v, n));
                        }
                    }
                }
                "services" => match v.get_ref() {
                    DeValue::Array(items) => {
                        let mut names = Vec::new();
                        for item in items.iter() {
                            if let Some(s) = self.string("limits.services", item) {
                                if let Err(m) = check_unit_name(&s) {
                                    self.error(
                                        item.span().start,
                                        Some("limits.services"),
                                        m,
                                        Some("for example \"nginx.service\"".into()),
                                    );
                                } else {
                                    names.push(s);
                                }
                            }
                        }
                        out.services = Some(self.at(v, names));
                    }
                    other => self.error(
                        v.span().start,
                        Some("limits.services"),
                        format!(
                            "expected an array of unit names, found {}",
                            type_name(other)
                        ),
                        Some("for example services = [\"nginx.service\"]".into()),
                    ),
                },
                _ => self.unknown_field(k, "limits", LIMITS_FIELDS),
            }
        }
    }

    fn when_blocks(&mut self, v: &Val<'_>, out: &mut ProfileFile) {
        let DeValue::Array(blocks) = v.get_ref() else {
            self.error(
                v.span().start,
                Some("when"),
                format!("expected [[when]] blocks, found {}", type_name(v.get_ref())),
                Some("write [[when]] (double brackets), one block per condition set".into()),
            );
            return;
        };
        for block in blocks.iter() {
            let DeValue::Table(t) = block.get_ref() else {
                self.error(
                    block.span().start,
                    Some("when"),
                    "expected a table".into(),
                    None,
                );
                continue;
            };
            let mut when = When {
                conditions: Vec::new(),
                sysctl: Vec::new(),
                pos: self.pos(block.span().start),
            };
            for (k, v) in t.iter() {
                let name = k.get_ref().as_ref();
                match name {
                    "sysctl" => {
                        if let Some(t) = self.table(k, v) {
                            self.sysctl_table(t, &mut when.sysctl);
                        }
                    }
                    "virtualized" => match v.get_ref() {
                        DeValue::Boolean(b) => {
                            when.conditions.push(self.at(v, Condition::Virtualized(*b)))
                        }
                        other => self.error(
                            v.span().start,
                            Some("when.virtualized"),
                            format!("expected true or false, found {}", type_name(other)),
                            None,
                        ),
                    },
                    "kernel" | "memory" | "cpus" => {
                        let text = match v.get_ref() {
                            DeValue::String(s) => s.to_string(),
                            DeValue::Integer(i) => i.as_str().to_string(),
                            other => {
                                self.error(
                                    v.span().start,
                                    Some(&format!("when.{name}")),
                                    format!(
                                        "expected a string such as \">=8\", found {}",
                                        type_name(other)
                                    ),
                                    None,
                                );
                                continue;
                            }
                        };
                        match Condition::parse(name, &text) {
                            Ok(c) => when.conditions.push(self.at(v, c)),
                            Err(m) => {
                                self.error(v.span().start, Some(&format!("when.{name}")), m, None)
                            }
                        }
                    }
                    _ => self.unknown_field(k, "when", WHEN_FIELDS),
                }
            }
            if when.conditions.is_empty() {
                self.error(
                    block.span().start,
                    Some("when"),
                    "a [[when]] block needs at least one condition".into(),
                    Some(format!("conditions: {}", WHEN_FIELDS[..4].join(", "))),
                );
            }
            out.when.push(when);
        }
    }
}

/// Checks a sysctl key's spelling: dotted words, no way out of the sysctl root.
pub fn check_key_syntax(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty key".into());
    }
    if name.contains('\0') {
        return Err("a key cannot contain a NUL byte".into());
    }
    if name.starts_with('/') || name.starts_with('.') {
        return Err("a key is a dotted sysctl name (net.core.somaxconn), not a path".into());
    }
    if name.split(['.', '/']).any(|p| p.is_empty() || p == "..") {
        return Err("a key cannot have empty or \"..\" components".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
    {
        return Err("a key may contain only letters, digits and . _ - / : @".into());
    }
    Ok(())
}

fn check_unit_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '\\' | '@' | '-'));
    let ok_suffix = [".service", ".socket", ".scope", ".slice"]
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s));
    if !ok_chars || !ok_suffix || name.contains("..") {
        return Err(format!("{name:?} is not a systemd unit name"));
    }
    Ok(())
}

fn example(n: usize) -> &'static str {
    if n == 2 {
        "1024 65535"
    } else {
        "4096 87380 >=16777216"
    }
}

/// Parses one profile file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<ProfileFile, ProfileErrors> {
    let mut p = Parser {
        file,
        text,
        errors: Vec::new(),
    };
    let doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            p.error(offset, None, format!("invalid TOML: {}", e.message()), None);
            return Err(ProfileErrors(p.errors));
        }
    };
    let mut out = ProfileFile::default();
    for (k, v) in doc.get_ref().iter() {
        match k.get_ref().as_ref() {
            "when" => p.when_blocks(v, &mut out),
            name if SECTIONS.contains(&name) => {
                let Some(t) = p.table(k, v) else { continue };
                match name {
                    "profile" => p.profile_section(t, &mut out),
                    "sysctl" => p.sysctl_table(t, &mut out.sysctl),
                    "unchecked" => p.unchecked_table(t, &mut out.unchecked),
                    "congestion" => p.congestion_section(t, &mut out),
                    "conntrack" => p.conntrack_section(t, &mut out),
                    _ => p.limits_section(t, &mut out),
                }
            }
            _ => p.unknown_field(k, "", SECTIONS),
        }
    }
    if p.errors.is_empty() {
        Ok(out)
    } else {
        p.errors.sort_by_key(|e| (e.line, e.column));
        Err(ProfileErrors(p.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("t.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_profile() {
        let p = parse(
            "t.toml",
            r#"
[profile]
name = "t"
include = ["base"]
[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_max_syn_backlog" = ">=65535"
"net.ipv4.ip_local_port_range" = "1024 65535"
"net.ipv4.tcp_rmem" = [4096, 87380, ">=16777216"]
"net.ipv4.tcp_slow_start_after_idle" = false
[unchecked]
"net.ipv4.conf.eth0.forwarding" = 1
[congestion]
control = "bbr"
qdisc = "fq"
if-unavailable = "refuse"
[conntrack]
max = "auto"
buckets = ">=max"
[limits]
nofile = 1048576
services = ["nginx.service"]
[[when]]
cpus = ">=8"
[when.sysctl]
"net.core.netdev_max_backlog" = 16384
"#,
        )
        .unwrap();
        assert_eq!(p.include[0].value, "base");
        assert_eq!(p.sysctl.len(), 5);
        let get = |k: &str| p.sysctl.iter().find(|s| s.key == k).unwrap();
        assert_eq!(
            get("net.ipv4.tcp_max_syn_backlog").want,
            Want::Ints(vec![Rel::Ge(65535)])
        );
        assert_eq!(
            get("net.ipv4.tcp_rmem").want.to_string(),
            "4096 87380 >=16777216"
        );
        assert_eq!(
            get("net.ipv4.tcp_slow_start_after_idle").want,
            Want::Ints(vec![Rel::Eq(0)])
        );
        assert_eq!(get("net.core.somaxconn").pos, Pos { line: 6, column: 1 });
        assert_eq!(p.unchecked[0].want, Want::Text("1".into()));
        assert_eq!(p.conntrack_max.unwrap().value, ConntrackMax::Auto);
        assert_eq!(p.conntrack_buckets.unwrap().value, Buckets::AtLeastMax);
        assert_eq!(p.services.unwrap().value, vec!["nginx.service"]);
        assert_eq!(p.if_unavailable.unwrap().value, IfUnavailable::Refuse);
        assert_eq!(p.when[0].sysctl[0].key, "net.core.netdev_max_backlog");
    }

    #[test]
    fn exact_messages() {
        assert_eq!(
            err("[sysctl]\n\"net.core.somaxcon\" = 1\n"),
            "t.toml:2:1: net.core.somaxcon: unknown key (did you mean \"net.core.somaxconn\"? To set a key the catalogue does not know, put it under [unchecked])"
        );
        assert_eq!(
            err("[sysctl]\n\"net.core.somaxconn\" = -1\n"),
            "t.toml:2:24: net.core.somaxconn: -1 is out of range: allowed 0..=2147483647"
        );
        assert_eq!(
            err("[sysctl]\n\"net.ipv4.tcp_tw_recycle\" = 1\n"),
            "t.toml:2:1: net.ipv4.tcp_tw_recycle: refused: it was removed in Linux 4.12 because it dropped connections from clients behind NAT (per-host timestamps); use net.ipv4.tcp_tw_reuse instead"
        );
        assert_eq!(
            err("[sysctl]\n\"net.core.somaxconn\" = [1]\n"),
            "t.toml:2:24: net.core.somaxconn: expected an integer or a relation string, found an array (for example 1 or \">=1\" (allowed 0..=2147483647))"
        );
        assert_eq!(
            err("[sysctl]\n\"net.ipv4.tcp_rmem\" = \"4096 87380\"\n"),
            "t.toml:2:23: net.ipv4.tcp_rmem: expected 3 whitespace-separated fields, found 2 (for example \"4096 87380 >=16777216\")"
        );
        assert_eq!(
            err("[sysclt]\n"),
            "t.toml:1:2: sysclt: unknown section (did you mean \"sysctl\"?)"
        );
        assert_eq!(
            err("[sysctl]\n\"net.core.somaxconn\" = \n"),
            "t.toml:2:24: invalid TOML: string values must be quoted, expected literal string"
        );
        assert_eq!(
            err("[congestion]\nqdisc = \"fq_codl\"\n"),
            "t.toml:2:9: congestion.qdisc: \"fq_codl\" is not one of: fq, fq_codel, pfifo_fast, cake, sfq, fq_pie, pfifo, noqueue (did you mean \"fq_codel\"?)"
        );
        assert_eq!(
            err("[congestion]\nif-unavailable = \"skipp\"\n"),
            "t.toml:2:18: congestion.if-unavailable: \"skipp\" is not one of: skip, refuse (did you mean \"skip\"?)"
        );
        assert_eq!(
            err("[limits]\nnofile = \"many\"\n"),
            "t.toml:2:10: limits.nofile: expected an integer, found a string"
        );
        assert_eq!(
            err("[unchecked]\n\"../../etc/passwd\" = 1\n"),
            "t.toml:2:1: ../../etc/passwd: a key is a dotted sysctl name (net.core.somaxconn), not a path"
        );
    }

    #[test]
    fn every_error_is_reported() {
        let e = parse(
            "t.toml",
            "[sysctl]\n\"net.core.somaxcon\" = 1\n\"net.ipv4.tcp_fastopen\" = \"fast\"\n",
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert_eq!(e.0[1].line, 3);
    }

    #[test]
    fn key_syntax() {
        assert!(check_key_syntax("net.core.somaxconn").is_ok());
        assert!(check_key_syntax("net.ipv4.conf.eth0/100.forwarding").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "net..core",
            "net/../../x",
            "net.core.a\0",
            "a b",
        ] {
            assert!(check_key_syntax(bad).is_err(), "{bad:?}");
        }
    }
}
