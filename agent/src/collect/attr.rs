//! Per-device attributes and /proc tables kept open between scrapes, and directory listings
//! compared cheaply.
//!
//! A big host has hundreds of CPUs, sensors and NICs, each with a handful of sysfs attributes
//! read on every scrape. Opening, reading and closing each one is three system calls and a
//! path walk; sysfs (and procfs' seq_files) regenerate an attribute when it is read again from
//! offset 0, so an [`Attr`] opens its file once and re-reads it with one `pread(fd, 0)`.
//!
//! What that costs: each open sysfs attribute pins its seq_file page in the kernel (about
//! 4.3 kB of unreclaimable slab, charged to the service's cgroup, measured on kernel 6.18) and
//! one file descriptor. Both are bounded: at most [`MAX_HELD`] attributes (and never more than
//! a quarter of RLIMIT_NOFILE, which the HTTP connection cap leaves free, see
//! [`held_budget`]) are held; past that an attribute is opened by path on each read, as before.
//!
//! A held file does not notice that the file at its path was replaced (a fixture tree written
//! by rename) or removed (sysfs then answers ENODEV, a plain file keeps its old contents). The
//! collectors therefore compare a [`Listing`] of the directories that hold their devices on
//! every scrape (one `getdents` batch each) and rebuild what they hold when it changes.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::util::SysError;

/// Most attributes held open at once, all collectors together: about 18 MB of kernel memory at
/// 4.3 kB each, enough for 256 CPUs, 512 sensors and 64 NICs.
pub const MAX_HELD: usize = 4096;

static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many attributes may be held with `nofile` descriptors (RLIMIT_NOFILE): a quarter of
/// them, at most [`MAX_HELD`]. The HTTP connection cap is fitted under the rest.
pub fn held_budget(nofile: u64) -> usize {
    usize::try_from(nofile / 4)
        .unwrap_or(usize::MAX)
        .min(MAX_HELD)
}

/// The budget, from the soft RLIMIT_NOFILE when the first attribute is opened (the daemon
/// raises the limit before its first scrape).
fn budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed in.
        let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            lim.rlim_cur
        } else {
            1024
        };
        held_budget(nofile)
    })
}

/// Attributes held open now (for tests and the benchmark's accounting).
pub fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// One attribute file, read from its start each time.
pub struct Attr(Source);

enum Source {
    Held(File),
    /// Over the budget: opened on each read.
    Path(Box<Path>),
}

/// Opens `path` to be held and read again and again, without updating its access time
/// (O_NOATIME: each read of a tmpfs or kernfs file or directory otherwise takes the inode's
/// time-update path, about 4 % of a scrape of a few hundred sensors). The flag is refused
/// (EPERM) to a process that neither owns the file nor has CAP_FOWNER: then opened without it.
fn open_held(path: &Path, flags: libc::c_int) -> std::io::Result<File> {
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(flags | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(flags),
        other => other,
    }
}

impl Attr {
    /// Opens `path` for reading it again and again. An error is the open's (a missing file is
    /// `NotFound`): the caller decides whether that makes the attribute absent.
    pub fn open(path: &Path) -> std::io::Result<Attr> {
        let file = open_held(path, 0)?;
        let budget = budget();
        let taken = HELD.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < budget).then_some(n + 1)
        });
        Ok(Attr(match taken {
            Ok(_) => Source::Held(file),
            Err(_) => Source::Path(path.into()),
        }))
    }

    /// Like [`Attr::open`], but never held: opened on each read. For readers that run
    /// seldom (the alert rules' inputs, every alert interval), whose descriptors and kernel
    /// memory would buy little.
    pub fn by_path(path: &Path) -> std::io::Result<Attr> {
        drop(File::open(path)?);
        Ok(Attr(Source::Path(path.into())))
    }

    /// One `read()` of at most `buf.len()` bytes from offset 0 (node_exporter reads sysfs
    /// attributes with one read; some hwmon drivers answer EAGAIN forever to readers that
    /// retry). Errors of the read itself have `at_open` false.
    pub fn read<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], SysError> {
        let n = match &self.0 {
            Source::Held(f) => pread0(f, buf),
            Source::Path(p) => {
                let f = File::open(p).map_err(|err| SysError { at_open: true, err })?;
                pread0(&f, buf)
            }
        }
        .map_err(|err| SysError {
            at_open: false,
            err,
        })?;
        Ok(&buf[..n])
    }

    /// [`Attr::read`] trimmed of white space and decoded lossily, as `util::read_attr` reads
    /// (a read of up to 4 kB, the size of a sysfs attribute).
    pub fn text(&self, buf: &mut [u8; 4096]) -> Result<String, SysError> {
        let raw = self.read(buf)?;
        Ok(String::from_utf8_lossy(raw).trim().to_string())
    }

    /// [`Attr::read`] as a number (trimmed, decimal), or None if it does not read or parse.
    pub fn number<T: std::str::FromStr>(&self, buf: &mut [u8]) -> Option<T> {
        let raw = self.read(buf).ok()?;
        std::str::from_utf8(raw).ok()?.trim().parse().ok()
    }
}

fn pread0(f: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match f.read_at(buf, 0) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        if matches!(self.0, Source::Held(_)) {
            HELD.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A whole file read on every scrape (a /proc table, a sysctl): held open like an [`Attr`]
/// and read again from offset 0 to its end. This saves the open, the close and the path walk,
/// and the kernel keeps the seq_file buffer it grew for the file's size (/proc/net/netstat
/// outgrows the first 4 kB page, so a fresh open prints it twice).
///
/// procfs and sysfs regenerate the text on each read from 0; a file they removed answers
/// ENODEV (or ENOENT, ESTALE, ESRCH) and is opened again by its path. Any other file (a
/// fixture tree) may be replaced between scrapes (by rename, by a symlink, or removed): before
/// each read its path is looked up (a `stat`, still cheaper than an open and a close) and the
/// file is opened again when the path no longer names the file held.
pub struct HeldFile {
    path: PathBuf,
    state: std::sync::Mutex<HeldState>,
}

#[derive(Default)]
struct HeldState {
    open: Option<Opened>,
    /// Length of the last read, to size the next read's buffer (a big count costs the
    /// kernel a big zeroed buffer for sysctls).
    last: usize,
}

struct Opened {
    file: File,
    /// A procfs or sysfs file in a procfs or sysfs directory: regenerated, never replaced.
    /// (A fixture tree's path that links to one, as the fault tests make, can be.)
    kernel: bool,
    /// The file's device and inode numbers, to tell whether its path still names it.
    id: (u64, u64),
    /// Counted against the budget; if not, it is closed after each read.
    held: bool,
}

impl Opened {
    fn open(path: &Path) -> std::io::Result<Opened> {
        use std::os::unix::fs::MetadataExt;
        let file = open_held(path, 0)?;
        let id = file.metadata().map_or((0, 0), |m| (m.dev(), m.ino()));
        let kernel = kernel_fs(&file)
            && path
                .parent()
                .and_then(|p| File::open(p).ok())
                .is_some_and(|dir| kernel_fs(&dir));
        let budget = budget();
        let held = HELD
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < budget).then_some(n + 1)
            })
            .is_ok();
        Ok(Opened {
            file,
            kernel,
            id,
            held,
        })
    }

    /// A file that is not the kernel's and whose path now names another file, or none.
    fn replaced(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        !self.kernel && std::fs::metadata(path).map_or(true, |m| (m.dev(), m.ino()) != self.id)
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if self.held {
            HELD.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Whether `f` is on procfs or sysfs.
fn kernel_fs(f: &File) -> bool {
    // SAFETY: fstatfs writes only the struct passed in; the descriptor is open.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstatfs(f.as_raw_fd(), &mut fs) }) == 0
        && [libc::PROC_SUPER_MAGIC, libc::SYSFS_MAGIC].contains(&fs.f_type)
}

/// Errors of a held file whose kernel object went away: open the path again.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::ENOENT | libc::ESTALE | libc::ESRCH)
    )
}

impl HeldFile {
    /// A file to read on every scrape; nothing is opened yet.
    pub fn new(path: PathBuf) -> HeldFile {
        HeldFile {
            path,
            state: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, as `util::read_bytes` reads it (`NotFound` when it does not exist).
    pub fn bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        if st.open.as_ref().is_some_and(|o| o.replaced(&self.path)) {
            st.open = None;
        }
        let reused = st.open.is_some();
        let opened = match st.open.take() {
            Some(o) => o,
            None => Opened::open(&self.path)?,
        };
        let (opened, data) = match read_to_end(&opened.file, st.last) {
            Err(e) if reused && gone(&e) => {
                drop(opened);
                let fresh = Opened::open(&self.path)?;
                let data = read_to_end(&fresh.file, st.last);
                (fresh, data)
            }
            r => (opened, r),
        };
        if opened.held {
            st.open = Some(opened);
        }
        let data = data?;
        st.last = data.len();
        Ok(data)
    }

    /// [`HeldFile::bytes`] as UTF-8 text (`InvalidData` if it is not), as `util::read_text`.
    pub fn text(&self) -> std::io::Result<String> {
        super::util::utf8(self.bytes()?)
    }

    /// [`HeldFile::text`] with the path in the error, as `util::read`.
    pub fn read(&self) -> anyhow::Result<String> {
        use anyhow::Context;
        self.text()
            .with_context(|| format!("reading {}", self.path.display()))
    }
}

/// Reads `f` from offset 0 to its end, into a buffer sized for `last` bytes and a margin.
fn read_to_end(f: &File, last: usize) -> std::io::Result<Vec<u8>> {
    let size = (last + last / 8 + 128).next_multiple_of(64);
    super::util::read_all(size, |buf, at| f.read_at(buf, at))
}

/// A directory listed on every scrape: held open, rewound and read with `getdents64`, which
/// allocates nothing per entry and saves the path walk, the open and the close.
///
/// A held directory that is removed answers ENOENT: it is opened again by its path (and
/// then lists what is there now). One that is moved away rather than removed would keep
/// being listed; sysfs never moves a device's directory, and a renamed device shows in the
/// listing of the class directory above it.
pub struct Dir {
    path: PathBuf,
    fd: Option<File>,
}

impl Dir {
    /// A directory to list; nothing is opened yet.
    pub fn new(path: PathBuf) -> Dir {
        Dir { path, fd: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the directory holds now (`NotFound` when it does not exist).
    pub fn listing(&mut self) -> std::io::Result<Listing> {
        if let Some(fd) = &self.fd {
            if let Ok(l) = list(fd) {
                return Ok(l);
            }
            // Removed (ENOENT), or another error: open it again by its path.
            self.fd = None;
        }
        let fd = open_held(&self.path, libc::O_DIRECTORY)?;
        let l = list(&fd)?;
        self.fd = Some(fd);
        Ok(l)
    }
}

/// Lists a directory from its start.
fn list(dir: &File) -> std::io::Result<Listing> {
    let fd = dir.as_raw_fd();
    // SAFETY: lseek on a descriptor this process owns (the File keeps it open).
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut l = Listing::default();
    // Not zeroed first: only what the kernel writes is read.
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
    loop {
        // SAFETY: the kernel writes at most space.len() bytes into space, which outlives the
        // call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                space.as_mut_ptr().cast::<libc::c_void>(),
                space.len(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = usize::try_from(n).unwrap_or(0).min(space.len());
        if n == 0 {
            return Ok(l);
        }
        // SAFETY: the kernel initialised the first n bytes (its return value).
        let buf = unsafe { std::slice::from_raw_parts(space.as_ptr().cast::<u8>(), n) };
        // struct linux_dirent64: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, d_name (NUL).
        let mut at = 0;
        while at + 19 <= n {
            let field = |from: usize, len: usize| &buf[at + from..at + from + len];
            let ino = u64::from_ne_bytes(field(0, 8).try_into().unwrap_or([0; 8]));
            let reclen = usize::from(u16::from_ne_bytes(
                field(16, 2).try_into().unwrap_or([0; 2]),
            ));
            if reclen < 19 || at + reclen > n {
                break;
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                l.add(name, ino);
            }
            at += reclen;
        }
    }
}

/// What a directory holds, as a fingerprint of its entries' names and inode numbers (both come
/// with the listing, no `stat` needed): a file added, removed or replaced (a new inode under
/// the same name) changes it. Entries are combined without regard to order, so a file system
/// that lists in another order on a later read still matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Listing {
    entries: usize,
    sum: u64,
}

impl Listing {
    /// Lists `dir` with std's read_dir (the tests' reference for [`Dir::listing`]).
    #[cfg(test)]
    fn read(dir: &Path) -> std::io::Result<Listing> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::DirEntryExt;
        let mut l = Listing::default();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            l.add(e.file_name().as_bytes(), e.ino());
        }
        Ok(l)
    }

    /// Adds one entry (for callers that walk the listing themselves).
    pub fn add(&mut self, name: &[u8], ino: u64) {
        // FNV-1a over the name and the inode number: cheap, and a sum of 64-bit hashes does
        // not collide by chance between two listings of one directory.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.iter().chain(&ino.to_le_bytes()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.entries += 1;
        self.sum = self.sum.wrapping_add(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_files_and_directories_leave_access_times_alone() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("temp1_input");
        std::fs::write(&path, "41000\n").unwrap();
        // Two days old: relatime would update it on the next read.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
        let times = std::fs::FileTimes::new()
            .set_accessed(old)
            .set_modified(old);
        for p in [&path, &d.path().to_path_buf()] {
            File::open(p).unwrap().set_times(times).unwrap();
        }
        let atime = |p: &Path| std::fs::metadata(p).unwrap().accessed().unwrap();
        let (file_before, dir_before) = (atime(&path), atime(d.path()));
        let attr = Attr::open(&path).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(attr.read(&mut buf).unwrap(), b"41000\n");
        let mut dir = Dir::new(d.path().to_path_buf());
        dir.listing().unwrap();
        assert_eq!(atime(&path), file_before);
        assert_eq!(atime(d.path()), dir_before);
        // A plain open and read does update it: the check above can fail.
        std::fs::read(&path).unwrap();
        assert_ne!(
            atime(&path),
            file_before,
            "the temp directory's filesystem keeps no access times (noatime?): nothing was shown"
        );
    }

    #[test]
    fn by_path_holds_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        std::fs::write(&p, "7\n").unwrap();
        let a = Attr::by_path(&p).unwrap();
        assert!(matches!(a.0, Source::Path(_)));
        assert_eq!(a.number::<u64>(&mut [0u8; 16]), Some(7));
        std::fs::remove_file(&p).unwrap();
        assert!(a
            .read(&mut [0u8; 16])
            .is_err_and(|e| e.at_open && e.not_found()));
    }

    #[test]
    fn rereads_from_the_start_and_counts_what_it_holds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        std::fs::write(&p, "12\n").unwrap();
        let before = held();
        let a = Attr::open(&p).unwrap();
        assert!(held() > before || held() >= MAX_HELD);
        let mut buf = [0u8; 128];
        assert_eq!(a.number::<u64>(&mut buf), Some(12));
        // Rewritten in place (as a sysfs attribute changes): the next read sees it.
        std::fs::write(&p, "345\n").unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), b"345\n");
        let mut big = [0u8; 4096];
        assert_eq!(a.text(&mut big).unwrap(), "345");
        drop(a);
        assert!(Attr::open(&d.path().join("gone"))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
        // A directory opens but does not read: the error is the read's.
        let dir = Attr::open(d.path()).unwrap();
        let e = dir.read(&mut buf).unwrap_err();
        assert!(!e.at_open && e.read_errno(libc::EISDIR));
    }

    /// (kernel, held) of the file a HeldFile has open, if any.
    fn held_as(f: &HeldFile) -> Option<(bool, bool)> {
        let st = f.state.lock().unwrap();
        st.open.as_ref().map(|o| (o.kernel, o.held))
    }

    #[test]
    fn held_files_read_whole_and_follow_rewrites_renames_and_removal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("table");
        let big: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &big).unwrap();
        let f = HeldFile::new(p.clone());
        assert_eq!(f.text().unwrap(), big);
        // Held (a plain file, checked for renames before each read).
        assert_eq!(held_as(&f), Some((false, true)));
        // Rewritten in place, shorter: the held file reads the new end.
        std::fs::write(&p, "short\n").unwrap();
        assert_eq!(f.text().unwrap(), "short\n");
        // Replaced by rename: the old file is unlinked, the path is opened again.
        let tmp = d.path().join("tmp");
        std::fs::write(&tmp, "renamed\n").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_eq!(f.text().unwrap(), "renamed\n");
        // Set aside (still linked elsewhere) and replaced by a symlink: the path's new file is
        // read, and the original again once it is moved back.
        let aside = d.path().join("aside");
        std::fs::rename(&p, &aside).unwrap();
        let other = d.path().join("other");
        std::fs::write(&other, "linked\n").unwrap();
        std::os::unix::fs::symlink(&other, &p).unwrap();
        assert_eq!(f.text().unwrap(), "linked\n");
        std::fs::remove_file(&p).unwrap();
        std::fs::rename(&aside, &p).unwrap();
        assert_eq!(f.text().unwrap(), "renamed\n");
        // Removed: NotFound, and found again once it is back.
        std::fs::remove_file(&p).unwrap();
        assert!(f
            .bytes()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
        std::fs::write(&p, "back\n").unwrap();
        assert_eq!(f.text().unwrap(), "back\n");
        // Not UTF-8: an error with the path, as util::read.
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(f.bytes().is_ok());
        assert!(format!("{:#}", f.read().unwrap_err()).contains("table"));
    }

    #[test]
    fn held_proc_files_are_regenerated_on_each_read() {
        // This thread's name, renamed between two reads through one held descriptor.
        let rename = |name: &std::ffi::CStr| {
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) }, 0);
        };
        let f = HeldFile::new("/proc/thread-self/comm".into());
        rename(c"held-before");
        assert_eq!(f.text().unwrap(), "held-before\n");
        assert_eq!(held_as(&f), Some((true, true)));
        rename(c"held-after");
        assert_eq!(f.text().unwrap(), "held-after\n");
        // A sysctl (a procfs file that is not a seq_file) reads from 0 each time too.
        let s = HeldFile::new("/proc/sys/kernel/ostype".into());
        assert_eq!(s.text().unwrap(), "Linux\n");
        assert_eq!(s.text().unwrap(), "Linux\n");
    }

    #[test]
    fn held_directories_list_like_read_dir() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let mut dir = Dir::new(sub.clone());
        assert_eq!(dir.listing().unwrap(), Listing::read(&sub).unwrap());
        // Many entries, more than one getdents64 buffer.
        for i in 0..600 {
            std::fs::write(sub.join(format!("file-with-a-long-name-{i:04}")), "").unwrap();
        }
        let many = dir.listing().unwrap();
        assert_eq!(many, Listing::read(&sub).unwrap());
        assert_eq!(many.entries, 600);
        // Removed and made again: the held directory is gone, the path is listed anew.
        std::fs::remove_dir_all(&sub).unwrap();
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("new"), "").unwrap();
        assert_eq!(dir.listing().unwrap(), Listing::read(&sub).unwrap());
        std::fs::remove_dir_all(&sub).unwrap();
        assert!(dir
            .listing()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn listings_change_with_names_and_inodes_not_order() {
        let d = tempfile::tempdir().unwrap();
        let mut dir = Dir::new(d.path().to_path_buf());
        let empty = dir.listing().unwrap();
        assert_eq!(empty, Listing::default());
        std::fs::write(d.path().join("a"), "1").unwrap();
        let one = dir.listing().unwrap();
        assert_ne!(one, empty);
        // Rewritten in place: same inode, same listing.
        std::fs::write(d.path().join("a"), "2").unwrap();
        assert_eq!(dir.listing().unwrap(), one);
        // Replaced by rename: a new inode under the same name.
        std::fs::write(d.path().join("b"), "3").unwrap();
        std::fs::rename(d.path().join("b"), d.path().join("a")).unwrap();
        assert_ne!(dir.listing().unwrap(), one);
        let mut x = Listing::default();
        x.add(b"p", 1);
        x.add(b"q", 2);
        let mut y = Listing::default();
        y.add(b"q", 2);
        y.add(b"p", 1);
        assert_eq!(x, y);
    }
}
