//! `nodetune run`: the daemon (not written yet).

use crate::collect::Options;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collect: Options,
}

pub fn main(_args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("`nodetune run` is not implemented yet")
}
