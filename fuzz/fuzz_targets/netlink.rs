//! The netlink reply reader and message parsers (collect/netlink.rs): a datagram as the
//! kernel would send it (seed corpus: real link, address, neighbour, ethtool and sock_diag
//! dumps), read with the sequence number and port id of its first header so its messages are
//! parsed rather than skipped as stale. Any input must give items or an error, never a panic,
//! a hang or an out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodetune::collect::netlink;

fuzz_target!(|data: &[u8]| {
    let seq = netlink::u32_at(data, 8).unwrap_or(0);
    let pid = netlink::u32_at(data, 12).unwrap_or(0);
    // ethtool replies carry the family id the resolver returned as their type.
    let family = netlink::u16_at(data, 4).unwrap_or(0);
    let _ = netlink::read_datagram(data, seq, pid, |m| {
        let _ = netlink::parse_link(m);
        let _ = netlink::parse_neigh(m);
        let _ = netlink::parse_family_id(m);
        let _ = netlink::parse_linkmodes(family, m);
        for a in netlink::attrs(m.body, 0) {
            let Ok((_, p)) = a else { break };
            for n in netlink::attrs(p, 0) {
                if n.is_err() {
                    break;
                }
            }
        }
        Ok(())
    });
});
