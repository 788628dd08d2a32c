//! Benchmark: resolve + plan + apply + verify of the `api-gateway` profile inside a fresh
//! network namespace (the process unshares its own, so the host is never touched), then a
//! revert between rounds. Run as root: `cargo bench -p nodetune --bench apply`.

use std::path::Path;
use std::time::{Duration, Instant};

use nodetune::profile::{resolve, Facts, Library};
use nodetune::tune::{self, Action, ApplyOptions, Kernel, Store};

fn main() {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("apply bench needs root (unshare a network namespace): {e}");
        std::process::exit(1);
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let state = tempfile::tempdir().expect("tempdir");
    let store = Store::new(state.path());
    let kernel = Kernel {
        sysctl_root: "/proc/sys".into(),
        sysfs: "/sys".into(),
        root: state.path().join("root"),
    };
    let library = Library::new(vec![]);
    let facts = Facts::read(
        Path::new("/proc/sys"),
        Path::new("/proc"),
        Path::new("/sys"),
        Path::new("/"),
    )
    .expect("facts");
    let netns = tune::netns::current();
    assert!(!netns.is_host, "the bench must run in its own namespace");
    let opts = ApplyOptions::default();

    let mut times = Vec::with_capacity(rounds);
    let mut changed = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let eff = resolve(&library, "api-gateway", &facts).expect("resolve");
        let plan = tune::plan(&eff, &kernel, &netns);
        let outcome = tune::apply(&plan, &kernel, &store, &opts).expect("apply");
        assert!(outcome.ok, "{}", outcome.message);
        let verify = tune::plan(&eff, &kernel, &netns);
        assert_eq!(verify.count(Action::Change), 0, "verify after apply");
        times.push(t0.elapsed());
        changed = outcome.steps.len();
        tune::revert(&kernel, &store, &netns.label).expect("revert");
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "api-gateway in a fresh netns ({} rounds, {} keys written per round, {} out of scope): \
         median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, min {:.3} ms",
        rounds,
        changed,
        tune::plan(
            &resolve(&library, "api-gateway", &facts).expect("resolve"),
            &kernel,
            &netns
        )
        .count(Action::OutOfScope),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(0.99)),
        ms(times[0])
    );
}
