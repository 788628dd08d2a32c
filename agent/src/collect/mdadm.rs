//! mdadm collector: software RAID state from /proc/mdstat and the md attributes in
//! /sys/block/md*/md, as node_exporter 1.12 (procfs' mdstat parser) reads them.
//!
//! /proc/mdstat is parsed with procfs' rules, byte for byte where they decide a value or an
//! error: a device line is `mdN : state [(…)] [type] components…` followed by a status line
//! (`N blocks … [total/active] [UU_]`), an optional bitmap line and a sync line (`recovery`,
//! `resync`, `check`, `reshape`, with `=PENDING`/`=DELAYED`); raid0 and linear arrays count
//! their `[` as disks; an inactive array has no disk counts. A line or a sync line procfs
//! cannot parse fails the collector; no /proc/mdstat is no data.
//!
//! From sysfs come `node_md_raid_disks` and `node_md_degraded`. node_exporter reads them after
//! it has sent the mdstat families, so when the sysfs part fails (an array vanishing
//! mid-read, an attribute that returns an error) it reports the collector failed but still
//! serves the mdstat families. nodetune cannot serve families from a failed collector; it
//! serves the same families (mdstat's, none from sysfs) and reports success. Only the
//! attributes that become values are read (level, raid_disks, degraded): node_exporter also
//! reads uuid, metadata_version, chunk_size, sync_action, sync_completed and each component's
//! state, and fails on them too, e.g. whenever an array's resync is `delayed`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{util, Collector, Family, MetricType, Options};

/// One array as /proc/mdstat shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MdStat {
    pub name: String,
    /// active, inactive, recovering, resyncing, checking, reshaping, or what the device line
    /// says (e.g. `broken`).
    pub state: String,
    pub disks_active: i64,
    pub disks_total: i64,
    pub disks_failed: i64,
    pub disks_spare: i64,
    pub blocks_total: i64,
    pub blocks_synced: i64,
}

/// One array's sysfs attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct MdRaid {
    pub device: String,
    pub level: String,
    /// Devices in a fully working array; none for containers or an unreadable count.
    pub disks: Option<u64>,
    pub degraded: u64,
}

const PERSONALITIES: &str = "Personalities : ";

/// Parses /proc/mdstat.
pub fn parse_mdstat(text: &str) -> anyhow::Result<Vec<MdStat>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut known: Vec<&[u8]> = Vec::new();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() || line.starts_with(' ') || line.starts_with("unused") {
            continue;
        }
        if known.is_empty() {
            if let Some(list) = line.strip_prefix(PERSONALITIES) {
                for w in list.split_whitespace() {
                    // "[raid1]" → "raid1". procfs panics on a one-byte word.
                    match w.as_bytes() {
                        [_, inner @ .., _] => known.push(inner),
                        _ => bail!("garbled personality {w:?}"),
                    }
                }
                continue;
            }
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            bail!("expected 3+ fields, got {line:?}");
        }
        let name = fields[0];
        let mut state = fields[2];
        let is_type = |f: &str| !f.contains(['(', '[']) && known.contains(&f.as_bytes());
        // The type is the 4th field, or the 5th after a "(read-only)"-like one; without one
        // procfs looks for components from the first field on.
        let mut first_component = 0;
        if fields.len() > 3 {
            if is_type(fields[3]) {
                first_component = 4;
            } else if fields.len() > 4 && is_type(fields[4]) {
                first_component = 5;
            }
        }
        if lines.len() <= i + 3 {
            bail!("too few lines for md device {name:?}");
        }
        let failed = line.matches("(F)").count() as i64;
        let spare = line.matches("(S)").count() as i64;
        let (active, total, size) = status_line(line, lines[i + 1])
            .with_context(|| format!("md device {name:?}: status line {:?}", lines[i + 1]))?;
        let sync = if lines[i + 2].contains("bitmap") {
            lines[i + 3]
        } else {
            lines[i + 2]
        };
        let mut synced = size;
        let recovering = sync.contains("recovery");
        let reshaping = sync.contains("reshape");
        let resyncing = sync.contains("resync");
        let checking = sync.contains("check");
        if recovering || reshaping || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if reshaping {
                "reshaping"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            };
            if sync.contains("PENDING") || sync.contains("DELAYED") {
                synced = 0;
            } else {
                synced = sync_line(sync)
                    .with_context(|| format!("md device {name:?}: sync line {sync:?}"))?;
            }
        }
        check_components(&fields[first_component..])
            .with_context(|| format!("md device {name:?}: components"))?;
        out.push(MdStat {
            name: name.to_string(),
            state: state.to_string(),
            disks_active: active,
            disks_total: total,
            disks_failed: failed,
            disks_spare: spare,
            blocks_total: size,
            blocks_synced: synced,
        });
    }
    Ok(out)
}

/// (active, total, size) from a device line and its status line.
fn status_line(device: &str, status: &str) -> anyhow::Result<(i64, i64, i64)> {
    let size: i64 = status
        .split_whitespace()
        .next()
        .context("empty")?
        .parse()
        .context("block count")?;
    if device.contains("raid0") || device.contains("linear") {
        // Only the components carry a [n] on the device line.
        let n = device.matches('[').count() as i64;
        return Ok((n, n, size));
    }
    if device.contains("inactive") {
        return Ok((0, 0, size));
    }
    let (total, active) = disk_counts(status).context("no [total/active] [U_] part")?;
    Ok((
        active.parse().context("active disks")?,
        total.parse().context("total disks")?,
        size,
    ))
}

/// procfs' `(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]`: after the first `<digit> blocks `,
/// the last `[total/active] [U_…]`.
fn disk_counts(status: &str) -> Option<(&str, &str)> {
    const BLOCKS: &str = " blocks ";
    let b = status.as_bytes();
    let mut from = 0;
    let start = loop {
        let k = from + status.get(from..)?.find(BLOCKS)?;
        if k > 0 && b[k - 1].is_ascii_digit() {
            break k + BLOCKS.len();
        }
        from = k + 1;
    };
    (start..b.len()).rev().find_map(|q| {
        let rest = status.get(q..)?.strip_prefix('[')?;
        let t = digits(rest);
        let rest = rest[t..].strip_prefix('/').filter(|_| t > 0)?;
        let a = digits(rest);
        let flags = rest[a..].strip_prefix("] [").filter(|_| a > 0)?;
        let n = flags
            .bytes()
            .take_while(|c| *c == b'U' || *c == b'_')
            .count();
        (n > 0 && flags[n..].starts_with(']')).then(|| (&status[q + 1..q + 1 + t], &rest[..a]))
    })
}

fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Blocks synced from a sync line (`[=>…]  recovery =  8.5% (16775552/195310144)
/// finish=17.0min speed=259783K/sec`), checking the rest as procfs does.
fn sync_line(line: &str) -> anyhow::Result<i64> {
    // `\((\d+/\d+)\)`: the first "(done/total)".
    let (done, total) = line
        .match_indices('(')
        .find_map(|(p, _)| {
            let rest = &line[p + 1..];
            let a = digits(rest);
            let after = rest[a..].strip_prefix('/').filter(|_| a > 0)?;
            let b = digits(after);
            after[b..]
                .starts_with(')')
                .then_some((&rest[..a], &after[..b]))
                .filter(|_| b > 0)
        })
        .context("no (done/total) blocks")?;
    let synced: i64 = done.parse().context("blocks synced")?;
    let _: i64 = total.parse().context("blocks to sync")?;
    // `= (.+)%`, `finish=(.+)min`, `speed=(.+)[A-Z]`: from the first marker to the last
    // terminator, at least one character between; each must be a number.
    let pct = between(line, "= ", |s| s.rfind('%')).context("no percentage")?;
    go_float(pct.trim()).context("percentage")?;
    let finish = between(line, "finish=", |s| s.rfind("min")).context("no finish time")?;
    go_float(finish).context("finish time")?;
    let speed = between(line, "speed=", |s| {
        s.rfind(|c: char| c.is_ascii_uppercase())
    })
    .context("no speed")?;
    go_float(speed).context("speed")?;
    Ok(synced)
}

/// The text between the first `start` and the terminator `last` finds in the line, if that
/// leaves at least one character.
fn between<'a>(
    line: &'a str,
    start: &str,
    last: impl Fn(&str) -> Option<usize>,
) -> Option<&'a str> {
    let s = line.find(start)? + start.len();
    let e = last(line)?;
    (e > s).then(|| &line[s..e])
}

/// Go's `strconv.ParseFloat(s, 64)` as far as deciding whether `s` is a number goes (hex
/// floats aside): out-of-range values are errors there.
fn go_float(s: &str) -> anyhow::Result<f64> {
    let v: f64 = s.parse().with_context(|| format!("not a number: {s:?}"))?;
    let word = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if v.is_infinite() && word != "inf" && word != "infinity" {
        bail!("out of range: {s:?}");
    }
    Ok(v)
}

/// procfs' component check: the last `[n]` of each field must fit an int32.
fn check_components(fields: &[&str]) -> anyhow::Result<()> {
    for f in fields {
        let last = f.match_indices('[').rev().find_map(|(p, _)| {
            let rest = &f[p + 1..];
            let n = digits(rest);
            (n > 0 && rest[n..].starts_with(']')).then(|| &rest[..n])
        });
        if let Some(n) = last {
            n.parse::<i32>()
                .with_context(|| format!("descriptor index {n:?} of {f:?}"))?;
        }
    }
    Ok(())
}

/// A raid_disks attribute: a count, `current (previous)` during a reshape, or nothing.
pub fn parse_raid_disks(text: &str) -> Option<u64> {
    let t = text.trim();
    util::go_parse_uint(t, 10, 64).or_else(|| match t.find(' ') {
        Some(i) if i > 0 => util::go_parse_uint(&t[..i], 10, 64),
        _ => None,
    })
}

fn read_whole(path: &Path) -> anyhow::Result<String> {
    let raw = util::read_bytes(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(util::to_valid_utf8(&raw).into_owned())
}

/// Reads /sys/block/md*/md.
pub fn read_mdraids(block: &Path) -> anyhow::Result<Vec<MdRaid>> {
    let mut out = Vec::new();
    for e in util::read_dir_sorted(block).unwrap_or_default() {
        let md = e.path.join("md");
        if !e.name.starts_with("md") || std::fs::symlink_metadata(&md).is_err() {
            continue;
        }
        let level = util::sys_read(&md.join("level"))
            .with_context(|| format!("reading {}", md.join("level").display()))?;
        let disks = match level.as_str() {
            "container" | "imsm" | "ddf" | "" => None,
            _ => parse_raid_disks(&read_whole(&md.join("raid_disks"))?),
        };
        let degraded = match level.as_str() {
            "raid1" | "raid4" | "raid5" | "raid6" | "raid10" => {
                let p = md.join("degraded");
                util::go_parse_uint(read_whole(&p)?.trim(), 10, 64)
                    .with_context(|| format!("parsing {}", p.display()))?
            }
            _ => 0,
        };
        out.push(MdRaid {
            device: e.name,
            level,
            disks,
            degraded,
        });
    }
    Ok(out)
}

fn render_mdstat(stats: &[MdStat], out: &mut Vec<Family>) {
    let mut required = Family::new(
        "node_md_disks_required",
        "Total number of disks of device.",
        MetricType::Gauge,
    );
    let mut disks = Family::new(
        "node_md_disks",
        "Number of active/failed/spare disks of device.",
        MetricType::Gauge,
    );
    let mut state = Family::new(
        "node_md_state",
        "Indicates the state of md-device.",
        MetricType::Gauge,
    );
    let mut blocks = Family::new(
        "node_md_blocks",
        "Total number of blocks on device.",
        MetricType::Gauge,
    );
    let mut synced = Family::new(
        "node_md_blocks_synced",
        "Number of blocks synced on device.",
        MetricType::Gauge,
    );
    for s in stats {
        let dev = s.name.as_str();
        required.push(&[("device", dev)], s.disks_total as f64);
        for (st, v) in [
            ("active", s.disks_active),
            ("failed", s.disks_failed),
            ("spare", s.disks_spare),
        ] {
            disks.push(&[("device", dev), ("state", st)], v as f64);
        }
        for (label, st) in [
            ("active", "active"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
            ("check", "checking"),
        ] {
            let v = if s.state == st { 1.0 } else { 0.0 };
            state.push(&[("device", dev), ("state", label)], v);
        }
        blocks.push(&[("device", dev)], s.blocks_total as f64);
        synced.push(&[("device", dev)], s.blocks_synced as f64);
    }
    out.extend([required, disks, state, blocks, synced]);
}

fn render_mdraids(raids: &[MdRaid], out: &mut Vec<Family>) {
    let mut disks = Family::new(
        "node_md_raid_disks",
        "Number of raid disks on device.",
        MetricType::Gauge,
    );
    let mut degraded = Family::new(
        "node_md_degraded",
        "Number of degraded disks on device.",
        MetricType::Gauge,
    );
    for r in raids {
        if let Some(n) = r.disks {
            disks.push(&[("device", &r.device)], n as f64);
        }
        degraded.push(&[("device", &r.device)], r.degraded as f64);
    }
    out.extend([disks, degraded]);
}

struct Mdadm {
    mdstat: PathBuf,
    block: PathBuf,
}

impl Collector for Mdadm {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let raw = util::read_bytes(&self.mdstat)
            .with_context(|| format!("reading {}", self.mdstat.display()))?;
        let stats = parse_mdstat(&util::to_valid_utf8(&raw))
            .with_context(|| format!("parsing {}", self.mdstat.display()))?;
        render_mdstat(&stats, out);
        // See the module doc: a sysfs failure leaves out the sysfs families only.
        if let Ok(raids) = read_mdraids(&self.block) {
            render_mdraids(&raids, out);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Mdadm {
        mdstat: opts.procfs.join("mdstat"),
        block: opts.sysfs.join("block"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    const HEAD: &str =
        "Personalities : [linear] [raid0] [raid1] [raid6] [raid5] [raid4] [raid10]\n";

    fn one(body: &str) -> anyhow::Result<MdStat> {
        let v = parse_mdstat(&format!("{HEAD}{body}\nunused devices: <none>\n"))?;
        assert_eq!(v.len(), 1, "{v:?}");
        Ok(v.into_iter().next().unwrap())
    }

    fn md(
        name: &str,
        state: &str,
        (active, total, failed, spare): (i64, i64, i64, i64),
        (blocks, synced): (i64, i64),
    ) -> MdStat {
        MdStat {
            name: name.into(),
            state: state.into(),
            disks_active: active,
            disks_total: total,
            disks_failed: failed,
            disks_spare: spare,
            blocks_total: blocks,
            blocks_synced: synced,
        }
    }

    #[test]
    fn healthy_arrays_of_each_level() {
        let text = format!(
            "{HEAD}\n\
             md1 : active raid1 vdb1[1] vda1[0]\n      1047552 blocks super 1.2 [2/2] [UU]\n\n\
             md2 : active raid5 vdd[3] vdc[1] vdb[0] vde[4](S)\n      2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/3] [UUU]\n      bitmap: 0/8 pages [0KB], 65536KB chunk\n\n\
             md3 : active raid6 a[0] b[1] c[2] d[3]\n      4096 blocks super 1.2 level 6, 64k chunk, algorithm 2 [4/4] [UUUU]\n\n\
             md4 : active raid10 a[0] b[1] c[2] d[3]\n      8192 blocks super 1.2 512K chunks 2 near-copies [4/4] [UUUU]\n\n\
             md5 : active raid0 x[0] y[1] z[2]\n      3000 blocks super 1.2 512k chunks\n\n\
             md6 : active linear p[1] q[0]\n      100 blocks super 1.2 0k rounding\n\n\
             unused devices: <none>\n"
        );
        assert_eq!(
            parse_mdstat(&text).unwrap(),
            vec![
                md("md1", "active", (2, 2, 0, 0), (1047552, 1047552)),
                md("md2", "active", (3, 3, 0, 1), (2093056, 2093056)),
                md("md3", "active", (4, 4, 0, 0), (4096, 4096)),
                md("md4", "active", (4, 4, 0, 0), (8192, 8192)),
                md("md5", "active", (3, 3, 0, 0), (3000, 3000)),
                md("md6", "active", (2, 2, 0, 0), (100, 100)),
            ]
        );
    }

    #[test]
    fn degraded_and_syncing() {
        let m = one("md0 : active raid1 sdb2[2](F) sdc[1](S) sda2[0]\n      1000 blocks [2/1] [U_]\n      [=>......]  recovery =  8.5% (85/1000) finish=17.0min speed=259783K/sec\n").unwrap();
        assert_eq!(m, md("md0", "recovering", (1, 2, 1, 1), (1000, 85)));
        let m = one("md0 : active raid1 a[0] b[1]\n      1000 blocks [2/2] [UU]\n      [=>......]  resync =  8.5% (85/1000) finish=17.0min speed=259783K/sec\n").unwrap();
        assert_eq!(m.state, "resyncing");
        let m = one("md0 : active raid1 a[0] b[1]\n      1000 blocks [2/2] [UU]\n      [>.......]  check =  5.7% (57/1000) finish=0.2min speed=114176K/sec\n").unwrap();
        assert_eq!((m.state.as_str(), m.blocks_synced), ("checking", 57));
        let m = one("md0 : active raid5 a[0] b[1] c[2]\n      1000 blocks level 5, 64k chunk, algorithm 2 [3/3] [UUU]\n      [>.......]  reshape =  1.0% (10/1000) finish=1.0min speed=1000K/sec\n").unwrap();
        assert_eq!(m.state, "reshaping");
        // A bitmap line before the sync line.
        let m = one("md0 : active raid6 a[0] b[1] c[2](F) d[3]\n      1000 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [U_UU]\n      bitmap: 0/30 pages [0KB], 65536KB chunk\n      [>.......]  recovery =  1.0% (10/1000) finish=1.0min speed=1000K/sec\n").unwrap();
        assert_eq!(m, md("md0", "recovering", (3, 4, 1, 0), (1000, 10)));
        for pending in ["resync=DELAYED", "resync=PENDING"] {
            let m = one(&format!(
                "md0 : active (auto-read-only) raid1 a[0] b[1]\n      1000 blocks super 1.2 [2/2] [UU]\n      {pending}\n"
            ))
            .unwrap();
            assert_eq!(m, md("md0", "resyncing", (2, 2, 0, 0), (1000, 0)));
        }
    }

    #[test]
    fn inactive_and_odd_device_lines() {
        let m = one("md9 : inactive sdb[2](S) sdc[1](S) sda[0](S)\n        7932 blocks super external:imsm\n").unwrap();
        assert_eq!(m, md("md9", "inactive", (0, 0, 0, 3), (7932, 7932)));
        // An inactive array with a type.
        let m =
            one("md4 : inactive raid1 sda3[0](F) sdb3[1](S)\n      4883648 blocks [2/2] [UU]\n")
                .unwrap();
        assert_eq!(m, md("md4", "inactive", (0, 0, 1, 1), (4883648, 4883648)));
        // Read-only raid0: the type is the 5th field.
        let m = one("md101 : active (read-only) raid0 sdb[2] sdd[1] sdc[0]\n      322560 blocks super 1.2 512k chunks\n").unwrap();
        assert_eq!(m, md("md101", "active", (3, 3, 0, 0), (322560, 322560)));
        // A state word other than active/inactive is kept as is.
        let m = one("md7 : broken raid1 a[0]\n      10 blocks [2/1] [U_]\n").unwrap();
        assert_eq!(m.state, "broken");
        // No personalities line: nothing is a known type, components from field 0.
        let v =
            parse_mdstat("md1 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n\n").unwrap();
        assert_eq!(v[0].disks_total, 2);
        // The last [total/active] [U_] after "blocks" wins, as with procfs' greedy pattern.
        let m = one("md1 : active raid1 a[0] b[1]\n      10 blocks x [9/9] [UU] y [3/2] [UU_]\n")
            .unwrap();
        assert_eq!((m.disks_total, m.disks_active), (3, 2));
        assert!(parse_mdstat("").unwrap().is_empty());
        assert!(parse_mdstat("Personalities : \nunused devices: <none>\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn garbled_mdstat_fails() {
        for bad in [
            // Too few fields.
            "md0 :\n      10 blocks [2/2] [UU]\n\n\n",
            // Too few lines after the device line.
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n",
            // Status line: no number, no [n/m] [U] part, an overflow.
            "md0 : active raid1 a[0] b[1]\n      x blocks [2/2] [UU]\n\n\n",
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2]\n\n\n",
            "md0 : active raid1 a[0] b[1]\n      10 blocks [99999999999999999999/2] [UU]\n\n\n",
            // Sync lines procfs cannot read.
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n      resync = 5% (1/10) finish=1min\n\n",
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n      resync = x% (1/10) finish=1min speed=1K/sec\n\n",
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n      recovery = 5% finish=1min speed=1K/sec\n\n",
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n      check = 5% (1/10) finish=1min speed=1K/sec MORE\n\n",
            "md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n      check = 5% (1/10) finish=1e999min speed=1K/sec\n\n",
            // A descriptor index beyond int32.
            "md0 : active raid1 a[0] b[2147483648]\n      10 blocks [2/2] [UU]\n\n\n",
        ] {
            assert!(
                parse_mdstat(&format!("{HEAD}{bad}")).is_err(),
                "accepted {bad:?}"
            );
        }
        assert!(parse_mdstat("Personalities : [raid1] x\n").is_err());
        // Binary noise: an error or nothing, never a panic.
        let _ = parse_mdstat("\u{fffd}\u{0}md\t:[[[\n(((\n)))\n[//] [U]\n");
    }

    #[test]
    fn raid_disks_forms() {
        assert_eq!(parse_raid_disks("4\n"), Some(4));
        assert_eq!(parse_raid_disks("11 (10)\n"), Some(11));
        assert_eq!(parse_raid_disks("\n"), None);
        assert_eq!(parse_raid_disks("x (10)"), None);
        assert_eq!(parse_raid_disks("-1"), None);
    }

    #[test]
    fn sysfs_arrays() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        write(b, "md0/md/level", "raid1\n");
        write(b, "md0/md/raid_disks", "2\n");
        write(b, "md0/md/degraded", "1\n");
        write(b, "md1/md/level", "raid0\n");
        write(b, "md1/md/raid_disks", "3 (2)\n");
        write(b, "md2/md/level", "container\n");
        write(b, "md3/md/level", "\n");
        write(b, "sda/size", "1\n");
        std::fs::create_dir_all(b.join("mdx")).unwrap();
        let raids = read_mdraids(b).unwrap();
        let got: Vec<(&str, Option<u64>, u64)> = raids
            .iter()
            .map(|r| (r.device.as_str(), r.disks, r.degraded))
            .collect();
        assert_eq!(
            got,
            vec![
                ("md0", Some(2), 1),
                ("md1", Some(3), 0),
                ("md2", None, 0),
                ("md3", None, 0)
            ]
        );
        // An array whose degraded count is garbled or missing fails the sysfs part.
        write(b, "md0/md/degraded", "lots\n");
        assert!(read_mdraids(b).is_err());
        std::fs::remove_file(b.join("md0/md/degraded")).unwrap();
        assert!(read_mdraids(b).is_err());
        assert!(read_mdraids(&b.join("nope")).unwrap().is_empty());
    }

    #[test]
    fn collector_keeps_mdstat_when_sysfs_fails() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/mdstat", &format!("{HEAD}md0 : active raid1 a[0] b[1]\n      10 blocks [2/2] [UU]\n\nunused devices: <none>\n"));
        write(r, "sys/block/md0/md/level", "raid1\n");
        write(r, "sys/block/md0/md/raid_disks", "2\n");
        let c = Mdadm {
            mdstat: r.join("proc/mdstat"),
            block: r.join("sys/block"),
        };
        let names = |out: &[Family]| -> Vec<String> {
            out.iter()
                .filter(|f| !f.samples.is_empty())
                .map(|f| f.name.to_string())
                .collect()
        };
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(
            names(&out),
            [
                "node_md_disks_required",
                "node_md_disks",
                "node_md_state",
                "node_md_blocks",
                "node_md_blocks_synced"
            ]
        );
        write(r, "sys/block/md0/md/degraded", "0\n");
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(names(&out).len(), 7);
        let state: Vec<(String, f64)> = out[2]
            .samples
            .iter()
            .map(|s| (s.labels[1].1.clone(), s.value))
            .collect();
        assert_eq!(
            state,
            [
                ("active".to_string(), 1.0),
                ("inactive".to_string(), 0.0),
                ("recovering".to_string(), 0.0),
                ("resync".to_string(), 0.0),
                ("check".to_string(), 0.0)
            ]
        );
        // Garbled or missing /proc/mdstat fails the collector.
        write(r, "proc/mdstat", &format!("{HEAD}md0 : active\n"));
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::remove_file(r.join("proc/mdstat")).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
    }
}
