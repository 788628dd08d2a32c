//! schedstat collector: per-CPU running and waiting time and timeslices from /proc/schedstat,
//! for every version of the file node_exporter 1.12 accepts: any line holding
//! `cpu<N>` followed by at least nine single-space-separated numbers (procfs's unanchored
//! regexp; the 7th to 9th numbers are used, further fields are ignored). Other lines, and
//! lines whose numbers overflow, are skipped. No file (a kernel without CONFIG_SCHEDSTATS):
//! no data.

use std::path::PathBuf;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// One CPU's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub cpu: String,
    pub running_ns: u64,
    pub waiting_ns: u64,
    pub timeslices: u64,
}

/// Matches `cpu(\d+)( \d+){9}` at `at`: the CPU number and the nine numbers as text.
fn match_at(line: &[u8], at: usize) -> Option<(&[u8], [&[u8]; 9])> {
    let rest = line.get(at..)?.strip_prefix(b"cpu")?;
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return None;
    }
    let cpu = &rest[..n];
    let mut rest = &rest[n..];
    let mut nums: [&[u8]; 9] = [b""; 9];
    for num in &mut nums {
        rest = rest.strip_prefix(b" ")?;
        let n = digits(rest);
        if n == 0 {
            return None;
        }
        *num = &rest[..n];
        rest = &rest[n..];
    }
    Some((cpu, nums))
}

/// Parses /proc/schedstat.
pub fn parse_schedstat(text: &[u8]) -> Vec<Cpu> {
    let mut out = Vec::new();
    for line in util::scan_lines(text) {
        // The leftmost match, as Go's FindStringSubmatch.
        let Some((cpu, nums)) = (0..line.len().saturating_sub(2))
            .filter(|&i| line[i..].starts_with(b"cpu"))
            .find_map(|i| match_at(line, i))
        else {
            continue;
        };
        let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<u64>().ok();
        let (Some(running_ns), Some(waiting_ns), Some(timeslices)) =
            (num(nums[6]), num(nums[7]), num(nums[8]))
        else {
            continue;
        };
        out.push(Cpu {
            cpu: String::from_utf8_lossy(cpu).into_owned(),
            running_ns,
            waiting_ns,
            timeslices,
        });
    }
    out
}

fn render(cpus: &[Cpu], out: &mut Vec<Family>) {
    let mut running = Family::new(
        "node_schedstat_running_seconds_total",
        "Number of seconds CPU spent running a process.",
        MetricType::Counter,
    );
    let mut waiting = Family::new(
        "node_schedstat_waiting_seconds_total",
        "Number of seconds spent by processing waiting for this CPU.",
        MetricType::Counter,
    );
    let mut slices = Family::new(
        "node_schedstat_timeslices_total",
        "Number of timeslices executed by CPU.",
        MetricType::Counter,
    );
    for c in cpus {
        let l = [("cpu", c.cpu.as_str())];
        running.push(&l, c.running_ns as f64 / 1e9);
        waiting.push(&l, c.waiting_ns as f64 / 1e9);
        slices.push(&l, c.timeslices as f64);
    }
    out.extend([running, waiting, slices]);
}

struct Schedstat {
    path: PathBuf,
}

impl Collector for Schedstat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = match util::read_bytes(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("schedstat file does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        render(&parse_schedstat(&text), out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Schedstat {
        path: opts.procfs.join("schedstat"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        // Version 15 (9 fields), an older layout with 12 fields, domain lines, garbage.
        let text = b"version 15\ntimestamp 4295\ncpu0 1 2 3 4 5 6 2000000000 500000000 42\ndomain0 00000003 1 2 3\ncpu12 0 0 0 0 0 0 0 0 1 2 3 4\nversion 10\ncpu1 1 2 3\ncpu2 1 2 3 4 5 6 7 8 18446744073709551616\nxcpu3 1 2 3 4 5 6 7 8 9tail\ncpu4  1 2 3 4 5 6 7 8 9\n";
        let c = parse_schedstat(text);
        let got: Vec<(&str, u64, u64, u64)> = c
            .iter()
            .map(|c| (c.cpu.as_str(), c.running_ns, c.waiting_ns, c.timeslices))
            .collect();
        assert_eq!(
            got,
            [
                ("0", 2_000_000_000, 500_000_000, 42),
                ("12", 0, 0, 1),
                ("3", 7, 8, 9),
            ]
        );
        let mut out = Vec::new();
        render(&c, &mut out);
        assert_eq!(out[0].samples[0].value, 2.0);
        assert_eq!(out[1].samples[0].value, 0.5);
        assert!(parse_schedstat(b"").is_empty());
        assert!(parse_schedstat(b"cpu").is_empty());
    }

    #[test]
    fn missing_file_is_no_data() {
        let d = tempfile::tempdir().unwrap();
        let opts = Options::from_flags([format!("--path.procfs={}", d.path().display())]).unwrap();
        let c = build(&opts).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::write(d.path().join("schedstat"), "version 15\n").unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert!(out.iter().all(|f| f.samples.is_empty()));
    }
}
