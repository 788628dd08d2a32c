//! Driving nodetune the way an operator does: `apply` (into a lab namespace with `--netns`, or
//! onto a fake root for host-wide settings), `recommend` inside a namespace, and the daemon in
//! audit mode beside a run, its alert lines captured with the time they were logged.

use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::netns;

/// A command's exit code and output.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The command line, as an operator would type it.
    pub command: String,
}

fn run(bin: &Path, prefix: &[&str], args: &[&str], env: &[(&str, &Path)]) -> io::Result<Ran> {
    let mut cmd = if prefix.is_empty() {
        Command::new(bin)
    } else {
        let mut c = Command::new(prefix[0]);
        c.args(&prefix[1..]).arg(bin);
        c
    };
    cmd.args(args).envs(env.iter().map(|(k, v)| (*k, *v)));
    let out = cmd.output()?;
    let mut command: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    command.push("nodetune".into());
    command.extend(args.iter().map(|s| s.to_string()));
    Ok(Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command: command.join(" "),
    })
}

/// `nodetune apply --profile P --netns NS`: the per-namespace keys of the profile (host-wide
/// keys are out of scope there and left alone).
pub fn apply_netns(
    bin: &Path,
    ns: &str,
    profile: &str,
    state: &Path,
    profile_dir: Option<&Path>,
) -> io::Result<Ran> {
    let mut args = vec!["apply", "--profile", profile, "--netns", ns];
    let dir;
    if let Some(d) = profile_dir {
        dir = format!("--profile-dir={}", d.display());
        args.push(&dir);
    }
    let r = run(bin, &[], &args, &[("NODETUNE_STATE_DIR", state)])?;
    if r.code != 0 {
        return Err(io::Error::other(format!(
            "{} failed ({}): {}{}",
            r.command, r.code, r.stdout, r.stderr
        )));
    }
    Ok(r)
}

/// `nodetune apply` against a fake host: sysctl tree `sysctl_root`, files under `root`.
pub fn apply_fake_root(
    bin: &Path,
    profile: &str,
    sysctl_root: &Path,
    root: &Path,
    profile_dir: &Path,
) -> io::Result<Ran> {
    let r = run(
        bin,
        &[],
        &[
            "apply",
            "--profile",
            profile,
            &format!("--sysctl-root={}", sysctl_root.display()),
            &format!("--root={}", root.display()),
            &format!("--profile-dir={}", profile_dir.display()),
        ],
        &[],
    )?;
    if r.code != 0 {
        return Err(io::Error::other(format!(
            "{} failed ({}): {}{}",
            r.command, r.code, r.stdout, r.stderr
        )));
    }
    Ok(r)
}

/// What `nodetune recommend` said inside a namespace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recommendation {
    pub profile: String,
    pub reason: String,
    /// Every finding in one line each ("firing EphemeralPortPressure: …").
    pub findings: Vec<String>,
    /// The keys its findings name, with current -> desired.
    pub knobs: Vec<String>,
    /// Listening ports it counted as the host's services.
    pub listeners: Vec<u64>,
    /// Listening ports of nodetune itself, which it did not count.
    pub own_listeners: Vec<u64>,
}

impl Recommendation {
    /// Does a finding name this key?
    pub fn names(&self, key: &str) -> bool {
        self.knobs.iter().any(|k| k.starts_with(key))
    }
}

/// Runs `nodetune recommend -o json` in a namespace.
pub fn recommend(bin: &Path, ns: &str, interval: &str) -> io::Result<Recommendation> {
    let r = run(
        bin,
        &["ip", "netns", "exec", ns],
        &["recommend", "-o", "json", "--interval", interval],
        &[],
    )?;
    if r.code != 0 {
        return Err(io::Error::other(format!(
            "{} failed ({}): {}",
            r.command, r.code, r.stderr
        )));
    }
    let v: serde_json::Value = serde_json::from_str(&r.stdout).map_err(|e| {
        io::Error::other(format!("recommend output is not JSON: {e}: {}", r.stdout))
    })?;
    let ports = |k: &str| -> Vec<u64> {
        v[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_u64())
            .collect()
    };
    let mut rec = Recommendation {
        profile: v["profile"].as_str().unwrap_or_default().to_string(),
        reason: v["reason"].as_str().unwrap_or_default().to_string(),
        listeners: ports("listeners"),
        own_listeners: ports("own_listeners"),
        ..Recommendation::default()
    };
    for f in v["findings"].as_array().into_iter().flatten() {
        rec.findings.push(format!(
            "{} {}: {}",
            f["level"].as_str().unwrap_or_default(),
            f["alert"].as_str().unwrap_or_default(),
            f["evidence"].as_str().unwrap_or_default()
        ));
        for k in f["knobs"].as_array().into_iter().flatten() {
            let text = k["text"].as_str().unwrap_or_default().to_string();
            if !rec.knobs.contains(&text) {
                rec.knobs.push(text);
            }
        }
    }
    Ok(rec)
}

/// One alert transition the daemon logged.
#[derive(Debug, Clone, Serialize)]
pub struct AlertLine {
    pub alert: String,
    /// pending, firing or resolved.
    pub state: String,
    /// Seconds since the run started (negative: before it).
    pub at_s: f64,
    /// The rest of the line: labels, summary, remedy.
    pub text: String,
}

/// `nodetune run --mode audit` inside a namespace; killed on drop.
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: PathBuf,
}

/// The daemon's configuration in the lab: audit mode, alerts evaluated every second and firing
/// on the first tick that sees the condition (a burst of one second shows), kept 30 s.
pub const DAEMON_CONFIG: &str = "mode = \"audit\"\n[alerts]\ninterval = \"1s\"\nfor-duration = \"0s\"\nclear-duration = \"30s\"\n";

impl Daemon {
    /// Starts the daemon in namespace `ns` auditing `profile`; its state and configuration in
    /// `dir`. Call from a long-lived thread (the child dies with the thread that started it).
    pub fn start(
        bin: &Path,
        ns: &str,
        profile: &str,
        profile_dir: Option<&Path>,
        dir: PathBuf,
    ) -> io::Result<Daemon> {
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join("nodetune.toml");
        std::fs::write(&cfg, DAEMON_CONFIG)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(bin)
            .arg("run")
            .arg(format!("--config={}", cfg.display()))
            .arg(format!("--profile={profile}"))
            .arg(format!("--state-dir={}", dir.join("state").display()))
            .arg("--web.listen-address=:9100")
            // One JSON object per event: the alert's name and state are fields of their own.
            .arg("--log.format=json")
            .args(profile_dir.map(|d| format!("--profile-dir={}", d.display())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        netns::register_pid(child.id());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let now = Instant::now();
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((now, line));
            }
        });
        let mut d = Daemon {
            child,
            lines,
            _dir: dir.clone(),
        };
        // Ready once its status document exists (the first alert tick follows within 1 s).
        let status = dir.join("state/daemon.json");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !status.exists() {
            if let Ok(Some(st)) = d.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(io::Error::other(format!(
                    "the daemon exited ({st}):\n{}",
                    d.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "the daemon did not start within 20 s:\n{}",
                    d.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The alert transitions logged so far, timed against `start`.
    pub fn alerts(&self, start: Instant) -> Vec<AlertLine> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .filter_map(|(at, l)| {
                let event: serde_json::Value = serde_json::from_str(l).ok()?;
                let alert = event["alert"].as_str()?.to_string();
                let state = event["state"].as_str()?.to_string();
                // The message repeats name and state; the report keeps what follows them.
                let msg = event["msg"].as_str().unwrap_or_default();
                let text = msg
                    .strip_prefix(&format!("alert {alert} {state} "))
                    .unwrap_or(msg)
                    .to_string();
                let at_s = if *at >= start {
                    at.duration_since(start).as_secs_f64()
                } else {
                    -start.duration_since(*at).as_secs_f64()
                };
                Some(AlertLine {
                    alert,
                    state,
                    at_s,
                    text,
                })
            })
            .collect()
    }

    /// Waits up to `secs` for an alert of that name to reach `state`.
    pub fn wait_for(&self, start: Instant, alert: &str, state: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self
                .alerts(start)
                .iter()
                .any(|a| a.alert == alert && a.state == state)
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        netns::forget_pid(self.child.id());
    }
}
