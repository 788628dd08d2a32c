//! Benchmark: the drift loop's cost per tick (so its CPU share at a 1 s interval) and its
//! detection-and-correction latency, on the api-gateway profile's keys inside a fresh network
//! namespace the process creates for itself. Run as root: `cargo bench -p nodetune --bench drift`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nodetune::base::mode::Mode;
use nodetune::profile::{resolve, Facts, Library};
use nodetune::tune::{self, ApplyOptions, Kernel, Store};
use nodetune::watch::drift::DriftWatch;

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("drift bench needs root (unshare a network namespace): {e}");
        std::process::exit(1);
    }
    let state = tempfile::tempdir().expect("tempdir");
    let kernel = Kernel {
        sysctl_root: "/proc/sys".into(),
        sysfs: "/sys".into(),
        root: state.path().join("root"),
    };
    let store = Store::new(state.path());
    let facts = Facts::read(
        Path::new("/proc/sys"),
        Path::new("/proc"),
        Path::new("/sys"),
        Path::new("/"),
    )
    .expect("facts");
    let eff = resolve(&Library::new(vec![]), "api-gateway", &facts).expect("profile");
    let netns = tune::netns::current();
    let plan = tune::plan(&eff, &kernel, &netns);
    tune::apply(&plan, &kernel, &store, &ApplyOptions::default()).expect("apply");
    let plan = tune::plan(&eff, &kernel, &netns);
    let mut w = DriftWatch::new(
        &plan,
        Mode::Enforce,
        kernel.clone(),
        store.clone(),
        Path::new("/proc"),
    );
    let keys = w.states().len();

    // Cost of one tick (every managed key read and compared), back to back.
    let n = 20_000;
    let (c0, t0) = (cpu_time(), Instant::now());
    for _ in 0..n {
        w.tick(Instant::now());
    }
    let per_tick_cpu = (cpu_time() - c0) / n;
    let per_tick_wall = t0.elapsed() / n;

    // Latency at the default 1 s interval: a ticker thread like the daemon's, a writer that
    // changes net.core.somaxconn at varying phases, timing until it is restored.
    let w = Arc::new(Mutex::new(w));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (w2, stop2) = (w.clone(), stop.clone());
    // setns/unshare is per thread: the ticker thread inherits our namespace at spawn.
    let ticker = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            w2.lock().unwrap().tick(Instant::now());
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let path = "/proc/sys/net/core/somaxconn";
    let mut lat = Vec::new();
    for i in 0..8u64 {
        std::thread::sleep(Duration::from_millis(130 * i % 1000));
        std::fs::write(path, "1000").expect("write");
        let t = Instant::now();
        while std::fs::read_to_string(path).expect("read").trim() != "65535" {
            std::thread::sleep(Duration::from_millis(2));
        }
        lat.push(t.elapsed());
        // Reset the fight window: this bench measures correction, not fights.
        *w.lock().unwrap() = DriftWatch::new(
            &plan,
            Mode::Enforce,
            kernel.clone(),
            store.clone(),
            Path::new("/proc"),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ticker.join().expect("ticker");
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    println!(
        "drift loop, api-gateway ({keys} keys): {:.1} µs CPU per tick ({:.1} µs wall) = {:.4} % of one core at a 1 s interval",
        per_tick_cpu.as_secs_f64() * 1e6,
        per_tick_wall.as_secs_f64() * 1e6,
        per_tick_cpu.as_secs_f64() * 100.0
    );
    println!(
        "detection + correction latency at 1 s ({} changes): min {:.0} ms, mean {:.0} ms, max {:.0} ms",
        lat.len(),
        ms(lat[0]),
        ms(mean),
        ms(lat[lat.len() - 1])
    );
}
