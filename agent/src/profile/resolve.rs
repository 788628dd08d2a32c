//! Finding profiles by name and merging includes into the effective profile: one entry per
//! kernel key or file, each with the file and line it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::catalogue::{self, Scope};
use super::error::{ProfileError, ProfileErrors};
use super::facts::Facts;
use super::format::{self, At, Buckets, ConntrackMax, IfUnavailable, ProfileFile, Setting};
use super::suggest;
use super::value::{Rel, Want};

/// Profiles compiled into the binary, so every command works before anything is installed.
const BUILTIN: &[(&str, &str)] = &[
    (
        "api-gateway",
        include_str!("../../../profiles/api-gateway.toml"),
    ),
    ("api-node", include_str!("../../../profiles/api-node.toml")),
    ("base", include_str!("../../../profiles/base.toml")),
    (
        "load-generator",
        include_str!("../../../profiles/load-generator.toml"),
    ),
];

/// The profile directories, lowest priority first; a profile in a later directory replaces
/// one of the same name in an earlier one (and the built-in copies).
#[derive(Debug, Clone)]
pub struct Library {
    pub dirs: Vec<PathBuf>,
}

/// A profile's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    /// A path, or `builtin:NAME.toml`.
    pub origin: String,
    pub text: String,
}

/// A profile as `profile list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub name: String,
    pub origin: String,
    pub summary: Option<String>,
    /// Lower-priority copies this one hides.
    pub shadows: Vec<String>,
}

impl Library {
    pub fn new(dirs: Vec<PathBuf>) -> Library {
        Library { dirs }
    }

    fn candidates(&self) -> anyhow::Result<Vec<Source>> {
        let mut out: Vec<Source> = BUILTIN
            .iter()
            .map(|(n, t)| Source {
                name: n.to_string(),
                origin: format!("builtin:{n}.toml"),
                text: t.to_string(),
            })
            .collect();
        for dir in &self.dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "reading profile directory {}: {e}",
                        dir.display()
                    ))
                }
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                crate::base::trust::check(&path).map_err(anyhow::Error::msg)?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                out.push(Source {
                    name,
                    origin: path.display().to_string(),
                    text,
                });
            }
        }
        Ok(out)
    }

    /// The highest-priority profile of that name.
    pub fn find(&self, name: &str) -> anyhow::Result<Option<Source>> {
        Ok(self
            .candidates()?
            .into_iter()
            .rev()
            .find(|s| s.name == name))
    }

    /// Every profile name, sorted, with its winning origin.
    pub fn list(&self) -> anyhow::Result<Vec<Listing>> {
        let mut by_name: BTreeMap<String, Listing> = BTreeMap::new();
        for s in self.candidates()? {
            let summary = format::parse(&s.origin, &s.text)
                .ok()
                .and_then(|p| p.summary);
            let entry = by_name.entry(s.name.clone()).or_insert_with(|| Listing {
                name: s.name.clone(),
                origin: String::new(),
                summary: None,
                shadows: Vec::new(),
            });
            if !entry.origin.is_empty() {
                let old = std::mem::take(&mut entry.origin);
                entry.shadows.push(old);
            }
            entry.origin = s.origin;
            entry.summary = summary;
        }
        Ok(by_name.into_values().collect())
    }

    fn names(&self) -> Vec<String> {
        self.list()
            .map(|l| l.into_iter().map(|l| l.name).collect())
            .unwrap_or_default()
    }
}

/// What an entry sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "name")]
pub enum Target {
    /// A sysctl key, e.g. `net.core.somaxconn`.
    Sysctl(String),
    /// A kernel module parameter under `/sys/module/MODULE/parameters/`.
    ModuleParam(String, String),
    /// A whole configuration file (an absolute path, placed under the configured root).
    File(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sysctl(k) => f.write_str(k),
            Target::ModuleParam(m, p) => write!(f, "module {m} {p}"),
            Target::File(p) => f.write_str(p),
        }
    }
}

/// One effective setting.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub target: Target,
    pub want: Want,
    pub scope: Scope,
    /// Kernel module that provides the key (pending until loaded).
    pub module: Option<String>,
    /// `file:line:column` of the line that set it.
    pub origin: String,
    /// What the key does (from the catalogue), or why a derived entry exists.
    pub why: String,
    /// False for `[unchecked]` keys.
    pub checked: bool,
    /// Why the kernel cannot provide the value (a qdisc or congestion control that is
    /// neither built in nor a module), from the host facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// What the plan does then (`[congestion] if-unavailable`).
    pub if_unavailable: IfUnavailable,
}

/// A profile after includes, conditions and derived settings.
#[derive(Debug, Clone, Serialize)]
pub struct Effective {
    pub name: String,
    pub summary: Option<String>,
    pub origin: String,
    /// Profiles in merge order, this one last.
    pub chain: Vec<String>,
    pub entries: Vec<Entry>,
}

#[derive(Default)]
struct Acc {
    entries: BTreeMap<Target, Entry>,
    buckets: Option<(Buckets, String)>,
    nofile: Option<(i64, String)>,
    services: Option<(Vec<String>, String)>,
    if_unavailable: Option<IfUnavailable>,
    chain: Vec<String>,
}

fn origin(file: &str, pos: crate::base::pos::Pos) -> String {
    format!("{file}:{}:{}", pos.line, pos.column)
}

fn sysctl_entry(s: &Setting, file: &str, checked: bool) -> Entry {
    let info = catalogue::lookup(&s.key).filter(|_| checked);
    Entry {
        target: Target::Sysctl(s.key.clone()),
        want: s.want.clone(),
        scope: info.map(|i| i.scope).unwrap_or(Scope::Netns),
        module: info.and_then(|i| i.module).map(str::to_string),
        origin: origin(file, s.pos),
        why: info
            .map(|i| i.description.to_string())
            .unwrap_or_else(|| "unchecked key".into()),
        checked,
        unavailable: None,
        if_unavailable: IfUnavailable::default(),
    }
}

fn derived(key: &str, want: Want, origin: String, why: &str) -> Entry {
    let info = catalogue::lookup(key);
    Entry {
        target: Target::Sysctl(key.to_string()),
        want,
        scope: info.map(|i| i.scope).unwrap_or(Scope::Global),
        module: info.and_then(|i| i.module).map(str::to_string),
        origin,
        why: why.to_string(),
        checked: true,
        unavailable: None,
        if_unavailable: IfUnavailable::default(),
    }
}

struct Resolver<'a> {
    library: &'a Library,
    /// Extra directory searched first for includes (the directory of a file being validated).
    local_dir: Option<&'a Path>,
    facts: &'a Facts,
    errors: Vec<ProfileError>,
}

impl Resolver<'_> {
    fn find(&self, name: &str) -> anyhow::Result<Option<Source>> {
        if let Some(dir) = self.local_dir {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                return Ok(Some(Source {
                    name: name.to_string(),
                    origin: path.display().to_string(),
                    text,
                }));
            }
        }
        self.library.find(name)
    }

    fn merge(
        &mut self,
        src: &Source,
        stack: &mut Vec<String>,
        acc: &mut Acc,
    ) -> Option<ProfileFile> {
        let file = match format::parse(&src.origin, &src.text) {
            Ok(f) => f,
            Err(e) => {
                self.errors.extend(e.0);
                return None;
            }
        };
        if let Some(n) = &file.name {
            if n.value != src.name {
                self.errors.push(ProfileError {
                    file: src.origin.clone(),
                    line: n.pos.line,
                    column: n.pos.column,
                    key: Some("profile.name".into()),
                    message: format!(
                        "the name {:?} differs from the file name {:?}",
                        n.value, src.name
                    ),
                    hint: Some(format!(
                        "rename the file to {}.toml or set name = {:?}",
                        n.value, src.name
                    )),
                });
            }
        }
        stack.push(src.name.clone());
        for inc in &file.include {
            self.include(src, inc, stack, acc);
        }
        stack.pop();
        self.apply(&src.origin, &file, acc);
        acc.chain.push(src.name.clone());
        Some(file)
    }

    fn include(&mut self, src: &Source, inc: &At<String>, stack: &mut Vec<String>, acc: &mut Acc) {
        let err = |message: String, hint: Option<String>| ProfileError {
            file: src.origin.clone(),
            line: inc.pos.line,
            column: inc.pos.column,
            key: Some("profile.include".into()),
            message,
            hint,
        };
        if stack.contains(&inc.value) {
            let mut cycle = stack.clone();
            cycle.push(inc.value.clone());
            self.errors.push(err(
                format!("include cycle: {}", cycle.join(" -> ")),
                Some(format!("remove {:?} from the include list", inc.value)),
            ));
            return;
        }
        match self.find(&inc.value) {
            Ok(Some(child)) => {
                self.merge(&child, stack, acc);
            }
            Ok(None) => {
                let names = self.library.names();
                let hint = suggest::closest(&inc.value, names.iter().map(String::as_str))
                    .map(|s| format!("did you mean {s:?}?"))
                    .or_else(|| Some(format!("known profiles: {}", names.join(", "))));
                self.errors.push(err(
                    format!("included profile {:?} was not found", inc.value),
                    hint,
                ));
            }
            Err(e) => self.errors.push(err(format!("{e:#}"), None)),
        }
    }

    /// Applies one file's own settings on top of what its includes set.
    fn apply(&mut self, file_name: &str, f: &ProfileFile, acc: &mut Acc) {
        let mut put = |e: Entry| {
            acc.entries.insert(e.target.clone(), e);
        };
        for s in &f.sysctl {
            put(sysctl_entry(s, file_name, true));
        }
        for s in &f.unchecked {
            put(sysctl_entry(s, file_name, false));
        }
        if let Some(c) = &f.congestion_control {
            put(derived(
                "net.ipv4.tcp_congestion_control",
                Want::Text(c.value.clone()),
                origin(file_name, c.pos),
                "[congestion] control: congestion-control algorithm for new connections",
            ));
        }
        if let Some(q) = &f.qdisc {
            put(derived(
                "net.core.default_qdisc",
                Want::Text(q.value.clone()),
                origin(file_name, q.pos),
                "[congestion] qdisc: queueing discipline for new devices (fq paces BBR)",
            ));
        }
        if let Some(m) = &f.conntrack_max {
            let rel = match m.value {
                ConntrackMax::Auto => Rel::Eq(self.facts.auto_conntrack_max()),
                ConntrackMax::Value(r) => r,
            };
            put(derived(
                "net.netfilter.nf_conntrack_max",
                Want::Ints(vec![rel]),
                origin(file_name, m.pos),
                "[conntrack] max: connection-tracking table size",
            ));
        }
        if let Some(b) = &f.conntrack_buckets {
            acc.buckets = Some((b.value, origin(file_name, b.pos)));
        }
        if let Some(n) = &f.nofile {
            acc.nofile = Some((n.value, origin(file_name, n.pos)));
        }
        if let Some(s) = &f.services {
            acc.services = Some((s.value.clone(), origin(file_name, s.pos)));
        }
        if let Some(p) = &f.if_unavailable {
            acc.if_unavailable = Some(p.value);
        }
        for w in &f.when {
            if w.conditions.iter().all(|c| c.value.holds(self.facts)) {
                for s in &w.sysctl {
                    acc.entries.insert(
                        Target::Sysctl(s.key.clone()),
                        sysctl_entry(s, file_name, true),
                    );
                }
            }
        }
    }
}

/// Entries derived once the merge is complete: conntrack buckets (which may follow the merged
/// max) and the file-descriptor limits; and whether the kernel can provide the qdisc and
/// congestion control asked for.
fn finish(acc: &mut Acc, facts: &Facts) {
    let policy = acc.if_unavailable.unwrap_or_default();
    for e in acc.entries.values_mut() {
        if let (Target::Sysctl(key), Want::Text(value)) = (&e.target, &e.want) {
            e.unavailable = facts.avail.missing(key, value);
            e.if_unavailable = policy;
        }
    }
    if let Some((b, org)) = acc.buckets.take() {
        let rel = match b {
            Buckets::Value(r) => Some(r),
            Buckets::AtLeastMax => acc
                .entries
                .get(&Target::Sysctl("net.netfilter.nf_conntrack_max".into()))
                .and_then(|e| e.want.number())
                .map(Rel::Ge),
        };
        if let Some(rel) = rel {
            let e = Entry {
                target: Target::ModuleParam("nf_conntrack".into(), "hashsize".into()),
                want: Want::Ints(vec![rel]),
                scope: Scope::InitNetns,
                module: Some("nf_conntrack".into()),
                origin: org,
                why: "[conntrack] buckets: hash table size; at least max keeps lookups short"
                    .into(),
                checked: true,
                unavailable: None,
                if_unavailable: IfUnavailable::default(),
            };
            acc.entries.insert(e.target.clone(), e);
        }
    }
    if let Some((n, org)) = acc.nofile.take() {
        let mut put = |e: Entry| {
            acc.entries.insert(e.target.clone(), e);
        };
        for key in ["fs.nr_open", "fs.file-max"] {
            put(derived(
                key,
                Want::Ints(vec![Rel::Ge(n)]),
                org.clone(),
                "[limits] nofile: no per-process limit can exceed this",
            ));
        }
        let file = |path: String, content: String, why: &str| Entry {
            target: Target::File(path),
            want: Want::Text(content),
            scope: Scope::Global,
            module: None,
            origin: org.clone(),
            why: why.to_string(),
            checked: true,
            unavailable: None,
            if_unavailable: IfUnavailable::default(),
        };
        put(file(
            "/etc/systemd/system.conf.d/60-nodetune-nofile.conf".into(),
            format!("# Written by nodetune ([limits] nofile)\n[Manager]\nDefaultLimitNOFILE={n}\n"),
            "[limits] nofile: default RLIMIT_NOFILE of every systemd service (after daemon-reexec)",
        ));
        put(file(
            "/etc/security/limits.d/60-nodetune-nofile.conf".into(),
            format!(
                "# Written by nodetune ([limits] nofile); \"-\" sets soft and hard\n* - nofile {n}\nroot - nofile {n}\n"
            ),
            "[limits] nofile: RLIMIT_NOFILE of login sessions (pam_limits)",
        ));
        if let Some((services, _)) = acc.services.take() {
            for svc in services {
                put(file(
                    format!("/etc/systemd/system/{svc}.d/60-nodetune-nofile.conf"),
                    format!("# Written by nodetune ([limits] nofile)\n[Service]\nLimitNOFILE={n}\n"),
                    "[limits] services: this unit's RLIMIT_NOFILE (after daemon-reload and a restart)",
                ));
            }
        }
    }
}

/// Resolves a profile by name from the library.
pub fn resolve(library: &Library, name: &str, facts: &Facts) -> Result<Effective, ProfileErrors> {
    let src = match library.find(name) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let names = library.names();
            let hint = suggest::closest(name, names.iter().map(String::as_str))
                .map(|s| format!("did you mean {s:?}?"))
                .or_else(|| Some(format!("known profiles: {}", names.join(", "))));
            return Err(ProfileError {
                file: name.to_string(),
                line: 0,
                column: 0,
                key: None,
                message: "no such profile".into(),
                hint,
            }
            .into());
        }
        Err(e) => {
            return Err(ProfileError {
                file: name.to_string(),
                line: 0,
                column: 0,
                key: None,
                message: format!("{e:#}"),
                hint: None,
            }
            .into())
        }
    };
    resolve_source(library, None, src, facts)
}

/// Resolves a profile file given by path (`profile validate`); its includes are looked up
/// next to it first, then in the library.
pub fn resolve_file(
    library: &Library,
    path: &Path,
    facts: &Facts,
) -> Result<Effective, ProfileErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        key: None,
        message: format!("cannot read: {e}"),
        hint: None,
    })?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let src = Source {
        name,
        origin: path.display().to_string(),
        text,
    };
    resolve_source(library, path.parent(), src, facts)
}

/// Resolves profile text that is in no file (fuzzing, tests): includes come from the library.
pub fn resolve_text(
    library: &Library,
    name: &str,
    text: &str,
    facts: &Facts,
) -> Result<Effective, ProfileErrors> {
    let src = Source {
        name: name.to_string(),
        origin: format!("{name}.toml"),
        text: text.to_string(),
    };
    resolve_source(library, None, src, facts)
}

fn resolve_source(
    library: &Library,
    local_dir: Option<&Path>,
    src: Source,
    facts: &Facts,
) -> Result<Effective, ProfileErrors> {
    let mut r = Resolver {
        library,
        local_dir,
        facts,
        errors: Vec::new(),
    };
    let mut acc = Acc::default();
    let file = r.merge(&src, &mut Vec::new(), &mut acc);
    if !r.errors.is_empty() {
        return Err(ProfileErrors(r.errors));
    }
    finish(&mut acc, facts);
    Ok(Effective {
        name: src.name,
        summary: file.and_then(|f| f.summary),
        origin: src.origin,
        chain: acc.chain,
        entries: acc.entries.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            kernel: "6.1.0".into(),
            memory_bytes: 16 << 30,
            cpus: 8,
            virtualized: false,
            avail: Default::default(),
        }
    }

    fn lib(files: &[(&str, &str)]) -> (tempfile::TempDir, Library) {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            std::fs::write(d.path().join(format!("{n}.toml")), t).unwrap();
        }
        let l = Library::new(vec![d.path().to_path_buf()]);
        (d, l)
    }

    fn want(e: &Effective, key: &str) -> String {
        e.entries
            .iter()
            .find(|x| x.target == Target::Sysctl(key.into()))
            .map(|x| x.want.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn includes_merge_per_key_and_conditions_apply() {
        let (_d, l) = lib(&[
            ("parent", "[sysctl]\n\"net.core.somaxconn\" = 1024\n\"net.ipv4.tcp_fastopen\" = 1\n"),
            (
                "child",
                "[profile]\ninclude = [\"parent\"]\n[sysctl]\n\"net.core.somaxconn\" = 4096\n[conntrack]\nmax = \"auto\"\nbuckets = \">=max\"\n[[when]]\ncpus = \">=4\"\n[when.sysctl]\n\"net.ipv4.tcp_fastopen\" = 3\n[[when]]\nvirtualized = true\n[when.sysctl]\n\"net.ipv4.tcp_fastopen\" = 2\n",
            ),
        ]);
        let e = resolve(&l, "child", &facts()).unwrap();
        assert_eq!(e.chain, vec!["parent", "child"]);
        assert_eq!(want(&e, "net.core.somaxconn"), "4096");
        assert_eq!(want(&e, "net.ipv4.tcp_fastopen"), "3");
        assert_eq!(want(&e, "net.netfilter.nf_conntrack_max"), "1048576");
        let hs = e
            .entries
            .iter()
            .find(|x| matches!(x.target, Target::ModuleParam(..)))
            .unwrap();
        assert_eq!(hs.want.to_string(), ">=1048576");
        let som = e
            .entries
            .iter()
            .find(|x| x.target == Target::Sysctl("net.core.somaxconn".into()))
            .unwrap();
        assert!(som.origin.ends_with("child.toml:4:1"), "{}", som.origin);
    }

    #[test]
    fn cycles_and_missing_includes_are_errors() {
        let (_d, l) = lib(&[
            ("a", "[profile]\ninclude = [\"b\"]\n"),
            ("b", "[profile]\ninclude = [\"a\"]\n"),
            ("c", "[profile]\ninclude = [\"bsae\"]\n"),
        ]);
        let e = resolve(&l, "a", &facts()).unwrap_err().to_string();
        assert!(e.ends_with("b.toml:2:12: profile.include: include cycle: a -> b -> a (remove \"a\" from the include list)"), "{e}");
        let e = resolve(&l, "c", &facts()).unwrap_err().to_string();
        assert!(e.ends_with("c.toml:2:12: profile.include: included profile \"bsae\" was not found (did you mean \"base\"?)"), "{e}");
        let e = resolve(&l, "nope", &facts()).unwrap_err().to_string();
        assert!(
            e.starts_with("nope: no such profile (known profiles: a, api-gateway"),
            "{e}"
        );
    }

    #[test]
    fn limits_expand_to_sysctls_and_files() {
        let (_d, l) = lib(&[(
            "x",
            "[limits]\nnofile = 1048576\nservices = [\"nginx.service\"]\n",
        )]);
        let e = resolve(&l, "x", &facts()).unwrap();
        assert_eq!(want(&e, "fs.nr_open"), ">=1048576");
        let files: Vec<String> = e
            .entries
            .iter()
            .filter_map(|x| match &x.target {
                Target::File(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            files,
            vec![
                "/etc/security/limits.d/60-nodetune-nofile.conf",
                "/etc/systemd/system.conf.d/60-nodetune-nofile.conf",
                "/etc/systemd/system/nginx.service.d/60-nodetune-nofile.conf"
            ]
        );
    }

    #[test]
    fn local_profiles_shadow_builtin_ones() {
        let (_d, l) = lib(&[("base", "[profile]\nsummary = \"mine\"\n")]);
        let list = l.list().unwrap();
        let base = list.iter().find(|x| x.name == "base").unwrap();
        assert_eq!(base.summary.as_deref(), Some("mine"));
        assert_eq!(base.shadows, vec!["builtin:base.toml"]);
    }

    #[test]
    fn shipped_profiles_resolve() {
        let l = Library::new(vec![]);
        for (name, _) in BUILTIN {
            let e = resolve(&l, name, &facts()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!e.entries.is_empty(), "{name}");
        }
    }
}
