//! Which queueing disciplines and congestion-control algorithms the running kernel can
//! provide: registered now (a loaded module, the list in
//! net.ipv4.tcp_available_congestion_control), built in, or loadable as a module. The kernel
//! lists registered qdiscs nowhere, so the answer comes from what describes the kernel: its
//! configuration (`/proc/config.gz`, `/boot/config-RELEASE`), its module tree
//! (`/lib/modules/RELEASE`: `modules.builtin` and the `.ko` files) and `/sys/module`. When none
//! of them can be read, the answer is "unknown" and apply finds out.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::Serialize;

/// What describes the kernel's qdiscs and congestion controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Avail {
    /// The kernel configuration's `CONFIG_NET_SCH_*`, `CONFIG_TCP_CONG_*` and
    /// `CONFIG_MODULES` symbols ('y' or 'm'), with the file they came from.
    pub config: Option<(String, BTreeMap<String, char>)>,
    /// The module tree: its directory, built-in and loadable module names (sch_fq, tcp_bbr).
    pub modules: Option<ModuleTree>,
    /// Loaded modules named sch_* or tcp_* (`/sys/module`).
    pub loaded: BTreeSet<String>,
    /// Registered congestion controls (net.ipv4.tcp_available_congestion_control).
    pub congestion: Option<Vec<String>>,
}

/// The kernel's module directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleTree {
    pub dir: String,
    pub builtin: BTreeSet<String>,
    pub loadable: BTreeSet<String>,
}

/// How the kernel can provide a qdisc or a congestion control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provision {
    /// Registered now; the text says where that was seen.
    Registered(String),
    /// Built into the kernel.
    BuiltIn(String),
    /// A module the kernel loads when the value is written (or apply loads).
    Module(String),
    /// Neither built in nor a module: the value cannot be set on this kernel.
    Missing(String),
    /// Nothing describes the kernel: apply will find out.
    Unknown,
}

/// Qdiscs every kernel with a network stack has (sch_generic.c, and sch_fifo.c whenever
/// CONFIG_NET_SCHED is on).
const CORE_QDISCS: &[&str] = &[
    "pfifo_fast",
    "noqueue",
    "noop",
    "pfifo",
    "bfifo",
    "pfifo_head_drop",
    "mq",
];

/// Congestion controls every kernel has.
const CORE_CONGESTION: &[&str] = &["reno"];

/// The configuration symbol of a qdisc (`fq` → `NET_SCH_FQ`).
fn qdisc_symbol(name: &str) -> String {
    format!("NET_SCH_{}", name.to_ascii_uppercase())
}

/// The configuration symbol of a congestion control; the few that differ from their name are
/// spelled out.
fn congestion_symbol(name: &str) -> String {
    let sym = match name {
        "highspeed" => "HSTCP",
        other => return format!("TCP_CONG_{}", other.to_ascii_uppercase()),
    };
    format!("TCP_CONG_{sym}")
}

/// Keeps the symbols that matter here from a kernel configuration's text.
pub fn parse_config(text: &str) -> BTreeMap<String, char> {
    text.lines()
        .filter_map(|l| l.strip_prefix("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("NET_SCH_") || k.starts_with("TCP_CONG_") || *k == "MODULES")
        .filter_map(|(k, v)| match v.trim() {
            "y" => Some((k.to_string(), 'y')),
            "m" => Some((k.to_string(), 'm')),
            _ => None,
        })
        .collect()
}

fn read_config(
    procfs: &Path,
    root: &Path,
    release: &str,
) -> Option<(String, BTreeMap<String, char>)> {
    let gz = procfs.join("config.gz");
    if let Ok(f) = std::fs::File::open(&gz) {
        let mut text = String::new();
        // Bounded: a real configuration is a few hundred KiB.
        let mut r = flate2::read::GzDecoder::new(f).take(16 << 20);
        if r.read_to_string(&mut text).is_ok() {
            return Some((gz.display().to_string(), parse_config(&text)));
        }
    }
    let boot = root.join(format!("boot/config-{release}"));
    let text = std::fs::read_to_string(&boot).ok()?;
    Some((boot.display().to_string(), parse_config(&text)))
}

/// A module's name from its file name: `sch_fq.ko.xz` → `sch_fq`.
fn module_name(file: &str) -> Option<&str> {
    let name = file.split('/').next_back()?;
    let stem = name.split(".ko").next()?;
    (name.len() > stem.len()).then_some(stem)
}

fn read_modules(root: &Path, release: &str) -> Option<ModuleTree> {
    let dir = root.join(format!("lib/modules/{release}"));
    if !dir.is_dir() {
        return None;
    }
    let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(module_name)
        .map(|m| m.replace('-', "_"))
        .collect();
    let mut loadable = BTreeSet::new();
    for sub in ["kernel/net/sched", "kernel/net/ipv4"] {
        for e in std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(m) = e.file_name().to_str().and_then(module_name) {
                loadable.insert(m.replace('-', "_"));
            }
        }
    }
    Some(ModuleTree {
        dir: dir.display().to_string(),
        builtin,
        loadable,
    })
}

impl Avail {
    /// Reads what describes the kernel `release`: the configuration (`<procfs>/config.gz`,
    /// else `<root>/boot/config-RELEASE`), the module tree under `<root>/lib/modules`, loaded
    /// modules under `<sysfs>/module` and the registered congestion controls under the sysctl
    /// root. Missing sources are simply absent.
    pub fn read(
        sysctl_root: &Path,
        procfs: &Path,
        sysfs: &Path,
        root: &Path,
        release: &str,
    ) -> Avail {
        let loaded = std::fs::read_dir(sysfs.join("module"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with("sch_") || n.starts_with("tcp_"))
            .collect();
        let congestion =
            std::fs::read_to_string(sysctl_root.join("net/ipv4/tcp_available_congestion_control"))
                .ok()
                .map(|s| s.split_whitespace().map(str::to_string).collect());
        Avail {
            config: read_config(procfs, root, release),
            modules: read_modules(root, release),
            loaded,
            congestion,
        }
    }

    fn provision(
        &self,
        what: &str,
        name: &str,
        module: &str,
        symbol: &str,
        core: &[&str],
    ) -> Provision {
        if core.contains(&name) {
            return Provision::BuiltIn(format!("{what} {name} is part of every kernel"));
        }
        if self.loaded.contains(module) {
            return Provision::Registered(format!("module {module} is loaded"));
        }
        if let Some(m) = &self.modules {
            if m.builtin.contains(module) {
                return Provision::BuiltIn(format!(
                    "{module} is built in ({}/modules.builtin)",
                    m.dir
                ));
            }
            if m.loadable.contains(module) {
                return Provision::Module(format!("module {module} in {}", m.dir));
            }
        }
        if let Some((file, syms)) = &self.config {
            return match syms.get(symbol) {
                Some('y') => Provision::BuiltIn(format!("CONFIG_{symbol}=y in {file}")),
                Some(_) if syms.get("MODULES").is_some() => {
                    Provision::Module(format!("CONFIG_{symbol}=m in {file}"))
                }
                Some(_) => Provision::Missing(format!(
                    "CONFIG_{symbol}=m in {file}, but the kernel cannot load modules"
                )),
                None => Provision::Missing(format!("CONFIG_{symbol} is not set in {file}")),
            };
        }
        if let Some(m) = &self.modules {
            return Provision::Missing(format!(
                "no module {module} in {} and not built in (modules.builtin)",
                m.dir
            ));
        }
        Provision::Unknown
    }

    /// Can the kernel provide qdisc `name`?
    pub fn qdisc(&self, name: &str) -> Provision {
        self.provision(
            "qdisc",
            name,
            &format!("sch_{name}"),
            &qdisc_symbol(name),
            CORE_QDISCS,
        )
    }

    /// Can the kernel provide congestion control `name`?
    pub fn congestion(&self, name: &str) -> Provision {
        if self
            .congestion
            .as_ref()
            .is_some_and(|l| l.iter().any(|a| a == name))
        {
            return Provision::Registered(
                "listed in net.ipv4.tcp_available_congestion_control".into(),
            );
        }
        let module = match name {
            "highspeed" => "tcp_highspeed".to_string(),
            n => format!("tcp_{n}"),
        };
        self.provision(
            "congestion control",
            name,
            &module,
            &congestion_symbol(name),
            CORE_CONGESTION,
        )
    }

    /// Why `value` cannot be set for `key` on this kernel, if it cannot: for
    /// net.core.default_qdisc and net.ipv4.tcp_congestion_control.
    pub fn missing(&self, key: &str, value: &str) -> Option<String> {
        let (what, p) = match key {
            "net.core.default_qdisc" => ("qdisc", self.qdisc(value)),
            "net.ipv4.tcp_congestion_control" => ("congestion control", self.congestion(value)),
            _ => return None,
        };
        match p {
            Provision::Missing(why) => Some(format!(
                "{what} {value} is not available on this kernel: {why}"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    const CONFIG: &str = "CONFIG_MODULES=y\nCONFIG_NET_SCH_HTB=y\nCONFIG_NET_SCH_FQ_CODEL=m\n# CONFIG_NET_SCH_FQ is not set\nCONFIG_TCP_CONG_BBR=y\nCONFIG_TCP_CONG_DCTCP=m\n";

    #[test]
    fn from_the_kernel_configuration() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/config.gz", &gz(CONFIG));
        write(
            r,
            "sys/net/ipv4/tcp_available_congestion_control",
            b"reno cubic\n",
        );
        let a = Avail::read(
            &r.join("sys"),
            &r.join("proc"),
            &r.join("sysfs"),
            &r.join("root"),
            "6.1.0",
        );
        let cfg = r.join("proc/config.gz").display().to_string();
        assert_eq!(
            a.qdisc("htb"),
            Provision::BuiltIn(format!("CONFIG_NET_SCH_HTB=y in {cfg}"))
        );
        assert_eq!(
            a.qdisc("fq_codel"),
            Provision::Module(format!("CONFIG_NET_SCH_FQ_CODEL=m in {cfg}"))
        );
        assert_eq!(
            a.qdisc("fq"),
            Provision::Missing(format!("CONFIG_NET_SCH_FQ is not set in {cfg}"))
        );
        assert!(matches!(a.qdisc("pfifo_fast"), Provision::BuiltIn(_)));
        assert!(matches!(a.congestion("cubic"), Provision::Registered(_)));
        assert!(matches!(a.congestion("bbr"), Provision::BuiltIn(_)));
        assert!(matches!(a.congestion("dctcp"), Provision::Module(_)));
        assert_eq!(
            a.missing("net.core.default_qdisc", "fq").unwrap(),
            format!(
                "qdisc fq is not available on this kernel: CONFIG_NET_SCH_FQ is not set in {cfg}"
            )
        );
        assert_eq!(a.missing("net.core.default_qdisc", "fq_codel"), None);
        assert_eq!(a.missing("net.core.somaxconn", "fq"), None);
    }

    #[test]
    fn from_the_module_tree_and_sysfs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(
            r,
            "root/lib/modules/6.1.0/modules.builtin",
            b"kernel/net/sched/sch_fq_codel.ko\n",
        );
        write(
            r,
            "root/lib/modules/6.1.0/kernel/net/sched/sch_fq.ko.xz",
            b"",
        );
        write(r, "root/lib/modules/6.1.0/kernel/net/ipv4/tcp_bbr.ko", b"");
        write(r, "sysfs/module/sch_cake/refcnt", b"1\n");
        // /boot/config is used when /proc/config.gz is absent, after the module tree.
        write(r, "root/boot/config-6.1.0", b"CONFIG_MODULES=y\n");
        let a = Avail::read(
            &r.join("sys"),
            &r.join("proc"),
            &r.join("sysfs"),
            &r.join("root"),
            "6.1.0",
        );
        assert!(
            matches!(a.qdisc("fq"), Provision::Module(_)),
            "{:?}",
            a.qdisc("fq")
        );
        assert!(matches!(a.qdisc("fq_codel"), Provision::BuiltIn(_)));
        assert!(matches!(a.qdisc("cake"), Provision::Registered(_)));
        assert!(matches!(a.congestion("bbr"), Provision::Module(_)));
        let boot = r.join("root/boot/config-6.1.0").display().to_string();
        assert_eq!(
            a.qdisc("sfq"),
            Provision::Missing(format!("CONFIG_NET_SCH_SFQ is not set in {boot}"))
        );
    }

    #[test]
    fn nothing_known_is_unknown() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let a = Avail::read(r, r, r, r, "6.1.0");
        assert_eq!(a.qdisc("fq"), Provision::Unknown);
        assert_eq!(a.missing("net.core.default_qdisc", "fq"), None);
        // Only a module tree: what is in neither list is missing.
        write(r, "lib/modules/6.1.0/modules.builtin", b"");
        let a = Avail::read(r, r, r, r, "6.1.0");
        assert!(
            matches!(a.qdisc("fq"), Provision::Missing(m) if m.contains("no module sch_fq in"))
        );
        assert_eq!(
            module_name("kernel/net/sched/sch_fq.ko.zst"),
            Some("sch_fq")
        );
        assert_eq!(module_name("modules.order"), None);
    }

    #[test]
    fn config_without_module_support() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/config.gz", &gz("CONFIG_NET_SCH_FQ=m\n"));
        let a = Avail::read(r, &r.join("proc"), r, r, "6.1.0");
        assert!(
            matches!(a.qdisc("fq"), Provision::Missing(m) if m.contains("cannot load modules"))
        );
    }
}
