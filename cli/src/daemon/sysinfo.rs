//! Facts about the host for `/info`, `/version` and the node description, read from /proc and uname-like files.

use skep_api::docker::{EngineDescription, NodeDescription, Platform, PluginDescription, Resources};

/// The host name.
pub fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into())
}

/// Kernel release.
pub fn kernel() -> String {
    read_trim("/proc/sys/kernel/osrelease").unwrap_or_default()
}

/// `x86_64`, `aarch64` (uname spelling).
pub fn arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64".into(),
        "aarch64" => "aarch64".into(),
        other => other.into(),
    }
}

/// GOARCH-style spelling for `/version`.
pub fn goarch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

/// CPUs available.
pub fn ncpu() -> i64 {
    std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1)
}

/// Memory in bytes.
pub fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| {
                l.split_whitespace().nth(1).and_then(|kb| kb.parse::<i64>().ok()).map(|kb| kb * 1024)
            })
        })
        .unwrap_or(0)
}

/// `PRETTY_NAME` from os-release.
pub fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        })
        .unwrap_or_else(|| "Linux".into())
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// skep's version, reported as the engine version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What this node reports about itself. `engine` is the task engine (`process` or `docker`).
pub fn describe(engine: &str) -> NodeDescription {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(skep_api::docker::ENGINE_LABEL.to_string(), engine.to_string());
    NodeDescription {
        hostname: hostname(),
        platform: Platform { architecture: arch(), os: "linux".into() },
        resources: Resources { nano_cpus: ncpu() * 1_000_000_000, memory_bytes: mem_total() },
        engine: EngineDescription {
            engine_version: VERSION.into(),
            labels,
            plugins: vec![PluginDescription { kind: "Network".into(), name: "overlay".into() }],
        },
        tls_info: Default::default(),
    }
}
