//! `nodetune metrics`: print one scrape to stdout (not written yet).

use crate::collect::Options;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collect: Options,
}

pub fn main(_args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("`nodetune metrics` is not implemented yet")
}
