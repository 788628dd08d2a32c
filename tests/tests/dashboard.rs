//! The shipped Prometheus rules and Grafana dashboard against a real Prometheus scraping a
//! real nodetune on this host: the rules load and evaluate without errors (and SysctlDrift
//! goes pending on the drift the test sets up), and every dashboard panel's query returns data,
//! or is empty for a reason the panel's description gives and the test checks on this host.

use std::path::{Path, PathBuf};

use nodetune_e2e::{have_tool, http_get, require, wait_until, FakeHost, Prometheus};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn dashboard() -> serde_json::Value {
    let p = repo().join("packaging/grafana/nodetune-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read dashboard")).expect("JSON")
}

/// Every panel with queries (rows hold none), flattened.
fn panels(d: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten().cloned());
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// The query as Grafana sends it: every instance, and `$__rate_interval` at four scrape
/// intervals of this test's Prometheus (Grafana's own lower bound).
fn as_sent(expr: &str) -> String {
    expr.replace("$instance", ".+")
        .replace("$__rate_interval", "4s")
}

/// Why a panel may be empty here, checked on this host rather than assumed.
fn reason_empty(title: &str, prom: &Prometheus) -> Option<&'static str> {
    if title == "Throttling" && !Path::new("/sys/devices/system/cpu/cpu0/thermal_throttle").exists()
    {
        return Some("no thermal_throttle counters in sysfs (virtual machine)");
    }
    if title.starts_with("GPU") && prom.instant("nodetune_gpu_info").is_empty() {
        return Some("no NVIDIA GPU reported (built without the gpu feature, or no NVML)");
    }
    None
}

#[test]
fn grafana_panels_are_well_formed() {
    let d = dashboard();
    let all = panels(&d);
    assert!(
        d["panels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["type"] == "row" && p["title"].as_str().unwrap().contains("GPU")),
        "no GPU row"
    );
    for p in &all {
        let title = p["title"].as_str().expect("title");
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{title}: no description"
        );
        for t in p["targets"].as_array().expect("targets") {
            // A table of an instant vector: a range query would give one row per step.
            if p["type"] == "table" {
                assert_eq!(t["instant"], true, "{title}: table panel not instant");
                assert_eq!(
                    t["format"], "table",
                    "{title}: table panel not format=table"
                );
            }
            // `a or b` with identical label sets drops b entirely: one query per series.
            let expr = t["expr"].as_str().expect("expr");
            assert!(!expr.contains(" or "), "{title}: `or` hides series: {expr}");
        }
    }
    // The GPU panels read the collector's real family names.
    let gpu = include_str!("../../agent/src/collect/gpu.rs");
    for p in all
        .iter()
        .filter(|p| p["title"].as_str().unwrap().starts_with("GPU"))
    {
        let expr = p["targets"][0]["expr"].as_str().unwrap();
        let name: String = expr
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            gpu.contains(&format!("\"{name}\"")),
            "{name} is not a gpu collector family"
        );
    }
}

#[test]
fn shipped_rules_and_every_panel_query_in_a_real_prometheus() {
    if !require(
        have_tool("prometheus") && have_tool("promtool"),
        "prometheus and promtool (Debian package prometheus)",
    ) {
        return;
    }
    // A sysctl tree below the base profile's floors: SysctlDrift, so the alert panels and
    // rules have something to show. Collectors read this host's real /proc and /sys.
    let host = FakeHost::new();
    let cfg = host.path("nodetune.toml");
    std::fs::write(
        &cfg,
        "mode = \"audit\"\n[web]\ntextfile-handoff-dirs = []\n[alerts]\ninterval = \"1s\"\nfor-duration = \"1s\"\n",
    )
    .expect("write config");
    let d = host.daemon(
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
        ],
        &[],
    );
    let addr = d.addr();
    let rules = repo().join("packaging/prometheus/nodetune-rules.yml");
    let prom = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: nodetune\n    static_configs:\n      - targets: ['{addr}']\n",
        rules.display()
    ));
    assert!(
        wait_until(60, || prom.value("up{job=\"nodetune\"}") == Some(1.0)
            && prom
                .value("nodetune_alert{alertname=\"SysctlDrift\",state=\"firing\"}")
                .is_some()),
        "nodetune not scraped, or SysctlDrift never fired:\n{}",
        d.stderr()
    );
    // Enough samples for every rate() window.
    std::thread::sleep(std::time::Duration::from_secs(6));

    // The rules: all loaded, each evaluated without error, and the drift alert pending.
    let (code, _, body) = http_get(&prom.addr, "/api/v1/rules", &[]).expect("GET /api/v1/rules");
    assert_eq!(code, 200);
    let api: serde_json::Value = serde_json::from_slice(&body).expect("rules JSON");
    let groups = api["data"]["groups"].as_array().expect("groups");
    let shipped = std::fs::read_to_string(&rules).expect("read rules");
    let loaded: usize = groups
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, |r| r.len()))
        .sum();
    assert_eq!(
        loaded,
        shipped.matches("- alert:").count() + shipped.matches("- record:").count(),
        "not every shipped rule was loaded"
    );
    for g in groups {
        for r in g["rules"].as_array().expect("rules") {
            assert_eq!(
                r["health"], "ok",
                "rule {} does not evaluate: {}",
                r["name"], r["lastError"]
            );
        }
    }
    assert!(
        wait_until(20, || !prom
            .instant("ALERTS{alertname=\"SysctlDrift\"}")
            .is_empty()),
        "the shipped SysctlDrift rule does not see nodetune's drift"
    );

    let mut report = Vec::new();
    for p in panels(&dashboard()) {
        let title = p["title"].as_str().expect("title").to_string();
        for t in p["targets"].as_array().expect("targets") {
            let expr = as_sent(t["expr"].as_str().expect("expr"));
            let got = prom.instant(&expr);
            if got.is_empty() {
                let why = reason_empty(&title, &prom).unwrap_or_else(|| {
                    panic!("panel {title:?}: {expr} returns nothing and no reason holds here")
                });
                let desc = p["description"].as_str().unwrap_or_default();
                assert!(
                    desc.contains("Empty"),
                    "panel {title:?} may be empty ({why}) but its description does not say when"
                );
                report.push(format!("{title}: empty ({why})"));
            } else {
                report.push(format!("{title}: {} series", got.len()));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}
