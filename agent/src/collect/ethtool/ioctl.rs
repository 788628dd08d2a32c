//! The SIOCETHTOOL ioctl side of the ethtool collector: driver info, string-set sizes, stat
//! names and values, and legacy link settings, on an AF_INET datagram socket (which acts on
//! the caller's network namespace).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

const ETHTOOL_GSET: u32 = 0x01;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

nix::ioctl_readwrite_bad!(siocethtool, libc::SIOCETHTOOL, libc::ifreq);

/// What `ethtool -i` shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrvInfo {
    pub driver: String,
    pub version: String,
    pub firmware: String,
    pub bus_info: String,
    pub erom: String,
}

/// Legacy `struct ethtool_cmd` fields node_exporter reads (32-bit link-mode masks).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkInfo {
    pub supported: u32,
    pub advertising: u32,
    pub autoneg: u8,
}

/// The ethtool operations the collector needs, behind a trait so the naming and filter
/// rules are tested with a fake.
pub trait Ethtool: Send + Sync {
    /// Opens what one scrape's calls share (a socket for the real thing).
    fn open(&self) -> io::Result<Box<dyn Handle>>;
}

/// One scrape's ethtool calls.
pub trait Handle {
    fn driver_info(&self, dev: &str) -> io::Result<DrvInfo>;
    /// Number of statistics (ETH_SS_STATS strings); 0 when the driver has none.
    fn n_stats(&self, dev: &str) -> io::Result<usize>;
    fn stat_names(&self, dev: &str, n: usize) -> io::Result<Vec<String>>;
    fn stats(&self, dev: &str, n: usize) -> io::Result<Vec<u64>>;
    fn link_info(&self, dev: &str) -> io::Result<LinkInfo>;
}

/// The kernel, through SIOCETHTOOL.
pub struct Ioctl;

impl Ethtool for Ioctl {
    fn open(&self) -> io::Result<Box<dyn Handle>> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        Ok(Box::new(Sock(fd)))
    }
}

struct Sock(OwnedFd);

/// struct ethtool_drvinfo.
#[repr(C)]
struct RawDrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// struct ethtool_cmd (ETHTOOL_GSET).
#[repr(C)]
#[derive(Default)]
struct RawCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Writes a u32 into a u64-backed buffer at a byte offset (native endian).
fn put_u32(buf: &mut [u64], off: usize, v: u32) {
    let bytes = bytes_mut(buf);
    bytes[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(buf: &[u64], off: usize) -> u32 {
    let b = bytes(buf);
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn bytes(buf: &[u64]) -> &[u8] {
    // SAFETY: any u64 slice is a valid, aligned byte slice of 8× its length.
    unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, buf.len() * 8) }
}

fn bytes_mut(buf: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above, and the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) }
}

impl Sock {
    /// SIOCETHTOOL with `data` as the command buffer; `data` must be sized for the command.
    fn call(&self, dev: &str, data: *mut libc::c_void) -> io::Result<()> {
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        let name = dev.as_bytes();
        if name.is_empty() || name.len() >= ifr.ifr_name.len() {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = data as *mut libc::c_char;
        // SAFETY: ifr is valid and the buffer behind `data` is sized for its command by
        // every caller below.
        unsafe { siocethtool(self.0.as_raw_fd(), &mut ifr) }.map_err(io::Error::from)?;
        Ok(())
    }

    fn raw_drvinfo(&self, dev: &str) -> io::Result<RawDrvInfo> {
        // SAFETY: RawDrvInfo is plain data; all-zero is valid.
        let mut di: RawDrvInfo = unsafe { std::mem::zeroed() };
        di.cmd = ETHTOOL_GDRVINFO;
        self.call(dev, &mut di as *mut RawDrvInfo as *mut libc::c_void)?;
        Ok(di)
    }
}

impl Handle for Sock {
    fn driver_info(&self, dev: &str) -> io::Result<DrvInfo> {
        let di = self.raw_drvinfo(dev)?;
        Ok(DrvInfo {
            driver: cstr(&di.driver),
            version: cstr(&di.version),
            firmware: cstr(&di.fw_version),
            bus_info: cstr(&di.bus_info),
            erom: cstr(&di.erom_version),
        })
    }

    fn n_stats(&self, dev: &str) -> io::Result<usize> {
        // struct ethtool_sset_info { cmd, reserved, u64 sset_mask, u32 data[] }: one set asked.
        let mut buf = [0u64; 3];
        put_u32(&mut buf, 0, ETHTOOL_GSSET_INFO);
        buf[1] = 1 << ETH_SS_STATS;
        match self.call(dev, buf.as_mut_ptr() as *mut libc::c_void) {
            // The kernel clears the mask bit when the driver has no such set.
            Ok(()) if buf[1] & (1 << ETH_SS_STATS) == 0 => Ok(0),
            Ok(()) => Ok(get_u32(&buf, 16) as usize),
            // Very old kernels lack GSSET_INFO: driver info carries the count too.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                Ok(self.raw_drvinfo(dev)?.n_stats as usize)
            }
            Err(e) => Err(e),
        }
    }

    fn stat_names(&self, dev: &str, n: usize) -> io::Result<Vec<String>> {
        // struct ethtool_gstrings { cmd, string_set, len, u8 data[len * 32] }.
        let len = 12 + n * ETH_GSTRING_LEN;
        let mut buf = vec![0u64; len.div_ceil(8)];
        put_u32(&mut buf, 0, ETHTOOL_GSTRINGS);
        put_u32(&mut buf, 4, ETH_SS_STATS);
        put_u32(&mut buf, 8, n as u32);
        self.call(dev, buf.as_mut_ptr() as *mut libc::c_void)?;
        // The kernel may report fewer strings than asked for if the set shrank meanwhile.
        let got = (get_u32(&buf, 8) as usize).min(n);
        Ok(bytes(&buf)[12..12 + got * ETH_GSTRING_LEN]
            .chunks(ETH_GSTRING_LEN)
            .map(cstr)
            .collect())
    }

    fn stats(&self, dev: &str, n: usize) -> io::Result<Vec<u64>> {
        // struct ethtool_stats { cmd, n_stats, u64 data[n_stats] }: data starts at byte 8.
        let mut buf = vec![0u64; 1 + n];
        put_u32(&mut buf, 0, ETHTOOL_GSTATS);
        put_u32(&mut buf, 4, n as u32);
        self.call(dev, buf.as_mut_ptr() as *mut libc::c_void)?;
        let got = (get_u32(&buf, 4) as usize).min(n);
        Ok(buf[1..1 + got].to_vec())
    }

    fn link_info(&self, dev: &str) -> io::Result<LinkInfo> {
        let mut cmd = RawCmd {
            cmd: ETHTOOL_GSET,
            ..Default::default()
        };
        self.call(dev, &mut cmd as *mut RawCmd as *mut libc::c_void)?;
        Ok(LinkInfo {
            supported: cmd.supported,
            advertising: cmd.advertising,
            autoneg: cmd.autoneg,
        })
    }
}
