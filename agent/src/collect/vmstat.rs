//! vmstat collector: node_vmstat_<field> (untyped) for the fields matching
//! --collector.vmstat.fields.

use super::attr::HeldFile;
use super::{util, Collector, Family, MetricType, Options};

struct Vmstat {
    path: HeldFile,
    fields: util::FieldFilter,
}

impl Collector for Vmstat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = self.path.read()?;
        let mut fields = self.fields.matcher();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Some((name, help)) = fields.select(name, || {
                (
                    format!("node_vmstat_{name}"),
                    format!("/proc/vmstat information field {name}."),
                )
            }) else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            out.push(Family::single(name, help, MetricType::Untyped, v));
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Vmstat {
        path: HeldFile::new(opts.procfs.join("vmstat")),
        fields: util::FieldFilter::new(&opts.vmstat_fields, "collector.vmstat.fields")?,
    }))
}
