//! exporter-toolkit web-config.yml, then basic-auth headers against what it configured.
//! Certificate paths point into an empty directory, so TLS sections fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The last line, if it starts with "Authorization: ", is a header to check.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (yaml, header) = match text.rsplit_once('\n') {
        Some((y, h)) if h.starts_with("Authorization: ") => (y, Some(&h[15..])),
        _ => (text, None),
    };
    let path = std::path::Path::new("/nonexistent-nodetune-fuzz/web.yml");
    match nodetune::expose::webconfig::parse(path, yaml) {
        Ok(settings) => {
            let _ = settings.authorized(header);
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
});
