//! sockstat collector: node_sockstat_<PROTO>_<field> from /proc/net/sockstat and sockstat6,
//! plus mem_bytes (pages × page size) for TCP and UDP.

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Sockstat {
    procfs: PathBuf,
    page_size: f64,
}

fn gauge(out: &mut Vec<Family>, name: String, help: String, v: f64) {
    let mut f = Family::new(name, help, MetricType::Gauge);
    f.push(&[], v);
    out.push(f);
}

impl Sockstat {
    fn parse(&self, text: &str, out: &mut Vec<Family>) {
        for line in text.lines() {
            let Some((proto, rest)) = line.split_once(':') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            for pair in fields.chunks(2) {
                let [key, value] = pair else { continue };
                let Ok(v) = value.parse::<f64>() else {
                    continue;
                };
                if proto == "sockets" {
                    if *key == "used" {
                        gauge(
                            out,
                            "node_sockstat_sockets_used".into(),
                            "Number of IPv4 sockets in use.".into(),
                            v,
                        );
                    }
                    continue;
                }
                gauge(
                    out,
                    format!("node_sockstat_{proto}_{key}"),
                    format!("Number of {proto} sockets in state {key}."),
                    v,
                );
                if *key == "mem" && (proto == "TCP" || proto == "UDP") {
                    gauge(
                        out,
                        format!("node_sockstat_{proto}_mem_bytes"),
                        format!("Number of {proto} sockets in state mem_bytes."),
                        v * self.page_size,
                    );
                }
            }
        }
    }
}

impl Collector for Sockstat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        self.parse(&util::read(&self.procfs.join("net/sockstat"))?, out);
        // IPv6 may be disabled: sockstat6 is optional.
        if let Ok(text) = std::fs::read_to_string(self.procfs.join("net/sockstat6")) {
            self.parse(&text, out);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(Box::new(Sockstat {
        procfs: opts.procfs.clone(),
        page_size: if page > 0 { page as f64 } else { 4096.0 },
    }))
}
