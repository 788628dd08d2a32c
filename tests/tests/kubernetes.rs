//! The Kubernetes manifests: validated with kubernetes-validate (PyPI) in strict mode against
//! its current Kubernetes schema, and the fleet properties the schema cannot see checked on
//! the parsed documents (no hostPort 9100, the image the image recipe builds, hardening).

use std::path::{Path, PathBuf};
use std::process::Command;

use nodetune_e2e::{have_tool, require, run_cmd};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn docs(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(repo().join("packaging/kubernetes").join(file))
        .unwrap_or_else(|e| panic!("read {file}: {e}"));
    text.split("\n---\n")
        .map(|d| serde_yaml::from_str(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn kind<'a>(docs: &'a [serde_yaml::Value], k: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(k))
        .unwrap_or_else(|| panic!("no {k}"))
}

#[test]
fn daemonset_validates_strictly_against_the_current_schema() {
    if !require(
        have_tool("kubernetes-validate"),
        "kubernetes-validate (pip install kubernetes-validate)",
    ) {
        return;
    }
    let file = repo().join("packaging/kubernetes/nodetune-daemonset.yaml");
    let r = run_cmd(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&file),
    );
    let out = r.stdout.clone() + &r.stderr;
    assert_eq!(r.code, 0, "kubernetes-validate --strict:\n{out}");
    for res in [
        "namespace/nodetune",
        "serviceaccount/nodetune",
        "configmap/nodetune",
        "daemonset/nodetune",
        "service/nodetune",
    ] {
        assert!(
            out.contains(&format!("passed for resource {res}")),
            "{res} not validated:\n{out}"
        );
    }
    // Strict mode really rejects what the schema does not know (the check can fail).
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &bad,
        text.replace("hostPID: true", "hostPID: true\n      hostPid: true"),
    )
    .expect("write");
    let r = run_cmd(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&bad),
    );
    assert_ne!(r.code, 0, "an unknown field passed strict validation");
}

#[test]
fn daemonset_fleet_properties() {
    let all = docs("nodetune-daemonset.yaml");
    let ns = kind(&all, "Namespace");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
        Some("privileged"),
        "pod-security label missing"
    );
    let ds = kind(&all, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = &pod["containers"][0];
    // The image packaging/image/build makes, at the crate's version.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        c["image"].as_str(),
        Some(format!("localhost/nodetune:{version}").as_str())
    );
    let recipe = std::fs::read_to_string(repo().join("packaging/image/build")).expect("recipe");
    assert!(
        recipe.contains("localhost/nodetune:"),
        "recipe names another image"
    );
    // Not node_exporter's port: kube-prometheus-stack's node-exporter holds hostPort 9100.
    for p in c["ports"].as_sequence().expect("ports") {
        assert_ne!(p["hostPort"].as_u64(), Some(9100), "hostPort 9100 collides");
    }
    let cfg = kind(&all, "ConfigMap")["data"]["nodetune.toml"]
        .as_str()
        .expect("nodetune.toml");
    assert!(!cfg.contains(":9100"), "{cfg}");
    // The readiness probe must not run a scrape.
    assert!(c["readinessProbe"]["httpGet"]["path"].as_str() != Some("/metrics"));
    assert!(c["readinessProbe"]["tcpSocket"]["port"].as_str().is_some());
    // modprobe tcp_bbr (SYS_MODULE) needs the node's modules.
    let caps = c["securityContext"]["capabilities"]["add"]
        .as_sequence()
        .expect("caps");
    if caps.iter().any(|c| c.as_str() == Some("SYS_MODULE")) {
        let mounts = c["volumeMounts"].as_sequence().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"].as_str() == Some("/lib/modules")
                    && m["readOnly"].as_bool() == Some(true)),
            "SYS_MODULE without /lib/modules"
        );
    }
    assert_eq!(c["securityContext"]["privileged"].as_bool(), Some(false));
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
}

#[test]
fn servicemonitor_matches_the_service() {
    // A CRD: kubernetes-validate has no schema for it, so its links are checked here.
    let sm = docs("nodetune-servicemonitor.yaml");
    let sm = kind(&sm, "ServiceMonitor");
    let all = docs("nodetune-daemonset.yaml");
    let svc = kind(&all, "Service");
    let port = sm["spec"]["endpoints"][0]["port"].as_str().expect("port");
    assert!(
        svc["spec"]["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .any(|p| p["name"].as_str() == Some(port)),
        "the ServiceMonitor scrapes port {port}, which the Service lacks"
    );
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("selector")
    {
        assert_eq!(&svc["metadata"]["labels"][k.as_str().unwrap()], v);
    }
}
