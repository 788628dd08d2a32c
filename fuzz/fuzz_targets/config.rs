//! /etc/nodetune/nodetune.toml: any input gives a configuration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = nodetune::config::Config::parse("nodetune.toml", text) {
        let _ = format!("{e:#}");
    }
});
