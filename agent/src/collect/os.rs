//! os collector: `node_os_info`, `node_os_version` and `node_os_support_end_timestamp_seconds`
//! from the first of `{rootfs}/etc/os-release`, `{rootfs}/usr/lib/os-release` and
//! `{rootfs}/System/Library/CoreServices/SystemVersion.plist` that exists, as node_exporter
//! 1.12 reads them: os-release with hashicorp/go-envparse's rules (quotes, escapes, `export`,
//! comments; a line it rejects fails the collector), the version as the leading
//! `major[.minor]` of VERSION_ID, SUPPORT_END as a UTC date. No file at all: no data.
//!
//! The parsed file is kept while its inode, size and modification time stay the same: a
//! scrape costs one stat.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// The os-release fields node_exporter uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Release {
    pub name: String,
    pub id: String,
    pub id_like: String,
    pub pretty_name: String,
    pub variant: String,
    pub variant_id: String,
    pub version: String,
    pub version_id: String,
    pub version_codename: String,
    pub build_id: String,
    pub image_id: String,
    pub image_version: String,
    pub support_end: String,
    /// The leading `major[.minor]` of VERSION_ID as a number (0 when there is none).
    pub version_number: f64,
    /// SUPPORT_END as seconds since the epoch.
    pub support_end_seconds: Option<i64>,
}

/// go-envparse's whitespace (`bytes.TrimSpace`), ASCII part.
fn trim(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Four hex digits.
fn hex4(s: &[u8]) -> anyhow::Result<u32> {
    anyhow::ensure!(s.len() >= 4, "incomplete hex sequence");
    let mut r = 0;
    for &d in &s[..4] {
        let v = (d as char)
            .to_digit(16)
            .with_context(|| format!("invalid hex character: {:?}", d as char))?;
        r = r * 16 + v;
    }
    Ok(r)
}

/// One line as go-envparse v0.1.0 reads it: Ok(None) for a blank or comment line.
fn parse_line(line: &[u8]) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let line = trim(line);
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let eq = line.iter().position(|b| *b == b'=').context("missing =")?;
    let mut key = trim(&line[..eq]);
    let value = trim(&line[eq + 1..]);
    if key.len() > "export ".len() {
        key = key.strip_prefix(b"export ").unwrap_or(key);
    }
    let first = *key.first().context("empty key")?;
    anyhow::ensure!(
        first.is_ascii_alphabetic() || first == b'_',
        "key must start with [A-Za-z_] but found {:?}",
        first as char
    );
    if let Some(bad) = key[1..]
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/')))
    {
        anyhow::bail!(
            "key characters must be [A-Za-z0-9/_.] but found {:?}",
            *bad as char
        );
    }
    #[derive(PartialEq)]
    enum Mode {
        Normal,
        Double,
        Single,
        Escape,
    }
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    // Length of `out` up to its last significant byte (trailing blanks before a comment go).
    let mut sig = 0;
    let mut mode = Mode::Normal;
    let mut i = 0;
    while i < value.len() {
        let v = value[i];
        anyhow::ensure!(v >= 32, "0x{v:02x} is an invalid value character");
        if v > 127 {
            anyhow::ensure!(
                mode != Mode::Escape,
                "multibyte characters disallowed in escape sequences"
            );
            // go-envparse marks the position before the byte as significant.
            sig = out.len();
            out.push(v);
            i += 1;
            continue;
        }
        match mode {
            Mode::Normal => match v {
                b'"' => mode = Mode::Double,
                b'\'' => mode = Mode::Single,
                b'#' => {
                    out.truncate(sig);
                    return Ok(Some((key.to_vec(), out)));
                }
                b' ' | b'\t' => out.push(v),
                _ => {
                    out.push(v);
                    sig = out.len();
                }
            },
            Mode::Double => match v {
                b'"' => mode = Mode::Normal,
                b'\\' => mode = Mode::Escape,
                _ => {
                    out.push(v);
                    sig = out.len();
                }
            },
            Mode::Single => match v {
                b'\'' => mode = Mode::Normal,
                _ => {
                    out.push(v);
                    sig = out.len();
                }
            },
            Mode::Escape => {
                match v {
                    b'"' | b'\\' | b'/' => out.push(v),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let mut r = hex4(&value[i + 1..])?;
                        i += 4;
                        if (0xd800..0xe000).contains(&r) {
                            anyhow::ensure!(
                                value.len() >= i + 6
                                    && value[i + 1] == b'\\'
                                    && value[i + 2] == b'u',
                                "incomplete Unicode surrogate pair"
                            );
                            let r2 = hex4(&value[i + 3..])?;
                            i += 6;
                            // utf16.DecodeRune: U+FFFD unless a high then a low surrogate.
                            r = if (0xd800..0xdc00).contains(&r) && (0xdc00..0xe000).contains(&r2) {
                                0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00)
                            } else {
                                0xfffd
                            };
                        }
                        let c = char::from_u32(r).unwrap_or('\u{FFFD}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => anyhow::bail!("invalid escape sequence: {:?}", v as char),
                }
                sig = out.len();
                mode = Mode::Double;
            }
        }
        i += 1;
    }
    match mode {
        Mode::Normal => Ok(Some((key.to_vec(), out))),
        Mode::Double => anyhow::bail!("unmatched \""),
        Mode::Single => anyhow::bail!("unmatched '"),
        Mode::Escape => anyhow::bail!("incomplete escape sequence"),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Go's `time.Parse(time.DateOnly, s)` (YYYY-MM-DD, a real date) as a Unix time.
fn parse_date(s: &str) -> anyhow::Result<i64> {
    let b = s.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    anyhow::ensure!(ok, "parsing time {s:?} as \"2006-01-02\": cannot parse");
    let (y, m, d): (i64, i64, i64) = (s[..4].parse()?, s[5..7].parse()?, s[8..].parse()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    anyhow::ensure!(
        (1..=12).contains(&m) && d >= 1 && d <= days_in[(m - 1) as usize],
        "parsing time {s:?}: day or month out of range"
    );
    Ok(days_from_civil(y, m, d) * 86400)
}

/// The leading `[0-9]+\.?[0-9]*` of VERSION_ID as a number.
fn version_number(v: &str) -> f64 {
    let int = v.bytes().take_while(u8::is_ascii_digit).count();
    if int == 0 {
        return 0.0;
    }
    let mut end = int;
    if v.as_bytes().get(int) == Some(&b'.') {
        end += 1 + v[int + 1..].bytes().take_while(u8::is_ascii_digit).count();
    }
    v[..end].parse().unwrap_or(0.0)
}

/// Parses an os-release file.
pub fn parse_os_release(text: &[u8]) -> anyhow::Result<Release> {
    let mut r = Release::default();
    for (n, line) in super::util::scan_lines(text).enumerate() {
        let Some((key, value)) =
            parse_line(line).with_context(|| format!("error on line {}", n + 1))?
        else {
            continue;
        };
        let value = super::util::to_valid_utf8(&value).into_owned();
        let field = match key.as_slice() {
            b"NAME" => &mut r.name,
            b"ID" => &mut r.id,
            b"ID_LIKE" => &mut r.id_like,
            b"PRETTY_NAME" => &mut r.pretty_name,
            b"VARIANT" => &mut r.variant,
            b"VARIANT_ID" => &mut r.variant_id,
            b"VERSION" => &mut r.version,
            b"VERSION_ID" => &mut r.version_id,
            b"VERSION_CODENAME" => &mut r.version_codename,
            b"BUILD_ID" => &mut r.build_id,
            b"IMAGE_ID" => &mut r.image_id,
            b"IMAGE_VERSION" => &mut r.image_version,
            b"SUPPORT_END" => &mut r.support_end,
            _ => continue,
        };
        *field = value;
    }
    finish(r)
}

/// Derives the version number and the support end.
fn finish(mut r: Release) -> anyhow::Result<Release> {
    r.version_number = version_number(&r.version_id);
    if !r.support_end.is_empty() {
        r.support_end_seconds = Some(parse_date(&r.support_end)?);
    }
    Ok(r)
}

/// The text of each `<key>` and `<string>` directly in the plist's `<dict>`.
fn plist_dict(text: &str) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut strings = Vec::new();
    let Some(start) = text.find("<dict>") else {
        return (keys, strings);
    };
    let mut rest = &text[start + "<dict>".len()..];
    let mut depth = 0usize;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt..];
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        match tag {
            "dict" | "array" => depth += 1,
            "/dict" | "/array" if depth == 0 => break,
            "/dict" | "/array" => depth -= 1,
            "key" | "string" if depth == 0 => {
                let end = rest.find('<').unwrap_or(rest.len());
                let unescaped = rest[..end]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&");
                if tag == "key" {
                    keys.push(unescaped);
                } else {
                    strings.push(unescaped);
                }
            }
            _ => {}
        }
    }
    (keys, strings)
}

/// macOS's SystemVersion.plist, as node_exporter reads it (keys matched to strings by
/// position).
pub fn parse_plist(text: &[u8]) -> anyhow::Result<Release> {
    let text = super::util::to_valid_utf8(text);
    anyhow::ensure!(text.contains("<plist"), "not a plist");
    let (keys, strings) = plist_dict(&text);
    let mut r = Release::default();
    for (i, k) in keys.iter().enumerate() {
        let field = match k.as_str() {
            "ProductVersion" => &mut r.version_id,
            "ProductName" => &mut r.name,
            "ProductBuildVersion" => &mut r.build_id,
            _ => continue,
        };
        // node_exporter indexes the strings by the key's position (and would panic past the
        // end); nodetune leaves the field empty.
        *field = strings.get(i).cloned().unwrap_or_default();
    }
    r.version = r.version_id.clone();
    finish(r)
}

const FILES: [&str; 3] = [
    "/etc/os-release",
    "/usr/lib/os-release",
    "/System/Library/CoreServices/SystemVersion.plist",
];

struct OsRelease {
    /// `--path.rootfs` joined as node_exporter does (string concatenation) with each file.
    paths: Vec<PathBuf>,
    cache: Mutex<Option<(usize, util::FileId, Arc<Release>)>>,
}

impl OsRelease {
    fn load(&self) -> anyhow::Result<Option<Arc<Release>>> {
        for (i, path) in self.paths.iter().enumerate() {
            let meta = match std::fs::metadata(path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let id = util::FileId::of(&meta);
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, seen, r)) = &*cache {
                if *at == i && *seen == id {
                    return Ok(Some(r.clone()));
                }
            }
            let text = match super::util::read_bytes(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let r = if i == 2 {
                parse_plist(&text)
            } else {
                parse_os_release(&text)
            }
            .with_context(|| format!("parsing {}", path.display()))?;
            let r = Arc::new(r);
            *cache = Some((i, id, r.clone()));
            return Ok(Some(r));
        }
        Ok(None)
    }
}

/// Families for one release.
fn render(r: &Release, out: &mut Vec<Family>) {
    let mut info = Family::new(
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        MetricType::Gauge,
    );
    info.push(
        &[
            ("build_id", &r.build_id),
            ("id", &r.id),
            ("id_like", &r.id_like),
            ("image_id", &r.image_id),
            ("image_version", &r.image_version),
            ("name", &r.name),
            ("pretty_name", &r.pretty_name),
            ("variant", &r.variant),
            ("variant_id", &r.variant_id),
            ("version", &r.version),
            ("version_codename", &r.version_codename),
            ("version_id", &r.version_id),
        ],
        1.0,
    );
    out.push(info);
    if r.version_number > 0.0 {
        let mut v = Family::new(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            MetricType::Gauge,
        );
        v.push(
            &[("id", &r.id), ("id_like", &r.id_like), ("name", &r.name)],
            r.version_number,
        );
        out.push(v);
    }
    if let Some(t) = r.support_end_seconds {
        out.push(Family::single(
            "node_os_support_end_timestamp_seconds",
            "Metric containing the end-of-life date timestamp of the OS.",
            MetricType::Gauge,
            t as f64,
        ));
    }
}

impl Collector for OsRelease {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let r = self.load()?.context("no os-release file found")?;
        render(&r, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    use std::os::unix::ffi::OsStrExt;
    let root = opts.rootfs.as_os_str().as_bytes();
    Ok(Box::new(OsRelease {
        paths: FILES
            .iter()
            .map(|f| PathBuf::from(std::ffi::OsStr::from_bytes(&[root, f.as_bytes()].concat())))
            .collect(),
        cache: Mutex::new(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    #[test]
    fn debian_and_ubuntu() {
        let r = parse_os_release(DEBIAN.as_bytes()).unwrap();
        assert_eq!(r.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(r.version_codename, "bookworm");
        assert_eq!(r.version_number, 12.0);
        let r = parse_os_release(b"VERSION_ID=\"20.04\"\nID_LIKE=debian\nSUPPORT_END=2025-05-31\n")
            .unwrap();
        assert_eq!(r.version_number, 20.04);
        assert_eq!(r.support_end_seconds, Some(1748649600));
    }

    #[test]
    fn envparse_rules() {
        let one = |l: &str| {
            parse_line(l.as_bytes()).map(|o| {
                o.map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            })
        };
        let kv = |k: &str, v: &str| Some((k.to_string(), v.to_string()));
        assert_eq!(one("  # comment").unwrap(), None);
        assert_eq!(one("   ").unwrap(), None);
        assert_eq!(
            one("KEY = This is ok! # c").unwrap(),
            kv("KEY", "This is ok!")
        );
        assert_eq!(one("export FOO=bar").unwrap(), kv("FOO", "bar"));
        assert_eq!(one("export=bar").unwrap(), kv("export", "bar"));
        assert_eq!(
            one(r#"A="x \"q\" \\ \/ \n\t\u00e9\ud83d\ude00""#).unwrap(),
            kv("A", "x \"q\" \\ / \n\t\u{e9}\u{1F600}")
        );
        assert_eq!(
            one(r#"A='single # "x"' # c"#).unwrap(),
            kv("A", "single # \"x\"")
        );
        assert_eq!(one(r#"A=a"b c"d"#).unwrap(), kv("A", "ab cd"));
        assert_eq!(one("A=").unwrap(), kv("A", ""));
        assert_eq!(one("a.b/c_1=x").unwrap(), kv("a.b/c_1", "x"));
        assert_eq!(
            one(r#"A="\ud800x""#)
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "incomplete Unicode surrogate pair"
        );
        assert_eq!(one(r#"A="\ud800\u0041""#).unwrap(), kv("A", "\u{FFFD}"));
        assert_eq!(one("A=é x").unwrap(), kv("A", "é x"));
        // Before a comment go-envparse cuts a trailing multibyte character's last byte (it
        // marks the position before each such byte as significant); the label then has
        // U+FFFD where node_exporter would refuse the invalid UTF-8.
        assert_eq!(
            parse_line("A=xé #c".as_bytes()).unwrap().unwrap().1,
            b"x\xc3"
        );
        assert_eq!(
            parse_os_release("ID=xé #c".as_bytes()).unwrap().id,
            "x\u{FFFD}"
        );
        for bad in [
            "NOEQUALS",
            "=v",
            "1A=v",
            "A-B=v",
            r#"A="open"#,
            "A='open",
            r#"A="\q""#,
            "A=\"\\",
            "A=\x01",
            r#"A="\u12""#,
            r#"A="\é""#,
        ] {
            assert!(one(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions_and_dates() {
        assert_eq!(version_number("3.18.4"), 3.18);
        assert_eq!(version_number("12"), 12.0);
        assert_eq!(version_number("7."), 7.0);
        assert_eq!(version_number("rolling"), 0.0);
        assert_eq!(version_number(""), 0.0);
        assert_eq!(parse_date("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date("2000-02-29").unwrap(), 951782400);
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-1-01",
            "2023-01-01T00:00",
            "soon",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        // A bad SUPPORT_END fails the file, as in node_exporter.
        assert!(parse_os_release(b"SUPPORT_END=never\n").is_err());
    }

    #[test]
    fn plist() {
        let r = parse_plist(
            br#"<?xml version="1.0"?><plist version="1.0"><dict>
<key>ProductBuildVersion</key><string>23A344</string>
<key>ProductName</key><string>macOS</string>
<key>ProductVersion</key><string>14.0</string></dict></plist>"#,
        )
        .unwrap();
        assert_eq!(
            (
                r.name.as_str(),
                r.version_id.as_str(),
                r.build_id.as_str(),
                r.version_number
            ),
            ("macOS", "14.0", "23A344", 14.0)
        );
    }

    #[test]
    fn lookup_order_cache_and_no_file() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let opts = Options::from_flags([format!("--path.rootfs={}", root.display())]).unwrap();
        let c = build(&opts).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/os-release"), "ID=lib\nVERSION_ID=1.5\n").unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(out[0].samples[0].labels[1].1, "lib");
        assert_eq!(out[1].samples[0].value, 1.5);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=etc\n").unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(out[0].samples[0].labels[1].1, "etc");
        // No version: no node_os_version.
        assert_eq!(out.len(), 1);
        // Rewritten (new size): read again; garbled: the collector fails.
        std::fs::write(root.join("etc/os-release"), "ID=etc2\n").unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(out[0].samples[0].labels[1].1, "etc2");
        std::fs::write(root.join("etc/os-release"), "ID=\"etc\n").unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
    }
}
