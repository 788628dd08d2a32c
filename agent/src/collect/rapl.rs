//! rapl collector: RAPL energy counters from /sys/class/powercap, as node_exporter 1.12
//! (procfs' GetRaplZones) reads them.
//!
//! A zone is a powercap entry with a readable `name`; `package-0` gives the name `package`
//! and index 0, a name without a `-<n>` suffix is indexed by how often it was seen before.
//! By default each zone name gets its own family, `node_rapl_<name>_joules_total`; with
//! `--collector.rapl.enable-zone-label` all zones share `node_rapl_joules_total` and carry
//! the name in `rapl_zone`. The `path` label is the zone's directory as node_exporter writes
//! it: the --path.sysfs value joined and cleaned (Go's filepath.Join), so a relative
//! --path.sysfs gives a relative label. No powercap class (or no permission to read it, or
//! to read an energy counter, as for non-root users on recent kernels) is no data; an
//! unreadable max_energy_range_uj or energy_uj fails the collector.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ArgAction;

use super::{util, Collector, Family, MetricType, Options};

// No argument group: every collector's flag struct is called `Flags`, and clap would
// name a group after it.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Export one family, node_rapl_joules_total, with the zone in a rapl_zone label (rapl).
    #[arg(id = "collector.rapl.enable-zone-label", long = "collector.rapl.enable-zone-label",
          value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
          default_missing_value = "true", action = ArgAction::Set)]
    pub enable_zone_label: bool,
    /// Per-zone families (the default).
    #[arg(
        id = "no-collector.rapl.enable-zone-label",
        long = "no-collector.rapl.enable-zone-label",
        hide = true
    )]
    pub no_enable_zone_label: bool,
}

/// One RAPL zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub index: i64,
    /// The directory, as the `path` label shows it.
    pub path: String,
    pub dir: PathBuf,
    pub max_microjoules: u64,
}

/// (index, name) for a zone's `name` file: `package-0` → (0, "package"); a name without a
/// numeric `-<n>` suffix gets the number of zones of that name seen so far.
pub fn index_and_name(seen: &HashMap<String, i64>, raw: &str) -> (i64, String) {
    let mut parts = raw.split('-');
    if let (Some(base), Some(n), None) = (parts.next(), parts.next(), parts.next()) {
        if let Ok(i) = n.parse::<i64>() {
            return (i, base.to_string());
        }
    }
    (seen.get(raw).copied().unwrap_or(0), raw.to_string())
}

/// node_exporter's SanitizeMetricName: each run of characters other than [0-9A-Za-z_],
/// with the underscores around it, becomes one `_`.
pub fn sanitize_metric_name(name: &str) -> String {
    let b = name.as_bytes();
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < b.len() {
        let us = b[i..].iter().take_while(|&&c| c == b'_').count();
        let bad = b[i + us..].iter().take_while(|&&c| !ok(c)).count();
        if bad == 0 {
            // No match here: keep this character.
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let j = i + us + bad;
        let trailing = b[j..].iter().take_while(|&&c| c == b'_').count();
        out.push('_');
        i = j + trailing;
    }
    out
}

/// Go's filepath.Clean for the `path` label.
fn go_clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            _ => parts.push(c),
        }
    }
    let body = parts.join("/");
    if rooted {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

/// A whole-file decimal counter (procfs' ReadUintFromFile).
fn read_uint(path: &Path) -> anyhow::Result<u64> {
    let raw = util::read_bytes(path).with_context(|| format!("reading {}", path.display()))?;
    let text = util::to_valid_utf8(util::go_trim_space(&raw));
    util::go_parse_uint(&text, 10, 64)
        .with_context(|| format!("parsing {} ({text:?})", path.display()))
}

/// Why reading the zones failed: no data (absent, not permitted) or an error.
fn no_data(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    )
}

/// Reads the zones under `class_dir` (…/class/powercap); `shown` is how the `path` label
/// spells that directory.
pub fn read_zones(class_dir: &Path, shown: &str) -> anyhow::Result<Vec<Zone>> {
    let entries = match util::read_dir_sorted(class_dir) {
        Ok(e) => e,
        Err(e) if no_data(&e) => anyhow::bail!("no powercap files: {e}"),
        Err(e) => return Err(e).with_context(|| format!("reading {}", class_dir.display())),
    };
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut zones = Vec::new();
    for e in entries {
        let Ok(raw) = util::read_bytes(&e.path.join("name")) else {
            continue;
        };
        let (index, name) = index_and_name(&seen, &util::to_valid_utf8(util::go_trim_space(&raw)));
        let max = e.path.join("max_energy_range_uj");
        let max_microjoules = match read_uint(&max) {
            Ok(v) => v,
            Err(err) => {
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
                {
                    anyhow::bail!("no permission to read {}", max.display());
                }
                return Err(err);
            }
        };
        seen.insert(name.clone(), index + 1);
        zones.push(Zone {
            path: go_clean(&format!("{shown}/{}", e.name)),
            dir: e.path,
            name,
            index,
            max_microjoules,
        });
    }
    Ok(zones)
}

fn render(zones: &[(Zone, u64)], zone_label: bool, out: &mut Vec<Family>) {
    let mut shared = Family::new(
        "node_rapl_joules_total",
        "Current RAPL value in joules",
        MetricType::Counter,
    );
    let mut per_zone: Vec<Family> = Vec::new();
    for (z, uj) in zones {
        let joules = *uj as f64 / 1000000.0;
        let index = z.index.to_string();
        if zone_label {
            shared.push(
                &[("index", &index), ("path", &z.path), ("rapl_zone", &z.name)],
                joules,
            );
            continue;
        }
        let name = format!("node_rapl_{}_joules_total", sanitize_metric_name(&z.name));
        let f = match per_zone.iter_mut().position(|f| f.name == name) {
            Some(i) => &mut per_zone[i],
            None => {
                per_zone.push(Family::new(
                    name,
                    format!("Current RAPL {} value in joules", z.name),
                    MetricType::Counter,
                ));
                per_zone.last_mut().expect("just pushed")
            }
        };
        f.push(&[("index", &index), ("path", &z.path)], joules);
    }
    out.push(shared);
    out.extend(per_zone);
}

struct Rapl {
    dir: PathBuf,
    shown: String,
    zone_label: bool,
}

impl Collector for Rapl {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let zones = read_zones(&self.dir, &self.shown)?;
        let mut values = Vec::with_capacity(zones.len());
        for z in zones {
            let p = z.dir.join("energy_uj");
            let uj = read_uint(&p)?;
            values.push((z, uj));
        }
        render(&values, self.zone_label, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let f = &opts.rapl;
    Ok(Box::new(Rapl {
        dir: opts.sysfs.join("class/powercap"),
        shown: format!("{}/class/powercap", opts.sysfs.to_string_lossy()),
        zone_label: f.enable_zone_label && !f.no_enable_zone_label,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn zone(r: &Path, dir: &str, name: &str, uj: &str) {
        write(r, &format!("{dir}/name"), name);
        write(r, &format!("{dir}/max_energy_range_uj"), "262143328850\n");
        write(r, &format!("{dir}/energy_uj"), uj);
    }

    fn collect(r: &Path, zone_label: bool) -> anyhow::Result<Vec<Family>> {
        let c = Rapl {
            dir: r.to_path_buf(),
            shown: "sys/./class/powercap".into(),
            zone_label,
        };
        let mut out = Vec::new();
        c.collect(&mut out)?;
        out.retain(|f| !f.samples.is_empty());
        Ok(out)
    }

    #[test]
    fn names_and_indexes() {
        let mut seen = HashMap::new();
        assert_eq!(index_and_name(&seen, "package-0"), (0, "package".into()));
        assert_eq!(index_and_name(&seen, "package-+3"), (3, "package".into()));
        assert_eq!(index_and_name(&seen, "dram"), (0, "dram".into()));
        seen.insert("dram".to_string(), 1);
        assert_eq!(index_and_name(&seen, "dram"), (1, "dram".into()));
        assert_eq!(index_and_name(&seen, "a-b-1"), (0, "a-b-1".into()));
        assert_eq!(index_and_name(&seen, "psys-x"), (0, "psys-x".into()));
        assert_eq!(sanitize_metric_name("core"), "core");
        assert_eq!(sanitize_metric_name("a-b"), "a_b");
        assert_eq!(sanitize_metric_name("a__-b"), "a_b");
        assert_eq!(sanitize_metric_name("a-_-b"), "a__b");
        assert_eq!(sanitize_metric_name("_x_"), "_x_");
        assert_eq!(sanitize_metric_name("dr\u{e4}m.1"), "dr_m_1");
        assert_eq!(
            go_clean("sys/./class//powercap/../powercap/x"),
            "sys/class/powercap/x"
        );
        assert_eq!(
            go_clean("/sys/class/powercap/intel-rapl:0"),
            "/sys/class/powercap/intel-rapl:0"
        );
        assert_eq!(go_clean("/../a"), "/a");
        assert_eq!(go_clean("../a/.."), "..");
        assert_eq!(go_clean(""), ".");
    }

    #[test]
    fn zones_per_name_and_with_label() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        zone(r, "intel-rapl:0", "package-0\n", "240422366267\n");
        zone(r, "intel-rapl:0:0", "core\n", "118821284256\n");
        zone(r, "intel-rapl:0:1", "dram\n", "1\n");
        zone(r, "intel-rapl:1:1", "dram\n", "2\n");
        write(r, "intel-rapl/enabled", "1\n"); // no name: not a zone
        let fams = collect(r, false).unwrap();
        let got: Vec<(String, String, Vec<String>, f64)> = fams
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(|s| {
                    (
                        f.name.to_string(),
                        f.help.to_string(),
                        s.labels.iter().map(|(_, v)| v.clone()).collect(),
                        s.value,
                    )
                })
            })
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (
                    "node_rapl_package_joules_total".into(),
                    "Current RAPL package value in joules".into(),
                    s(&["0", "sys/class/powercap/intel-rapl:0"]),
                    240422.366267
                ),
                (
                    "node_rapl_core_joules_total".into(),
                    "Current RAPL core value in joules".into(),
                    s(&["0", "sys/class/powercap/intel-rapl:0:0"]),
                    118821.284256
                ),
                (
                    "node_rapl_dram_joules_total".into(),
                    "Current RAPL dram value in joules".into(),
                    s(&["0", "sys/class/powercap/intel-rapl:0:1"]),
                    0.000001
                ),
                (
                    "node_rapl_dram_joules_total".into(),
                    "Current RAPL dram value in joules".into(),
                    s(&["1", "sys/class/powercap/intel-rapl:1:1"]),
                    0.000002
                ),
            ]
        );
        let fams = collect(r, true).unwrap();
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name, "node_rapl_joules_total");
        assert_eq!(fams[0].samples.len(), 4);
        assert_eq!(fams[0].samples[1].labels[2].1, "core");
    }

    #[test]
    fn absent_and_garbled() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert!(collect(&r.join("nope"), false).is_err());
        assert!(collect(r, false).unwrap().is_empty());
        zone(r, "intel-rapl:0", "package-0\n", "oops\n");
        assert!(collect(r, false).is_err());
        zone(r, "intel-rapl:0", "package-0\n", "-5\n");
        assert!(collect(r, false).is_err());
        zone(r, "intel-rapl:0", "package-0\n", "5\n");
        write(r, "intel-rapl:0/max_energy_range_uj", "\n");
        assert!(collect(r, false).is_err());
    }

    #[test]
    fn flags() {
        let o = Options::from_flags(["--collector.rapl.enable-zone-label".to_string()]).unwrap();
        assert!(o.rapl.enable_zone_label);
        let o =
            Options::from_flags(["--collector.rapl.enable-zone-label=false".to_string()]).unwrap();
        assert!(!o.rapl.enable_zone_label);
        let o = Options::from_flags(Vec::<String>::new()).unwrap();
        assert!(!o.rapl.enable_zone_label);
        let o = Options::from_flags(["--no-collector.rapl.enable-zone-label".to_string()]).unwrap();
        assert!(o.rapl.no_enable_zone_label);
    }
}
