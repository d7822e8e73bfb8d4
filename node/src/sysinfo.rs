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

/// The IPv4 routes of this host (its namespace) other than the default route, from /proc/net/route: what a new
/// overlay subnet or address pool must not overlap.
pub fn host_routes() -> Vec<skep_manager::allocator::Subnet> {
    std::fs::read_to_string("/proc/net/route").map(|t| parse_routes(&t)).unwrap_or_default()
}

/// Parses /proc/net/route (destination and mask in little-endian hex); skips the default route and our own overlay
/// legs (interfaces named `skep*`), which are the cluster's networks, not the host's.
fn parse_routes(text: &str) -> Vec<skep_manager::allocator::Subnet> {
    let mut out = Vec::new();
    for line in text.lines().skip(1).take(10_000) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0].starts_with("skep") {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16)) else { continue };
        // the kernel prints the network-order bytes as a host-order (little-endian) number
        let (dst, mask) = (u32::from_be_bytes(dst.to_le_bytes()), u32::from_be_bytes(mask.to_le_bytes()));
        if mask == 0 {
            continue;
        }
        out.push(skep_manager::allocator::Subnet { base: dst & mask, len: mask.count_ones() as u8 });
    }
    out
}

#[cfg(test)]
mod route_tests {
    #[test]
    fn proc_net_route_is_parsed() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
skep_in\t0000FF0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = super::parse_routes(text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].to_string(), "192.168.1.0/24");
    }
}
