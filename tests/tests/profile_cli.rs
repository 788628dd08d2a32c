//! Bad profiles get exact, helpful errors and change nothing; `profile` subcommands.

use nodetune_e2e::FakeHost;

/// Applies a broken profile named `bad` and returns stderr; asserts nothing was written.
fn broken(h: &FakeHost, text: &str) -> String {
    h.write("root/etc/nodetune/profiles.d/bad.toml", text);
    let before = h.snapshot();
    let r = h.run(&["apply", "-p", "bad"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        h.snapshot(),
        before,
        "a broken profile must not change anything"
    );
    assert!(!h.path("state/originals").exists());
    r.stderr
}

#[test]
fn malformed_toml() {
    let h = FakeHost::new();
    let e = broken(
        &h,
        "[sysctl]\n\"net.core.somaxconn\" = 65535\n\"net.ipv4.tcp_fastopen\" = 3 3\n",
    );
    let file = h.path("root/etc/nodetune/profiles.d/bad.toml");
    assert_eq!(
        e,
        format!(
            "{}:3:27: invalid TOML: string values must be quoted, expected literal string\n",
            file.display()
        )
    );
}

#[test]
fn unknown_key_with_suggestion() {
    let h = FakeHost::new();
    let e = broken(&h, "[sysctl]\n\"net.core.somaxcon\" = 65535\n");
    assert!(e.ends_with("bad.toml:2:1: net.core.somaxcon: unknown key (did you mean \"net.core.somaxconn\"? To set a key the catalogue does not know, put it under [unchecked])\n"), "{e}");
}

#[test]
fn out_of_range() {
    let h = FakeHost::new();
    let e = broken(&h, "[sysctl]\n\"net.ipv4.tcp_tw_reuse\" = 3\n");
    assert!(
        e.ends_with("bad.toml:2:27: net.ipv4.tcp_tw_reuse: 3 is out of range: allowed 0..=2\n"),
        "{e}"
    );
    let e = broken(
        &h,
        "[sysctl]\n\"net.ipv4.ip_local_port_range\" = \"60999 1024\"\n",
    );
    assert!(e.ends_with("bad.toml:2:34: net.ipv4.ip_local_port_range: the first value (60999) is greater than the last (1024): write the lower bound first\n"), "{e}");
}

#[test]
fn wrong_types() {
    let h = FakeHost::new();
    let e = broken(
        &h,
        "[sysctl]\n\"net.ipv4.tcp_rmem\" = 4096\n[limits]\nnofile = \"lots\"\n",
    );
    assert!(e.contains("bad.toml:2:23: net.ipv4.tcp_rmem: expected a string of 3 fields, found an integer (for example \"4096 87380 >=16777216\")\n"), "{e}");
    assert!(
        e.ends_with("bad.toml:4:10: limits.nofile: expected an integer, found a string\n"),
        "{e}"
    );
}

#[test]
fn refused_key() {
    let h = FakeHost::new();
    let e = broken(&h, "[sysctl]\n\"net.ipv4.tcp_tw_recycle\" = 1\n");
    assert!(
        e.contains("net.ipv4.tcp_tw_recycle: refused: it was removed in Linux 4.12"),
        "{e}"
    );
}

#[test]
fn include_cycle() {
    let h = FakeHost::new();
    h.write(
        "root/etc/nodetune/profiles.d/other.toml",
        "[profile]\ninclude = [\"bad\"]\n",
    );
    let e = broken(&h, "[profile]\ninclude = [\"base\", \"other\"]\n");
    assert!(e.ends_with("other.toml:2:12: profile.include: include cycle: bad -> other -> bad (remove \"bad\" from the include list)\n"), "{e}");
}

#[test]
fn missing_include() {
    let h = FakeHost::new();
    let e = broken(&h, "[profile]\ninclude = [\"api-nodes\"]\n");
    assert!(e.ends_with("bad.toml:2:12: profile.include: included profile \"api-nodes\" was not found (did you mean \"api-node\"?)\n"), "{e}");
}

#[test]
fn validate_reports_every_problem() {
    let h = FakeHost::new();
    h.write(
        "p/good.toml",
        "[profile]\ninclude = [\"base\"]\n[sysctl]\n\"net.core.somaxconn\" = 8192\n",
    );
    h.write(
        "p/bad.toml",
        "[sysctl]\n\"net.core.somaxconn\" = \"lots\"\n[limts]\n",
    );
    let good = h.path("p/good.toml");
    let bad = h.path("p/bad.toml");
    let r = h.run(&[
        "profile",
        "validate",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    let b = bad.display();
    assert_eq!(
        r.stdout,
        format!(
            "{}: ok (4 settings)\n{b}:2:24: net.core.somaxconn: \"lots\" is not a number or a relation (N, >=N, <=N, _)\n{b}:3:2: limts: unknown section (did you mean \"limits\"?)\n",
            good.display()
        )
    );
    let r = h.run(&["profile", "validate", "-o", "json", bad.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["errors"][0]["line"], 2);
    assert_eq!(v[0]["errors"][0]["column"], 24);
    assert_eq!(v[0]["errors"][0]["key"], "net.core.somaxconn");
    // The shipped profiles are valid.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    for name in ["base", "api-node", "api-gateway", "load-generator"] {
        let f = shipped.join(format!("{name}.toml"));
        let r = h.run(&["profile", "validate", f.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{name}: {}", r.stdout);
    }
}

#[test]
fn show_prints_effective_values_with_origin() {
    let h = FakeHost::new();
    let r = h.run(&["profile", "show", "api-gateway"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("merge order: base -> api-node -> api-gateway"),
        "{}",
        r.stdout
    );
    let line = |key: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} missing:\n{}", r.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("net.core.somaxconn"),
        "net.core.somaxconn 65535 netns builtin:api-node.toml:13:1"
    );
    assert_eq!(
        line("net.ipv4.tcp_syncookies"),
        "net.ipv4.tcp_syncookies 1 netns builtin:base.toml:19:1"
    );
    assert_eq!(
        line("net.ipv4.tcp_rmem"),
        "net.ipv4.tcp_rmem 4096 >=87380 >=16777216 netns builtin:api-gateway.toml:21:1"
    );
    assert_eq!(
        line("net.ipv4.tcp_congestion_control"),
        "net.ipv4.tcp_congestion_control bbr netns builtin:api-gateway.toml:38:11"
    );
    // 16 GB of memory in the fake host: auto = 64 Ki entries per GiB, rounded to a power of 2.
    assert_eq!(
        line("net.netfilter.nf_conntrack_max"),
        "net.netfilter.nf_conntrack_max 1048576 init-netns builtin:api-gateway.toml:47:7"
    );
    // A local copy overrides the shipped one by name, and show names its file.
    h.write(
        "root/etc/nodetune/profiles.d/api-node.toml",
        "[profile]\ninclude = [\"base\"]\n[sysctl]\n\"net.core.somaxconn\" = 32768\n",
    );
    let r = h.run(&["profile", "show", "api-gateway"]);
    assert!(
        r.stdout.contains("profiles.d/api-node.toml:4:1"),
        "{}",
        r.stdout
    );
    let r = h.run(&["profile", "list"]);
    assert!(
        r.stdout.contains("etc/nodetune/profiles.d/api-node.toml"),
        "{}",
        r.stdout
    );
}

#[test]
fn docs_list_every_catalogue_key() {
    let h = FakeHost::new();
    let r = h.run(&["profile", "keys", "-o", "json"]);
    let keys: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(keys.len() > 40);
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profiles.md"),
    )
    .unwrap();
    for k in keys {
        let name = k["key"].as_str().unwrap();
        assert!(
            docs.contains(&format!("| `{name}` |")),
            "docs/profiles.md does not document {name}"
        );
    }
}

#[test]
fn writable_profiles_are_refused_like_sshd_strictmodes() {
    // The check applies when nodetune runs as root.
    if !nodetune_e2e::require(nodetune_e2e::is_root(), "root") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let h = FakeHost::new();
    h.write(
        "root/etc/nodetune/profiles.d/open.toml",
        "[sysctl]\n\"net.core.somaxconn\" = 65535\n",
    );
    let f = h.path("root/etc/nodetune/profiles.d/open.toml");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = h.snapshot();
    let r = h.run(&["apply", "-p", "open"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "{}: refusing file writable by group or others (mode 666): chmod go-w",
            f.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(h.snapshot(), before);
}
