//! The daemon's configuration file, `/etc/nodetune/nodetune.toml`. Command-line flags override
//! it. Without a file, the embedded default (`packaging/nodetune.toml`) applies: it serves
//! `/metrics` and only reports drift, changing nothing.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::profile::error::Pos;

pub mod trust;

/// The configuration compiled into the binary (the same file the packages install).
pub const DEFAULT: &str = include_str!("../../../packaging/nodetune.toml");

/// Where the packaged configuration lives.
pub const DEFAULT_PATH: &str = "/etc/nodetune/nodetune.toml";

/// What the daemon does about the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Apply the profile at start and correct drift.
    Enforce,
    /// Report drift only; never write.
    Audit,
    /// Neither apply nor watch.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }
}

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

/// Parses durations such as "1s", "500ms", "2m", "1h".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (for example \"1s\", \"500ms\", \"2m\")"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{s:?} has no unit: write ms, s, m or h (for example \"1s\")"
            ))
        }
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s:?} must be greater than zero"));
    }
    // from_secs_f64 panics past Duration::MAX (found by the `config` fuzz target).
    let d = Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long"))?;
    // Below a nanosecond rounds to zero, and a zero period panics the daemon's timers.
    if d.is_zero() {
        return Err(format!("{s:?} must be greater than zero"));
    }
    Ok(d)
}

pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
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
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0.0000000001ms").is_err());
        // Found by the `config` fuzz target: this panicked in Duration::from_secs_f64.
        assert_eq!(
            parse_duration("3333333333333333333333333333333333334s").unwrap_err(),
            "\"3333333333333333333333333333333333334s\" is too long"
        );
        let e =
            Config::parse("n.toml", "drift-interval = \"99999999999999999999h\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "n.toml:1:18: \"99999999999999999999h\" is too long"
        );
    }
}
