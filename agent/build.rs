//! Release builds place the functions a running daemon executes next to each other.
//!
//! Most of the daemon's resident memory is its own code. After start-up it drops its code
//! pages, and the kernel maps back 64 KiB around each page that a scrape or tick touches.
//! Scattered over the 6 MB text, the ~800 functions of the steady state pull in about 3.9 MB
//! of it. Placed together, they pull in about 2.1 MB (docs/benchmarks.md). They go in one
//! output section, `.text.steady`, laid out by the linker script `steady.ld`, which
//! `tests/bench/steady-code` generates: exact names first, then the same names with their
//! hashes as wildcards, for builds whose hashes differ. The script only orders sections and
//! places nothing else, so a stale list costs memory, never a failed or wrong build.
//!
//! Used only where the linker is known to take the script: release builds for the x86_64 GNU
//! target, linked either by Rust's default (rust-lld, from Rust 1.90) or by zig through
//! cargo-zigbuild (the packages); with any other linker configured, not at all.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=steady.ld");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let known_linker = match std::env::var("RUSTC_LINKER") {
        // cargo-zigbuild's wrapper (zigcc-<target>-<hash>.sh).
        Ok(linker) => linker.contains("zigcc"),
        Err(_) => links_with_lld(&env("RUSTC")),
    };
    if env("PROFILE") != "release" || env("TARGET") != "x86_64-unknown-linux-gnu" || !known_linker {
        return;
    }
    let script = format!("{}/steady.ld", env("CARGO_MANIFEST_DIR"));
    println!("cargo:rustc-link-arg-bin=nodetune=-Wl,-T,{script}");
}

/// Rust 1.90 and later link the x86_64 GNU target with rust-lld by default.
fn links_with_lld(rustc: &str) -> bool {
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
