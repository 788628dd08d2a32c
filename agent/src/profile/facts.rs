//! Host facts that profiles may depend on (`[[when]]` blocks, `[conntrack] max = "auto"`,
//! `[congestion]`): kernel version, memory, CPU count, whether the host is virtualised, and
//! which qdiscs and congestion controls the kernel can provide. Read from the configured roots
//! so tests can describe any host.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::avail::Avail;

/// What nodetune knows about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Kernel release, e.g. "6.1.0-18-amd64".
    pub kernel: String,
    pub memory_bytes: u64,
    pub cpus: u32,
    pub virtualized: bool,
    /// Which qdiscs and congestion controls the kernel can provide.
    #[serde(skip)]
    pub avail: Avail,
}

impl Facts {
    /// Reads the facts: kernel release from `<sysctl_root>/kernel/osrelease`, memory and the
    /// hypervisor flag from `<procfs>/meminfo` and `<procfs>/cpuinfo`, CPUs from
    /// `<sysfs>/devices/system/cpu/online` (falling back to the cpuinfo processor count), and
    /// qdiscs and congestion controls as [`Avail::read`] finds them (module tree under `root`).
    pub fn read(
        sysctl_root: &Path,
        procfs: &Path,
        sysfs: &Path,
        root: &Path,
    ) -> anyhow::Result<Facts> {
        let osrelease = sysctl_root.join("kernel/osrelease");
        let kernel = std::fs::read_to_string(&osrelease)
            .with_context(|| format!("reading {}", osrelease.display()))?
            .trim()
            .to_string();
        let meminfo_path = procfs.join("meminfo");
        let meminfo = std::fs::read_to_string(&meminfo_path)
            .with_context(|| format!("reading {}", meminfo_path.display()))?;
        let memory_bytes = mem_total_bytes(&meminfo)
            .with_context(|| format!("no MemTotal in {}", meminfo_path.display()))?;
        let cpuinfo = std::fs::read_to_string(procfs.join("cpuinfo")).unwrap_or_default();
        let cpus = std::fs::read_to_string(sysfs.join("devices/system/cpu/online"))
            .ok()
            .and_then(|s| count_cpu_list(s.trim()))
            .unwrap_or_else(|| {
                cpuinfo
                    .lines()
                    .filter(|l| l.starts_with("processor"))
                    .count()
                    .max(1) as u32
            });
        let virtualized = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
            || sysfs.join("hypervisor/type").exists();
        let avail = Avail::read(sysctl_root, procfs, sysfs, root, &kernel);
        Ok(Facts {
            kernel,
            memory_bytes,
            cpus,
            virtualized,
            avail,
        })
    }

    /// `[conntrack] max = "auto"`: 64 Ki entries per GiB of memory (each entry costs about
    /// 300 bytes, so the table may use about 2 % of memory when full), rounded up to a power
    /// of two and kept within 131072..=4194304 (131072 is kube-proxy's minimum).
    pub fn auto_conntrack_max(&self) -> i64 {
        let gib = self.memory_bytes.div_ceil(1 << 30).max(1);
        let raw = (gib * 65536).next_power_of_two();
        raw.clamp(131_072, 4_194_304) as i64
    }
}

/// MemTotal of /proc/meminfo text, in bytes.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        // A value past u64 bytes is garbage, not a reason to panic.
        .and_then(|kb| kb.checked_mul(1024))
}

/// Counts CPUs in a list such as "0-3,8,10-11"; None when it is not one (a reversed range
/// or a count past u32 included, which used to panic on overflow).
pub fn count_cpu_list(list: &str) -> Option<u32> {
    let mut n: u32 = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let add = match part.split_once('-') {
            Some((a, b)) => b
                .parse::<u32>()
                .ok()?
                .checked_sub(a.parse::<u32>().ok()?)?
                .checked_add(1)?,
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
        n = n.checked_add(add)?;
    }
    (n > 0).then_some(n)
}

/// A comparison in a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// One `[[when]]` condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Condition {
    /// Kernel version compared component-wise ("5.15" ≤ "6.1.0-18-amd64").
    Kernel(Cmp, Vec<u64>),
    Memory(Cmp, u64),
    Cpus(Cmp, u64),
    Virtualized(bool),
}

fn split_cmp(text: &str) -> (Cmp, &str) {
    let t = text.trim();
    for (p, c) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ] {
        if let Some(rest) = t.strip_prefix(p) {
            return (c, rest.trim());
        }
    }
    (Cmp::Eq, t)
}

fn version(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .take_while(|p| !p.is_empty())
        .take(3)
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn holds<T: Ord>(cmp: Cmp, a: T, b: T) -> bool {
    match cmp {
        Cmp::Ge => a >= b,
        Cmp::Gt => a > b,
        Cmp::Le => a <= b,
        Cmp::Lt => a < b,
        Cmp::Eq => a == b,
    }
}

impl Condition {
    /// Parses `kernel`, `memory` or `cpus` with a comparison such as ">=5.15", ">=16GiB", ">=8".
    pub fn parse(name: &str, text: &str) -> Result<Condition, String> {
        let (cmp, rest) = split_cmp(text);
        match name {
            "kernel" => {
                let v = version(rest);
                if v.is_empty() {
                    Err(format!("{text:?} is not a kernel version comparison (for example \">=5.15\")"))
                } else {
                    Ok(Condition::Kernel(cmp, v))
                }
            }
            "memory" => bytes(rest)
                .map(|b| Condition::Memory(cmp, b))
                .ok_or_else(|| format!("{text:?} is not a memory size comparison (for example \">=16GiB\"; units B, KiB, MiB, GiB, TiB)")),
            _ => rest
                .parse::<u64>()
                .map(|n| Condition::Cpus(cmp, n))
                .map_err(|_| format!("{text:?} is not a CPU count comparison (for example \">=8\")")),
        }
    }

    /// Does the condition hold on this host?
    pub fn holds(&self, facts: &Facts) -> bool {
        match self {
            Condition::Kernel(cmp, want) => {
                let mut have = version(&facts.kernel);
                have.resize(want.len().max(have.len()), 0);
                let mut want = want.clone();
                want.resize(have.len(), 0);
                holds(*cmp, have, want)
            }
            Condition::Memory(cmp, b) => holds(*cmp, facts.memory_bytes, *b),
            Condition::Cpus(cmp, n) => holds(*cmp, u64::from(facts.cpus), *n),
            Condition::Virtualized(v) => facts.virtualized == *v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            kernel: "6.1.0-18-amd64".into(),
            memory_bytes: 16 << 30,
            cpus: 8,
            virtualized: true,
            avail: Avail::default(),
        }
    }

    #[test]
    fn conditions() {
        let f = facts();
        let c = |n: &str, t: &str| Condition::parse(n, t).unwrap().holds(&f);
        assert!(c("kernel", ">=5.15"));
        assert!(!c("kernel", ">=6.2"));
        assert!(c("kernel", "<6.1.1"));
        assert!(c("memory", ">=16GiB"));
        assert!(!c("memory", ">16GiB"));
        assert!(c("cpus", "8"));
        assert!(!c("cpus", ">=16"));
        assert!(Condition::Virtualized(true).holds(&f));
        assert!(Condition::parse("memory", ">=16 parsecs").is_err());
        assert!(Condition::parse("kernel", "new").is_err());
    }

    /// These overflowed (a panic in debug builds, a wrapped count in release): the reversed
    /// range was found by the `sysfs` fuzz target, the others while writing the targets.
    #[test]
    fn cpu_lists_and_memtotal_reject_overflow() {
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("1020-11"), None);
        assert_eq!(count_cpu_list("0-4294967295"), None);
        assert_eq!(count_cpu_list("0-4294967294,1"), None);
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(mem_total_bytes("MemTotal: 16 kB\n"), Some(16384));
        assert_eq!(mem_total_bytes("MemTotal: 18446744073709551615 kB\n"), None);
    }

    #[test]
    fn auto_conntrack() {
        assert_eq!(facts().auto_conntrack_max(), 1_048_576);
        let small = Facts {
            memory_bytes: 1 << 30,
            ..facts()
        };
        assert_eq!(small.auto_conntrack_max(), 131_072);
        let huge = Facts {
            memory_bytes: 1 << 40,
            ..facts()
        };
        assert_eq!(huge.auto_conntrack_max(), 4_194_304);
    }

    #[test]
    fn reads_from_roots() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(p.join("proc")).unwrap();
        std::fs::create_dir_all(p.join("sysfs/devices/system/cpu")).unwrap();
        std::fs::write(p.join("sys/kernel/osrelease"), "5.15.0-91-generic\n").unwrap();
        std::fs::write(p.join("proc/meminfo"), "MemTotal:       32768000 kB\n").unwrap();
        std::fs::write(
            p.join("proc/cpuinfo"),
            "processor\t: 0\nflags\t\t: fpu hypervisor\n",
        )
        .unwrap();
        std::fs::write(p.join("sysfs/devices/system/cpu/online"), "0-3,8\n").unwrap();
        let f = Facts::read(&p.join("sys"), &p.join("proc"), &p.join("sysfs"), p).unwrap();
        assert_eq!(
            f,
            Facts {
                kernel: "5.15.0-91-generic".into(),
                memory_bytes: 32768000 * 1024,
                cpus: 5,
                virtualized: true,
                avail: Avail::default(),
            }
        );
    }
}
