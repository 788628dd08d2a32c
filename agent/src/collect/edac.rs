//! edac collector: memory controller error counts from /sys/devices/system/edac/mc, as
//! node_exporter 1.12 reads them.
//!
//! Controllers are the `mc<digits>…` entries, csrows the `csrow<digits>…` entries of each,
//! channels the `ch<N>_ce_count` files of each csrow. The counters node_exporter requires
//! (ce/ue counts, the controller's noinfo counts, each channel's ce count) fail the collector
//! when missing or not a number; a channel's ue count is optional; a missing DIMM label is
//! "unknown". No EDAC directory is an empty, successful scrape (node_exporter's too).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// One memory controller (`mcN`).
#[derive(Debug, Clone, PartialEq)]
pub struct Controller {
    pub id: String,
    pub ce: u64,
    pub ce_noinfo: u64,
    pub ue: u64,
    pub ue_noinfo: u64,
    pub csrows: Vec<Csrow>,
}

/// One chip-select row (`csrowN`).
#[derive(Debug, Clone, PartialEq)]
pub struct Csrow {
    pub id: String,
    pub ce: u64,
    pub ue: u64,
    pub channels: Vec<Channel>,
}

/// One channel of a csrow (`chN_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: String,
    pub dimm_label: String,
    pub ce: u64,
    pub ue: Option<u64>,
}

/// An EDAC counter file: a decimal number, white space around it.
pub fn parse_count(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    util::go_parse_uint(t, 10, 64).with_context(|| format!("not a count: {t:?}"))
}

/// A `chN_dimm_label` as node_exporter labels it: trimmed, `#` dropped, `csrow` and `channel`
/// set apart with an underscore (`mc0csrow0channel0` → `mc0_csrow0_channel0`).
pub fn clean_dimm_label(raw: &str) -> String {
    raw.trim()
        .replace('#', "")
        .replace("csrow", "_csrow")
        .replace("channel", "_channel")
}

/// The channel number of a `ch<N>_ce_count` file name (the first such match in the name).
pub fn channel_id(file: &str) -> Option<&str> {
    let b = file.as_bytes();
    (0..b.len()).find_map(|i| {
        let rest = file.get(i..)?.strip_prefix("ch")?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && rest[digits..].starts_with("_ce_count")).then(|| &rest[..digits])
    })
}

/// Entries named `<prefix><digit>…`, sorted (Go's `Glob(prefix + "[0-9]*")`, which ignores
/// a directory it cannot read), with the digits that follow the prefix.
fn numbered(dir: &Path, prefix: &str) -> Vec<(util::DirItem, String)> {
    util::read_dir_sorted(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let rest = e.name.strip_prefix(prefix)?;
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!n.is_empty()).then_some((e, n))
        })
        .collect()
}

fn read_count(path: &Path) -> anyhow::Result<u64> {
    let raw = util::read_bytes(path).with_context(|| format!("reading {}", path.display()))?;
    parse_count(&util::to_valid_utf8(&raw)).with_context(|| format!("parsing {}", path.display()))
}

fn dimm_label(csrow: &Path, channel: &str) -> String {
    match util::read_bytes(&csrow.join(format!("ch{channel}_dimm_label"))) {
        Ok(raw) => clean_dimm_label(&util::to_valid_utf8(&raw)),
        Err(_) => "unknown".to_string(),
    }
}

/// Reads every controller under `dir` (…/edac/mc).
pub fn read(dir: &Path) -> anyhow::Result<Vec<Controller>> {
    let mut out = Vec::new();
    for (mc, id) in numbered(dir, "mc") {
        let p = &mc.path;
        let mut c = Controller {
            ce: read_count(&p.join("ce_count"))?,
            ce_noinfo: read_count(&p.join("ce_noinfo_count"))?,
            ue: read_count(&p.join("ue_count"))?,
            ue_noinfo: read_count(&p.join("ue_noinfo_count"))?,
            id,
            csrows: Vec::new(),
        };
        for (row, rid) in numbered(p, "csrow") {
            // node_exporter finds the csrow number with a pattern that wants the controller
            // named mc<digits> exactly; anything else fails its scrape.
            anyhow::ensure!(
                mc.name.len() == 2 + c.id.len(),
                "csrow {} of controller {}: unexpected controller name",
                row.name,
                mc.name
            );
            let rp = &row.path;
            let mut r = Csrow {
                ce: read_count(&rp.join("ce_count"))?,
                ue: read_count(&rp.join("ue_count"))?,
                id: rid,
                channels: Vec::new(),
            };
            for f in util::read_dir_sorted(rp).unwrap_or_default() {
                if !(f.name.starts_with("ch") && f.name.ends_with("_ce_count")) {
                    continue;
                }
                let Some(ch) = channel_id(&f.name) else {
                    continue;
                };
                r.channels.push(Channel {
                    dimm_label: dimm_label(rp, ch),
                    ce: read_count(&f.path)?,
                    ue: read_count(&rp.join(format!("ch{ch}_ue_count"))).ok(),
                    id: ch.to_string(),
                });
            }
            c.csrows.push(r);
        }
        out.push(c);
    }
    Ok(out)
}

fn render(controllers: &[Controller], out: &mut Vec<Family>) {
    let mut ce = Family::new(
        "node_edac_correctable_errors_total",
        "Total correctable memory errors.",
        MetricType::Counter,
    );
    let mut ue = Family::new(
        "node_edac_uncorrectable_errors_total",
        "Total uncorrectable memory errors.",
        MetricType::Counter,
    );
    let mut row_ce = Family::new(
        "node_edac_csrow_correctable_errors_total",
        "Total correctable memory errors for this csrow.",
        MetricType::Counter,
    );
    let mut row_ue = Family::new(
        "node_edac_csrow_uncorrectable_errors_total",
        "Total uncorrectable memory errors for this csrow.",
        MetricType::Counter,
    );
    let mut ch_ce = Family::new(
        "node_edac_channel_correctable_errors_total",
        "Total correctable memory errors for this channel.",
        MetricType::Counter,
    );
    let mut ch_ue = Family::new(
        "node_edac_channel_uncorrectable_errors_total",
        "Total uncorrectable memory errors for this channel.",
        MetricType::Counter,
    );
    for c in controllers {
        let mc = c.id.as_str();
        ce.push(&[("controller", mc)], c.ce as f64);
        ue.push(&[("controller", mc)], c.ue as f64);
        row_ce.push(
            &[("controller", mc), ("csrow", "unknown")],
            c.ce_noinfo as f64,
        );
        row_ue.push(
            &[("controller", mc), ("csrow", "unknown")],
            c.ue_noinfo as f64,
        );
        for r in &c.csrows {
            row_ce.push(&[("controller", mc), ("csrow", &r.id)], r.ce as f64);
            row_ue.push(&[("controller", mc), ("csrow", &r.id)], r.ue as f64);
            for ch in &r.channels {
                let labels = [
                    ("controller", mc),
                    ("csrow", r.id.as_str()),
                    ("channel", ch.id.as_str()),
                    ("dimm_label", ch.dimm_label.as_str()),
                ];
                ch_ce.push(&labels, ch.ce as f64);
                if let Some(v) = ch.ue {
                    ch_ue.push(&labels, v as f64);
                }
            }
        }
    }
    out.extend([ce, ue, row_ce, row_ue, ch_ce, ch_ue]);
}

struct Edac {
    dir: PathBuf,
}

impl Collector for Edac {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        render(&read(&self.dir)?, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Edac {
        dir: opts.sysfs.join("devices/system/edac/mc"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn series(fams: &[Family]) -> Vec<String> {
        let mut v: Vec<String> = fams
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(move |s| {
                    let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{}{{{}}} {}", f.name, l.join(","), s.value)
                })
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_count(" 12\n").unwrap(), 12);
        assert!(parse_count("+1").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("-1").is_err());
        assert_eq!(
            clean_dimm_label("mc0csrow1channel0\n"),
            "mc0_csrow1_channel0"
        );
        assert_eq!(clean_dimm_label("CPU#0_DIMM_A1"), "CPU0_DIMM_A1");
        assert_eq!(channel_id("ch0_ce_count"), Some("0"));
        assert_eq!(channel_id("ch12_ce_count"), Some("12"));
        assert_eq!(channel_id("chx_ch3_ce_count"), Some("3"));
        assert_eq!(channel_id("ch_ce_count"), None);
        assert_eq!(channel_id("ch1_ue_count"), None);
        assert_eq!(channel_id("\u{e9}ch1_ce_count"), Some("1"));
    }

    #[test]
    fn controllers_rows_channels() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (f, v) in [
            ("mc0/ce_count", "1\n"),
            ("mc0/ce_noinfo_count", "2\n"),
            ("mc0/ue_count", "5\n"),
            ("mc0/ue_noinfo_count", "6\n"),
            ("mc0/csrow0/ce_count", "3\n"),
            ("mc0/csrow0/ue_count", "4\n"),
            ("mc0/csrow0/ch0_ce_count", "7\n"),
            ("mc0/csrow0/ch0_ue_count", "8\n"),
            ("mc0/csrow0/ch0_dimm_label", "mc0csrow0channel0\n"),
            // No ue count and no label: ce only, label "unknown".
            ("mc0/csrow0/ch1_ce_count", "9\n"),
            ("mc0/csrow0/chx_ce_count", "99\n"),
            ("mc0/notacsrow/ce_count", "1\n"),
        ] {
            write(r, f, v);
        }
        std::fs::create_dir(r.join("power")).unwrap();
        let mut out = Vec::new();
        render(&read(r).unwrap(), &mut out);
        assert_eq!(
            series(&out),
            vec![
                "node_edac_channel_correctable_errors_total{controller=0,csrow=0,channel=0,dimm_label=mc0_csrow0_channel0} 7",
                "node_edac_channel_correctable_errors_total{controller=0,csrow=0,channel=1,dimm_label=unknown} 9",
                "node_edac_channel_uncorrectable_errors_total{controller=0,csrow=0,channel=0,dimm_label=mc0_csrow0_channel0} 8",
                "node_edac_correctable_errors_total{controller=0} 1",
                "node_edac_csrow_correctable_errors_total{controller=0,csrow=0} 3",
                "node_edac_csrow_correctable_errors_total{controller=0,csrow=unknown} 2",
                "node_edac_csrow_uncorrectable_errors_total{controller=0,csrow=0} 4",
                "node_edac_csrow_uncorrectable_errors_total{controller=0,csrow=unknown} 6",
                "node_edac_uncorrectable_errors_total{controller=0} 5",
            ]
        );
    }

    #[test]
    fn missing_is_empty_and_garbled_fails() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert!(read(&r.join("nope")).unwrap().is_empty());
        write(r, "mc1/ce_count", "1\n");
        // A controller without its other counters (vanished mid-read) fails the scrape.
        assert!(read(r).is_err());
        write(r, "mc1/ce_noinfo_count", "0\n");
        write(r, "mc1/ue_count", "garbage\n");
        write(r, "mc1/ue_noinfo_count", "0\n");
        assert!(read(r).is_err());
        write(r, "mc1/ue_count", "0\n");
        assert_eq!(read(r).unwrap().len(), 1);
        // A channel ce count that is not a number fails too.
        write(r, "mc1/csrow0/ce_count", "0\n");
        write(r, "mc1/csrow0/ue_count", "0\n");
        write(r, "mc1/csrow0/ch0_ce_count", "\u{fffd}\n");
        assert!(read(r).is_err());
        write(r, "mc1/csrow0/ch0_ce_count", "4\n");
        // A controller named mc<digits><other> with csrows: node_exporter's pattern fails.
        for f in ["ce_count", "ce_noinfo_count", "ue_count", "ue_noinfo_count"] {
            write(r, &format!("mc2x/{f}"), "0\n");
        }
        assert_eq!(read(r).unwrap().len(), 2);
        write(r, "mc2x/csrow0/ce_count", "0\n");
        assert!(read(r).is_err());
    }
}
