//! Profile files: parsing (spans, every error reported), the key catalogue, includes from the
//! built-in library, conditions and value checks. Any input must give a profile or errors,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodetune::profile::avail::{parse_config, Avail};
use nodetune::profile::{resolve_text, Facts, Library};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let facts = Facts {
        kernel: "6.1.0-18-amd64".into(),
        memory_bytes: 16 << 30,
        cpus: 8,
        virtualized: true,
        // A kernel without fq, so [congestion] if-unavailable and the skip/refuse paths are
        // fuzzed too.
        avail: Avail {
            config: Some((
                "fuzz".into(),
                parse_config(
                    "CONFIG_NET_SCH_FQ_CODEL=y
",
                ),
            )),
            ..Avail::default()
        },
    };
    let library = Library::new(Vec::new());
    if let Err(errors) = resolve_text(&library, "fuzz", text, &facts) {
        // Rendering the errors (file:line:column, hints) is part of the path too.
        let _ = errors.to_string();
    }
});
