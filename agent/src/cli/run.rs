//! `nodetune run`: the daemon. Loads the configuration (flags override it), reports the
//! profile's plan, applies it in enforce mode, serves `/metrics`, and runs the drift and alert
//! loop until SIGTERM.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::base::log;
use crate::base::mode::Mode;
use crate::collect::Options;
use crate::config;
use crate::daemon::{self, Daemon, Settings};
use crate::expose::http::{self, Endpoint};
use crate::expose::scrape::Scraper;
use crate::expose::selfmetrics::{self, SelfMetrics};
use crate::profile::Library;
use crate::tune::{Kernel, Store};
use crate::watch::snapshot::Sampler;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file; when the default path is missing, the built-in default applies.
    #[arg(long, env = "NODETUNE_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Profile to enforce or audit (overrides the configuration and `nodetune use`).
    #[arg(long, short = 'p')]
    pub profile: Option<String>,
    /// enforce, audit or off (overrides the configuration).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// How often managed keys are re-read, e.g. 1s or 500ms (overrides the configuration).
    #[arg(long = "drift-interval", value_parser = crate::base::duration::parse_duration)]
    pub drift_interval: Option<Duration>,
    /// Address to listen on for the metrics endpoint [default: from the configuration, :9100].
    #[arg(long = "web.listen-address")]
    pub listen_address: Option<String>,
    /// Path under which to expose metrics [default: /metrics].
    #[arg(long = "web.telemetry-path")]
    pub telemetry_path: Option<String>,
    /// Maximum number of parallel scrape requests; 0 disables the limit [default: 40].
    #[arg(long = "web.max-requests")]
    pub max_requests: Option<usize>,
    /// Maximum number of open connections; at the limit the connection idle longest is closed
    /// to admit a new one, 503 if every connection is busy [default: 1024; lowered to fit
    /// RLIMIT_NOFILE].
    #[arg(long = "web.max-connections", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// exporter-toolkit web-config.yml: TLS, client certificates, basic auth, headers
    /// [default: from the configuration; none].
    #[arg(long = "web.config.file")]
    pub web_config: Option<PathBuf>,
    /// Exclude metrics about the exporter itself (promhttp_*, process_*; nodetune has no go_*).
    #[arg(long = "web.disable-exporter-metrics")]
    pub disable_exporter_metrics: bool,
    /// Root of the sysctl tree.
    #[arg(
        long = "sysctl-root",
        env = "NODETUNE_SYSCTL_ROOT",
        default_value = "/proc/sys"
    )]
    pub sysctl_root: PathBuf,
    /// Root for configuration files read and written (/etc/sysctl.d, drop-ins, profiles).
    #[arg(long = "root", env = "NODETUNE_ROOT", default_value = "/")]
    pub root: PathBuf,
    /// State directory [default: ROOT/var/lib/nodetune].
    #[arg(long = "state-dir", env = "NODETUNE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Extra profile directory; its profiles override those of the same name elsewhere.
    #[arg(long = "profile-dir", env = "NODETUNE_PROFILE_DIR")]
    pub profile_dir: Option<PathBuf>,
    /// Command used to load congestion-control modules.
    #[arg(long, env = "NODETUNE_MODPROBE", default_value = "modprobe")]
    pub modprobe: String,
    #[command(flatten)]
    pub log: crate::cli::common::LogArgs,
    #[command(flatten)]
    pub collect: Options,
}

fn settings(a: &Args) -> Settings {
    let mut dirs = vec![
        a.root.join("usr/share/nodetune/profiles"),
        a.root.join("etc/nodetune/profiles.d"),
    ];
    dirs.extend(a.profile_dir.clone());
    Settings {
        config_path: a.config.clone(),
        profile: a.profile.clone(),
        mode: a.mode,
        drift_interval: a.drift_interval,
        kernel: Kernel {
            sysctl_root: a.sysctl_root.clone(),
            sysfs: a.collect.sysfs.clone(),
            root: a.root.clone(),
        },
        store: Store::new(
            a.state_dir
                .clone()
                .unwrap_or_else(|| a.root.join("var/lib/nodetune")),
        ),
        library: Library::new(dirs),
        procfs: a.collect.procfs.clone(),
        sysfs: a.collect.sysfs.clone(),
        modprobe: a.modprobe.clone(),
    }
}

pub fn main(a: &Args) -> anyhow::Result<i32> {
    // First, while the process has one thread: it may start itself again from here.
    let allocator = crate::daemon::memory::reexec_without_thread_caches();
    a.log.init();
    if let Some(why) = allocator {
        log::log(log::Level::Warning, &why, &[]);
    }
    let d = Daemon::start(settings(a))?;
    crate::cli::tune::print_plan(d.plan());
    let web = d.config().web.clone();
    let listen = a.listen_address.clone().unwrap_or(web.listen_address);
    let path = a.telemetry_path.clone().unwrap_or(web.telemetry_path);
    let max_requests = a.max_requests.unwrap_or(web.max_requests);
    let disable_exporter_metrics = a.disable_exporter_metrics || web.disable_exporter_metrics;
    let wanted = a
        .max_connections
        .map(|n| n as usize)
        .unwrap_or(web.max_connections);
    // Thousands of connections need more descriptors than the usual soft limit of 1024.
    let max_connections = http::fit_connection_cap(wanted, http::raise_nofile_limit());
    if max_connections < wanted {
        log::log(
            log::Level::Warning,
            &format!(
                "max-connections lowered from {wanted} to {max_connections} to fit the open-files limit (RLIMIT_NOFILE)"
            ),
            &[],
        );
    }
    let web_config = a.web_config.clone().or(web.config_file.map(PathBuf::from));
    let web = crate::expose::webconfig::Watched::new(web_config)?;
    for w in a.collect.warnings() {
        log::log(log::Level::Warning, &w, &[]);
    }
    let scraper = Scraper::new(&a.collect)?;
    // The alert rules read their own typed inputs (with the same roots and filters), not a
    // second scrape.
    let sampler = Sampler::new(&a.collect, &d.settings().kernel)?;
    let daemon = Arc::new(Mutex::new(d));
    let extra_daemon = daemon.clone();
    let ep = Arc::new(Endpoint {
        scraper,
        telemetry_path: path,
        max_requests,
        max_connections,
        web,
        exporter_metrics: (!disable_exporter_metrics).then(|| SelfMetrics::new(&a.collect.procfs)),
        extra: Some(Arc::new(move || {
            let mut fams = extra_daemon
                .lock()
                .map(|d| d.families())
                .unwrap_or_default();
            // Served whatever --web.disable-exporter-metrics says, as node_exporter does.
            fams.push(selfmetrics::build_info());
            fams
        })),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // A malformed address is a configuration error; a busy one is waited for (daemon::web).
    http::parse_listen(&listen)?;
    if let Ok(mut d) = daemon.lock() {
        d.set_listen_address(&listen);
    }
    rt.block_on(async move {
        let signals = daemon::run::Signals::install()?;
        // The first attempt comes before READY=1, so a free address is bound by then.
        let first = daemon::web::attempt(&listen, &daemon).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(daemon::web::serve(
            listen,
            first,
            ep.clone(),
            daemon.clone(),
            stopped,
        ));
        let result = daemon::run::run(daemon, sampler, signals).await;
        // Stop accepting; requests in flight are answered before the process exits.
        let _ = stop.send(true);
        let _ = server.await;
        result
    })?;
    Ok(0)
}
