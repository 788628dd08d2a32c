//! `nodetune metrics`: print one scrape to stdout, with the same collector flags as `run`.

use std::io::Write;

use anyhow::Context;

use crate::base::log;
use crate::collect::Options;
use crate::expose::encode::{self, Format};
use crate::expose::scrape::Scraper;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print OpenMetrics instead of the Prometheus text format.
    #[arg(long)]
    pub openmetrics: bool,
    #[command(flatten)]
    pub log: crate::cli::common::LogArgs,
    #[command(flatten)]
    pub collect: Options,
}

pub fn main(args: &Args) -> anyhow::Result<i32> {
    args.log.init();
    for w in args.collect.warnings() {
        log::log(log::Level::Warning, &w, &[]);
    }
    let scraper = Scraper::new(&args.collect)?;
    let fams = encode::normalize(scraper.scrape(&|_| true));
    let mut out = String::with_capacity(64 * 1024);
    let format = if args.openmetrics {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    encode::encode(&fams, format, &mut out);
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("writing to stdout")?;
    Ok(0)
}
