//! `skep info` and `skep version`.

use super::format::{self, Template};
use super::ApiClient;
use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use skep_api::docker::{Info, VersionResponse, API_VERSION};
use std::fmt::Write as _;
use std::io::Write;

/// `skep info`.
#[derive(Args, Debug, Clone, Default)]
pub struct InfoArgs {
    /// Format output: "json", or a template with {{.Path}} / {{json .Path}} actions (e.g. {{.Swarm.NodeID}})
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `skep version`.
#[derive(Args, Debug, Clone, Default)]
pub struct VersionArgs {
    /// Format output: "json", or a template with {{.Path}} actions (e.g. {{.Server.Version}})
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// This binary's version.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `info`: GET /info, then docker's layout (the parts skep fills), the Swarm section in full.
pub async fn info(c: &ApiClient, a: InfoArgs, out: &mut dyn Write) -> Result<()> {
    match a.format.as_deref().map(str::trim) {
        Some("json") => {
            let v: Value = c.get("/info").await?;
            writeln!(out, "{v}")?;
        }
        Some(t) if !t.is_empty() => {
            let tmpl = Template::parse(t)?;
            let v: Value = c.get("/info").await?;
            writeln!(out, "{}", tmpl.render(&v))?;
        }
        _ => {
            write!(out, "Client:\n Version:    {CLIENT_VERSION}\n\nServer:\n")?;
            let info: Info = c.get("/info").await?;
            out.write_all(render_info(&info).as_bytes())?;
        }
    }
    Ok(())
}

/// The server part of `info` (docker's `prettyPrintServerInfo` / `printSwarmInfo`, for the fields skep reports).
pub fn render_info(info: &Info) -> String {
    let mut s = String::new();
    let _ = writeln!(s, " Containers: {}", info.containers);
    let _ = writeln!(s, " Server Version: {}", info.server_version);
    if !info.driver.is_empty() {
        let _ = writeln!(s, " Engine: {}", info.driver);
    }
    let sw = &info.swarm;
    let _ = writeln!(s, " Swarm: {}", sw.local_node_state);
    if !matches!(sw.local_node_state.as_str(), "inactive" | "locked" | "") {
        let _ = writeln!(s, "  NodeID: {}", sw.node_id);
        if sw.local_node_state == "error" {
            let _ = writeln!(s, "  Error: {}", sw.error);
        }
        let _ = writeln!(s, "  Is Manager: {}", sw.control_available);
        if let (Some(cl), true, false) = (
            &sw.cluster,
            sw.control_available,
            sw.local_node_state == "pending",
        ) {
            let spec = &cl.spec;
            let _ = writeln!(s, "  ClusterID: {}", cl.id);
            let _ = writeln!(s, "  Managers: {}", sw.managers.unwrap_or(0));
            let _ = writeln!(s, "  Nodes: {}", sw.nodes.unwrap_or(0));
            let pools: String = cl
                .default_addr_pool
                .iter()
                .map(|p| format!("{p}  "))
                .collect();
            let _ = writeln!(s, "  Default Address Pool: {pools}");
            let _ = writeln!(s, "  SubnetSize: {}", cl.subnet_size);
            if cl.data_path_port > 0 {
                let _ = writeln!(s, "  Data Path Port: {}", cl.data_path_port);
            }
            let _ = writeln!(s, "  Orchestration:");
            let _ = writeln!(
                s,
                "   Task History Retention Limit: {}",
                spec.orchestration.task_history_retention_limit.unwrap_or(0)
            );
            let _ = writeln!(s, "  Raft:");
            let _ = writeln!(s, "   Snapshot Interval: {}", spec.raft.snapshot_interval);
            if let Some(k) = spec.raft.keep_old_snapshots {
                let _ = writeln!(s, "   Number of Old Snapshots to Retain: {k}");
            }
            let _ = writeln!(s, "   Heartbeat Tick: {}", spec.raft.heartbeat_tick);
            let _ = writeln!(s, "   Election Tick: {}", spec.raft.election_tick);
            let _ = writeln!(s, "  Dispatcher:");
            let _ = writeln!(
                s,
                "   Heartbeat Period: {}",
                format::human_duration(spec.dispatcher.heartbeat_period.unwrap_or(0))
            );
            let _ = writeln!(s, "  CA Configuration:");
            let _ = writeln!(
                s,
                "   Expiry Duration: {}",
                format::human_duration(spec.ca_config.node_cert_expiry.unwrap_or(0))
            );
            let _ = writeln!(s, "   Force Rotate: {}", spec.ca_config.force_rotate);
            let _ = writeln!(
                s,
                "  Autolock Managers: {}",
                spec.encryption_config.auto_lock_managers
            );
            let _ = writeln!(
                s,
                "  Root Rotation In Progress: {}",
                cl.root_rotation_in_progress
            );
        }
        let _ = writeln!(s, "  Node Address: {}", sw.node_addr);
        let mut managers: Vec<&str> = sw
            .remote_managers
            .iter()
            .flatten()
            .map(|p| p.addr.as_str())
            .collect();
        if !managers.is_empty() {
            managers.sort_unstable();
            let _ = writeln!(s, "  Manager Addresses:");
            for m in managers {
                let _ = writeln!(s, "   {m}");
            }
        }
    }
    let _ = writeln!(s, " Kernel Version: {}", info.kernel_version);
    let _ = writeln!(s, " Operating System: {}", info.operating_system);
    let _ = writeln!(s, " OSType: {}", info.os_type);
    let _ = writeln!(s, " Architecture: {}", info.architecture);
    let _ = writeln!(s, " CPUs: {}", info.ncpu);
    let _ = writeln!(
        s,
        " Total Memory: {}",
        format::bytes_size(info.mem_total as f64)
    );
    let _ = writeln!(s, " Name: {}", info.name);
    let _ = writeln!(s, " ID: {}", info.id);
    let _ = writeln!(s, " Skep Root Dir: {}", info.docker_root_dir);
    if !info.labels.is_empty() {
        let _ = writeln!(s, " Labels:");
        for l in &info.labels {
            let _ = writeln!(s, "  {l}");
        }
    }
    s
}

/// Go's names for this client's OS and architecture.
fn client_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    (std::env::consts::OS, arch)
}

/// `version`: the client's version, then GET /version. The client part is printed even if the daemon is unreachable.
pub async fn version(c: &ApiClient, a: VersionArgs, out: &mut dyn Write) -> Result<()> {
    let (os, arch) = client_platform();
    let client = json!({
        "Version": CLIENT_VERSION, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION, "Os": os, "Arch": arch,
    });
    let server: Result<VersionResponse, _> = c.get("/version").await;
    let template = match a.format.as_deref().map(str::trim) {
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(t) if !t.is_empty() => Some(Template::parse(t)?),
        _ => None,
    };
    if let Some(t) = template {
        let server_v = match &server {
            Ok(v) => serde_json::to_value(v)?,
            Err(_) => Value::Null,
        };
        writeln!(
            out,
            "{}",
            t.render(&json!({"Client": client, "Server": server_v}))
        )?;
        server?;
        return Ok(());
    }
    let mut text = format!(
        "Client:\n Version:\t{CLIENT_VERSION}\n API version:\t{API_VERSION}\n OS/Arch:\t{os}/{arch}\n"
    );
    if let Ok(v) = &server {
        let name = v.platform.get("Name").and_then(Value::as_str).unwrap_or("");
        let _ = write!(
            text,
            "\nServer:{}{name}\n Engine:\n",
            if name.is_empty() { "" } else { " " }
        );
        let _ = writeln!(text, "  Version:\t{}", v.version);
        let _ = writeln!(
            text,
            "  API version:\t{} (minimum version {})",
            v.api_version, v.min_api_version
        );
        if !v.go_version.is_empty() {
            let _ = writeln!(text, "  Go version:\t{}", v.go_version);
        }
        let _ = writeln!(text, "  Git commit:\t{}", v.git_commit);
        let _ = writeln!(text, "  Built:\t{}", v.build_time);
        let _ = writeln!(text, "  OS/Arch:\t{}/{}", v.os, v.arch);
        if !v.kernel_version.is_empty() {
            let _ = writeln!(text, "  Kernel Version:\t{}", v.kernel_version);
        }
    }
    out.write_all(format::tabwriter_with(&text, 20, 1).as_bytes())?;
    server?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{ClusterInfo, Peer, SwarmInfo, SwarmSpec};

    #[test]
    fn info_swarm_section_like_docker() {
        let info = Info {
            swarm: SwarmInfo {
                node_id: "n1".into(),
                node_addr: "10.0.0.1".into(),
                local_node_state: "active".into(),
                control_available: true,
                remote_managers: Some(vec![
                    Peer {
                        node_id: "n2".into(),
                        addr: "10.0.0.2:2377".into(),
                    },
                    Peer {
                        node_id: "n1".into(),
                        addr: "10.0.0.1:2377".into(),
                    },
                ]),
                nodes: Some(3),
                managers: Some(2),
                cluster: Some(ClusterInfo {
                    id: "c1".into(),
                    spec: SwarmSpec::default().with_defaults(),
                    default_addr_pool: vec!["10.0.0.0/8".into()],
                    subnet_size: 24,
                    data_path_port: 4789,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = render_info(&info);
        let swarm: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.starts_with(" Swarm:"))
            .take(25)
            .collect();
        assert_eq!(
            swarm.join("\n"),
            " Swarm: active
  NodeID: n1
  Is Manager: true
  ClusterID: c1
  Managers: 2
  Nodes: 3
  Default Address Pool: 10.0.0.0/8  
  SubnetSize: 24
  Data Path Port: 4789
  Orchestration:
   Task History Retention Limit: 5
  Raft:
   Snapshot Interval: 10000
   Number of Old Snapshots to Retain: 0
   Heartbeat Tick: 1
   Election Tick: 10
  Dispatcher:
   Heartbeat Period: 1 second
  CA Configuration:
   Expiry Duration: 3 months
   Force Rotate: 0
  Autolock Managers: false
  Root Rotation In Progress: false
  Node Address: 10.0.0.1
  Manager Addresses:"
        );
        assert!(s.contains("  Manager Addresses:\n   10.0.0.1:2377\n   10.0.0.2:2377\n"));
    }

    #[test]
    fn inactive_swarm_prints_only_the_state() {
        let mut info = Info::default();
        info.swarm.local_node_state = "inactive".into();
        let s = render_info(&info);
        assert!(s.contains(" Swarm: inactive\n Kernel Version:"), "{s}");
    }
}
