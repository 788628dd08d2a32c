//! The one netlink client of the collectors (netdev, netclass, arp, listen_queue): a socket
//! per collection, a request, and a checked read of the reply. Every message of the reply must
//! carry the request's sequence number and this socket's port id (others are stale and are
//! skipped), `NLMSG_ERROR` with a non-zero code fails the request with that errno, an error code
//! in `NLMSG_DONE` (the dump callback failed) does too, `NLMSG_OVERRUN` fails it, and a
//! truncated or garbled message or attribute fails it as malformed data rather than being half
//! read. A dump the kernel marks `NLM_F_DUMP_INTR` (the table changed while it was being
//! written, so the reply may miss or repeat entries) is thrown away and asked for again, at
//! most [`ATTEMPTS`] times in all, then the collector fails; so is a datagram larger than the
//! receive buffer (which grows to fit it).
//!
//! The reply parsers are pure functions of bytes ([`read_datagram`], [`attrs`],
//! [`parse_link`], [`parse_neigh`], [`parse_linkmodes`]), fuzzed in `fuzz/fuzz_targets/netlink.rs`.
//!
//! Why our own and not the netlink-packet-route/netlink-sys crates: measured in
//! docs/metrics.md ("netlink"): same answers, less CPU per scrape and a smaller binary.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::socket::{
    getsockname, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
/// Attribute type bits (without NLA_F_NESTED / NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Set on nested attributes in requests (strictly validated families require it).
pub const NLA_F_NESTED: u16 = 0x8000;

/// Tries of one dump (the first and the retries) before an interrupted dump fails.
pub const ATTEMPTS: usize = 3;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_GETNEIGH: u16 = 30;
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
pub const GENL_ID_CTRL: u16 = 0x10;

/// Which netlink family a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Route,
    SockDiag,
    Generic,
}

/// One message of a reply: its type, flags and the bytes after the header.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub body: &'a [u8],
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink {what}"),
    )
}

pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Attributes (type without flag bits, payload) from `body[start..]`. A header that claims
/// more than is left, or less than itself, makes the item an error; the iterator ends after it.
pub fn attrs(body: &[u8], start: usize) -> Attrs<'_> {
    Attrs {
        b: body.get(start..).unwrap_or(&[]),
        failed: start > body.len(),
    }
}

pub struct Attrs<'a> {
    b: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = io::Result<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            self.failed = false;
            self.b = &[];
            return Some(Err(malformed("attribute")));
        }
        if self.b.is_empty() {
            return None;
        }
        let (Some(len), Some(kind)) = (u16_at(self.b, 0), u16_at(self.b, 2)) else {
            self.b = &[];
            return Some(Err(malformed("attribute")));
        };
        let len = usize::from(len);
        if len < 4 || len > self.b.len() {
            self.b = &[];
            return Some(Err(malformed("attribute")));
        }
        let payload = &self.b[4..len];
        self.b = self.b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((kind & NLA_TYPE_MASK, payload)))
    }
}

/// A NUL-terminated (or not) string attribute, as Go's netlink decoder reads it.
pub fn attr_str(p: &[u8]) -> String {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

fn attr_u32(p: &[u8]) -> io::Result<u32> {
    u32_at(p, 0).ok_or_else(|| malformed("u32 attribute"))
}

fn attr_u8(p: &[u8]) -> io::Result<u8> {
    p.first().copied().ok_or_else(|| malformed("u8 attribute"))
}

/// What one datagram of a reply said about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More datagrams follow.
    More,
    /// The reply is complete (NLMSG_DONE of a dump, or the ACK of a request).
    Done,
    /// The kernel flagged the dump inconsistent (NLM_F_DUMP_INTR): ask again.
    Interrupted,
}

/// Reads the messages of one datagram of the reply to request `seq` on port `pid`, handing each
/// data message to `each`. Stale messages (another sequence number or port) are skipped.
pub fn read_datagram(
    data: &[u8],
    seq: u32,
    pid: u32,
    mut each: impl FnMut(Message<'_>) -> io::Result<()>,
) -> io::Result<Step> {
    let mut off = 0;
    let mut interrupted = false;
    while off < data.len() {
        let rest = &data[off..];
        let (Some(len), Some(kind), Some(flags), Some(mseq), Some(mpid)) = (
            u32_at(rest, 0),
            u16_at(rest, 4),
            u16_at(rest, 6),
            u32_at(rest, 8),
            u32_at(rest, 12),
        ) else {
            return Err(malformed("message header"));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(malformed("message length"));
        }
        let body = &rest[NLMSG_HDRLEN..len];
        off += align4(len);
        if mseq != seq || mpid != pid {
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            interrupted = true;
        }
        match kind {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                let code = u32_at(body, 0).ok_or_else(|| malformed("error message"))? as i32;
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                }
                // An ACK ends a request; in a dump it is unexpected and ends it too.
                return Ok(if interrupted {
                    Step::Interrupted
                } else {
                    Step::Done
                });
            }
            NLMSG_DONE => {
                // The dump callback's result; kernels before 4.x send no payload.
                if let Some(code) = u32_at(body, 0) {
                    let code = code as i32;
                    if code < 0 {
                        return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                    }
                }
                return Ok(if interrupted {
                    Step::Interrupted
                } else {
                    Step::Done
                });
            }
            NLMSG_OVERRUN => return Err(malformed("reply (overrun)")),
            _ => each(Message { kind, flags, body })?,
        }
    }
    Ok(if interrupted {
        Step::Interrupted
    } else {
        Step::More
    })
}

/// Sequence numbers: unique per process, so a reply can only match its own request.
static SEQ: AtomicU32 = AtomicU32::new(1);

/// A netlink socket, opened for one collection.
pub struct Socket {
    fd: OwnedFd,
    /// This socket's port id, known after the first send (the kernel binds then).
    pid: Option<u32>,
    buf: Vec<u8>,
}

impl Socket {
    pub fn open(protocol: Protocol) -> io::Result<Socket> {
        let proto = match protocol {
            Protocol::Route => SockProtocol::NetlinkRoute,
            Protocol::SockDiag => SockProtocol::NetlinkSockDiag,
            Protocol::Generic => SockProtocol::NetlinkGeneric,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            proto,
        )?;
        Ok(Socket {
            fd,
            pid: None,
            // Dump parts are at most 32 KiB unless one message is larger; that grows it.
            buf: vec![0u8; 32 * 1024],
        })
    }

    fn send(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<u32> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let len = NLMSG_HDRLEN + align4(body.len());
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes()); // port id: filled in by the kernel
        req.extend_from_slice(body);
        req.resize(len, 0);
        let n = send(self.fd.as_raw_fd(), &req, MsgFlags::empty())?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        if self.pid.is_none() {
            let addr: NetlinkAddr = getsockname(self.fd.as_raw_fd())?;
            self.pid = Some(addr.pid());
        }
        Ok(seq)
    }

    /// One exchange: sends the request and reads until it is done. `Ok(false)`: interrupted.
    fn exchange(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
        each: &mut dyn FnMut(Message<'_>) -> io::Result<()>,
    ) -> io::Result<bool> {
        let seq = self.send(kind, flags, body)?;
        let pid = self.pid.unwrap_or(0);
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "netlink socket closed",
                ));
            }
            if n > self.buf.len() {
                // The datagram did not fit and its tail is lost: grow and ask again.
                self.buf.resize(n, 0);
                return Ok(false);
            }
            match read_datagram(&self.buf[..n], seq, pid, &mut *each)? {
                Step::More => {}
                Step::Done => return Ok(true),
                Step::Interrupted => return Ok(false),
            }
        }
    }

    /// Dumps a table: `kind` with NLM_F_DUMP and `body` (the family header and attributes).
    /// `parse` turns each data message into an item or skips it (`None`); its error fails
    /// the dump. An interrupted dump starts again, up to [`ATTEMPTS`] times.
    pub fn dump<T>(
        &mut self,
        kind: u16,
        body: &[u8],
        mut parse: impl FnMut(Message<'_>) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for _ in 0..ATTEMPTS {
            out.clear();
            let mut each = |m: Message<'_>| {
                if let Some(t) = parse(m)? {
                    out.push(t);
                }
                Ok(())
            };
            if self.exchange(kind, NLM_F_DUMP, body, &mut each)? {
                return Ok(out);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            format!("netlink dump interrupted {ATTEMPTS} times in a row (the table kept changing)"),
        ))
    }

    /// A single request with an ACK; returns the parsed replies (usually one).
    pub fn request<T>(
        &mut self,
        kind: u16,
        body: &[u8],
        mut parse: impl FnMut(Message<'_>) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        let mut each = |m: Message<'_>| {
            if let Some(t) = parse(m)? {
                out.push(t);
            }
            Ok(())
        };
        self.exchange(kind, NLM_F_ACK, body, &mut each)?;
        Ok(out)
    }
}

/// Sockets kept between dumps, as many of each protocol as have run at once: a scrape's dumps
/// then cost no socket(), getsockname() and close(), nor a fresh receive buffer. The daemon
/// enters its network namespace before any is opened, so a kept socket never speaks for
/// another namespace.
struct Kept(std::sync::Mutex<Vec<(Protocol, Socket)>>);

static KEPT: Kept = Kept(std::sync::Mutex::new(Vec::new()));

/// Most sockets kept, all protocols together.
const MAX_KEPT: usize = 8;

impl Kept {
    /// Dumps with a kept socket of `protocol`, or a new one. A socket whose dump failed is
    /// closed: a reply it did not read to the end must not meet the next request.
    fn dump<T>(
        &self,
        protocol: Protocol,
        kind: u16,
        body: &[u8],
        parse: impl FnMut(Message<'_>) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let lock = || self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = {
            let mut k = lock();
            k.iter()
                .position(|(p, _)| *p == protocol)
                .map(|i| k.swap_remove(i).1)
        };
        let mut socket = match kept {
            Some(s) => s,
            None => Socket::open(protocol)?,
        };
        let r = socket.dump(kind, body, parse);
        if r.is_ok() {
            let mut k = lock();
            if k.len() < MAX_KEPT {
                k.push((protocol, socket));
            }
        }
        r
    }
}

/// Dumps with a kept socket (see [`Kept`]).
pub fn dump<T>(
    protocol: Protocol,
    kind: u16,
    body: &[u8],
    parse: impl FnMut(Message<'_>) -> io::Result<Option<T>>,
) -> io::Result<Vec<T>> {
    KEPT.dump(protocol, kind, body, parse)
}

/// Dumps the sockets of one address family and protocol whose state is in `states` (a bit
/// per TCP state number) over NETLINK_SOCK_DIAG; `parse` gets each struct inet_diag_msg.
pub fn inet_diag<T>(
    family: u8,
    protocol: u8,
    states: u32,
    mut parse: impl FnMut(&[u8]) -> io::Result<Option<T>>,
) -> io::Result<Vec<T>> {
    // struct inet_diag_req_v2: family, protocol, ext, pad, states, then an all-zero struct
    // inet_diag_sockid (ports, addresses, interface, cookie: 48 bytes).
    let mut req = [0u8; 56];
    req[0] = family;
    req[1] = protocol;
    req[4..8].copy_from_slice(&states.to_ne_bytes());
    dump(Protocol::SockDiag, SOCK_DIAG_BY_FAMILY, &req, |m| {
        if m.kind != SOCK_DIAG_BY_FAMILY {
            return Ok(None);
        }
        parse(m.body)
    })
}

// ---- rtnetlink links ---------------------------------------------------------------------

const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_STATS: u16 = 7;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKMODE: u16 = 17;
const IFLA_IFALIAS: u16 = 20;
const IFLA_STATS64: u16 = 23;
const IFLA_GROUP: u16 = 27;
const IFLA_CARRIER: u16 = 33;
const IFLA_CARRIER_CHANGES: u16 = 35;
const IFLA_CARRIER_UP_COUNT: u16 = 47;
const IFLA_CARRIER_DOWN_COUNT: u16 = 48;
const IFLA_PROP_LIST: u16 = 52;
const IFLA_ALT_IFNAME: u16 = 53;

/// A link-layer address (IFLA_ADDRESS / IFLA_BROADCAST): at most 32 bytes, kept inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HwAddr {
    bytes: [u8; 32],
    len: u8,
}

impl HwAddr {
    fn new(p: &[u8]) -> Option<HwAddr> {
        let mut a = HwAddr::default();
        a.bytes.get_mut(..p.len())?.copy_from_slice(p);
        a.len = p.len() as u8;
        Some(a)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// As Go's net.HardwareAddr prints it: lower-case hex pairs joined by ':'; empty if none.
    pub fn to_go_string(&self) -> String {
        let mut s = String::with_capacity(usize::from(self.len) * 3);
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }
}

/// One RTM_NEWLINK message: struct ifinfomsg and the attributes the collectors read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    /// ifi_type (ARPHRD_*).
    pub kind: u16,
    pub index: u32,
    /// ifi_flags (IFF_*).
    pub flags: u32,
    pub name: Option<String>,
    pub address: Option<HwAddr>,
    pub broadcast: Option<HwAddr>,
    pub mtu: Option<u32>,
    /// IFLA_LINK: the lower device's index (absent when it is the device itself).
    pub link: Option<u32>,
    pub txqlen: Option<u32>,
    pub operstate: Option<u8>,
    pub linkmode: Option<u8>,
    pub alias: Option<String>,
    pub group: Option<u32>,
    pub carrier: Option<u8>,
    pub carrier_changes: Option<u32>,
    pub carrier_up: Option<u32>,
    pub carrier_down: Option<u32>,
    pub alt_names: Vec<String>,
    /// IFLA_STATS64 (struct rtnl_link_stats64, 24 leading u64 counters) or IFLA_STATS
    /// (32-bit, widened) when the kernel sends no 64-bit block.
    pub stats: Option<[u64; 24]>,
}

/// Parses an RTM_NEWLINK message; other message types are skipped (`None`).
pub fn parse_link(m: Message<'_>) -> io::Result<Option<Link>> {
    if m.kind != RTM_NEWLINK {
        return Ok(None);
    }
    let b = m.body;
    // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
    let (Some(kind), Some(index), Some(flags)) = (u16_at(b, 2), u32_at(b, 4), u32_at(b, 8)) else {
        return Err(malformed("ifinfomsg"));
    };
    if b.len() < 16 {
        return Err(malformed("ifinfomsg"));
    }
    let mut l = Link {
        kind,
        index,
        flags,
        ..Link::default()
    };
    let (mut s64, mut s32) = (None, None);
    for a in attrs(b, 16) {
        let (t, p) = a?;
        match t {
            IFLA_IFNAME => l.name = Some(attr_str(p)),
            IFLA_ADDRESS => l.address = Some(HwAddr::new(p).ok_or_else(|| malformed("address"))?),
            IFLA_BROADCAST => {
                l.broadcast = Some(HwAddr::new(p).ok_or_else(|| malformed("address"))?)
            }
            IFLA_MTU => l.mtu = Some(attr_u32(p)?),
            IFLA_LINK => l.link = Some(attr_u32(p)?),
            IFLA_TXQLEN => l.txqlen = Some(attr_u32(p)?),
            IFLA_OPERSTATE => l.operstate = Some(attr_u8(p)?),
            IFLA_LINKMODE => l.linkmode = Some(attr_u8(p)?),
            IFLA_IFALIAS => l.alias = Some(attr_str(p)),
            IFLA_GROUP => l.group = Some(attr_u32(p)?),
            IFLA_CARRIER => l.carrier = Some(attr_u8(p)?),
            IFLA_CARRIER_CHANGES => l.carrier_changes = Some(attr_u32(p)?),
            IFLA_CARRIER_UP_COUNT => l.carrier_up = Some(attr_u32(p)?),
            IFLA_CARRIER_DOWN_COUNT => l.carrier_down = Some(attr_u32(p)?),
            IFLA_PROP_LIST => {
                for a in attrs(p, 0) {
                    let (t, p) = a?;
                    if t == IFLA_ALT_IFNAME {
                        l.alt_names.push(attr_str(p));
                    }
                }
            }
            IFLA_STATS64 => s64 = Some(p),
            IFLA_STATS => s32 = Some(p),
            _ => {}
        }
    }
    l.stats = match (s64, s32) {
        (Some(p), _) => Some(std::array::from_fn(|i| u64_at(p, i * 8).unwrap_or(0))),
        (None, Some(p)) => Some(std::array::from_fn(|i| {
            u64::from(u32_at(p, i * 4).unwrap_or(0))
        })),
        (None, None) => None,
    };
    Ok(Some(l))
}

/// Every link of the reader's network namespace (struct ifinfomsg all zero: every family).
pub fn links() -> io::Result<Vec<Link>> {
    dump(Protocol::Route, RTM_GETLINK, &[0u8; 16], parse_link)
}

// ---- rtnetlink neighbours ----------------------------------------------------------------

/// One RTM_NEWNEIGH message: struct ndmsg's family, interface and NUD state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neigh {
    pub family: u8,
    pub index: u32,
    pub state: u16,
}

pub const NUD_NOARP: u16 = 0x40;

pub fn parse_neigh(m: Message<'_>) -> io::Result<Option<Neigh>> {
    if m.kind != RTM_NEWNEIGH {
        return Ok(None);
    }
    let b = m.body;
    // struct ndmsg: family u8, pad u8, pad u16, ifindex i32, state u16, flags u8, type u8.
    let (Some(&family), Some(index), Some(state)) = (b.first(), u32_at(b, 4), u16_at(b, 8)) else {
        return Err(malformed("ndmsg"));
    };
    if b.len() < 12 {
        return Err(malformed("ndmsg"));
    }
    // The attributes are not needed, but must be well-formed.
    for a in attrs(b, 12) {
        a?;
    }
    Ok(Some(Neigh {
        family,
        index,
        state,
    }))
}

/// The neighbour table of one address family (AF_INET for ARP).
pub fn neighbours(family: u8) -> io::Result<Vec<Neigh>> {
    let mut req = [0u8; 12];
    req[0] = family;
    dump(Protocol::Route, RTM_GETNEIGH, &req, parse_neigh)
}

// ---- generic netlink: ethtool link modes -------------------------------------------------

const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const ETHTOOL_MSG_LINKMODES_GET: u8 = 4;
const ETHTOOL_A_LINKMODES_HEADER: u16 = 1;
const ETHTOOL_A_LINKMODES_SPEED: u16 = 5;
const ETHTOOL_A_LINKMODES_DUPLEX: u16 = 6;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;
const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;
const ETHTOOL_A_HEADER_FLAGS: u16 = 3;
const ETHTOOL_FLAG_COMPACT_BITSETS: u32 = 1;

fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

/// Parses CTRL_CMD_NEWFAMILY's family id.
pub fn parse_family_id(m: Message<'_>) -> io::Result<Option<u16>> {
    if m.kind != GENL_ID_CTRL {
        return Ok(None);
    }
    for a in attrs(m.body, 4) {
        let (t, p) = a?;
        if t == CTRL_ATTR_FAMILY_ID {
            return Ok(Some(u16_at(p, 0).ok_or_else(|| malformed("family id"))?));
        }
    }
    Ok(None)
}

/// One ETHTOOL_MSG_LINKMODES_GET_REPLY: the device and its speed (Mb/s) and duplex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkModes {
    pub index: u32,
    pub name: String,
    /// ETHTOOL_A_LINKMODES_SPEED as sent (SPEED_UNKNOWN is 0xffffffff); 0 if absent.
    pub speed: u32,
    /// ETHTOOL_A_LINKMODES_DUPLEX (0 half, 1 full, 0xff unknown); 0 if absent.
    pub duplex: u8,
}

pub fn parse_linkmodes(family: u16, m: Message<'_>) -> io::Result<Option<LinkModes>> {
    if m.kind != family {
        return Ok(None);
    }
    let mut lm = LinkModes::default();
    // struct genlmsghdr: cmd u8, version u8, reserved u16.
    if m.body.len() < 4 {
        return Err(malformed("genlmsghdr"));
    }
    for a in attrs(m.body, 4) {
        let (t, p) = a?;
        match t {
            ETHTOOL_A_LINKMODES_HEADER => {
                for a in attrs(p, 0) {
                    let (t, p) = a?;
                    match t {
                        ETHTOOL_A_HEADER_DEV_INDEX => lm.index = attr_u32(p)?,
                        ETHTOOL_A_HEADER_DEV_NAME => lm.name = attr_str(p),
                        _ => {}
                    }
                }
            }
            ETHTOOL_A_LINKMODES_SPEED => lm.speed = attr_u32(p)?,
            ETHTOOL_A_LINKMODES_DUPLEX => lm.duplex = attr_u8(p)?,
            _ => {}
        }
    }
    Ok(Some(lm))
}

/// Every device's link modes from ethtool's generic netlink family. `Ok(None)` when the
/// kernel has no ethtool netlink interface (before 5.6, or built without it).
pub fn linkmodes() -> io::Result<Option<Vec<LinkModes>>> {
    let mut s = Socket::open(Protocol::Generic)?;
    let mut req = vec![CTRL_CMD_GETFAMILY, 1, 0, 0];
    push_attr(&mut req, CTRL_ATTR_FAMILY_NAME, b"ethtool\0");
    let family = match s.request(GENL_ID_CTRL, &req, parse_family_id) {
        Ok(ids) => match ids.first() {
            Some(id) => *id,
            None => return Err(malformed("family reply")),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = Vec::new();
    push_attr(
        &mut header,
        ETHTOOL_A_HEADER_FLAGS,
        &ETHTOOL_FLAG_COMPACT_BITSETS.to_ne_bytes(),
    );
    let mut req = vec![ETHTOOL_MSG_LINKMODES_GET, 1, 0, 0];
    push_attr(&mut req, ETHTOOL_A_LINKMODES_HEADER | NLA_F_NESTED, &header);
    match s.dump(family, &req, |m| parse_linkmodes(family, m)) {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) | Some(libc::ENOENT)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A message as the kernel writes it: header, body, padding.
    pub fn msg(kind: u16, flags: u16, seq: u32, pid: u32, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&pid.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    pub fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_attr(&mut v, kind, payload);
        v
    }

    fn link_body(index: u32, name: &str, extra: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[2..4].copy_from_slice(&772u16.to_ne_bytes());
        b[4..8].copy_from_slice(&index.to_ne_bytes());
        b[8..12].copy_from_slice(&0x10049u32.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        b.extend(attr(IFLA_IFNAME, &n));
        b.extend(attr(IFLA_MTU, &65536u32.to_ne_bytes()));
        b.extend(attr(IFLA_ADDRESS, &[0, 0x1a, 0, 0, 0, 0xff]));
        b.extend_from_slice(extra);
        b
    }

    fn collect(data: &[u8], seq: u32, pid: u32) -> (io::Result<Step>, Vec<Link>) {
        let mut out = Vec::new();
        let r = read_datagram(data, seq, pid, |m| {
            if let Some(l) = parse_link(m)? {
                out.push(l);
            }
            Ok(())
        });
        (r, out)
    }

    #[test]
    fn a_dump_with_stale_and_foreign_messages() {
        let mut d = msg(RTM_NEWLINK, 2, 7, 99, &link_body(1, "lo", &[]));
        // Stale (earlier request) and another port's: skipped.
        d.extend(msg(RTM_NEWLINK, 2, 6, 99, &link_body(2, "old", &[])));
        d.extend(msg(RTM_NEWLINK, 2, 7, 98, &link_body(3, "other", &[])));
        d.extend(msg(NLMSG_NOOP, 0, 7, 99, &[]));
        let (r, links) = collect(&d, 7, 99);
        assert_eq!(r.unwrap(), Step::More);
        assert_eq!(links.len(), 1);
        let l = &links[0];
        assert_eq!(
            (l.index, l.kind, l.flags, l.name.as_deref(), l.mtu),
            (1, 772, 0x10049, Some("lo"), Some(65536))
        );
        assert_eq!(l.address.unwrap().to_go_string(), "00:1a:00:00:00:ff");
        assert_eq!(l.stats, None);
        let done = msg(NLMSG_DONE, 2, 7, 99, &0i32.to_ne_bytes());
        assert_eq!(collect(&done, 7, 99).0.unwrap(), Step::Done);
        // A DONE of another request does not end this one.
        let other = msg(NLMSG_DONE, 2, 8, 99, &0i32.to_ne_bytes());
        assert_eq!(collect(&other, 7, 99).0.unwrap(), Step::More);
    }

    #[test]
    fn errors_interruptions_and_garbage() {
        // NLMSG_ERROR with -EPERM, and a dump whose callback failed with -EMSGSIZE.
        let e = msg(NLMSG_ERROR, 0, 1, 5, &(-libc::EPERM).to_ne_bytes());
        let err = collect(&e, 1, 5).0.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        let e = msg(NLMSG_DONE, 2, 1, 5, &(-libc::EMSGSIZE).to_ne_bytes());
        assert_eq!(
            collect(&e, 1, 5).0.unwrap_err().raw_os_error(),
            Some(libc::EMSGSIZE)
        );
        // An ACK ends a request; DONE without payload (old kernels) ends a dump.
        let ack = msg(NLMSG_ERROR, 0, 1, 5, &[0u8; 20]);
        assert_eq!(collect(&ack, 1, 5).0.unwrap(), Step::Done);
        assert_eq!(
            collect(&msg(NLMSG_DONE, 2, 1, 5, &[]), 1, 5).0.unwrap(),
            Step::Done
        );
        // A truncated error message, an overrun.
        assert!(collect(&msg(NLMSG_ERROR, 0, 1, 5, &[1]), 1, 5).0.is_err());
        assert!(collect(&msg(NLMSG_OVERRUN, 0, 1, 5, &[]), 1, 5).0.is_err());
        // NLM_F_DUMP_INTR anywhere in the reply: ask again.
        let mut d = msg(
            RTM_NEWLINK,
            2 | NLM_F_DUMP_INTR,
            1,
            5,
            &link_body(1, "lo", &[]),
        );
        assert_eq!(collect(&d, 1, 5).0.unwrap(), Step::Interrupted);
        d.extend(msg(NLMSG_DONE, 2, 1, 5, &0i32.to_ne_bytes()));
        assert_eq!(collect(&d, 1, 5).0.unwrap(), Step::Interrupted);
        // Headers that lie about their length, a short header, a message cut short.
        let good = msg(RTM_NEWLINK, 2, 1, 5, &link_body(1, "lo", &[]));
        for bad in [
            {
                let mut b = good.clone();
                b[0..4].copy_from_slice(&4u32.to_ne_bytes());
                b
            },
            {
                let mut b = good.clone();
                b[0..4].copy_from_slice(&10_000u32.to_ne_bytes());
                b
            },
            good[..10].to_vec(),
            good[..good.len() - 8].to_vec(),
        ] {
            assert!(collect(&bad, 1, 5).0.is_err());
        }
        // A garbled attribute inside a good message; a body shorter than ifinfomsg.
        let mut body = link_body(1, "lo", &[]);
        body.extend_from_slice(&[200, 0, 3, 0, b'x', 0, 0, 0]);
        assert!(collect(&msg(RTM_NEWLINK, 2, 1, 5, &body), 1, 5).0.is_err());
        assert!(collect(&msg(RTM_NEWLINK, 2, 1, 5, &[0u8; 12]), 1, 5)
            .0
            .is_err());
        let mut body = link_body(1, "lo", &[]);
        body.extend(attr(IFLA_MTU, &[1, 2]));
        assert!(collect(&msg(RTM_NEWLINK, 2, 1, 5, &body), 1, 5).0.is_err());
        let body = link_body(1, "lo", &attr(IFLA_ADDRESS, &[0u8; 40]));
        assert!(collect(&msg(RTM_NEWLINK, 2, 1, 5, &body), 1, 5).0.is_err());
    }

    #[test]
    fn link_attributes_and_stats() {
        let mut extra = Vec::new();
        let mut stats = Vec::new();
        for i in 1..=24u64 {
            stats.extend_from_slice(&i.to_ne_bytes());
        }
        extra.extend(attr(IFLA_STATS64, &stats));
        extra.extend(attr(IFLA_STATS, &[0u8; 96]));
        extra.extend(attr(IFLA_OPERSTATE, &[6]));
        extra.extend(attr(IFLA_LINKMODE, &[1]));
        extra.extend(attr(IFLA_CARRIER, &[1]));
        extra.extend(attr(IFLA_CARRIER_CHANGES, &3u32.to_ne_bytes()));
        extra.extend(attr(IFLA_CARRIER_UP_COUNT, &2u32.to_ne_bytes()));
        extra.extend(attr(IFLA_CARRIER_DOWN_COUNT, &1u32.to_ne_bytes()));
        extra.extend(attr(IFLA_IFALIAS, b"uplink\0"));
        extra.extend(attr(IFLA_LINK, &9u32.to_ne_bytes()));
        extra.extend(attr(IFLA_TXQLEN, &1000u32.to_ne_bytes()));
        extra.extend(attr(IFLA_GROUP, &0u32.to_ne_bytes()));
        let mut props = attr(IFLA_ALT_IFNAME, b"enp0s3\0");
        props.extend(attr(IFLA_ALT_IFNAME, b"x\xffy\0"));
        extra.extend(attr(IFLA_PROP_LIST | NLA_F_NESTED, &props));
        let d = msg(RTM_NEWLINK, 2, 1, 5, &link_body(4, "eth0", &extra));
        let (r, links) = collect(&d, 1, 5);
        r.unwrap();
        let l = &links[0];
        assert_eq!(l.stats.unwrap()[0], 1);
        assert_eq!(l.stats.unwrap()[23], 24);
        assert_eq!(
            (l.operstate, l.linkmode, l.carrier, l.carrier_changes),
            (Some(6), Some(1), Some(1), Some(3))
        );
        assert_eq!((l.carrier_up, l.carrier_down), (Some(2), Some(1)));
        assert_eq!(l.alias.as_deref(), Some("uplink"));
        assert_eq!((l.link, l.txqlen, l.group), (Some(9), Some(1000), Some(0)));
        assert_eq!(l.alt_names, ["enp0s3", "x\u{fffd}y"]);
        // 32-bit stats are widened when there is no 64-bit block.
        let mut s32 = Vec::new();
        for i in 1..=24u32 {
            s32.extend_from_slice(&i.to_ne_bytes());
        }
        let d = msg(
            RTM_NEWLINK,
            2,
            1,
            5,
            &link_body(4, "eth0", &attr(IFLA_STATS, &s32)),
        );
        assert_eq!(collect(&d, 1, 5).1[0].stats.unwrap()[2], 3);
    }

    #[test]
    fn neighbours_and_linkmodes() {
        let mut nd = vec![2u8, 0, 0, 0];
        nd.extend_from_slice(&3u32.to_ne_bytes());
        nd.extend_from_slice(&NUD_NOARP.to_ne_bytes());
        nd.extend_from_slice(&[0, 1]);
        nd.extend(attr(1, &[10, 0, 0, 1]));
        let m = Message {
            kind: RTM_NEWNEIGH,
            flags: 2,
            body: &nd,
        };
        assert_eq!(
            parse_neigh(m).unwrap(),
            Some(Neigh {
                family: 2,
                index: 3,
                state: NUD_NOARP
            })
        );
        assert!(parse_neigh(Message {
            body: &nd[..8],
            ..m
        })
        .is_err());
        let mut bad = nd.clone();
        bad.extend_from_slice(&[9, 0]);
        assert!(parse_neigh(Message { body: &bad, ..m }).is_err());

        let mut hdr = attr(ETHTOOL_A_HEADER_DEV_INDEX, &2u32.to_ne_bytes());
        hdr.extend(attr(ETHTOOL_A_HEADER_DEV_NAME, b"veth0\0"));
        let mut body = vec![4u8, 1, 0, 0];
        body.extend(attr(ETHTOOL_A_LINKMODES_HEADER | NLA_F_NESTED, &hdr));
        body.extend(attr(ETHTOOL_A_LINKMODES_SPEED, &10000u32.to_ne_bytes()));
        body.extend(attr(ETHTOOL_A_LINKMODES_DUPLEX, &[1]));
        let m = Message {
            kind: 30,
            flags: 2,
            body: &body,
        };
        assert_eq!(
            parse_linkmodes(30, m).unwrap(),
            Some(LinkModes {
                index: 2,
                name: "veth0".into(),
                speed: 10000,
                duplex: 1
            })
        );
        assert_eq!(parse_linkmodes(31, m).unwrap(), None);
        assert!(parse_linkmodes(
            30,
            Message {
                body: &body[..2],
                ..m
            }
        )
        .is_err());
        let mut fam = vec![1u8, 2, 0, 0];
        fam.extend(attr(CTRL_ATTR_FAMILY_NAME, b"ethtool\0"));
        fam.extend(attr(CTRL_ATTR_FAMILY_ID, &[30, 0]));
        let m = Message {
            kind: GENL_ID_CTRL,
            flags: 0,
            body: &fam,
        };
        assert_eq!(
            parse_family_id(m).unwrap(),
            Some(u16::from_ne_bytes([30, 0]))
        );
    }

    #[test]
    fn attributes_never_overrun() {
        assert!(attrs(&[1, 2, 3], 5).next().unwrap().is_err());
        assert!(attrs(&[], 0).next().is_none());
        let a: Vec<_> = attrs(&[8, 0, 1, 0, 1, 2, 3, 4, 3, 0], 0).collect();
        assert!(a[0].is_ok() && a[1].is_err() && a.len() == 2);
        // A zero-length attribute would loop forever if accepted.
        let a: Vec<_> = attrs(&[0, 0, 1, 0, 0, 0, 0, 0], 0).collect();
        assert_eq!(a.len(), 1);
        assert!(a[0].is_err());
    }

    /// Writes the raw datagrams of this namespace's link, address, neighbour and ethtool
    /// dumps to $NODETUNE_NETLINK_CORPUS (the fuzz target's seed corpus):
    /// `NODETUNE_NETLINK_CORPUS=fuzz/corpus/netlink ip netns exec NS cargo test -p nodetune
    /// --lib -- --ignored capture_seed_corpus`.
    #[test]
    #[ignore = "a tool, not a check: writes the netlink fuzz seed corpus when run by hand"]
    fn capture_seed_corpus() {
        let dir = std::env::var_os("NODETUNE_NETLINK_CORPUS")
            .expect("set NODETUNE_NETLINK_CORPUS to the corpus directory");
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let capture = |s: &mut Socket, name: &str, kind: u16, flags: u16, body: &[u8]| {
            let seq = s.send(kind, flags, body).unwrap();
            let pid = s.pid.unwrap();
            for i in 0.. {
                let n = recv(s.fd.as_raw_fd(), &mut s.buf, MsgFlags::empty()).unwrap();
                std::fs::write(dir.join(format!("{name}-{i}")), &s.buf[..n]).unwrap();
                if read_datagram(&s.buf[..n], seq, pid, |_| Ok(())).unwrap() != Step::More {
                    break;
                }
            }
        };
        let mut s = Socket::open(Protocol::Route).unwrap();
        capture(&mut s, "link", RTM_GETLINK, NLM_F_DUMP, &[0u8; 16]);
        capture(&mut s, "addr", RTM_GETADDR, NLM_F_DUMP, &[0u8; 8]);
        let mut nd = [0u8; 12];
        nd[0] = libc::AF_INET as u8;
        capture(&mut s, "neigh", RTM_GETNEIGH, NLM_F_DUMP, &nd);
        let mut g = Socket::open(Protocol::Generic).unwrap();
        let mut req = vec![CTRL_CMD_GETFAMILY, 1, 0, 0];
        push_attr(&mut req, CTRL_ATTR_FAMILY_NAME, b"ethtool\0");
        capture(&mut g, "genl-family", GENL_ID_CTRL, NLM_F_ACK, &req);
        let family = g.request(GENL_ID_CTRL, &req, parse_family_id).unwrap()[0];
        let mut header = Vec::new();
        push_attr(&mut header, ETHTOOL_A_HEADER_FLAGS, &1u32.to_ne_bytes());
        let mut req = vec![ETHTOOL_MSG_LINKMODES_GET, 1, 0, 0];
        push_attr(&mut req, ETHTOOL_A_LINKMODES_HEADER | NLA_F_NESTED, &header);
        capture(&mut g, "ethtool-linkmodes", family, NLM_F_DUMP, &req);
        let mut d = Socket::open(Protocol::SockDiag).unwrap();
        let mut req = [0u8; 56];
        req[0] = libc::AF_INET as u8;
        req[1] = libc::IPPROTO_TCP as u8;
        req[4..8].copy_from_slice(&(1u32 << 10).to_ne_bytes());
        capture(&mut d, "sock-diag", SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &req);
    }

    #[test]
    fn the_seed_corpus_parses_cleanly() {
        // Real dumps (fuzz/corpus/netlink, captured with capture_seed_corpus).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/netlink");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut links = 0;
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&path).unwrap();
            let (seq, pid) = (u32_at(&data, 8).unwrap(), u32_at(&data, 12).unwrap());
            let family = u16_at(&data, 4).unwrap();
            // Types overlap across netlink families (GENL_ID_CTRL is RTM_NEWLINK's number):
            // each dump goes to its own parser, as on its own socket.
            read_datagram(&data, seq, pid, |m| {
                if name.starts_with("link") {
                    let l = parse_link(m)?.unwrap();
                    assert!(l.name.is_some() && l.stats.is_some());
                    links += 1;
                } else if name.starts_with("neigh") {
                    parse_neigh(m)?.unwrap();
                } else if name.starts_with("genl-family") {
                    parse_family_id(m)?.unwrap();
                } else if name.starts_with("ethtool") {
                    parse_linkmodes(family, m)?.unwrap();
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(links >= 3, "{links}");
    }

    #[test]
    fn live_dumps_of_this_namespace() {
        // Whatever this sandbox has: the dumps work and loopback is there (if any link is).
        let links = links().unwrap();
        if let Some(lo) = links.iter().find(|l| l.name.as_deref() == Some("lo")) {
            assert_eq!(lo.kind, 772);
            assert!(lo.stats.is_some());
        }
        neighbours(libc::AF_INET as u8).unwrap();
        let _ = linkmodes().unwrap();
    }

    #[test]
    fn sockets_are_kept_after_a_dump_and_closed_after_a_failed_one() {
        let pool = Kept(std::sync::Mutex::new(Vec::new()));
        let kept = || {
            let k = pool.0.lock().unwrap();
            k.iter()
                .map(|(p, s)| (*p, s.fd.as_raw_fd()))
                .collect::<Vec<_>>()
        };
        let first = pool
            .dump(Protocol::Route, RTM_GETLINK, &[0u8; 16], parse_link)
            .unwrap();
        let after_first = kept();
        assert_eq!(after_first.len(), 1);
        assert_eq!(after_first[0].0, Protocol::Route);
        // The next dump takes the same socket and puts it back.
        let second = pool
            .dump(Protocol::Route, RTM_GETLINK, &[0u8; 16], parse_link)
            .unwrap();
        assert_eq!(first.len(), second.len());
        assert_eq!(kept(), after_first);
        // A request the kernel refuses (sock_diag for an address family it has no handler
        // for) fails, and its socket is not kept.
        let mut req = [0u8; 56];
        req[0] = libc::AF_UNIX as u8 + 100;
        let refused = pool.dump(Protocol::SockDiag, SOCK_DIAG_BY_FAMILY, &req, |_| {
            Ok(Some(()))
        });
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(kept(), after_first);
    }
}
