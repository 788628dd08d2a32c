//! pressure collector (not written yet).

use super::{Collector, Family, Options};

struct Stub;

impl Collector for Stub {
    fn collect(&self, _out: &mut Vec<Family>) -> anyhow::Result<()> {
        anyhow::bail!("the pressure collector is not implemented yet")
    }
}

pub fn build(_opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Stub))
}
