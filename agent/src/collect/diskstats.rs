//! diskstats collector: node_disk_* from /proc/diskstats (the 14-, 18- and 20-field kernel
//! formats: a family is exported only when the line has its field), `node_disk_info` with
//! `queue/rotational` from sysfs, and the udev database (`--path.udev.data`, default
//! /run/udev/data, file `b<major>:<minor>`) for the info labels, `node_disk_filesystem_info`,
//! `node_disk_device_mapper_info` and `node_disk_ata_*`, as node_exporter 1.12 has them.
//!
//! Parsing follows procfs's `fmt.Sscanf` of each line: fields separated by blanks, a line with
//! fewer than 14 fields skipped, a field that is not a number fails the collector (and so
//! does a number glued to text, as Go's scanner wants a space between fields). udev is used
//! only if the directory exists when the collector starts (node_exporter checks once); a
//! device without a udev entry gets empty labels.
//!
//! Cost: a udev entry is parsed again only when its file changes (udev replaces the file on
//! every update, so one stat per device and scrape tells); `queue/rotational` can be written
//! through sysfs at any time, so it is read on every scrape.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::attr::{Attr, HeldFile};
use super::{labels, util, Collector, Family, MetricType, Options};

/// node_exporter 1.12's default `--collector.diskstats.device-exclude`.
pub const DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

#[derive(Debug, Clone, clap::Args)]
// Every collector's struct is called Flags: clap needs distinct group names.
#[group(id = "diskstats_flags")]
pub struct Flags {
    /// Regexp of diskstats devices to exclude (mutually exclusive to device-include).
    /// [default: node_exporter 1.12's]
    #[arg(long = "collector.diskstats.device-exclude")]
    pub device_exclude: Option<String>,
    /// DEPRECATED: Use collector.diskstats.device-exclude (node_exporter 1.5 name).
    #[arg(long = "collector.diskstats.ignored-devices", hide = true)]
    pub ignored_devices: Option<String>,
    /// Regexp of diskstats devices to include (mutually exclusive to device-exclude).
    #[arg(long = "collector.diskstats.device-include")]
    pub device_include: Option<String>,
}

/// One line of /proc/diskstats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub major: u32,
    pub minor: u32,
    pub name: String,
    /// Reads, reads merged, sectors read, ms reading, writes, writes merged, sectors written,
    /// ms writing, I/Os in progress, ms doing I/O, weighted ms, discards, discards merged,
    /// sectors discarded, ms discarding, flushes, ms flushing.
    pub stats: [u64; 17],
    /// How many of `stats` the line had.
    pub count: usize,
}

/// Go's `unicode.IsSpace` for the ASCII range (what fmt's scanner skips; newlines never
/// occur inside a line).
fn blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// One line scanned like `fmt.Sscanf(line, "%d %d %s %d … %d")`: Ok(None) when the line
/// ends before 14 fields (procfs skips it), Err for a field that does not scan.
fn scan_line(line: &[u8]) -> anyhow::Result<Option<Disk>> {
    let mut at = 0;
    let mut nums = [0u64; 19];
    let mut name: &[u8] = b"";
    let mut count = 0;
    for verb in 0..20 {
        if verb > 0 {
            // A space in the format wants one or more blanks, or the end of the input.
            if at < line.len() && !blank(line[at]) {
                anyhow::bail!("expected space in input to match format");
            }
        }
        while at < line.len() && blank(line[at]) {
            at += 1;
        }
        if at == line.len() {
            break;
        }
        if verb == 2 {
            let end = line[at..]
                .iter()
                .position(|b| blank(*b))
                .map_or(line.len(), |p| at + p);
            name = &line[at..end];
            at = end;
        } else {
            let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            anyhow::ensure!(digits > 0, "expected integer");
            let tok = std::str::from_utf8(&line[at..at + digits]).unwrap_or_default();
            let v: u64 = tok
                .parse()
                .with_context(|| format!("value out of range: {tok}"))?;
            anyhow::ensure!(
                verb > 1 || v <= u64::from(u32::MAX),
                "unsigned integer overflow on token {tok}"
            );
            nums[if verb < 2 { verb } else { verb - 1 }] = v;
            at += digits;
        }
        count += 1;
    }
    if count < 14 {
        return Ok(None);
    }
    let mut stats = [0u64; 17];
    stats.copy_from_slice(&nums[2..]);
    Ok(Some(Disk {
        major: nums[0] as u32,
        minor: nums[1] as u32,
        name: util::to_valid_utf8(name).into_owned(),
        stats,
        count: count - 3,
    }))
}

/// Parses /proc/diskstats.
pub fn parse_diskstats(text: &[u8]) -> anyhow::Result<Vec<Disk>> {
    let mut out = Vec::new();
    for line in util::scan_lines(text) {
        if let Some(d) =
            scan_line(line).with_context(|| format!("bad line {:?}", util::to_valid_utf8(line)))?
        {
            out.push(d);
        }
    }
    Ok(out)
}

/// The udev properties node_exporter uses, in this order in [`Udev::values`].
const UDEV_KEYS: [&str; 20] = [
    "ID_PATH",
    "ID_WWN",
    "ID_MODEL",
    "SCSI_IDENT_SERIAL",
    "ID_SERIAL_SHORT",
    "ID_SERIAL",
    "ID_REVISION",
    "ID_FS_TYPE",
    "ID_FS_USAGE",
    "ID_FS_UUID",
    "ID_FS_VERSION",
    "DM_NAME",
    "DM_UUID",
    "DM_VG_NAME",
    "DM_LV_NAME",
    "DM_LV_LAYER",
    "ID_ATA",
    "ID_ATA_WRITE_CACHE",
    "ID_ATA_WRITE_CACHE_ENABLED",
    "ID_ATA_ROTATION_RATE_RPM",
];
const PATH: usize = 0;
const WWN: usize = 1;
const MODEL: usize = 2;
const SCSI_SERIAL: usize = 3;
const SERIAL_SHORT: usize = 4;
const SERIAL: usize = 5;
const REVISION: usize = 6;
const FS_TYPE: usize = 7;
const DM_NAME: usize = 11;
const ATA: usize = 16;

/// The ATA families: (udev property index, name, help).
const ATA_FAMILIES: [(usize, &str, &str); 3] = [
    (
        17,
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        18,
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        19,
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
];

/// One device's udev properties (of [`UDEV_KEYS`]); the last of a repeated one wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Udev {
    pub values: [Option<String>; 20],
}

impl Udev {
    fn get(&self, i: usize) -> &str {
        self.values[i].as_deref().unwrap_or("")
    }
}

/// Parses a udev database entry: `E:KEY=value` lines are properties, others are ignored, as
/// are `E:` lines without '='.
pub fn parse_udev(text: &[u8]) -> Udev {
    let text = util::to_valid_utf8(text);
    let mut u = Udev::default();
    for line in util::scan_lines(text.as_bytes()) {
        let Some(prop) = line.strip_prefix(b"E:") else {
            continue;
        };
        let Some(eq) = prop.iter().position(|b| *b == b'=') else {
            continue;
        };
        if let Some(i) = UDEV_KEYS.iter().position(|k| k.as_bytes() == &prop[..eq]) {
            // Valid UTF-8: the whole text is, and '=' is a character boundary.
            u.values[i] = Some(String::from_utf8_lossy(&prop[eq + 1..]).into_owned());
        }
    }
    u
}

/// The 17 counter and gauge families, in /proc/diskstats order: (name, help, type, scale).
const STAT_FAMILIES: [(&str, &str, MetricType, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        MetricType::Counter,
        512.0,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        MetricType::Counter,
        0.001,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        MetricType::Counter,
        512.0,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MetricType::Counter,
        0.001,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricType::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        MetricType::Counter,
        0.001,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MetricType::Counter,
        0.001,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MetricType::Counter,
        0.001,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricType::Counter,
        0.001,
    ),
];

/// Go's `strconv.ParseFloat` for the values udev writes (decimal numbers; Rust also takes
/// "inf"/"nan" as Go does).
fn parse_float(s: &str) -> Option<f64> {
    s.parse().ok()
}

/// Turns the parsed devices (with their udev entries and rotational flags) into families.
fn render(disks: &[(&Disk, &Udev, bool)], out: &mut Vec<Family>) {
    let mut info = Family::new(
        "node_disk_info",
        "Info of /sys/block/<block_device>.",
        MetricType::Gauge,
    );
    let mut stats: Vec<Family> = STAT_FAMILIES
        .iter()
        .map(|(n, h, t, _)| Family::new(*n, *h, *t))
        .collect();
    let mut fs = Family::new(
        "node_disk_filesystem_info",
        "Info about disk filesystem.",
        MetricType::Gauge,
    );
    let mut dm = Family::new(
        "node_disk_device_mapper_info",
        "Info about disk device mapper.",
        MetricType::Gauge,
    );
    let mut ata: Vec<Family> = ATA_FAMILIES
        .iter()
        .map(|(_, n, h)| Family::new(*n, *h, MetricType::Gauge))
        .collect();
    for (d, u, rotational) in disks {
        let dev = d.name.as_str();
        let serial = [SCSI_SERIAL, SERIAL_SHORT, SERIAL]
            .into_iter()
            .map(|i| u.get(i))
            .find(|s| !s.is_empty())
            .unwrap_or("");
        info.push(
            // In label-name order: the encoder's sort then finds them sorted.
            &[
                ("device", dev),
                ("major", &d.major.to_string()),
                ("minor", &d.minor.to_string()),
                ("model", u.get(MODEL)),
                ("path", u.get(PATH)),
                ("revision", u.get(REVISION)),
                ("rotational", if *rotational { "1" } else { "0" }),
                ("serial", serial),
                ("wwn", u.get(WWN)),
            ],
            1.0,
        );
        // One label set for the device's many series.
        let set = labels(&[("device", dev)]);
        for (i, f) in stats.iter_mut().enumerate().take(d.count) {
            f.push_labels(&set, d.stats[i] as f64 * STAT_FAMILIES[i].3);
        }
        if !u.get(FS_TYPE).is_empty() {
            fs.push(
                &[
                    ("device", dev),
                    ("type", u.get(FS_TYPE)),
                    ("usage", u.get(FS_TYPE + 1)),
                    ("uuid", u.get(FS_TYPE + 2)),
                    ("version", u.get(FS_TYPE + 3)),
                ],
                1.0,
            );
        }
        if !u.get(DM_NAME).is_empty() {
            dm.push(
                &[
                    ("device", dev),
                    ("lv_layer", u.get(DM_NAME + 4)),
                    ("lv_name", u.get(DM_NAME + 3)),
                    ("name", u.get(DM_NAME)),
                    ("uuid", u.get(DM_NAME + 1)),
                    ("vg_name", u.get(DM_NAME + 2)),
                ],
                1.0,
            );
        }
        if !u.get(ATA).is_empty() {
            for (f, (i, _, _)) in ata.iter_mut().zip(ATA_FAMILIES) {
                // Absent, or not a number: skipped (node_exporter logs it).
                if let Some(v) = u.values[i].as_deref().and_then(parse_float) {
                    f.push_labels(&set, v);
                }
            }
        }
    }
    out.push(info);
    out.append(&mut stats);
    out.push(fs);
    out.push(dm);
    out.append(&mut ata);
}

/// udev entries by (major, minor), with the file version each was read from.
type UdevCache = HashMap<(u32, u32), (util::FileId, Arc<Udev>)>;

struct Diskstats {
    diskstats: HeldFile,
    sys_block: PathBuf,
    /// None: the udev directory did not exist when the collector was built.
    udev: Option<PathBuf>,
    filter: util::DeviceFilter,
    /// Filter answers by device name (names repeat on every scrape).
    ignored: Mutex<HashMap<String, bool>>,
    /// udev entries by (major, minor), with the file version they were read from.
    udev_cache: Mutex<UdevCache>,
    /// `queue/rotational` of each device, held open (None: not there when first looked for).
    rotational: Mutex<HashMap<String, Option<Attr>>>,
}

impl Diskstats {
    fn ignored(&self, name: &str) -> bool {
        let mut cache = self.ignored.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(name) {
            return *hit;
        }
        // Bounded even if a broken file invents names on every read.
        if cache.len() >= 4096 {
            cache.clear();
        }
        let hit = self.filter.ignored(name);
        cache.insert(name.to_string(), hit);
        hit
    }

    /// The device's udev entry: the cached one while its file is unchanged. Missing or
    /// unreadable: no properties.
    fn udev(&self, d: &Disk, cache: &mut UdevCache) -> Arc<Udev> {
        let Some(dir) = &self.udev else {
            return Arc::default();
        };
        let key = (d.major, d.minor);
        let path = dir.join(format!("b{}:{}", d.major, d.minor));
        let Ok(meta) = std::fs::metadata(&path) else {
            cache.remove(&key);
            return Arc::default();
        };
        let id = util::FileId::of(&meta);
        if let Some((seen, u)) = cache.get(&key) {
            if *seen == id {
                return u.clone();
            }
        }
        match util::read_bytes(&path) {
            Ok(text) => {
                let u = Arc::new(parse_udev(&text));
                cache.insert(key, (id, u.clone()));
                u
            }
            Err(_) => {
                cache.remove(&key);
                Arc::default()
            }
        }
    }

    /// `queue/rotational` is 1 (any error, or any other value: not rotational). The file is
    /// held open while the device is listed; one that fails to read is opened again next
    /// time (a device of that name may have come back).
    fn rotational(&self, name: &str, held: &mut HashMap<String, Option<Attr>>) -> bool {
        let attr = held.entry(name.to_string()).or_insert_with(|| {
            Attr::open(&self.sys_block.join(name).join("queue/rotational")).ok()
        });
        let Some(a) = attr else {
            return false;
        };
        let mut buf = [0u8; 4096];
        match a.text(&mut buf) {
            Ok(v) => v.parse::<u64>().ok() == Some(1),
            Err(_) => {
                held.remove(name);
                false
            }
        }
    }
}

impl Collector for Diskstats {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let path = self.diskstats.path();
        let text = self
            .diskstats
            .bytes()
            .with_context(|| format!("couldn't get diskstats: {}", path.display()))?;
        let disks = parse_diskstats(&text)
            .with_context(|| format!("couldn't get diskstats: {}", path.display()))?;
        let disks: Vec<&Disk> = disks.iter().filter(|d| !self.ignored(&d.name)).collect();
        let mut cache = self.udev_cache.lock().unwrap_or_else(|p| p.into_inner());
        let udev: Vec<Arc<Udev>> = disks.iter().map(|d| self.udev(d, &mut cache)).collect();
        // Forget devices that went away.
        if cache.len() > disks.len() {
            cache.retain(|k, _| disks.iter().any(|d| (d.major, d.minor) == *k));
        }
        drop(cache);
        let mut held = self.rotational.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() > disks.len() {
            held.retain(|name, _| disks.iter().any(|d| d.name == *name));
        }
        let rows: Vec<(&Disk, &Udev, bool)> = disks
            .iter()
            .zip(&udev)
            .map(|(d, u)| (*d, &**u, self.rotational(&d.name, &mut held)))
            .collect();
        render(&rows, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let f = &opts.diskstats;
    let mut exclude = f
        .device_exclude
        .clone()
        .unwrap_or_else(|| DEVICE_EXCLUDE.to_string());
    if let Some(old) = f.ignored_devices.as_deref().filter(|s| !s.is_empty()) {
        anyhow::ensure!(
            f.device_exclude.is_none(),
            "--collector.diskstats.ignored-devices and --collector.diskstats.device-exclude are mutually exclusive"
        );
        exclude = old.to_string();
    }
    let include = f.device_include.clone().unwrap_or_default();
    if !include.is_empty() {
        anyhow::ensure!(
            f.device_exclude.as_deref().unwrap_or("").is_empty(),
            "device-exclude & device-include are mutually exclusive"
        );
        exclude.clear();
    }
    let filter = util::DeviceFilter {
        exclude: util::optional_regex(&Some(exclude), "collector.diskstats.device-exclude")?,
        include: util::optional_regex(&Some(include), "collector.diskstats.device-include")?,
    };
    Ok(Box::new(Diskstats {
        diskstats: HeldFile::new(opts.procfs.join("diskstats")),
        sys_block: opts.sysfs.join("block"),
        udev: opts.udev_data.is_dir().then(|| opts.udev_data.clone()),
        filter,
        ignored: Mutex::default(),
        udev_cache: Mutex::default(),
        rotational: Mutex::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "   8       0 sda 25354637 34367663 1003346126 18492372 28444756 11134226 505697032 63877960 0 9653880 82621804
   8       1 sda1 250 0 2000 36 0 0 0 0 0 36 36
 259       0 nvme0n1 47114 4 4643973 21650 1078320 43950 39451633 1011053 0 222766 1032546
   8      16 sdb 326552 841 9657779 84 41822 2895 1972905 5007 0 60730 67070 68851 0 1925173784 11130
   8      32 sdc 126552 141 1657779 14 11822 1895 172905 1007 0 10730 17070 18851 0 125173784 11130 1555 1944
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0
 252       0 dm-0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
   1       0 short 1 2 3
";

    #[test]
    fn the_three_kernel_formats() {
        let d = parse_diskstats(STATS.as_bytes()).unwrap();
        let counts: Vec<(&str, usize)> = d.iter().map(|d| (d.name.as_str(), d.count)).collect();
        assert_eq!(
            counts,
            [
                ("sda", 11),
                ("sda1", 11),
                ("nvme0n1", 11),
                ("sdb", 15),
                ("sdc", 17),
                ("loop0", 11),
                // More fields than the kernel has today: the first 17 are read.
                ("dm-0", 17),
            ]
        );
        assert_eq!((d[3].major, d[3].minor), (8, 16));
        assert_eq!(d[4].stats[16], 1944);
        assert_eq!(d[6].stats[16], 17);
    }

    #[test]
    fn garbled_lines() {
        // A field that is no number, a number glued to text, a negative one, overflow.
        for bad in [
            "8 0 sda 1 2 x 4 5 6 7 8 9 10 11\n",
            "8 0 sda 1 2 3x 4 5 6 7 8 9 10 11\n",
            "8 0 sda -1 2 3 4 5 6 7 8 9 10 11\n",
            "8 0 sda 18446744073709551616 2 3 4 5 6 7 8 9 10 11\n",
            "4294967296 0 sda 1 2 3 4 5 6 7 8 9 10 11\n",
            "x 0 sda\n",
        ] {
            assert!(parse_diskstats(bad.as_bytes()).is_err(), "{bad:?}");
        }
        // Too short, blank, text after the 20th field: fine.
        let d = parse_diskstats(
            b"\n8 0 sda 1\n8 0 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17trailing\n",
        )
        .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].stats[16], 17);
        // Odd bytes in a name.
        let d = parse_diskstats(b"8 0 we\xffird 1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
        assert_eq!(d[0].name, "we\u{FFFD}ird");
    }

    #[test]
    fn udev_entries() {
        let u = parse_udev(
            b"S:disk/by-id/x\nE:ID_MODEL=first\nE:ID_MODEL=SAMSUNG X\nE:ID_SERIAL=S1=2\nE:NOEQUALS\nI:123\nE:ID_ATA=1\nE:ID_ATA_ROTATION_RATE_RPM=7200\r\nE:ID_ATA_WRITE_CACHE=yes\nE:ID_PA",
        );
        assert_eq!(u.get(MODEL), "SAMSUNG X");
        assert_eq!(u.get(SERIAL), "S1=2");
        assert_eq!(u.get(ATA), "1");
        assert_eq!(u.get(19), "7200");
        assert_eq!(u.get(PATH), "");
        assert_eq!(parse_udev(b"E:ID_MODEL=\xff\xfeX").get(MODEL), "\u{FFFD}X");
    }

    fn tree() -> (tempfile::TempDir, Options) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/diskstats"), STATS).unwrap();
        for (dev, rot) in [("sda", "1\n"), ("sdb", "0\n"), ("sdc", "garbage")] {
            std::fs::create_dir_all(root.join(format!("sys/block/{dev}/queue"))).unwrap();
            std::fs::write(root.join(format!("sys/block/{dev}/queue/rotational")), rot).unwrap();
        }
        std::fs::create_dir_all(root.join("udev")).unwrap();
        std::fs::write(
            root.join("udev/b8:0"),
            "E:ID_ATA=1\nE:ID_ATA_WRITE_CACHE=1\nE:ID_ATA_WRITE_CACHE_ENABLED=x\nE:ID_SERIAL=long\nE:ID_SERIAL_SHORT=short\nE:ID_FS_TYPE=ext4\nE:ID_FS_UUID=u-1\n",
        )
        .unwrap();
        std::fs::write(
            root.join("udev/b252:0"),
            "E:DM_NAME=vg-root\nE:DM_UUID=LVM-x\nE:DM_LV_NAME=root\n",
        )
        .unwrap();
        let opts = Options::from_flags([
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
            format!("--path.udev.data={}", root.join("udev").display()),
        ])
        .unwrap();
        (d, opts)
    }

    fn series(c: &dyn Collector) -> Vec<String> {
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let mut v = Vec::new();
        for f in out {
            for s in f.samples {
                let mut l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                l.sort();
                v.push(format!("{} {} {}", f.name, l.join(","), s.value));
            }
        }
        v.sort();
        v
    }

    #[test]
    fn collector_with_udev_and_sysfs() {
        let (d, opts) = tree();
        let c = build(&opts).unwrap();
        let got = series(&*c);
        let has = |s: &str| assert!(got.iter().any(|g| g == s), "{s}\n{got:#?}");
        has("node_disk_info device=sda,major=8,minor=0,model=,path=,revision=,rotational=1,serial=short,wwn= 1");
        has("node_disk_info device=sdc,major=8,minor=32,model=,path=,revision=,rotational=0,serial=,wwn= 1");
        has("node_disk_read_bytes_total device=sda 513713216512");
        has("node_disk_read_time_seconds_total device=sda 18492.372");
        has("node_disk_io_now device=sda 0");
        has("node_disk_discarded_sectors_total device=sdb 1925173784");
        has("node_disk_flush_requests_total device=sdc 1555");
        has("node_disk_filesystem_info device=sda,type=ext4,usage=,uuid=u-1,version= 1");
        has("node_disk_device_mapper_info device=dm-0,lv_layer=,lv_name=root,name=vg-root,uuid=LVM-x,vg_name= 1");
        has("node_disk_ata_write_cache device=sda 1");
        // Not a number: skipped. Absent: skipped.
        assert!(!got
            .iter()
            .any(|g| g.starts_with("node_disk_ata_write_cache_enabled")));
        assert!(!got
            .iter()
            .any(|g| g.starts_with("node_disk_ata_rotation_rate_rpm")));
        // Excluded by default: partitions and loop devices. 14-field lines have no discards.
        assert!(!got
            .iter()
            .any(|g| g.contains("device=sda1") || g.contains("device=loop0")));
        assert!(!got
            .iter()
            .any(|g| g.starts_with("node_disk_discards_completed_total device=sda ")));
        assert!(!got
            .iter()
            .any(|g| g.starts_with("node_disk_flush_requests_total device=sdb ")));
        // A udev entry rewritten (a new file): read again. queue/rotational written: re-read.
        let root = d.path();
        std::fs::write(root.join("udev/new"), "E:ID_MODEL=M2\n").unwrap();
        std::fs::rename(root.join("udev/new"), root.join("udev/b8:0")).unwrap();
        std::fs::write(root.join("sys/block/sda/queue/rotational"), "0\n").unwrap();
        let got = series(&*c);
        assert!(got.contains(&"node_disk_info device=sda,major=8,minor=0,model=M2,path=,revision=,rotational=0,serial=,wwn= 1".to_string()), "{got:#?}");
        // The udev entry removed: empty labels.
        std::fs::remove_file(root.join("udev/b8:0")).unwrap();
        let got = series(&*c);
        assert!(got.contains(&"node_disk_info device=sda,major=8,minor=0,model=,path=,revision=,rotational=0,serial=,wwn= 1".to_string()));
        // diskstats garbled: the collector fails; gone: fails too.
        std::fs::write(root.join("proc/diskstats"), "8 0 sda 1 x\n").unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::remove_file(root.join("proc/diskstats")).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
    }

    #[test]
    fn no_udev_directory_and_filter_flags() {
        let (d, _) = tree();
        let root = d.path();
        let flags = |extra: &[&str]| {
            let mut v = vec![
                format!("--path.procfs={}", root.join("proc").display()),
                format!("--path.sysfs={}", root.join("sys").display()),
                format!("--path.udev.data={}", root.join("nope").display()),
            ];
            v.extend(extra.iter().map(|s| s.to_string()));
            Options::from_flags(v).unwrap()
        };
        let c = build(&flags(&[])).unwrap();
        let got = series(&*c);
        assert!(got.contains(&"node_disk_info device=sda,major=8,minor=0,model=,path=,revision=,rotational=1,serial=,wwn= 1".to_string()));
        assert!(!got.iter().any(|g| g.starts_with("node_disk_ata")));
        // An include replaces the default exclude.
        let c = build(&flags(&["--collector.diskstats.device-include=^sda1$"])).unwrap();
        let devs: std::collections::BTreeSet<String> = series(&*c)
            .iter()
            .filter_map(|s| {
                s.split("device=")
                    .nth(1)?
                    .split([',', ' '])
                    .next()
                    .map(String::from)
            })
            .collect();
        assert_eq!(devs.into_iter().collect::<Vec<_>>(), ["sda1"]);
        // The 1.5 name.
        let c = build(&flags(&["--collector.diskstats.ignored-devices=^sd"])).unwrap();
        assert!(!series(&*c).iter().any(|s| s.contains("device=sd")));
        assert!(build(&flags(&[
            "--collector.diskstats.ignored-devices=^sd",
            "--collector.diskstats.device-exclude=^x"
        ]))
        .is_err());
        assert!(build(&flags(&[
            "--collector.diskstats.device-include=^sd",
            "--collector.diskstats.device-exclude=^x"
        ]))
        .is_err());
        assert!(build(&flags(&["--collector.diskstats.device-exclude=("])).is_err());
    }
}
