//! tuned's active profile, read the way tuned loads it, for the sysctl keys it sets: RHEL and
//! its derivatives run tuned by default, and a key both tools set is written by whichever ran
//! last.
//!
//! Followed from tuned (2.20 to 2.25): the active profile names in /etc/tuned/active_profile
//! (several, space-separated) plus /etc/tuned/post_loaded_profile; each profile's tuned.conf
//! from /etc/tuned[/profiles]/NAME or /usr/lib/tuned[/profiles]/NAME (the first found);
//! `include=` parents loaded first, depth first, each file once (`-NAME` is optional); units
//! merged by section name (`replace=`, `drop=`, `enabled=`); `[variables]` (with its
//! `include=` file) expanded in values; units of `type=sysctl` (the `[sysctl]` section, or any
//! section with that type) whose `uname_regex`/`cpuinfo_regex` match this host. Values are
//! unquoted; `>N` and `<N` only raise or lower. `${f:…}` functions are computed by tuned at
//! run time and are reported as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::kernel::key_components;

/// Where tuned looks for a profile, highest priority first (under the root).
const PROFILE_DIRS: &[&str] = &[
    "etc/tuned/profiles",
    "etc/tuned",
    "run/tuned/profiles",
    "usr/lib/tuned/profiles",
    "usr/lib/tuned",
];

/// Options of a unit that configure the unit itself rather than set anything.
const UNIT_OPTIONS: &[&str] = &[
    "type",
    "enabled",
    "replace",
    "drop",
    "devices",
    "devices_udev_regex",
    "cpuinfo_regex",
    "uname_regex",
    "script_pre",
    "script_post",
];

/// One sysctl value the active tuned profile sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key's path under /proc/sys (`net/core/somaxconn`).
    pub path: PathBuf,
    /// The key as written in the profile.
    pub key: String,
    /// The value after unquoting and variable expansion (`>2048`, `4096 87380 16777216`).
    pub value: String,
    /// The tuned.conf that sets it, as an absolute path on the host, and the line.
    pub file: String,
    pub line: usize,
    /// The tuned profile (directory name) the line is in.
    pub profile: String,
}

/// tuned's active profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// As tuned-adm names it (`throughput-performance`, or several).
    pub name: String,
    /// Every profile loaded, parents first.
    pub chain: Vec<String>,
    pub sysctl: Vec<Setting>,
    /// reapply_sysctl in tuned-main.conf (default on): after its own values tuned writes
    /// those of /etc/sysctl.d, /run/sysctl.d and /etc/sysctl.conf again.
    pub reapply_sysctl: bool,
}

/// Facts the profile's unit conditions are matched against.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// `uname -snrvm` fields joined by spaces, as Python's `" ".join(os.uname())`.
    pub uname: String,
    pub cpuinfo: String,
    pub virtualized: bool,
}

impl Host {
    /// This machine (uname(2) and /proc/cpuinfo).
    pub fn live() -> Host {
        let uname = nix::sys::utsname::uname()
            .map(|u| {
                [
                    u.sysname(),
                    u.nodename(),
                    u.release(),
                    u.version(),
                    u.machine(),
                ]
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
            })
            .unwrap_or_default();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let virtualized = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
        Host {
            uname,
            cpuinfo,
            virtualized,
        }
    }
}

/// A value and where it was set.
#[derive(Debug, Clone)]
struct Opt {
    value: String,
    file: String,
    line: usize,
    profile: String,
}

#[derive(Debug, Clone)]
struct Unit {
    kind: String,
    enabled: bool,
    replace: bool,
    drop: Vec<String>,
    uname_regex: Option<String>,
    cpuinfo_regex: Option<String>,
    options: Vec<(String, Opt)>,
}

/// One tuned.conf: `[main]` options and units in file order.
struct Profile {
    main: BTreeMap<String, String>,
    units: Vec<(String, Unit)>,
}

/// A section's name and its options: name, value, line.
type Section = (String, Vec<(String, String, usize)>);

/// Python ConfigParser as tuned configures it: `=` only, `#`/`;` comment lines, ` #` inline
/// comments, indented continuation lines, later duplicates win. Sections in first-seen order.
fn parse_ini(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<usize> = None;
    let strip_comment = |v: &str| -> String {
        let cut = v
            .char_indices()
            .find(|&(i, c)| c == '#' && i > 0 && v[..i].ends_with([' ', '\t']))
            .map_or(v.len(), |(i, _)| i);
        v[..cut].trim().to_string()
    };
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            // A continuation of the previous value.
            if let Some(opt) = current.and_then(|s| sections[s].1.last_mut()) {
                opt.1.push('\n');
                opt.1.push_str(&strip_comment(t));
            }
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let idx = match sections.iter().position(|(n, _)| n == name) {
                Some(idx) => idx,
                None => {
                    sections.push((name.to_string(), Vec::new()));
                    sections.len() - 1
                }
            };
            current = Some(idx);
            continue;
        }
        let (Some(s), Some((k, v))) = (current, t.split_once('=')) else {
            continue;
        };
        let (k, v) = (k.trim().to_string(), strip_comment(v));
        let opts = &mut sections[s].1;
        opts.retain(|(n, _, _)| *n != k);
        opts.push((k, v, i + 1));
    }
    sections
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True")
}

fn load_profile(file: &Path, shown: &str, profile: &str) -> Option<Profile> {
    let text = std::fs::read_to_string(file).ok()?;
    let dir = Path::new(shown).parent().unwrap_or(Path::new("/"));
    let mut main = BTreeMap::new();
    let mut units = Vec::new();
    for (name, opts) in parse_ini(&text) {
        if name == "main" {
            main.extend(opts.into_iter().map(|(k, v, _)| (k, v)));
            continue;
        }
        let mut unit = Unit {
            kind: name.clone(),
            enabled: true,
            replace: false,
            drop: Vec::new(),
            uname_regex: None,
            cpuinfo_regex: None,
            options: Vec::new(),
        };
        for (k, v, line) in opts {
            let v = v.replace("${i:PROFILE_DIR}", &dir.display().to_string());
            match k.as_str() {
                "type" => unit.kind = v,
                "enabled" => unit.enabled = truthy(&v),
                "replace" => unit.replace = truthy(&v),
                "drop" => {
                    unit.drop = v
                        .split([',', ';'])
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "uname_regex" => unit.uname_regex = Some(v),
                "cpuinfo_regex" => unit.cpuinfo_regex = Some(v),
                k if UNIT_OPTIONS.contains(&k) => {}
                _ => unit.options.push((
                    k,
                    Opt {
                        value: v,
                        file: shown.to_string(),
                        line,
                        profile: profile.to_string(),
                    },
                )),
            }
        }
        units.push((name, unit));
    }
    Some(Profile { main, units })
}

/// The tuned.conf of a profile: its path under the root and as shown (absolute on the host).
fn locate(root: &Path, name: &str) -> Option<(PathBuf, String)> {
    // tuned takes the base name only, so a name cannot leave the profile directories.
    let name = Path::new(name).file_name()?.to_str()?;
    PROFILE_DIRS.iter().find_map(|d| {
        let p = root.join(d).join(name).join("tuned.conf");
        p.is_file().then(|| (p, format!("/{d}/{name}/tuned.conf")))
    })
}

/// `${f:virt_check:A:B}` in an include (the only function tuned's shipped profiles use there).
fn expand_include(v: &str, host: &Host) -> String {
    let mut out = v.to_string();
    while let Some(start) = out.find("${f:virt_check:") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let args: Vec<&str> = out[start + 15..start + len].split(':').collect();
        let pick = match args.as_slice() {
            [vm, metal] => {
                if host.virtualized {
                    *vm
                } else {
                    *metal
                }
            }
            _ => "",
        }
        .to_string();
        out.replace_range(start..=start + len, &pick);
    }
    out
}

fn load_all(
    root: &Path,
    names: &[String],
    host: &Host,
    seen: &mut Vec<PathBuf>,
    out: &mut Vec<(String, Profile)>,
) {
    for name in names {
        // `-NAME` is loaded only if it exists; tuned refuses a missing plain one, and then
        // what exists is still worth reporting.
        let name = name.strip_prefix('-').unwrap_or(name);
        let Some((file, shown)) = locate(root, name) else {
            continue;
        };
        if seen.contains(&file) || seen.len() > 64 {
            continue;
        }
        seen.push(file.clone());
        let Some(mut p) = load_profile(&file, &shown, name) else {
            continue;
        };
        if let Some(inc) = p.main.remove("include") {
            let parents: Vec<String> = expand_include(&inc, host)
                .split([',', ';'])
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            load_all(root, &parents, host, seen, out);
        }
        out.push((name.to_string(), p));
    }
}

/// tuned's Merger: a later profile's unit replaces (`replace=`) or updates the earlier one.
fn merge(profiles: Vec<(String, Profile)>) -> Vec<(String, Unit)> {
    let mut units: Vec<(String, Unit)> = Vec::new();
    for (_, p) in profiles {
        for (name, unit) in p.units {
            match units.iter_mut().find(|(n, _)| *n == name) {
                Some((_, old)) if !unit.replace => {
                    old.kind = unit.kind;
                    old.enabled = unit.enabled;
                    if unit.uname_regex.is_some() {
                        old.uname_regex = unit.uname_regex;
                    }
                    if unit.cpuinfo_regex.is_some() {
                        old.cpuinfo_regex = unit.cpuinfo_regex;
                    }
                    old.options.retain(|(k, _)| !unit.drop.contains(k));
                    for (k, v) in unit.options {
                        match old.options.iter_mut().find(|(n, _)| *n == k) {
                            Some(slot) => slot.1 = v,
                            None => old.options.push((k, v)),
                        }
                    }
                }
                Some((_, old)) => *old = unit,
                None => units.push((name, unit)),
            }
        }
    }
    units
}

/// `${name}` variables, each expanded with those defined before it.
fn variables(root: &Path, units: &[(String, Unit)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let Some((_, unit)) = units.iter().find(|(n, _)| n == "variables") else {
        return vars;
    };
    for (k, o) in &unit.options {
        if k == "include" {
            let rel = o.value.trim_start_matches('/');
            if let Ok(text) = std::fs::read_to_string(root.join(rel)) {
                let text = format!("[v]\n{text}");
                for (_, opts) in parse_ini(&text) {
                    for (k, v, _) in opts {
                        let v = expand(&v, &vars);
                        vars.push((k, v));
                    }
                }
            }
        } else {
            let v = expand(&o.value, &vars);
            vars.push((k.clone(), v));
        }
    }
    vars
}

fn expand(v: &str, vars: &[(String, String)]) -> String {
    let mut out = v.to_string();
    // Later definitions of a name win.
    for (k, val) in vars.iter().rev() {
        out = out.replace(&format!("${{{k}}}"), val);
    }
    out
}

fn matches(regex: Option<&str>, text: &str) -> bool {
    regex.is_none_or(|r| {
        regex::RegexBuilder::new(r)
            .multi_line(true)
            .build()
            // A condition nodetune cannot evaluate counts as met: better one report too many.
            .map_or(true, |re| re.is_match(text))
    })
}

/// tuned's active profile and its sysctl values, or None when no tuned profile is active.
pub fn active(root: &Path, host: &Host) -> Option<Active> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    let mut names: Vec<String> = read("etc/tuned/active_profile")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return None;
    }
    let name = names.join(" ");
    names.extend(
        read("etc/tuned/post_loaded_profile")
            .split_whitespace()
            .map(str::to_string),
    );
    let mut loaded = Vec::new();
    load_all(root, &names, host, &mut Vec::new(), &mut loaded);
    let chain = loaded.iter().map(|(n, _)| n.clone()).collect();
    let units = merge(loaded);
    let vars = variables(root, &units);
    let mut sysctl: Vec<Setting> = Vec::new();
    for (_, u) in &units {
        if u.kind != "sysctl"
            || !u.enabled
            || !matches(u.uname_regex.as_deref(), &host.uname)
            || !matches(u.cpuinfo_regex.as_deref(), &host.cpuinfo)
        {
            continue;
        }
        for (k, o) in &u.options {
            let raw = o.value.trim();
            let unquoted = raw
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(raw);
            let s = Setting {
                path: key_components(k.trim()),
                key: k.trim().to_string(),
                value: expand(unquoted, &vars),
                file: o.file.clone(),
                line: o.line,
                profile: o.profile.clone(),
            };
            sysctl.retain(|x| x.path != s.path);
            sysctl.push(s);
        }
    }
    let main_conf = read("etc/tuned/tuned-main.conf");
    let reapply_sysctl = parse_ini(&format!("[main]\n{main_conf}"))
        .into_iter()
        .flat_map(|(_, o)| o)
        .find(|(k, _, _)| k == "reapply_sysctl")
        .is_none_or(|(_, v, _)| matches!(v.to_lowercase().as_str(), "1" | "true" | "yes" | "on"));
    Some(Active {
        name,
        chain,
        sysctl,
        reapply_sysctl,
    })
}

/// Whether tuned runs: its PID file names a live process called `tuned` under `procfs`.
pub fn running(root: &Path, procfs: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(root.join("run/tuned/tuned.pid")) else {
        return false;
    };
    let pid = pid.trim();
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && std::fs::read_to_string(procfs.join(pid).join("comm")).is_ok_and(|c| c.trim() == "tuned")
}

/// Whether a value tuned writes leaves the profile's want unmet once both have run:
/// `>N` only raises (to N), `<N` only lowers; `${f:…}` is decided by tuned at run time.
pub fn conflicts_with(want: &crate::profile::Want, value: &str) -> Option<bool> {
    use crate::profile::value::Rel;
    use crate::profile::Want;
    if value.contains("${") {
        return None;
    }
    let modifier = value
        .strip_prefix('>')
        .map(|n| (true, n))
        .or_else(|| value.strip_prefix('<').map(|n| (false, n)));
    if let Some((raise, n)) = modifier {
        if let (Ok(n), Want::Ints(rels)) = (n.trim().parse::<i64>(), want) {
            if let [rel] = rels.as_slice() {
                // Some value must satisfy both the profile and tuned's bound.
                let compatible = match (*rel, raise) {
                    (Rel::Eq(v), true) => v >= n,
                    (Rel::Eq(v), false) => v <= n,
                    (Rel::Ge(_), true) | (Rel::Le(_), false) | (Rel::Any, _) => true,
                    (Rel::Ge(v), false) => v <= n,
                    (Rel::Le(v), true) => v >= n,
                };
                return Some(!compatible);
            }
        }
    }
    Some(!want.satisfied(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn includes_units_variables_and_conditions() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "etc/tuned/active_profile", "site\n");
        write(
            r,
            "usr/lib/tuned/base/tuned.conf",
            "[main]\nsummary=b\n[variables]\nbig=65535\n\n[sysctl]\nnet.core.somaxconn=>2048\nvm.swappiness = 10 # inline\nkernel.x=${f:cpulist2hex:1}\n\n[arm]\ntype=sysctl\nuname_regex=aarch64\nkernel.numa_balancing=0\n",
        );
        // /etc/tuned overrides /usr/lib/tuned; `-missing` is optional.
        write(
            r,
            "usr/lib/tuned/site/tuned.conf",
            "[sysctl]\nvm.swappiness=99\n",
        );
        write(
            r,
            "etc/tuned/site/tuned.conf",
            "[main]\ninclude=base, -missing\n\n[sysctl]\ndrop=kernel.x\nnet.ipv4.tcp_rmem=\"4096 87380 ${big}\"\nvm.swappiness=1\n",
        );
        let a = active(r, &Host::default()).unwrap();
        assert_eq!(a.name, "site");
        assert_eq!(a.chain, vec!["base", "site"]);
        assert!(a.reapply_sysctl);
        let got: Vec<(&str, &str, &str, usize)> = a
            .sysctl
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str(), s.file.as_str(), s.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "net.core.somaxconn",
                    ">2048",
                    "/usr/lib/tuned/base/tuned.conf",
                    7
                ),
                ("vm.swappiness", "1", "/etc/tuned/site/tuned.conf", 7),
                (
                    "net.ipv4.tcp_rmem",
                    "4096 87380 65535",
                    "/etc/tuned/site/tuned.conf",
                    6
                ),
            ]
        );
        assert_eq!(a.sysctl[0].path, PathBuf::from("net/core/somaxconn"));
        // replace= drops what the parent's unit had; reapply_sysctl can be turned off.
        write(
            r,
            "etc/tuned/site/tuned.conf",
            "[main]\ninclude=base\n[sysctl]\nreplace=1\nvm.dirty_ratio=5\n",
        );
        write(r, "etc/tuned/tuned-main.conf", "reapply_sysctl = 0\n");
        let a = active(r, &Host::default()).unwrap();
        assert_eq!(a.sysctl.len(), 1);
        assert_eq!(a.sysctl[0].key, "vm.dirty_ratio");
        assert!(!a.reapply_sysctl);
        write(r, "etc/tuned/active_profile", "\n");
        assert_eq!(active(r, &Host::default()), None);
    }

    #[test]
    fn modifiers_only_raise_or_lower() {
        use crate::profile::value::Rel;
        use crate::profile::Want;
        let eq = |v| Want::Ints(vec![Rel::Eq(v)]);
        assert_eq!(conflicts_with(&eq(4096), ">2048"), Some(false));
        assert_eq!(conflicts_with(&eq(1024), ">2048"), Some(true));
        assert_eq!(
            conflicts_with(&Want::Ints(vec![Rel::Ge(65535)]), ">2048"),
            Some(false)
        );
        assert_eq!(
            conflicts_with(&Want::Ints(vec![Rel::Le(100)]), ">2048"),
            Some(true)
        );
        assert_eq!(conflicts_with(&eq(10), "<5"), Some(true));
        assert_eq!(conflicts_with(&eq(10), "10"), Some(false));
        assert_eq!(conflicts_with(&eq(10), "30"), Some(true));
        assert_eq!(conflicts_with(&eq(10), "${f:x}"), None);
        let rmem = Want::Ints(vec![Rel::Eq(4096), Rel::Eq(87380), Rel::Ge(16777216)]);
        assert_eq!(conflicts_with(&rmem, "4096 87380 16777216"), Some(false));
        assert_eq!(conflicts_with(&rmem, "4096 87380 6291456"), Some(true));
    }
}
