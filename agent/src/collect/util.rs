//! Small helpers shared by collectors: bounded file reads and number parsing.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Reads a whole (small) file with context in the error.
pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads a sysfs attribute with one raw `read()` into a small buffer: some hwmon drivers
/// return EAGAIN forever to buffered readers that retry, and attributes are short.
pub fn read_attr(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Reads a sysfs attribute as a number.
pub fn read_num(path: &Path) -> Option<f64> {
    read_attr(path).ok()?.parse::<f64>().ok()
}
