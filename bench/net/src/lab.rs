//! The lab: three hosts and a client as network namespaces on one underlay bridge, and skep's data plane on the hosts,
//! made through skep-overlay exactly as the daemon makes it.
//!
//! ```text
//!                              skbn-sw: bridge br0 (MTU 1500) = the underlay, 10.213.200.0/24
//!        ┌──────────────────────────┬──────────────────────────┬──────────────────────────┐
//!  skbn-cl u0 .10, .11     skbn-ha u0 .1 (host A)      skbn-hb u0 .2 (host B)      skbn-hc u0 .3 (host C)
//!  (wrk, churn client)     nft skep_ingress :8080      serve :8000 (direct path)
//!                          (→ webb, webc :80), :8082 (→ webb :82), :8083 (→ webb, webc :83); HAProxy → :81
//!                          HAProxy :8081
//!                          skh4202 10.213.202.1 ──┐
//!  network "bench", VNI 4201, 10.213.201.0/24:    │
//!    A: sandbox iperfa eth0 .2  ◄─ VXLAN ─►  B: sandbox iperfb eth0 .3
//!  network "ingress", VNI 4202, 10.213.202.0/24:  │
//!    A: host leg .1 ──────────────── VXLAN ──►  B: sandbox webb eth0 .11 (serve :80-83)
//!                                    VXLAN ────────────────────────────►  C: sandbox webc eth0 .12 (serve :80-83)
//! ```
//!
//! Every namespace name starts with `skbn-` (the DataPlanes' prefixes are `skbn-a`, `skbn-b`, `skbn-c`), every
//! address is in 10.213.200-209.x, so nothing collides with the tests (`sko-*`, `skt*`, 10.213.1xx and 21x).
//! [`cleanup`] removes all of it, whatever state a run stopped in.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use anyhow::{bail, Context, Result};
use skep_overlay::netns::Netns;
use skep_overlay::network::{DataPlane, DataPlaneConfig, NetworkPlan, Peer};
use skep_overlay::nft::{self, IngressPort, Proto};

/// Every namespace of the lab starts with this.
pub const NS_PREFIX: &str = "skbn-";

/// The underlay MTU (the bridge and every host's `u0`).
pub const UNDERLAY_MTU: u32 = 1500;

pub const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 213, 200, 1);
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 213, 200, 2);
pub const HOST_C: Ipv4Addr = Ipv4Addr::new(10, 213, 200, 3);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 213, 200, 10);
/// A second address of the client namespace: a second client, for the churn run with two clients.
pub const CLIENT2: Ipv4Addr = Ipv4Addr::new(10, 213, 200, 11);

/// The overlay network of the throughput figure.
pub const VNI_BENCH: u32 = 4201;
pub const BENCH_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 213, 201, 0);
pub const TASK_A: Ipv4Addr = Ipv4Addr::new(10, 213, 201, 2);
pub const TASK_B: Ipv4Addr = Ipv4Addr::new(10, 213, 201, 3);

/// The ingress network of the routing mesh.
pub const VNI_INGRESS: u32 = 4202;
pub const INGRESS_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 213, 202, 0);
/// Host A's address on the ingress network (its host leg): the mesh's masquerade source and HAProxy's source.
pub const LEG_A: Ipv4Addr = Ipv4Addr::new(10, 213, 202, 1);
pub const WEB_B: Ipv4Addr = Ipv4Addr::new(10, 213, 202, 11);
pub const WEB_C: Ipv4Addr = Ipv4Addr::new(10, 213, 202, 12);

/// The published port of the mesh on host A.
pub const MESH_PORT: u16 = 8080;
/// A second published port on host A, to one backend only (webb, port [`MESH1_BACKEND_PORT`]): the mesh path with
/// the same single backend process as the direct path, so the two differ by the path alone.
pub const MESH1_PORT: u16 = 8082;
pub const MESH1_BACKEND_PORT: u16 = 82;
/// The mesh for the churn run with two clients: the same rule as [`MESH_PORT`], to backend port
/// [`MESH2_BACKEND_PORT`], so the backends' TIME_WAIT sockets of the one-client runs do not carry over.
pub const MESH2_PORT: u16 = 8083;
pub const MESH2_BACKEND_PORT: u16 = 83;
/// HAProxy's port on host A.
pub const HAPROXY_PORT: u16 = 8081;
/// The backends' port in their sandboxes (the mesh's target port).
pub const BACKEND_PORT: u16 = 80;
/// The same backend processes also listen here, for HAProxy. Why a port of its own (and why each mesh port has its own
/// backend port): the mesh masquerades to host A's leg address and HAProxy connects from it too, so they would share
/// the (leg:port → backend:80) tuples. A backend's TIME_WAIT socket left by one connection refuses a SYN of another
/// connection on the same tuple unless its sequence number or timestamp is newer, which only holds for the same
/// original 4-tuple: challenge ACK, RST, SYN retransmitted, and 1 s when the ACK is rate-limited. Measured: ~2200
/// SYN retransmits and a few 1 s stalls in HAProxy's churn run right after the mesh's. Separate ports keep each run's
/// figures its own; the two-client churn run shows what this does to the mesh itself.
pub const HAPROXY_BACKEND_PORT: u16 = 81;
/// The direct path: the same server on host B's underlay address.
pub const DIRECT_PORT: u16 = 8000;

/// One host: its namespace and its skep data plane.
pub struct Host {
    pub ns: Netns,
    pub dp: DataPlane,
}

/// Everything the figures use. Dropping it removes nothing; [`Lab::teardown`] and [`cleanup`] do.
pub struct Lab {
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub client: Netns,
    /// Task sandboxes on network "bench": A's and B's.
    pub task_a: Netns,
    pub task_b: Netns,
    /// The backends' sandboxes on network "ingress": B's and C's.
    pub web_b: Netns,
    pub web_c: Netns,
    /// Host A's host leg on ingress (`skh4202`), what the masquerade rule and HAProxy go out through.
    pub leg: String,
}

impl Lab {
    /// Builds the underlay with `ip`, then the overlay networks, sandboxes, host leg and routing mesh rules with
    /// skep-overlay. Leftovers of an earlier run are removed first.
    pub async fn build() -> Result<Lab> {
        cleanup();
        let sw = Netns::create("skbn-sw")?;
        ip(&[
            "-n",
            "skbn-sw",
            "link",
            "add",
            "br0",
            "mtu",
            &UNDERLAY_MTU.to_string(),
            "type",
            "bridge",
        ])?;
        ip(&["-n", "skbn-sw", "link", "set", "br0", "up"])?;
        let mut hosts = Vec::new();
        for (name, addr) in [
            ("skbn-ha", HOST_A),
            ("skbn-hb", HOST_B),
            ("skbn-hc", HOST_C),
            ("skbn-cl", CLIENT),
        ] {
            let ns = Netns::create(name)?;
            let port = format!("p-{}", &name[5..]);
            let mtu = UNDERLAY_MTU.to_string();
            ip(&[
                "-n", "skbn-sw", "link", "add", &port, "mtu", &mtu, "type", "veth", "peer", "name", "u0", "mtu", &mtu,
                "netns", name,
            ])?;
            ip(&["-n", "skbn-sw", "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", name, "addr", "add", &format!("{addr}/24"), "dev", "u0"])?;
            ip(&["-n", name, "link", "set", "u0", "up"])?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
            hosts.push(ns);
        }
        drop(sw);
        ip(&["-n", "skbn-cl", "addr", "add", &format!("{CLIENT2}/24"), "dev", "u0"])?;
        let client = hosts.pop().context("client namespace")?;
        let mut made = Vec::new();
        for (ns, prefix, underlay) in hosts
            .into_iter()
            .zip([("skbn-a", HOST_A), ("skbn-b", HOST_B), ("skbn-c", HOST_C)])
            .map(|(ns, (p, u))| (ns, p, u))
        {
            let dp = DataPlane::new(DataPlaneConfig {
                prefix: prefix.into(),
                underlay,
                underlay_mtu: None, // detected from u0, as the daemon does
                node_ns: Some(ns.clone()),
            })
            .await
            .with_context(|| format!("data plane of {prefix}"))?;
            made.push(Host { ns, dp });
        }
        let c = made.pop().context("host C")?;
        let b = made.pop().context("host B")?;
        let a = made.pop().context("host A")?;

        let bench = plan("bench", VNI_BENCH, BENCH_SUBNET, &[(TASK_A, HOST_A), (TASK_B, HOST_B)]);
        a.dp.sync_network(&bench).await.context("network bench on A")?;
        b.dp.sync_network(&bench).await.context("network bench on B")?;
        let ingress = plan(
            "ingress",
            VNI_INGRESS,
            INGRESS_SUBNET,
            &[(LEG_A, HOST_A), (WEB_B, HOST_B), (WEB_C, HOST_C)],
        );
        for (h, which) in [(&a, "A"), (&b, "B"), (&c, "C")] {
            h.dp.sync_network(&ingress)
                .await
                .with_context(|| format!("network ingress on {which}"))?;
        }

        let task_a = sandbox(&a.dp, "iperfa", VNI_BENCH, TASK_A).await?;
        let task_b = sandbox(&b.dp, "iperfb", VNI_BENCH, TASK_B).await?;
        let web_b = sandbox(&b.dp, "webb", VNI_INGRESS, WEB_B).await?;
        let web_c = sandbox(&c.dp, "webc", VNI_INGRESS, WEB_C).await?;

        // The routing mesh on host A, as the worker programs it (worker/src/network.rs `reconcile_mesh`).
        let leg = a.dp.host_leg(VNI_INGRESS, LEG_A, 24).await.context("host leg on A")?;
        let a_path = Some(a.ns.path());
        nft::enable_ip_forward(a_path).await.context("ip_forward on A")?;
        let ports = [
            IngressPort {
                proto: Proto::Tcp,
                port: MESH_PORT,
                target_port: BACKEND_PORT,
                backends: vec![WEB_B, WEB_C],
            },
            IngressPort {
                proto: Proto::Tcp,
                port: MESH1_PORT,
                target_port: MESH1_BACKEND_PORT,
                backends: vec![WEB_B],
            },
            IngressPort {
                proto: Proto::Tcp,
                port: MESH2_PORT,
                target_port: MESH2_BACKEND_PORT,
                backends: vec![WEB_B, WEB_C],
            },
        ];
        nft::apply_ingress(a_path, &leg, &ports)
            .await
            .context("ingress rules on A")?;

        Ok(Lab {
            a,
            b,
            c,
            client,
            task_a,
            task_b,
            web_b,
            web_c,
            leg,
        })
    }

    /// Removes what skep made through its own API (`teardown_all` on every host), then everything else.
    pub async fn teardown(self) -> Result<()> {
        let mut first_err = None;
        for h in [&self.a, &self.b, &self.c] {
            if let Err(e) = h.dp.teardown_all().await {
                first_err.get_or_insert(anyhow::Error::from(e));
            }
        }
        drop(self);
        cleanup();
        match first_err {
            Some(e) => Err(e.context("teardown_all")),
            None => Ok(()),
        }
    }
}

fn plan(id: &str, vni: u32, subnet: Ipv4Addr, peers: &[(Ipv4Addr, Ipv4Addr)]) -> NetworkPlan {
    NetworkPlan {
        id: id.into(),
        vni,
        subnet,
        prefix_len: 24,
        mtu: None, // underlay − 50, the daemon's default
        peers: peers.iter().map(|&(addr, node)| Peer { addr, node }).collect(),
    }
}

async fn sandbox(dp: &DataPlane, task: &str, vni: u32, addr: Ipv4Addr) -> Result<Netns> {
    let ns = dp
        .sandbox_create(task)
        .await
        .with_context(|| format!("sandbox {task}"))?;
    dp.sandbox_attach(&ns, vni, "eth0", addr, 24)
        .await
        .with_context(|| format!("attach {task}"))?;
    Ok(ns)
}

/// Runs `ip ARGS…`.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Kills (SIGKILL, by PID) every process whose network namespace is one of the `skbn-*` namespaces, then deletes
/// those namespaces (their links, VXLAN devices, host legs and nft tables go with them). Returns (processes killed,
/// namespaces deleted). Never fails: it is the last resort of every exit path.
pub fn cleanup() -> (usize, usize) {
    let names: Vec<String> = Netns::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(NS_PREFIX))
        .collect();
    let ids: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| std::fs::metadata(Netns::path_for(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let me = std::process::id();
    let mut killed = 0;
    if !ids.is_empty() {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
                continue;
            };
            if ids.contains(&(m.dev(), m.ino())) {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                    killed += 1;
                }
            }
        }
    }
    let mut deleted = 0;
    for n in &names {
        if Netns::delete(n).is_ok() {
            deleted += 1;
        }
    }
    (killed, deleted)
}
