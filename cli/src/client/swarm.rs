//! `skep swarm …`: init, join, join-token, leave, update, unlock, unlock-key, ca, and `inspect` (a skep extra printing
//! `GET /swarm`), `backup` and `restore`.

use super::{opts, query, seg, ApiClient};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use skep_api::docker::{Availability, Info, InitRequest, JoinRequest, Node, Swarm, SwarmSpec, UnlockKeyResponse};
use std::io::Write;

/// `skep swarm` subcommands.
#[derive(Subcommand, Debug)]
pub enum SwarmCmd {
    /// Initialize a swarm
    Init(Box<InitArgs>),
    /// Join a swarm as a node and/or manager
    Join(JoinArgs),
    /// Manage join tokens
    JoinToken(JoinTokenArgs),
    /// Leave the swarm
    Leave(LeaveArgs),
    /// Update the swarm
    Update(UpdateArgs),
    /// Display the swarm object (GET /swarm), join tokens included
    Inspect,
    /// Unlock swarm (a manager restarted with autolock on; the key is read from standard input)
    Unlock,
    /// Manage the unlock key
    UnlockKey(UnlockKeyArgs),
    /// Display and rotate the root CA
    Ca(CaArgs),
    /// Write this manager's swarm state and identity to FILE (mode 0600; it holds every secret of the swarm)
    Backup(BackupArgs),
    /// Bring a swarm back from a backup on this daemon (outside any swarm), as its only manager
    Restore(RestoreArgs),
}

/// `skep swarm unlock-key`.
#[derive(Args, Debug, Clone)]
pub struct UnlockKeyArgs {
    /// Only display the unlock key
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate the unlock key
    #[arg(long)]
    pub rotate: bool,
}

/// `skep swarm ca`.
#[derive(Args, Debug, Clone)]
pub struct CaArgs {
    /// Rotate the swarm CA - if no certificate or key are provided, new ones will be generated
    #[arg(long)]
    pub rotate: bool,
    /// Path to the PEM-formatted root CA certificate to use for the new cluster
    #[arg(long, value_name = "pem-file")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Path to the PEM-formatted root CA key to use for the new cluster
    #[arg(long, value_name = "pem-file")]
    pub ca_key: Option<std::path::PathBuf>,
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub cert_expiry: Option<i64>,
    /// Exit immediately instead of waiting for the root rotation to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
}

/// `skep swarm backup`.
#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// Where to write the backup
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// `skep swarm restore`.
#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// Listen address (format: "<ip|interface>[:port]"); default: every address, on the backed-up manager's port
    #[arg(long, value_name = "ADDR", default_value = "")]
    pub listen_addr: String,
    /// Advertised address of the restored manager (format: "<ip|interface>[:port]"); default: the backed-up one's
    #[arg(long, value_name = "ADDR", default_value = "")]
    pub advertise_addr: String,
    /// A file written by `skep swarm backup`
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// Cluster settings shared by `init` and `update`; only the flags given change the spec (docker's `flags.Changed`).
#[derive(Args, Debug, Default, Clone)]
pub struct SpecFlags {
    /// Task history retention limit [default: 5]
    #[arg(long, value_name = "N")]
    pub task_history_limit: Option<i64>,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h) [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub dispatcher_heartbeat: Option<i64>,
    /// Validity period for node certificates (ns|us|ms|s|m|h) [default: 2160h0m0s]
    #[arg(long, value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub cert_expiry: Option<i64>,
    /// Number of additional Raft snapshots to retain
    #[arg(long, value_name = "N")]
    pub max_snapshots: Option<u64>,
    /// Number of log entries between Raft snapshots [default: 10000]
    #[arg(long, value_name = "N")]
    pub snapshot_interval: Option<u64>,
    /// Enable manager autolocking (requiring an unlock key to start a stopped manager)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub autolock: Option<bool>,
}

impl SpecFlags {
    /// Apply the given flags to `spec` (docker's `mergeSwarmSpec`).
    pub fn merge(&self, spec: &mut SwarmSpec) {
        if let Some(n) = self.task_history_limit {
            spec.orchestration.task_history_retention_limit = Some(n);
        }
        if let Some(d) = self.dispatcher_heartbeat {
            spec.dispatcher.heartbeat_period = Some(d);
        }
        if let Some(n) = self.max_snapshots {
            spec.raft.keep_old_snapshots = Some(n);
        }
        if let Some(n) = self.snapshot_interval {
            spec.raft.snapshot_interval = n;
        }
        if let Some(b) = self.autolock {
            spec.encryption_config.auto_lock_managers = b;
        }
        if let Some(d) = self.cert_expiry {
            spec.ca_config.node_cert_expiry = Some(d);
        }
    }

    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        self.task_history_limit.is_none()
            && self.dispatcher_heartbeat.is_none()
            && self.cert_expiry.is_none()
            && self.max_snapshots.is_none()
            && self.snapshot_interval.is_none()
            && self.autolock.is_none()
    }
}

/// The addresses `swarm init` and `swarm join` take.
#[derive(Args, Debug, Clone)]
pub struct AddrArgs {
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long, value_name = "ADDR", default_value = "")]
    pub advertise_addr: String,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:2377", value_parser = opts::parse_listen_addr)]
    pub listen_addr: String,
    /// Address or interface to use for data path traffic (format: "<ip|interface>")
    #[arg(long, value_name = "ADDR", default_value = "")]
    pub data_path_addr: String,
}

/// `skep swarm init`.
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    #[command(flatten)]
    pub addrs: AddrArgs,
    /// Port number to use for data path traffic (1024 - 49151); 0 means the default (4789)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub data_path_port: u32,
    /// Force create a new cluster from current state
    #[arg(long)]
    pub force_new_cluster: bool,
    /// Availability of the node ("active", "pause", "drain") [default: active]
    #[arg(long, value_name = "AVAILABILITY", value_parser = opts::availability)]
    pub availability: Option<Availability>,
    /// Default address pool in CIDR format (repeatable, or comma-separated)
    #[arg(long, value_name = "CIDR", value_delimiter = ',', value_parser = opts::parse_cidr)]
    pub default_addr_pool: Vec<String>,
    /// Default address pool subnet mask length
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub default_addr_pool_mask_length: u32,
    #[command(flatten)]
    pub spec: SpecFlags,
}

/// `skep swarm join`.
#[derive(Args, Debug, Clone)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long, value_name = "TOKEN", default_value = "")]
    pub token: String,
    #[command(flatten)]
    pub addrs: AddrArgs,
    /// Availability of the node ("active", "pause", "drain") [default: active]
    #[arg(long, value_name = "AVAILABILITY", value_parser = opts::availability)]
    pub availability: Option<Availability>,
    /// A manager's cluster address
    #[arg(value_name = "HOST:PORT")]
    pub remote: String,
}

/// `skep swarm join-token`.
#[derive(Args, Debug, Clone)]
pub struct JoinTokenArgs {
    /// Only display token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate join token
    #[arg(long)]
    pub rotate: bool,
    /// worker or manager
    #[arg(value_name = "worker|manager")]
    pub role: String,
}

/// `skep swarm leave`.
#[derive(Args, Debug, Clone)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings
    #[arg(short, long)]
    pub force: bool,
}

/// `skep swarm update`.
#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub spec: SpecFlags,
}

/// Run a `swarm` subcommand.
pub async fn run(c: &ApiClient, cmd: SwarmCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        SwarmCmd::Init(a) => init(c, *a, out).await,
        SwarmCmd::Join(a) => join(c, a, out).await,
        SwarmCmd::JoinToken(a) => join_token(c, a, out).await,
        SwarmCmd::Leave(a) => leave(c, a, out).await,
        SwarmCmd::Update(a) => update(c, a, out).await,
        SwarmCmd::Inspect => inspect(c, out).await,
        SwarmCmd::Unlock => {
            let prompt = std::io::IsTerminal::is_terminal(&std::io::stdin());
            unlock(c, &mut std::io::stdin().lock(), prompt).await
        }
        SwarmCmd::UnlockKey(a) => unlock_key(c, a, out).await,
        SwarmCmd::Ca(a) => ca(c, a, out).await,
        SwarmCmd::Backup(a) => backup(c, a, out).await,
        SwarmCmd::Restore(a) => restore(c, a, out).await,
    }
}

/// Most bytes of a backup the CLI reads or sends (the daemon's own limit for a restore).
const MAX_BACKUP: usize = 1 << 30;

/// `swarm backup FILE`: GET /skep/swarm/backup, written to a new file of mode 0600 next to FILE, then renamed.
pub async fn backup(c: &ApiClient, a: BackupArgs, out: &mut dyn Write) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let body = c.with_max_body(MAX_BACKUP).request(hyper::Method::GET, "/skep/swarm/backup", None).await?;
    let tmp = a.file.with_extension("partial");
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &a.file)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", a.file.display()));
    }
    writeln!(out, "Backup written to {} ({} bytes). It holds the swarm's CA key and secrets: keep it safe.", a.file.display(), body.len())?;
    Ok(())
}

/// `swarm restore FILE`: POST /skep/swarm/restore.
pub async fn restore(c: &ApiClient, a: RestoreArgs, out: &mut dyn Write) -> Result<()> {
    let meta = std::fs::metadata(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    if meta.len() > MAX_BACKUP as u64 {
        bail!("{} is larger than a backup can be ({MAX_BACKUP} bytes)", a.file.display());
    }
    let body = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let path = format!("/skep/swarm/restore{}", query(&[("advertise_addr", a.advertise_addr.as_str()), ("listen_addr", a.listen_addr.as_str())]));
    let reply = c.request(hyper::Method::POST, &path, Some(body)).await?;
    let node_id: String = serde_json::from_slice(&reply).context("the daemon's answer")?;
    writeln!(out, "Swarm restored: current node ({node_id}) is now its only manager.")?;
    writeln!(out, "Demote and remove the other managers of the backup ('skep node demote', 'skep node rm'); add managers with 'skep swarm join-token manager'.")?;
    Ok(())
}

/// `swarm init`: POST /swarm/init → GET /nodes/{id} → GET /swarm (→ GET /swarm/unlockkey with --autolock).
pub async fn init(c: &ApiClient, a: InitArgs, out: &mut dyn Write) -> Result<()> {
    let mut spec = SwarmSpec {
        task_defaults: Default::default(),
        ..Default::default()
    };
    a.spec.merge(&mut spec);
    let req = InitRequest {
        listen_addr: a.addrs.listen_addr,
        advertise_addr: a.addrs.advertise_addr,
        data_path_addr: a.addrs.data_path_addr,
        data_path_port: a.data_path_port,
        force_new_cluster: a.force_new_cluster,
        spec,
        auto_lock_managers: a.spec.autolock.unwrap_or(false),
        availability: a.availability.map(|v| v.to_string()).unwrap_or_default(),
        default_addr_pool: a.default_addr_pool,
        subnet_size: a.default_addr_pool_mask_length,
    };
    let node_id: String = match c.post("/swarm/init", &req).await {
        Ok(id) => id,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("could not choose an IP address to advertise")
                || msg.contains("could not find the system's IP address")
            {
                bail!("{msg} - specify one with --advertise-addr");
            }
            return Err(e.into());
        }
    };
    write!(
        out,
        "Swarm initialized: current node ({node_id}) is now a manager.\n\n"
    )?;
    print_join_command(c, &node_id, true, false, out).await?;
    writeln!(out, "To add a manager to this swarm, run 'skep swarm join-token manager' and follow the instructions.")?;
    if req.auto_lock_managers {
        let key: UnlockKeyResponse = c
            .get("/swarm/unlockkey")
            .await
            .context("could not fetch unlock key")?;
        print_unlock_command(out, &key.unlock_key)?;
    }
    Ok(())
}

/// `swarm join`: POST /swarm/join → GET /info.
pub async fn join(c: &ApiClient, a: JoinArgs, out: &mut dyn Write) -> Result<()> {
    let req = JoinRequest {
        listen_addr: a.addrs.listen_addr,
        advertise_addr: a.addrs.advertise_addr,
        data_path_addr: a.addrs.data_path_addr,
        remote_addrs: vec![a.remote],
        join_token: a.token,
        availability: a.availability.map(|v| v.to_string()).unwrap_or_default(),
    };
    c.post_no_reply("/swarm/join", Some(&req)).await?;
    let info: Info = c.get("/info").await?;
    let role = if info.swarm.control_available {
        "manager"
    } else {
        "worker"
    };
    writeln!(out, "This node joined a swarm as a {role}.")?;
    Ok(())
}

/// `swarm join-token`: [GET /swarm → POST /swarm/update?rotate…] → GET /swarm → GET /info → GET /nodes/{self} →
/// GET /swarm.
pub async fn join_token(c: &ApiClient, a: JoinTokenArgs, out: &mut dyn Write) -> Result<()> {
    let worker = a.role == "worker";
    let manager = a.role == "manager";
    if !worker && !manager {
        bail!("unknown role {}", a.role);
    }
    if a.rotate {
        let sw: Swarm = c.get("/swarm").await?;
        post_swarm_update(c, &sw, Rotate { worker, manager, unlock_key: false }).await?;
        if !a.quiet {
            write!(out, "Successfully rotated {} join token.\n\n", a.role)?;
        }
    }
    let sw: Swarm = c.get("/swarm").await?;
    if a.quiet {
        let token = if worker {
            &sw.join_tokens.worker
        } else {
            &sw.join_tokens.manager
        };
        writeln!(out, "{token}")?;
        return Ok(());
    }
    let info: Info = c.get("/info").await?;
    print_join_command(c, &info.swarm.node_id, worker, manager, out).await
}

/// `swarm leave`: POST /swarm/leave[?force=1].
pub async fn leave(c: &ApiClient, a: LeaveArgs, out: &mut dyn Write) -> Result<()> {
    let q = if a.force {
        query(&[("force", "1")])
    } else {
        String::new()
    };
    c.post_no_reply::<()>(&format!("/swarm/leave{q}"), None)
        .await?;
    writeln!(out, "Node left the swarm.")?;
    Ok(())
}

/// `swarm update`: GET /swarm → POST /swarm/update?version=N with the merged spec (→ GET /swarm/unlockkey when
/// autolock was just turned on).
pub async fn update(c: &ApiClient, a: UpdateArgs, out: &mut dyn Write) -> Result<()> {
    if a.spec.is_empty() {
        bail!("nothing to update: give at least one flag (see 'skep swarm update --help')");
    }
    let mut sw: Swarm = c.get("/swarm").await?;
    let was_locked = sw.cluster.spec.encryption_config.auto_lock_managers;
    a.spec.merge(&mut sw.cluster.spec);
    let now_locked = sw.cluster.spec.encryption_config.auto_lock_managers;
    post_swarm_update(c, &sw, Rotate::default()).await?;
    writeln!(out, "Swarm updated.")?;
    if now_locked && !was_locked {
        let key: UnlockKeyResponse = c
            .get("/swarm/unlockkey")
            .await
            .context("could not fetch unlock key")?;
        print_unlock_command(out, &key.unlock_key)?;
    }
    Ok(())
}

/// `swarm unlock`: GET /info (the node must be locked) → the key from `input` (prompted for on a terminal) →
/// POST /swarm/unlock, as the docker CLI does.
pub async fn unlock(c: &ApiClient, input: &mut dyn std::io::BufRead, prompt: bool) -> Result<()> {
    let info: Info = c.get("/info").await?;
    match info.swarm.local_node_state.as_str() {
        "inactive" => bail!("Error: This node is not part of a swarm"),
        "locked" => {}
        _ => bail!("Error: swarm is not locked"),
    }
    if prompt {
        eprint!("Enter unlock key: ");
    }
    let mut key = String::new();
    // a key is 52 characters: a line longer than a few of them is not one
    std::io::BufRead::read_line(&mut std::io::Read::take(input, 4096), &mut key).context("reading the unlock key")?;
    let key = key.trim();
    c.post_no_reply("/swarm/unlock", Some(&skep_api::docker::UnlockRequest { unlock_key: key.to_string() })).await?;
    Ok(())
}

/// `swarm unlock-key [--rotate] [-q]`: (GET /swarm → POST /swarm/update?rotateManagerUnlockKey=true) →
/// GET /swarm/unlockkey, as the docker CLI does.
pub async fn unlock_key(c: &ApiClient, a: UnlockKeyArgs, out: &mut dyn Write) -> Result<()> {
    if a.rotate {
        let sw: Swarm = c.get("/swarm").await?;
        if !sw.cluster.spec.encryption_config.auto_lock_managers {
            bail!("cannot rotate because autolock is not turned on");
        }
        post_swarm_update(c, &sw, Rotate { unlock_key: true, ..Default::default() }).await?;
        if !a.quiet {
            writeln!(out, "Successfully rotated manager unlock key.\n")?;
        }
    }
    let key: UnlockKeyResponse = c.get("/swarm/unlockkey").await.context("could not fetch unlock key")?;
    if key.unlock_key.is_empty() {
        bail!("no unlock key is set");
    }
    if a.quiet {
        writeln!(out, "{}", key.unlock_key)?;
        return Ok(());
    }
    print_unlock_command(out, &key.unlock_key)
}

/// Largest PEM file `swarm ca` reads.
const MAX_PEM: u64 = 1 << 20;

fn read_pem(path: &std::path::Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_PEM {
        bail!("{} is larger than a PEM file can be here ({MAX_PEM} bytes)", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if !text.contains("-----BEGIN ") {
        bail!("{} is not a PEM file", path.display());
    }
    Ok(text)
}

/// `swarm ca`: GET /swarm; without `--rotate` print the trust root, with it POST /swarm/update (`ForceRotate` bumped,
/// or the given root) and, unless `--detach`, follow GET /swarm and GET /nodes every 200 ms until every node holds a
/// certificate from the new root and trusts it, as the docker CLI does; then print the new trust root.
pub async fn ca(c: &ApiClient, a: CaArgs, out: &mut dyn Write) -> Result<()> {
    let mut sw: Swarm = c.get("/swarm").await?;
    if !a.rotate {
        for (given, flag) in [(a.ca_cert.is_some(), "ca-cert"), (a.ca_key.is_some(), "ca-key"), (a.cert_expiry.is_some(), "cert-expiry")] {
            if given {
                bail!("`--{flag}` flag requires the `--rotate` flag to update the CA");
            }
        }
        return print_trust_root(&sw, out);
    }
    if a.ca_cert.is_some() && a.ca_key.is_none() {
        bail!("the --ca-cert flag requires that a --ca-key flag and/or --external-ca flag be provided as well");
    }
    let spec = &mut sw.cluster.spec;
    if let Some(d) = a.cert_expiry {
        spec.ca_config.node_cert_expiry = Some(d);
    }
    spec.ca_config.signing_ca_cert = a.ca_cert.as_deref().map(read_pem).transpose()?.unwrap_or_default();
    spec.ca_config.signing_ca_key = a.ca_key.as_deref().map(read_pem).transpose()?.unwrap_or_default();
    if spec.ca_config.signing_ca_cert.is_empty() && spec.ca_config.signing_ca_key.is_empty() {
        spec.ca_config.force_rotate += 1;
    }
    post_swarm_update(c, &sw, Rotate::default()).await?;
    if a.detach {
        return Ok(());
    }
    let mut shown = None;
    loop {
        let sw: Swarm = c.get("/swarm").await?;
        let nodes: Vec<Node> = c.get("/nodes").await?;
        let want = &sw.cluster.tls_info;
        let certs = nodes
            .iter()
            .filter(|n| {
                let t = &n.description.tls_info;
                t.cert_issuer_public_key == want.cert_issuer_public_key && t.cert_issuer_subject == want.cert_issuer_subject
            })
            .count();
        let certs_done = certs == nodes.len() && !sw.cluster.root_rotation_in_progress;
        let roots = if certs_done { nodes.iter().filter(|n| n.description.tls_info.trust_root == want.trust_root).count() } else { 0 };
        let now = (certs, roots, nodes.len());
        if !a.quiet && shown != Some(now) {
            writeln!(out, "  rotated TLS certificates: {certs}/{} nodes", nodes.len())?;
            writeln!(out, "  rotated CA certificates:  {roots}/{} nodes", nodes.len())?;
            shown = Some(now);
        }
        if certs_done && roots == nodes.len() {
            return print_trust_root(&sw, out);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn print_trust_root(sw: &Swarm, out: &mut dyn Write) -> Result<()> {
    let root = sw.cluster.tls_info.trust_root.trim();
    if root.is_empty() {
        bail!("No CA information available");
    }
    writeln!(out, "{root}")?;
    Ok(())
}

/// `swarm inspect`: GET /swarm, printed as docker prints inspect output (an indented array).
pub async fn inspect(c: &ApiClient, out: &mut dyn Write) -> Result<()> {
    let sw: Swarm = c.get("/swarm").await?;
    writeln!(out, "{}", super::format::json_indent(&[sw])?)?;
    Ok(())
}

/// What `swarm update` rotates (the query's `rotate…` flags).
#[derive(Clone, Copy, Debug, Default)]
struct Rotate {
    worker: bool,
    manager: bool,
    unlock_key: bool,
}

/// POST /swarm/update with docker's query (every flag present, keys sorted) and the current spec as the body.
async fn post_swarm_update(c: &ApiClient, sw: &Swarm, rotate: Rotate) -> Result<()> {
    let version = sw.cluster.version.index.to_string();
    let q = query(&[
        ("version", &version),
        ("rotateWorkerToken", bool_str(rotate.worker)),
        ("rotateManagerToken", bool_str(rotate.manager)),
        ("rotateManagerUnlockKey", bool_str(rotate.unlock_key)),
    ]);
    c.post_no_reply(&format!("/swarm/update{q}"), Some(&sw.cluster.spec))
        .await?;
    Ok(())
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// GET /nodes/{id} → GET /swarm, then the join instructions if the node is a manager (docker prints nothing when the
/// node has no `ManagerStatus`).
async fn print_join_command(
    c: &ApiClient,
    node_id: &str,
    worker: bool,
    manager: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let node: Node = c.get(&format!("/nodes/{}", seg(node_id))).await?;
    let sw: Swarm = c.get("/swarm").await?;
    if let Some(ms) = &node.manager_status {
        if worker {
            out.write_all(
                join_command_text("worker", &sw.join_tokens.worker, &ms.addr).as_bytes(),
            )?;
        }
        if manager {
            out.write_all(
                join_command_text("manager", &sw.join_tokens.manager, &ms.addr).as_bytes(),
            )?;
        }
    }
    Ok(())
}

/// The join instructions for one role, as docker prints them.
pub fn join_command_text(role: &str, token: &str, addr: &str) -> String {
    format!("To add a {role} to this swarm, run the following command:\n\n    skep swarm join --token {token} {addr}\n\n")
}

fn print_unlock_command(out: &mut dyn Write, key: &str) -> Result<()> {
    if !key.is_empty() {
        write!(
            out,
            "To unlock a swarm manager after it restarts, run the `skep swarm unlock`\ncommand and provide the \
             following key:\n\n    {key}\n\nRemember to store this key in a password manager, since without it \
             you\nwill not be able to restart the manager.\n"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_command_text_is_dockers_with_skep() {
        assert_eq!(
            join_command_text("worker", "SWMTKN-1-abc-def", "192.168.1.10:2377"),
            "To add a worker to this swarm, run the following command:\n\n    \
             skep swarm join --token SWMTKN-1-abc-def 192.168.1.10:2377\n\n"
        );
    }

    #[test]
    fn only_given_flags_change_the_spec() {
        let mut spec = SwarmSpec::default();
        SpecFlags::default().merge(&mut spec);
        assert_eq!(spec, SwarmSpec::default());
        let f = SpecFlags {
            task_history_limit: Some(2),
            dispatcher_heartbeat: Some(5_000_000_000),
            cert_expiry: Some(3_600_000_000_000),
            autolock: Some(false),
            ..Default::default()
        };
        f.merge(&mut spec);
        assert_eq!(spec.orchestration.task_history_retention_limit, Some(2));
        assert_eq!(spec.dispatcher.heartbeat_period, Some(5_000_000_000));
        assert_eq!(spec.ca_config.node_cert_expiry, Some(3_600_000_000_000));
        assert_eq!(spec.raft.keep_old_snapshots, None);
        assert!(!f.is_empty());
        assert!(SpecFlags::default().is_empty());
    }
}
