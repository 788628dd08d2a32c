//! What a client controls in a scrape request: the query string (collect[]/exclude[]) and
//! the Accept header (text format or OpenMetrics), Accept-Encoding (gzip or not).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodetune::expose::{
    encode::Format,
    http::{accepts_gzip, filter},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (query, accept) = text.split_once('\n').unwrap_or((text, ""));
    let enabled = ["cpu", "meminfo", "netdev", "textfile", "hwmon"];
    let _ = filter(Some(query), &enabled);
    let _ = Format::negotiate(Some(accept)).content_type();
    let _ = accepts_gzip(Some(accept));
});
