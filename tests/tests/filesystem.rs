//! The filesystem collector on real mounts. A private mount namespace (so nothing on the host,
//! nor another test, ever sees the mounts) holds a tmpfs and a FUSE mount whose statfs blocks
//! until the test releases it (tests/fault-fs/faultfs.py --statfs-block-until); a fake
//! `{procfs}/1/mountinfo` lists them with a mount point that has a space, one with a
//! backslash, and one that is gone. Proves:
//! - the first scrape with the mount stuck ends within the mount timeout plus slack, reports
//!   the mount with device_error 1 (`mountpoint timeout`) and every other mount with its true
//!   numbers;
//! - the next 20 scrapes skip the stuck mount at once, and the daemon's threads stay the same
//!   ones (no thread started or ended per scrape);
//! - released, the mount is reported again with its numbers, and the stuck thread is gone.
//!
//! Without root, FUSE or util-linux these skip (outside CI). The healthy-host test needs none
//! of it: plain directories listed in a fake mountinfo, its threads flat over 30 scrapes, and
//! a garbled mountinfo failing only the collector.
//!
//! Cleanup even on failure: the guard opens the statfs gate and ends the FUSE process first
//! (a statfs the FUSE daemon has taken cannot be killed, so the daemon could not be reaped
//! before), then the daemon, then the namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodetune_e2e::{http_get, require, threads, wait_until, Daemon, FakeHost, MountNs};

type Series = BTreeMap<String, f64>;

/// One scrape: 200 and a complete body; series (as written) → value.
fn scrape(addr: &str) -> Series {
    let (code, _, body) = http_get(addr, "/metrics", &[]).expect("HTTP answer");
    let body = String::from_utf8(body).expect("UTF-8 body");
    assert_eq!(code, 200, "{body}");
    let last = body.lines().rev().find(|l| !l.starts_with('#'));
    assert!(
        // Families come sorted: nodetune's own, then the exporter's promhttp_* close a body.
        body.ends_with('\n')
            && last.is_some_and(|l| l.starts_with("nodetune_") || l.starts_with("promhttp_")),
        "incomplete scrape:\n{body}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The ids of the process's threads.
fn tids(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Thread ids with their names, for a failure message.
fn thread_names(pid: u32) -> Vec<String> {
    tids(pid)
        .into_iter()
        .map(|t| {
            let comm =
                std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm")).unwrap_or_default();
            format!("{t}:{}", comm.trim())
        })
        .collect()
}

/// A filesystem family's series for one mount: `name{device,device_error,fstype,mountpoint}`.
fn fs_key(name: &str, device: &str, error: &str, fstype: &str, mountpoint: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\");
    format!(
        "node_filesystem_{name}{{device=\"{device}\",device_error=\"{error}\",fstype=\"{fstype}\",mountpoint=\"{}\"}}",
        esc(mountpoint)
    )
}

fn success(m: &Series) -> f64 {
    m["node_scrape_collector_success{collector=\"filesystem\"}"]
}

/// A fake procfs for the daemon: its start-up reads meminfo; the collector reads 1/mountinfo.
fn fake_procfs(dir: &Path, mountinfo: &str) {
    std::fs::create_dir_all(dir.join("proc/1")).expect("mkdir");
    std::fs::write(
        dir.join("proc/meminfo"),
        "MemTotal:       16384000 kB\nMemFree:         8000000 kB\n",
    )
    .expect("meminfo");
    std::fs::write(dir.join("proc/1/mountinfo"), mountinfo).expect("mountinfo");
}

/// The daemon's arguments: only the filesystem collector, the fake procfs, a 1 s mount timeout.
fn daemon_args(procfs: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--config=/etc/nodetune/nodetune.toml".to_string(),
        "--web.listen-address=127.0.0.1:0".to_string(),
        "--collector.disable-defaults".to_string(),
        "--collector.filesystem".to_string(),
        format!("--path.procfs={}", procfs.display()),
        "--collector.filesystem.mount-timeout=1s".to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Everything one stuck-mount test set up; torn down in a safe order even when it fails.
struct Scene {
    dir: PathBuf,
    gate: PathBuf,
    fuse: Option<Child>,
    daemon: Option<Daemon>,
    ns: Option<MountNs>,
    _host: FakeHost,
    _tmp: tempfile::TempDir,
}

impl Drop for Scene {
    fn drop(&mut self) {
        // Open the gate and end the FUSE daemon: the blocked statfs returns (or fails
        // ENOTCONN), so the nodetune process can then be killed and reaped.
        let _ = std::fs::write(&self.gate, "");
        if let Some(mut f) = self.fuse.take() {
            let _ = f.kill();
            let _ = f.wait();
        }
        drop(self.daemon.take());
        drop(self.ns.take());
    }
}

impl Scene {
    fn new(extra: &[&str]) -> Scene {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Scene {
            gate: dir.join("release"),
            dir: dir.clone(),
            fuse: None,
            daemon: None,
            ns: Some(MountNs::new()),
            _host: FakeHost::new(),
            _tmp: tmp,
        };
        let ns = s.ns.as_ref().expect("namespace");
        for d in ["fuse", "tmpfs", "with space", "back\\slash"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        // A 1 MiB tmpfs with 100 inodes and a 64 KiB file on it.
        let tmpfs = dir.join("tmpfs");
        ns.run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=1m,nr_inodes=100",
                "nt-tmpfs",
                tmpfs.to_str().expect("path"),
            ],
        );
        ns.run(
            "sh",
            &[
                "-c",
                &format!("head -c 65536 /dev/zero > '{}/f'", tmpfs.display()),
            ],
        );
        // The FUSE mount, statfs gated.
        std::fs::write(dir.join("spec.json"), "{}").expect("spec");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fault-fs/faultfs.py");
        let mut child = ns
            .command("/usr/bin/python3")
            .arg(script)
            .arg(dir.join("fuse"))
            .arg(dir.join("spec.json"))
            .arg("--statfs-block-until")
            .arg(&s.gate)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start faultfs.py");
        let out = child.stdout.take().expect("stdout");
        s.fuse = Some(child);
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "faultfs.py did not mount");
        // What the collector lists: mount points escaped as the kernel writes them.
        let d = dir.display().to_string();
        fake_procfs(
            &dir,
            &format!(
                "100 1 0:90 / {d}/fuse rw,nosuid,nodev,relatime - fuse nodetune-faultfs rw,user_id=0,group_id=0\n\
                 101 1 0:91 / {d}/tmpfs rw,relatime - tmpfs nt-tmpfs rw,size=1024k,nr_inodes=100\n\
                 102 1 0:92 / {d}/with\\040space rw,relatime - ext4 /dev/fake1 rw\n\
                 103 1 0:93 / {d}/back\\134slash rw,relatime - ext4 /dev/fake2 rw\n\
                 104 1 0:94 / {d}/gone rw,relatime - ext4 /dev/fake3 rw\n\
                 105 1 0:95 / {d}/tmpfs rw,relatime - proc proc rw\n"
            ),
        );
        let env = s._host.env(&[]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let prefix = ns.prefix();
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let args = daemon_args(&dir.join("proc"), extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.daemon = Some(Daemon::start(&prefix, &args, &env));
        s
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon")
    }

    fn mp(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir.display())
    }

    /// statfs of a path inside the namespace, by Python: (frsize × blocks, × bfree,
    /// × bavail, files, ffree).
    fn statvfs(&self, rel: &str) -> [f64; 5] {
        let out = self
            .ns
            .as_ref()
            .expect("namespace")
            .command("/usr/bin/python3")
            .args([
                "-c",
                "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_frsize*s.f_blocks, s.f_frsize*s.f_bfree, s.f_frsize*s.f_bavail, s.f_files, s.f_ffree)",
                &self.mp(rel),
            ])
            .output()
            .expect("python3");
        let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        v.try_into().expect("five numbers")
    }
}

fn stuck_mount(extra: &[&str]) {
    if !require(
        MountNs::available()
            && Path::new("/dev/fuse").exists()
            && Command::new("/usr/bin/python3")
                .args(["-c", "import fusepy"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        "root, unshare, nsenter, /dev/fuse and python3-fusepy",
    ) {
        return;
    }
    let s = Scene::new(extra);
    let addr = s.daemon().addr();
    let pid = s.daemon().child.id();
    let fuse = s.mp("fuse");

    // First scrape: the mount timeout, once.
    let t = Instant::now();
    let m = scrape(&addr);
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "first scrape took {took:?}"
    );
    assert_eq!(success(&m), 1.0);
    let stuck = fs_key(
        "device_error",
        "nodetune-faultfs",
        "mountpoint timeout",
        "fuse",
        &fuse,
    );
    assert_eq!(m.get(&stuck), Some(&1.0), "{m:#?}");
    assert_eq!(
        m.get(&fs_key(
            "readonly",
            "nodetune-faultfs",
            "mountpoint timeout",
            "fuse",
            &fuse
        )),
        Some(&0.0)
    );
    assert!(!m
        .keys()
        .any(|k| k.starts_with("node_filesystem_size_bytes{device=\"nodetune-faultfs\"")));
    // The tmpfs: its true numbers (1 MiB, 100 inodes, a 64 KiB file).
    let tmpfs = s.mp("tmpfs");
    let want = s.statvfs("tmpfs");
    assert_eq!(want[0], 1048576.0);
    assert_eq!(want[1], 1048576.0 - 65536.0);
    assert_eq!(want[3], 100.0);
    for (i, name) in [
        "size_bytes",
        "free_bytes",
        "avail_bytes",
        "files",
        "files_free",
    ]
    .into_iter()
    .enumerate()
    {
        let k = fs_key(name, "nt-tmpfs", "", "tmpfs", &tmpfs);
        assert_eq!(m.get(&k), Some(&want[i]), "{k}");
    }
    assert_eq!(
        m.get(&format!(
            "node_filesystem_mount_info{{device=\"nt-tmpfs\",major=\"0\",minor=\"91\",mountpoint=\"{tmpfs}\"}}"
        )),
        Some(&1.0)
    );
    // \040 decoded; \134 not (node_exporter's rule), so that path does not exist; one gone.
    assert_eq!(
        m.get(&fs_key(
            "device_error",
            "/dev/fake1",
            "",
            "ext4",
            &s.mp("with space")
        )),
        Some(&0.0)
    );
    let enoent = "no such file or directory";
    assert_eq!(
        m.get(&fs_key(
            "device_error",
            "/dev/fake2",
            enoent,
            "ext4",
            &s.mp("back\\134slash")
        )),
        Some(&1.0)
    );
    assert_eq!(
        m.get(&fs_key(
            "device_error",
            "/dev/fake3",
            enoent,
            "ext4",
            &s.mp("gone")
        )),
        Some(&1.0)
    );
    // Excluded type.
    assert!(!m.keys().any(|k| k.contains("fstype=\"proc\"")));

    // Settle: a concurrent alert-rules scrape may still be waiting on the mount.
    std::thread::sleep(Duration::from_millis(1500));
    scrape(&addr);
    let before = tids(pid);
    let n_before = threads(pid).expect("Threads");
    for round in 0..20 {
        let t = Instant::now();
        let m = scrape(&addr);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "round {round}: {:?}",
            t.elapsed()
        );
        assert_eq!(m.get(&stuck), Some(&1.0), "round {round}");
        assert!(m.contains_key(&fs_key("size_bytes", "nt-tmpfs", "", "tmpfs", &tmpfs)));
        assert_eq!(
            tids(pid),
            before,
            "round {round}: threads changed: {:?}",
            thread_names(pid)
        );
    }
    assert_eq!(threads(pid), Some(n_before));

    // Released: the mount answers (faultfs.py's numbers), its stuck thread goes.
    std::fs::write(&s.gate, "").expect("open the gate");
    let ok = |m: &Series| {
        m.get(&fs_key("size_bytes", "nodetune-faultfs", "", "fuse", &fuse)) == Some(&4096000.0)
    };
    assert!(
        wait_until(10, || ok(&scrape(&addr))),
        "the mount never came back"
    );
    let m = scrape(&addr);
    for (name, v) in [
        ("device_error", 0.0),
        ("free_bytes", 2048000.0),
        ("avail_bytes", 1638400.0),
        ("files", 100.0),
        ("files_free", 50.0),
    ] {
        assert_eq!(
            m.get(&fs_key(name, "nodetune-faultfs", "", "fuse", &fuse)),
            Some(&v),
            "{name}"
        );
    }
    assert!(!m.contains_key(&stuck));
    assert!(
        wait_until(5, || threads(pid).is_some_and(|n| n < n_before)),
        "the stuck thread did not end: {n_before} → {:?}",
        thread_names(pid)
    );
}

#[test]
fn a_stuck_mount_with_the_default_stat_workers() {
    stuck_mount(&[]);
}

#[test]
fn a_stuck_mount_with_one_stat_worker() {
    stuck_mount(&["--collector.filesystem.stat-workers=1"]);
}

#[test]
fn healthy_host_starts_no_thread_per_scrape() {
    // Plain directories stand for mounts (statfs works on any path).
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for d in ["a", "b", "c"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    let d = dir.display();
    let info = format!(
        "1 0 8:1 / {d}/a rw - ext4 /dev/a rw\n2 0 8:2 / {d}/b ro - ext4 /dev/b rw\n3 0 8:3 / {d}/c rw - xfs /dev/c rw\n"
    );
    fake_procfs(dir, &info);
    let host = FakeHost::new();
    let args = daemon_args(&dir.join("proc"), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = host.daemon(&args, &[]);
    let addr = daemon.addr();
    let pid = daemon.child.id();
    let m = scrape(&addr);
    assert_eq!(success(&m), 1.0);
    assert_eq!(
        m.get(&fs_key("readonly", "/dev/b", "", "ext4", &format!("{d}/b"))),
        Some(&1.0)
    );
    let before = tids(pid);
    for round in 0..30 {
        let m = scrape(&addr);
        assert!(m.contains_key(&fs_key(
            "size_bytes",
            "/dev/c",
            "",
            "xfs",
            &format!("{d}/c")
        )));
        assert_eq!(tids(pid), before, "round {round}: {:?}", thread_names(pid));
    }
    // A garbled mountinfo fails the collector alone; fixed, it is back.
    std::fs::write(dir.join("proc/1/mountinfo"), "1 0 8:1 / garbled\n").expect("write");
    let m = scrape(&addr);
    assert_eq!(success(&m), 0.0);
    assert!(!m.keys().any(|k| k.starts_with("node_filesystem_")));
    std::fs::write(dir.join("proc/1/mountinfo"), &info).expect("write");
    assert_eq!(success(&scrape(&addr)), 1.0);
}
