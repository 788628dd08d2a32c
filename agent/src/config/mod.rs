//! The daemon's configuration file, `/etc/nodetune/nodetune.toml`. Command-line flags override
//! it. Without a file, the embedded default (`packaging/nodetune.toml`) applies: it serves
//! `/metrics` and only reports drift, changing nothing.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::base::duration::duration;
use crate::base::mode::Mode;
use crate::base::pos::Pos;
use crate::base::trust;

/// The configuration compiled into the binary (the same file the packages install).
pub const DEFAULT: &str = include_str!("../../../packaging/nodetune.toml");

/// Where the packaged configuration lives.
pub const DEFAULT_PATH: &str = "/etc/nodetune/nodetune.toml";

/// node_exporter's textfile directories: Debian's package, and the one RPM packagings use.
pub const DEFAULT_HANDOFF_DIRS: &[&str] = &[
    "/var/lib/prometheus/node-exporter",
    "/var/lib/node_exporter/textfile_collector",
];

/// `[web]`: the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Web {
    pub listen_address: String,
    pub telemetry_path: String,
    pub config_file: Option<String>,
    pub max_requests: usize,
    /// Open connections at most; at the cap the idlest is dropped for a newcomer.
    pub max_connections: usize,
    pub disable_exporter_metrics: bool,
    /// While the listen address is busy (node_exporter on it), nodetune's own metrics are
    /// written to `nodetune.prom` in each of these directories that exists, for node_exporter's
    /// textfile collector to serve on that port.
    pub textfile_handoff_dirs: Vec<String>,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            listen_address: ":9100".into(),
            telemetry_path: "/metrics".into(),
            config_file: None,
            max_requests: 40,
            max_connections: 1024,
            disable_exporter_metrics: false,
            textfile_handoff_dirs: DEFAULT_HANDOFF_DIRS.iter().map(|d| d.to_string()).collect(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Config {
    /// The active profile (a `nodetune use` choice and `--profile` take precedence).
    pub profile: Option<String>,
    pub mode: Mode,
    /// How often managed keys are re-read.
    #[serde(deserialize_with = "duration")]
    pub drift_interval: Duration,
    /// Put the saved originals back when the daemon stops (off by default: rollback on stop
    /// has caused outages with other tools).
    pub rollback_on_stop: bool,
    pub web: Web,
    pub alerts: crate::watch::alerts::Thresholds,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: None,
            mode: Mode::Audit,
            drift_interval: Duration::from_secs(1),
            rollback_on_stop: false,
            web: Web::default(),
            alerts: Default::default(),
        }
    }
}

impl Config {
    /// Parses configuration text; `file` names it in errors (`FILE:LINE:COLUMN: message`).
    pub fn parse(file: &str, text: &str) -> anyhow::Result<Config> {
        toml::from_str::<Config>(text)
            .map_err(|e| {
                let at = e
                    .span()
                    .map(|s| {
                        let p = Pos::of(text, s.start);
                        format!(":{}:{}", p.line, p.column)
                    })
                    .unwrap_or_default();
                anyhow::anyhow!("{file}{at}: {}", e.message().trim())
            })
            .and_then(|c| {
                anyhow::ensure!(
                    c.web.max_connections > 0,
                    "{file}: [web] max-connections must be at least 1"
                );
                Ok(c)
            })
    }

    /// Loads a file; a missing file at the default path means the embedded default.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                trust::check(path).map_err(anyhow::Error::msg)?;
                Config::parse(&path.display().to_string(), &text)
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(DEFAULT_PATH) =>
            {
                Config::parse("builtin:nodetune.toml", DEFAULT)
            }
            Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_safe() {
        let c = Config::parse("builtin", DEFAULT).unwrap();
        assert_eq!(c.mode, Mode::Audit, "the default must not change the host");
        assert_eq!(c.drift_interval, Duration::from_secs(1));
        assert_eq!(c.web.listen_address, ":9100");
        assert_eq!(c.web.max_connections, Web::default().max_connections);
        // The shipped file and the built-in defaults agree.
        assert_eq!(c.web, Web::default());
        assert!(!c.rollback_on_stop);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Config::parse("n.toml", "mode = \"enforce\"\nmdoe = 1\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("n.toml:2:1: unknown field `mdoe`"),
            "{e}"
        );
        let e = Config::parse("n.toml", "drift-interval = \"1\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "n.toml:1:18: \"1\" has no unit: write ms, s, m or h (for example \"1s\")"
        );
        let e = Config::parse("n.toml", "mode = \"on\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("n.toml:1:8: unknown variant `on`"),
            "{e}"
        );
    }

    #[test]
    fn max_connections_is_at_least_one() {
        let e = Config::parse("n.toml", "[web]\nmax-connections = 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "n.toml: [web] max-connections must be at least 1"
        );
        let c = Config::parse("n.toml", "[web]\nmax-connections = 8\n").unwrap();
        assert_eq!(c.web.max_connections, 8);
    }

    #[test]
    fn durations_too_long() {
        let e =
            Config::parse("n.toml", "drift-interval = \"99999999999999999999h\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "n.toml:1:18: \"99999999999999999999h\" is too long"
        );
    }
}
