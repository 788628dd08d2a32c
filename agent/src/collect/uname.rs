//! uname collector: node_uname_info from the uname system call.

use super::{Collector, Family, MetricType, Options};

struct Uname;

impl Collector for Uname {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let u = nix::sys::utsname::uname()?;
        let s = |v: &std::ffi::OsStr| v.to_string_lossy().into_owned();
        let mut f = Family::new(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            MetricType::Gauge,
        );
        f.push(
            &[
                ("domainname", &s(u.domainname())),
                ("machine", &s(u.machine())),
                ("nodename", &s(u.nodename())),
                ("release", &s(u.release())),
                ("sysname", &s(u.sysname())),
                ("version", &s(u.version())),
            ],
            1.0,
        );
        out.push(f);
        Ok(())
    }
}

pub fn build(_opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Uname))
}
