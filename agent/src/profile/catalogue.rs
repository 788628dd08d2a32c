//! The key catalogue: every sysctl a profile may set without `[unchecked]`, with its type,
//! unit, valid range, namespace scope, kernel notes and a one-line description.
//!
//! Scopes were measured on kernel 6.18 (see docs/profiles.md): per-netns keys exist in every
//! network namespace with their own value; global keys are absent or read-only in a child
//! namespace; init-netns keys are global values that only the initial namespace may write.

use serde::Serialize;

/// Where a key's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One value per network namespace.
    Netns,
    /// One value for the whole host; absent or read-only inside a child namespace.
    Global,
    /// A host-wide value writable only from the initial network namespace.
    InitNetns,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Netns => "netns",
            Scope::Global => "global",
            Scope::InitNetns => "init-netns",
        }
    }
}

/// The value type of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// `n` whitespace-separated integers, each in `min..=max`.
    Ints { n: usize, min: i64, max: i64 },
    /// A word; `choices` lists the accepted ones when the set is fixed.
    Word { choices: &'static [&'static str] },
}

/// One catalogue entry.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: &'static str,
    pub scope: Scope,
    /// Kernel module that creates the key (the key is "pending" until it is loaded).
    pub module: Option<&'static str>,
    /// Kernel-version and behaviour notes.
    pub notes: &'static str,
    pub description: &'static str,
}

/// A key that profiles must not set, with the reason.
pub struct Refused {
    pub name: &'static str,
    pub reason: &'static str,
}

const I32: i64 = i32::MAX as i64;
const U32: i64 = u32::MAX as i64;
const BOOL: Kind = Kind::Int { min: 0, max: 1 };
const INT: Kind = Kind::Int { min: 0, max: I32 };
const QDISCS: &[&str] = &[
    "fq",
    "fq_codel",
    "pfifo_fast",
    "cake",
    "sfq",
    "fq_pie",
    "pfifo",
    "noqueue",
];

const fn key(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    scope: Scope,
    notes: &'static str,
    description: &'static str,
) -> KeyInfo {
    KeyInfo {
        name,
        kind,
        unit,
        scope,
        module: None,
        notes,
        description,
    }
}

const fn conntrack(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    scope: Scope,
    notes: &'static str,
    description: &'static str,
) -> KeyInfo {
    KeyInfo {
        name,
        kind,
        unit,
        scope,
        module: Some("nf_conntrack"),
        notes,
        description,
    }
}

use Scope::{Global, InitNetns, Netns};

/// The catalogue, sorted by name.
#[rustfmt::skip]
pub const KEYS: &[KeyInfo] = &[
    key("fs.aio-max-nr", Kind::Int { min: 0, max: i64::MAX }, "requests", Global, "",
        "System-wide limit on concurrent asynchronous I/O requests."),
    key("fs.file-max", Kind::Int { min: 0, max: i64::MAX }, "files", Global, "",
        "System-wide limit on open file handles (see /proc/sys/fs/file-nr)."),
    key("fs.inotify.max_user_instances", INT, "instances", Global, "",
        "Per-user limit on inotify instances."),
    key("fs.inotify.max_user_watches", INT, "watches", Global, "",
        "Per-user limit on inotify watches."),
    key("fs.nr_open", Kind::Int { min: 64, max: 2_147_483_584 }, "files", Global,
        "the ceiling for RLIMIT_NOFILE: LimitNOFILE above it fails",
        "Largest per-process file-descriptor limit that may be set."),
    key("kernel.numa_balancing", BOOL, "", Global, "",
        "Automatic NUMA page migration."),
    key("kernel.pid_max", Kind::Int { min: 301, max: 4_194_304 }, "pids", Global, "",
        "Largest process ID; bounds the number of processes and threads."),
    key("kernel.threads-max", Kind::Int { min: 20, max: 1_073_741_823 }, "threads", Global, "",
        "System-wide limit on threads."),
    key("net.core.busy_poll", INT, "µs", Global, "",
        "Busy-poll time for poll/select on sockets (0 = off)."),
    key("net.core.busy_read", INT, "µs", Global, "",
        "Busy-poll time for socket reads (0 = off)."),
    key("net.core.default_qdisc", Kind::Word { choices: QDISCS }, "", Global,
        "affects only qdiscs created afterwards (new interfaces, or after a qdisc reset)",
        "Queueing discipline given to new network devices."),
    key("net.core.dev_weight", Kind::Int { min: 1, max: I32 }, "packets", Global, "",
        "Packets one NAPI poll may take from a device's backlog."),
    key("net.core.netdev_budget", Kind::Int { min: 0, max: I32 }, "packets", Global, "",
        "Packets one softirq NAPI cycle may process across devices."),
    key("net.core.netdev_budget_usecs", Kind::Int { min: 0, max: I32 }, "µs", Global, "",
        "Time one softirq NAPI cycle may run."),
    key("net.core.netdev_max_backlog", Kind::Int { min: 0, max: I32 }, "packets", Global, "",
        "Per-CPU input queue length before packets are dropped (softnet drops)."),
    key("net.core.optmem_max", INT, "bytes", Netns,
        "per-netns since 6.x (global before)",
        "Largest ancillary buffer per socket."),
    key("net.core.rmem_default", INT, "bytes", Global, "read-only in a child netns",
        "Default socket receive buffer."),
    key("net.core.rmem_max", INT, "bytes", Global, "read-only in a child netns",
        "Largest receive buffer an application may set with SO_RCVBUF."),
    key("net.core.somaxconn", INT, "connections", Netns,
        "default 4096 since 5.4; values over 65535 need 4.1+",
        "Cap on a listening socket's accept queue (listen() backlog)."),
    key("net.core.wmem_default", INT, "bytes", Global, "read-only in a child netns",
        "Default socket send buffer."),
    key("net.core.wmem_max", INT, "bytes", Global, "read-only in a child netns",
        "Largest send buffer an application may set with SO_SNDBUF."),
    key("net.ipv4.conf.all.rp_filter", Kind::Int { min: 0, max: 2 }, "", Netns, "",
        "Reverse-path filtering (0 off, 1 strict, 2 loose)."),
    key("net.ipv4.ip_forward", BOOL, "", Netns, "",
        "Forward IPv4 packets between interfaces."),
    key("net.ipv4.ip_local_port_range", Kind::Ints { n: 2, min: 1, max: 65535 }, "ports", Netns,
        "first ≤ last; must not overlap listening ports (reserve them with ip_local_reserved_ports)",
        "Ephemeral port range for outgoing connections."),
    key("net.ipv4.ip_local_reserved_ports", Kind::Word { choices: &[] }, "ports", Netns, "",
        "Ports (comma-separated list or ranges) kept out of the ephemeral range."),
    key("net.ipv4.neigh.default.gc_thresh1", INT, "entries", Netns, "",
        "Neighbour-table size below which entries are never collected."),
    key("net.ipv4.neigh.default.gc_thresh2", INT, "entries", Netns, "",
        "Neighbour-table soft limit."),
    key("net.ipv4.neigh.default.gc_thresh3", INT, "entries", Netns, "",
        "Neighbour-table hard limit (\"neighbour table overflow\")."),
    key("net.ipv4.tcp_congestion_control", Kind::Word { choices: &[] }, "", Netns,
        "new namespaces copy the initial namespace's value; the algorithm must be available (module tcp_NAME)",
        "Congestion-control algorithm for new TCP connections."),
    key("net.ipv4.tcp_fastopen", Kind::Int { min: 0, max: 0x7ff }, "flags", Netns, "",
        "TCP Fast Open: 1 client, 2 server, 3 both."),
    key("net.ipv4.tcp_fin_timeout", Kind::Int { min: 1, max: I32 }, "seconds", Netns, "",
        "Time an orphaned connection stays in FIN-WAIT-2."),
    key("net.ipv4.tcp_keepalive_intvl", Kind::Int { min: 1, max: 32767 }, "seconds", Netns, "",
        "Interval between keepalive probes."),
    key("net.ipv4.tcp_keepalive_probes", Kind::Int { min: 1, max: 127 }, "probes", Netns, "",
        "Unanswered keepalive probes before a connection is dropped."),
    key("net.ipv4.tcp_keepalive_time", Kind::Int { min: 1, max: 32767 }, "seconds", Netns, "",
        "Idle time before keepalive probes start."),
    key("net.ipv4.tcp_max_orphans", INT, "sockets", Global, "",
        "Orphaned sockets (no file handle) kept before they are reset."),
    key("net.ipv4.tcp_max_syn_backlog", Kind::Int { min: 0, max: I32 }, "requests", Netns,
        "default sized from the connection hash table",
        "Half-open (SYN_RECV) connections remembered per listener before SYN cookies or drops."),
    key("net.ipv4.tcp_max_tw_buckets", INT, "sockets", Netns, "",
        "TIME_WAIT sockets kept before they are destroyed (TCPTimeWaitOverflow)."),
    key("net.ipv4.tcp_mem", Kind::Ints { n: 3, min: 0, max: i64::MAX }, "pages", Global, "",
        "TCP memory thresholds: low, pressure, high (in pages)."),
    key("net.ipv4.tcp_mtu_probing", Kind::Int { min: 0, max: 2 }, "", Netns, "",
        "Packetization-layer path MTU discovery (0 off, 1 on ICMP black hole, 2 always)."),
    key("net.ipv4.tcp_no_metrics_save", BOOL, "", Netns, "",
        "Do not cache metrics of closed connections."),
    key("net.ipv4.tcp_notsent_lowat", Kind::Int { min: 0, max: U32 }, "bytes", Netns, "",
        "Unsent bytes a socket may queue before it stops being writable."),
    key("net.ipv4.tcp_rmem", Kind::Ints { n: 3, min: 1, max: I32 }, "bytes", Netns,
        "new namespaces copy the initial namespace's value (4.15+)",
        "TCP receive buffer: min, default, max (autotuning bounds)."),
    key("net.ipv4.tcp_sack", BOOL, "", Netns, "", "Selective acknowledgements."),
    key("net.ipv4.tcp_slow_start_after_idle", BOOL, "", Netns, "",
        "Reset the congestion window after an idle period."),
    key("net.ipv4.tcp_syn_retries", Kind::Int { min: 1, max: 127 }, "retries", Netns, "",
        "SYN retransmissions for an outgoing connect."),
    key("net.ipv4.tcp_synack_retries", Kind::Int { min: 0, max: 255 }, "retries", Netns, "",
        "SYN-ACK retransmissions for an incoming connection."),
    key("net.ipv4.tcp_syncookies", Kind::Int { min: 0, max: 2 }, "", Netns, "",
        "SYN cookies when the SYN backlog overflows (1) or always (2)."),
    key("net.ipv4.tcp_timestamps", Kind::Int { min: 0, max: 2 }, "", Netns,
        "TIME_WAIT reuse relies on timestamps",
        "TCP timestamps (RFC 7323)."),
    key("net.ipv4.tcp_tw_reuse", Kind::Int { min: 0, max: 2 }, "", Netns,
        "per-netns since 4.11; 2 = loopback only (default since 4.19)",
        "Reuse TIME_WAIT sockets for new outgoing connections when safe."),
    key("net.ipv4.tcp_window_scaling", BOOL, "", Netns, "", "TCP window scaling (RFC 7323)."),
    key("net.ipv4.tcp_wmem", Kind::Ints { n: 3, min: 1, max: I32 }, "bytes", Netns,
        "new namespaces copy the initial namespace's value (4.15+)",
        "TCP send buffer: min, default, max (autotuning bounds)."),
    key("net.ipv4.udp_mem", Kind::Ints { n: 3, min: 0, max: i64::MAX }, "pages", Global, "",
        "UDP memory thresholds: low, pressure, high (in pages)."),
    key("net.ipv6.conf.all.forwarding", BOOL, "", Netns, "",
        "Forward IPv6 packets between interfaces."),
    conntrack("net.netfilter.nf_conntrack_buckets", Kind::Int { min: 1, max: I32 }, "buckets", InitNetns,
        "writable from the initial namespace (5.x+); same as the hashsize module parameter",
        "Connection-tracking hash table size."),
    conntrack("net.netfilter.nf_conntrack_expect_max", Kind::Int { min: 1, max: I32 }, "entries", InitNetns, "",
        "Connection-tracking expectation limit."),
    conntrack("net.netfilter.nf_conntrack_max", INT, "entries", InitNetns,
        "read-only in a child namespace since 5.13; kube-proxy also sets it",
        "Connection-tracking table size (\"nf_conntrack: table full, dropping packet\")."),
    conntrack("net.netfilter.nf_conntrack_tcp_timeout_established", INT, "seconds", Netns, "",
        "Conntrack timeout of an idle established TCP connection."),
    conntrack("net.netfilter.nf_conntrack_tcp_timeout_time_wait", INT, "seconds", Netns, "",
        "Conntrack timeout of a TCP connection in TIME_WAIT."),
    key("vm.dirty_background_ratio", Kind::Int { min: 0, max: 100 }, "%", Global, "",
        "Dirty memory share at which background writeback starts."),
    key("vm.dirty_ratio", Kind::Int { min: 0, max: 100 }, "%", Global, "",
        "Dirty memory share at which writers block."),
    key("vm.max_map_count", Kind::Int { min: 0, max: I32 }, "mappings", Global, "",
        "Memory mappings a process may have."),
    key("vm.min_free_kbytes", Kind::Int { min: 0, max: I32 }, "KiB", Global, "",
        "Memory kept free for atomic allocations."),
    key("vm.overcommit_memory", Kind::Int { min: 0, max: 2 }, "", Global, "",
        "Overcommit policy (0 heuristic, 1 always, 2 never)."),
    key("vm.swappiness", Kind::Int { min: 0, max: 200 }, "", Global, "",
        "Preference for swapping anonymous memory over dropping page cache."),
];

/// Keys that are refused outright.
pub const REFUSED: &[Refused] = &[
    Refused {
        name: "net.ipv4.tcp_tw_recycle",
        reason: "it was removed in Linux 4.12 because it dropped connections from clients \
                 behind NAT (per-host timestamps); use net.ipv4.tcp_tw_reuse instead",
    },
    Refused {
        name: "vm.drop_caches",
        reason: "it is an action, not a setting: writing it drops caches every time it is applied",
    },
    Refused {
        name: "net.ipv4.route.flush",
        reason: "it is an action, not a setting: writing it flushes the routing cache",
    },
    Refused {
        name: "net.ipv4.tcp_low_latency",
        reason: "it has had no effect since Linux 4.14",
    },
];

/// Looks a key up in the catalogue.
pub fn lookup(name: &str) -> Option<&'static KeyInfo> {
    KEYS.binary_search_by(|k| k.name.cmp(name))
        .ok()
        .map(|i| &KEYS[i])
}

/// The reason a key is refused, if it is.
pub fn refused(name: &str) -> Option<&'static str> {
    REFUSED.iter().find(|r| r.name == name).map(|r| r.reason)
}

/// The closest catalogue key to a mistyped one, if any is close enough to be a likely typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    crate::profile::suggest::closest(name, KEYS.iter().map(|k| k.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_and_unique() {
        for w in KEYS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn lookup_and_suggest() {
        assert_eq!(
            lookup("net.core.somaxconn").map(|k| k.scope),
            Some(Scope::Netns)
        );
        assert!(lookup("net.core.somaxcon").is_none());
        assert_eq!(suggest("net.core.somaxcon"), Some("net.core.somaxconn"));
        assert_eq!(
            suggest("net.ipv4.tcp_tw_reus"),
            Some("net.ipv4.tcp_tw_reuse")
        );
        assert_eq!(suggest("completely.different"), None);
        assert!(refused("net.ipv4.tcp_tw_recycle").unwrap().contains("4.12"));
    }
}
