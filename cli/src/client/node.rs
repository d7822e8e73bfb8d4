//! `skep node …`: ls, inspect, promote, demote, update, rm.

use super::format::{self, Template};
use super::{opts, query, seg, ApiClient};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skep_api::docker::{Info, Node, NodeRole, NodeSpecUpdate, SwarmInfo, TlsInfo};
use skep_api::filters::Filters;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

/// `skep node` subcommands.
#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// List nodes in the swarm
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more nodes
    Inspect(InspectArgs),
    /// List tasks running on one or more nodes, defaults to current node
    Ps(PsArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote(NodesArgs),
    /// Demote one or more nodes from manager in the swarm
    Demote(NodesArgs),
    /// Update a node
    Update(UpdateArgs),
    /// Remove one or more nodes from the swarm
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// `skep node ls`.
#[derive(Args, Debug, Clone, Default)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (id, name, label, node.label, role, membership)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = opts::parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: "table" (default), "json", "raw", "table TEMPLATE" or "TEMPLATE" with {{.Field}} actions
    /// (ID, Self, Hostname, Status, Availability, ManagerStatus, TLSStatus, EngineVersion)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `skep node ps`.
#[derive(Args, Debug, Clone, Default)]
pub struct PsArgs {
    #[command(flatten)]
    pub flags: super::service::ps::TaskListFlags,
    /// Node IDs, names or "self" (default "self")
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// `skep node inspect`.
#[derive(Args, Debug, Clone, Default)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output: "json" (one line per node), "pretty", or a template with {{.Path}} / {{json .Path}} actions
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Node IDs, names or "self"
    #[arg(value_name = "NODE", required = true)]
    pub nodes: Vec<String>,
}

/// Nodes for `promote` / `demote`.
#[derive(Args, Debug, Clone, Default)]
pub struct NodesArgs {
    /// Node IDs or names
    #[arg(value_name = "NODE", required = true)]
    pub nodes: Vec<String>,
}

/// `skep node update`.
#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long, value_name = "AVAILABILITY")]
    pub availability: Option<String>,
    /// Role of the node ("worker", "manager")
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Add or update a node label ("key=value")
    #[arg(long = "label-add", value_name = "KEY=VALUE")]
    pub label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Node ID or name
    #[arg(value_name = "NODE")]
    pub node: String,
}

/// `skep node rm`.
#[derive(Args, Debug, Clone, Default)]
pub struct RmArgs {
    /// Force remove a node from the swarm
    #[arg(short, long)]
    pub force: bool,
    /// Node IDs or names
    #[arg(value_name = "NODE", required = true)]
    pub nodes: Vec<String>,
}

/// Run a `node` subcommand.
pub async fn run(c: &ApiClient, cmd: NodeCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        NodeCmd::Ls(a) => ls(c, a, out).await,
        NodeCmd::Inspect(a) => inspect(c, a, out).await,
        NodeCmd::Ps(a) => ps(c, a, out).await,
        NodeCmd::Promote(a) => promote(c, a, out).await,
        NodeCmd::Demote(a) => demote(c, a, out).await,
        NodeCmd::Update(a) => update(c, a, out).await,
        NodeCmd::Rm(a) => rm(c, a, out).await,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// node ls

/// How `node ls` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFormat {
    /// Docker's default table.
    Table,
    /// IDs only.
    Quiet,
    /// `node_id: …` blocks.
    Raw {
        /// Only `node_id:` lines.
        quiet: bool,
    },
    /// A template per node; `table` puts it through the tabwriter with a header line.
    Template {
        /// The template.
        tmpl: Template,
        /// Whether it was `table …`.
        table: bool,
        /// The header line's template text (same actions, rendered against the header names).
        header: Option<Template>,
    },
}

impl ListFormat {
    /// docker's `newFormat` for nodes: `table`, `json`, `raw` or a template.
    pub fn parse(format: Option<&str>, quiet: bool) -> Result<ListFormat> {
        let f = format.unwrap_or("").trim();
        Ok(match f {
            "" | "table" if quiet => ListFormat::Quiet,
            "" | "table" => ListFormat::Table,
            "raw" => ListFormat::Raw { quiet },
            "json" => ListFormat::Template {
                tmpl: Template::parse("{{json .}}")?,
                table: false,
                header: None,
            },
            _ => match f.strip_prefix("table") {
                Some(t) => {
                    let t = t.trim();
                    ListFormat::Template {
                        tmpl: Template::parse(t)?,
                        table: true,
                        header: Some(Template::parse(t)?),
                    }
                }
                None => ListFormat::Template {
                    tmpl: Template::parse(f)?,
                    table: false,
                    header: None,
                },
            },
        })
    }
}

/// `node ls`: GET /nodes[?filters=…] → GET /info (when there are nodes and not quiet), then the table.
pub async fn ls(c: &ApiClient, a: LsArgs, out: &mut dyn Write) -> Result<()> {
    let format = ListFormat::parse(a.format.as_deref(), a.quiet)?;
    let mut filters = Filters::default();
    for (k, v) in &a.filter {
        filters.add(k, v);
    }
    let q = if filters.0.is_empty() {
        String::new()
    } else {
        query(&[("filters", &filters.to_json())])
    };
    let mut nodes: Vec<Node> = c.get(&format!("/nodes{q}")).await?;
    let info = if !nodes.is_empty() && !a.quiet {
        c.get::<Info>("/info").await?.swarm
    } else {
        SwarmInfo::default()
    };
    out.write_all(render_node_list(&mut nodes, &info, &format).as_bytes())?;
    Ok(())
}

/// The `node ls` output for these nodes (sorted here by hostname, naturally, then ID).
pub fn render_node_list(nodes: &mut [Node], info: &SwarmInfo, format: &ListFormat) -> String {
    nodes.sort_by(|a, b| {
        format::natural_cmp(&a.description.hostname, &b.description.hostname).then(a.id.cmp(&b.id))
    });
    let rows: Vec<Value> = nodes.iter().map(|n| row_context(n, info)).collect();
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    match format {
        ListFormat::Quiet => rows.iter().map(|r| format!("{}\n", s(r, "ID"))).collect(),
        ListFormat::Raw { quiet: true } => rows.iter().map(|r| format!("node_id: {}\n", s(r, "ID"))).collect(),
        ListFormat::Raw { quiet: false } => rows
            .iter()
            .map(|r| {
                format!(
                    "node_id: {}\nhostname: {}\nstatus: {}\navailability: {}\nmanager_status: {}\n\n",
                    s(r, "ID"),
                    s(r, "Hostname"),
                    s(r, "Status"),
                    s(r, "Availability"),
                    s(r, "ManagerStatus")
                )
            })
            .collect(),
        ListFormat::Table => {
            let cells = |r: &Value| {
                let marker = if r["Self"].as_bool() == Some(true) { "*" } else { " " };
                vec![
                    format!("{} {marker}", s(r, "ID")),
                    s(r, "Hostname"),
                    s(r, "Status"),
                    s(r, "Availability"),
                    s(r, "ManagerStatus"),
                    s(r, "EngineVersion"),
                ]
            };
            let rows: Vec<Vec<String>> = rows.iter().map(cells).collect();
            format::table(
                &["ID  ", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"],
                &rows,
            )
        }
        ListFormat::Template { tmpl, table, header } => {
            let mut text = String::new();
            if let Some(h) = header {
                text.push_str(&h.render(&header_context()));
                text.push('\n');
            }
            for r in &rows {
                text.push_str(&tmpl.render(r));
                text.push('\n');
            }
            if *table {
                format::tabwriter(&text)
            } else {
                text
            }
        }
    }
}

/// The fields `node ls` templates see (docker's `nodeContext`), keys in alphabetical order as docker's JSON has them.
fn row_context(n: &Node, info: &SwarmInfo) -> Value {
    let manager_status = match &n.manager_status {
        Some(ms) if ms.leader => "Leader".to_string(),
        Some(ms) => ms.reachability.to_string(),
        None => String::new(),
    };
    let cluster_tls = info.cluster.as_ref().map(|c| &c.tls_info);
    let tls_status = match cluster_tls {
        Some(ct) if *ct != TlsInfo::default() && n.description.tls_info != TlsInfo::default() => {
            if n.description.tls_info == *ct {
                "Ready"
            } else {
                "Needs Rotation"
            }
        }
        _ => "Unknown",
    };
    let mut m = serde_json::Map::new();
    m.insert(
        "Availability".into(),
        json!(format::pretty_print(n.spec.availability.as_str())),
    );
    m.insert(
        "EngineVersion".into(),
        json!(n.description.engine.engine_version),
    );
    m.insert("Hostname".into(), json!(n.description.hostname));
    m.insert("ID".into(), json!(n.id));
    m.insert(
        "ManagerStatus".into(),
        json!(format::pretty_print(&manager_status)),
    );
    m.insert(
        "Self".into(),
        json!(!n.id.is_empty() && n.id == info.node_id),
    );
    m.insert(
        "Status".into(),
        json!(format::pretty_print(n.status.state.as_str())),
    );
    m.insert("TLSStatus".into(), json!(tls_status));
    Value::Object(m)
}

/// Column headers for `table` templates.
fn header_context() -> Value {
    json!({
        "Availability": "AVAILABILITY", "EngineVersion": "ENGINE VERSION", "Hostname": "HOSTNAME", "ID": "ID",
        "ManagerStatus": "MANAGER STATUS", "Self": "", "Status": "STATUS", "TLSStatus": "TLS STATUS",
    })
}

// ---------------------------------------------------------------------------------------------------------------
// node inspect

/// `self` → GET /info (and GET /nodes for a better error when the node is not a manager); anything else as is.
pub async fn resolve(c: &ApiClient, reference: &str) -> Result<String> {
    if reference != "self" {
        return Ok(reference.to_string());
    }
    let info: Info = c.get("/info").await?;
    if info.swarm.node_id.is_empty() {
        let _: Vec<Node> = c.get("/nodes").await?;
        bail!("node ID not found in /info");
    }
    Ok(info.swarm.node_id)
}

/// `node ps`: per node (default `self`), GET /nodes/{ref} then GET /tasks?filters={…,"node":{ID}}; the tasks of all
/// of them printed as `service ps` prints them; a node that cannot be found is reported at the end (docker's
/// `runPs`).
pub async fn ps(c: &ApiClient, a: PsArgs, out: &mut dyn Write) -> Result<()> {
    let refs = if a.nodes.is_empty() { vec!["self".to_string()] } else { a.nodes.clone() };
    let mut errors = Vec::new();
    let mut tasks: Vec<skep_api::docker::Task> = Vec::new();
    for r in &refs {
        let node = match get_node(c, r).await {
            Ok(n) => n,
            Err(e) => {
                errors.push(super::error_text(&e));
                continue;
            }
        };
        let mut f = a.flags.filters(Filters::default());
        f.add("node", &node.id);
        match c.get::<Vec<skep_api::docker::Task>>(&format!("/tasks{}", query(&[("filters", &f.to_json())]))).await {
            Ok(t) => tasks.extend(t),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() || !tasks.is_empty() {
        a.flags.print(c, tasks, out).await?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

async fn get_node(c: &ApiClient, reference: &str) -> Result<Node> {
    let id = resolve(c, reference).await?;
    Ok(c.get(&format!("/nodes/{}", seg(&id))).await?)
}

/// `node inspect`: per node [GET /info] → GET /nodes/{ref}; JSON array by default, the found nodes printed even when
/// some are missing (then the errors follow on stderr, exit 1).
pub async fn inspect(c: &ApiClient, a: InspectArgs, out: &mut dyn Write) -> Result<()> {
    let format = if a.pretty {
        "pretty".to_string()
    } else {
        a.format.clone().unwrap_or_default()
    };
    if format.starts_with("pretty") && format != "pretty" {
        bail!("cannot supply extra formatting options to the pretty template");
    }
    if format == "pretty" {
        // docker renders everything first and prints nothing if one node fails
        let mut text = String::new();
        for r in &a.nodes {
            let node = get_node(c, r).await?;
            text.push_str(&render_pretty(&node));
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    let tmpl = match format.as_str() {
        "" | "json" => None,
        t => Some(Template::parse(t)?),
    };
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    for r in &a.nodes {
        match get_node(c, r).await {
            Ok(n) => nodes.push(n),
            Err(e) => errors.push(super::error_text(&e)),
        }
    }
    match (format.as_str(), tmpl) {
        ("json", _) => {
            for n in &nodes {
                writeln!(out, "{}", serde_json::to_string(n)?)?;
            }
        }
        (_, Some(t)) => {
            if nodes.is_empty() {
                writeln!(out)?;
            }
            for n in &nodes {
                writeln!(out, "{}", t.render(&serde_json::to_value(n)?))?;
            }
        }
        _ => writeln!(out, "{}", format::json_indent(&nodes)?)?,
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// docker's `node inspect --pretty` layout (its template, tabs included).
pub fn render_pretty(n: &Node) -> String {
    let mut s = String::new();
    let d = &n.description;
    let _ = write!(s, "ID:\t\t\t{}", n.id);
    if !n.spec.name.is_empty() {
        let _ = write!(s, "\nName:\t\t\t{}", n.spec.name);
    }
    if !n.spec.labels.is_empty() {
        s.push_str("\nLabels:");
        for (k, v) in &n.spec.labels {
            let _ = write!(
                s,
                "\n - {k}{}",
                if v.is_empty() {
                    String::new()
                } else {
                    format!("={v}")
                }
            );
        }
    }
    let _ = write!(s, "\nHostname:              \t{}", d.hostname);
    let _ = write!(
        s,
        "\nJoined at:             \t{}",
        format::pretty_print(&format::go_time_string(&n.created_at))
    );
    s.push_str("\nStatus:");
    let _ = write!(
        s,
        "\n State:\t\t\t{}",
        format::pretty_print(n.status.state.as_str())
    );
    if !n.status.message.is_empty() {
        let _ = write!(
            s,
            "\n Message:              \t{}",
            format::pretty_print(&n.status.message)
        );
    }
    let _ = write!(
        s,
        "\n Availability:         \t{}",
        format::pretty_print(n.spec.availability.as_str())
    );
    if !n.status.addr.is_empty() {
        let _ = write!(s, "\n Address:\t\t{}", n.status.addr);
    }
    if let Some(ms) = &n.manager_status {
        s.push_str("\nManager Status:");
        let _ = write!(s, "\n Address:\t\t{}", ms.addr);
        let _ = write!(
            s,
            "\n Raft Status:\t\t{}",
            format::pretty_print(ms.reachability.as_str())
        );
        let _ = write!(s, "\n Leader:\t\t{}", if ms.leader { "Yes" } else { "No" });
    }
    s.push_str("\nPlatform:");
    let _ = write!(s, "\n Operating System:\t{}", d.platform.os);
    let _ = write!(s, "\n Architecture:\t\t{}", d.platform.architecture);
    s.push_str("\nResources:");
    let _ = write!(s, "\n CPUs:\t\t\t{}", d.resources.nano_cpus / 1_000_000_000);
    let memory = if d.resources.memory_bytes == 0 {
        String::new()
    } else {
        format::bytes_size(d.resources.memory_bytes as f64)
    };
    let _ = write!(s, "\n Memory:\t\t{memory}");
    if !d.engine.plugins.is_empty() {
        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &d.engine.plugins {
            by_type.entry(&p.kind).or_default().push(&p.name);
        }
        s.push_str("\nPlugins:");
        for (k, names) in by_type {
            let v = names.join(", ");
            let _ = write!(
                s,
                "\n {k}:{}",
                if v.is_empty() {
                    String::new()
                } else {
                    format!("\t\t{v}")
                }
            );
        }
    }
    let _ = write!(s, "\nEngine Version:\t\t{}", d.engine.engine_version);
    if !d.engine.labels.is_empty() {
        s.push_str("\nEngine Labels:");
        for (k, v) in &d.engine.labels {
            let _ = write!(
                s,
                "\n - {k}{}",
                if v.is_empty() {
                    String::new()
                } else {
                    format!("={v}")
                }
            );
        }
    }
    if d.tls_info != TlsInfo::default() {
        s.push_str("\nTLS Info:\n TrustRoot:\n");
        s.push_str(&d.tls_info.trust_root);
        let _ = write!(s, "\n Issuer Subject:\t{}", d.tls_info.cert_issuer_subject);
        let _ = write!(
            s,
            "\n Issuer Public Key:\t{}",
            d.tls_info.cert_issuer_public_key
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------------------------
// promote, demote, update, rm

/// What a merge decided for one node.
enum Merge {
    /// Send this spec. Role and availability travel as text, as docker sends them: a bad `--role` or
    /// `--availability` is refused by the daemon, with its words.
    Changed(NodeSpecUpdate),
    /// Nothing to do (the role was already the requested one); skip this node.
    Unchanged,
}

/// docker's `updateNodes`: per node GET /nodes/{ref} → merge → POST /nodes/{id}/update?version=N; stops at the
/// first error.
async fn update_nodes(
    c: &ApiClient,
    refs: &[String],
    out: &mut dyn Write,
    mut merge: impl FnMut(Node, &mut dyn Write) -> Result<Merge>,
    success: impl Fn(&str, &mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    for r in refs {
        let node: Node = c.get(&format!("/nodes/{}", seg(r))).await?;
        let (id, version) = (node.id.clone(), node.version.index);
        let Merge::Changed(spec) = merge(node, out)? else {
            continue;
        };
        let q = query(&[("version", &version.to_string())]);
        c.post_no_reply(&format!("/nodes/{}/update{q}", seg(&id)), Some(&spec))
            .await?;
        success(r, out)?;
    }
    Ok(())
}

/// `node promote`.
pub async fn promote(c: &ApiClient, a: NodesArgs, out: &mut dyn Write) -> Result<()> {
    let merge = |mut n: Node, out: &mut dyn Write| -> Result<Merge> {
        if n.spec.role == NodeRole::Manager {
            writeln!(out, "Node {} is already a manager.", n.id)?;
            return Ok(Merge::Unchanged);
        }
        n.spec.role = NodeRole::Manager;
        Ok(Merge::Changed(n.spec.into()))
    };
    let success = |r: &str, out: &mut dyn Write| {
        writeln!(out, "Node {r} promoted to a manager in the swarm.")
    };
    update_nodes(c, &a.nodes, out, merge, success).await
}

/// `node demote`.
pub async fn demote(c: &ApiClient, a: NodesArgs, out: &mut dyn Write) -> Result<()> {
    let merge = |mut n: Node, out: &mut dyn Write| -> Result<Merge> {
        if n.spec.role == NodeRole::Worker {
            writeln!(out, "Node {} is already a worker.", n.id)?;
            return Ok(Merge::Unchanged);
        }
        n.spec.role = NodeRole::Worker;
        Ok(Merge::Changed(n.spec.into()))
    };
    let success = |r: &str, out: &mut dyn Write| writeln!(out, "Manager {r} demoted in the swarm.");
    update_nodes(c, &a.nodes, out, merge, success).await
}

/// `node update`: prints the node argument on success.
pub async fn update(c: &ApiClient, a: UpdateArgs, out: &mut dyn Write) -> Result<()> {
    let merge = |n: Node, _: &mut dyn Write| -> Result<Merge> {
        let mut spec = NodeSpecUpdate::from(n.spec);
        if let Some(r) = &a.role {
            spec.role = r.clone();
        }
        if let Some(av) = &a.availability {
            spec.availability = av.clone();
        }
        for l in &a.label_add {
            let (k, v) = opts::parse_label(l);
            spec.labels.insert(k, v);
        }
        for k in &a.label_rm {
            if spec.labels.remove(k).is_none() {
                bail!("key {k} doesn't exist in node's labels");
            }
        }
        Ok(Merge::Changed(spec))
    };
    let success = |r: &str, out: &mut dyn Write| writeln!(out, "{r}");
    update_nodes(c, std::slice::from_ref(&a.node), out, merge, success).await
}

/// `node rm`: DELETE /nodes/{ref}[?force=1] for each; prints each removed argument, then every error.
pub async fn rm(c: &ApiClient, a: RmArgs, out: &mut dyn Write) -> Result<()> {
    let q = if a.force {
        query(&[("force", "1")])
    } else {
        String::new()
    };
    let mut errors = Vec::new();
    for r in &a.nodes {
        match c.delete(&format!("/nodes/{}{q}", seg(r))).await {
            Ok(()) => writeln!(out, "{r}")?,
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{Availability, ClusterInfo, ManagerStatus, NodeDescription, NodeSpec, NodeStatus};

    pub(crate) fn node(
        id: &str,
        host: &str,
        role: &str,
        state: &str,
        ms: Option<(bool, &str)>,
    ) -> Node {
        Node {
            id: id.into(),
            spec: NodeSpec {
                role: role.parse().unwrap(),
                availability: Availability::Active,
                ..Default::default()
            },
            description: NodeDescription {
                hostname: host.into(),
                ..Default::default()
            },
            status: NodeStatus {
                state: state.parse().unwrap(),
                addr: "10.0.0.1".into(),
                ..Default::default()
            },
            manager_status: ms.map(|(leader, reach)| ManagerStatus {
                leader,
                reachability: reach.parse().unwrap(),
                addr: "10.0.0.1:2377".into(),
            }),
            ..Default::default()
        }
    }

    fn sample() -> Vec<Node> {
        let mut w = node(
            "w222222222222222222222222",
            "node-10",
            "worker",
            "down",
            None,
        );
        w.spec.availability = Availability::Drain;
        w.description.engine.engine_version = "0.1.0".into();
        let mut l = node(
            "l111111111111111111111111",
            "node-1",
            "manager",
            "ready",
            Some((true, "reachable")),
        );
        l.description.engine.engine_version = "0.1.0".into();
        let r = node(
            "r333333333333333333333333",
            "node-2",
            "manager",
            "ready",
            Some((false, "unreachable")),
        );
        vec![w, l, r]
    }

    #[test]
    fn node_table_like_docker() {
        let info = SwarmInfo {
            node_id: "r333333333333333333333333".into(),
            ..Default::default()
        };
        let out = render_node_list(
            &mut sample(),
            &info,
            &ListFormat::parse(None, false).unwrap(),
        );
        let line = |id: &str, host: &str, st: &str, av: &str, ms: &str, ev: &str| {
            format!("{id:<30}{host:<11}{st:<10}{av:<15}{ms:<17}{ev}\n")
        };
        let want = [
            line(
                "ID",
                "HOSTNAME",
                "STATUS",
                "AVAILABILITY",
                "MANAGER STATUS",
                "ENGINE VERSION",
            ),
            line(
                "l111111111111111111111111",
                "node-1",
                "Ready",
                "Active",
                "Leader",
                "0.1.0",
            ),
            line(
                "r333333333333333333333333 *",
                "node-2",
                "Ready",
                "Active",
                "Unreachable",
                "",
            ),
            line(
                "w222222222222222222222222",
                "node-10",
                "Down",
                "Drain",
                "",
                "0.1.0",
            ),
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn node_list_quiet_json_and_templates() {
        let info = SwarmInfo {
            node_id: "l111111111111111111111111".into(),
            ..Default::default()
        };
        let q = render_node_list(
            &mut sample(),
            &info,
            &ListFormat::parse(None, true).unwrap(),
        );
        assert_eq!(
            q,
            "l111111111111111111111111\nr333333333333333333333333\nw222222222222222222222222\n"
        );
        let j = render_node_list(
            &mut sample(),
            &info,
            &ListFormat::parse(Some("json"), false).unwrap(),
        );
        let first = j.lines().next().unwrap();
        assert_eq!(
            first,
            r#"{"Availability":"Active","EngineVersion":"0.1.0","Hostname":"node-1","ID":"l111111111111111111111111","ManagerStatus":"Leader","Self":true,"Status":"Ready","TLSStatus":"Unknown"}"#
        );
        assert_eq!(j.lines().count(), 3);
        let t = render_node_list(
            &mut sample(),
            &info,
            &ListFormat::parse(Some("{{.Hostname}} {{.Self}}"), false).unwrap(),
        );
        assert_eq!(t, "node-1 true\nnode-2 false\nnode-10 false\n");
        let tt = render_node_list(
            &mut sample(),
            &info,
            &ListFormat::parse(Some(r"table {{.Hostname}}\t{{.Status}}"), false).unwrap(),
        );
        assert_eq!(
            tt,
            "HOSTNAME   STATUS\nnode-1     Ready\nnode-2     Ready\nnode-10    Down\n"
        );
        assert!(ListFormat::parse(Some("{{if .Self}}x{{end}}"), false).is_err());
    }

    #[test]
    fn tls_status_compares_with_the_cluster_root() {
        let tls = TlsInfo {
            trust_root: "root".into(),
            ..Default::default()
        };
        let info = SwarmInfo {
            cluster: Some(ClusterInfo {
                tls_info: tls.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut n = node("a", "h", "worker", "ready", None);
        assert_eq!(row_context(&n, &info)["TLSStatus"], "Unknown");
        n.description.tls_info = tls;
        assert_eq!(row_context(&n, &info)["TLSStatus"], "Ready");
        n.description.tls_info.trust_root = "other".into();
        assert_eq!(row_context(&n, &info)["TLSStatus"], "Needs Rotation");
    }

    #[test]
    fn pretty_inspect_layout() {
        let mut n = node(
            "l111111111111111111111111",
            "node-1",
            "manager",
            "ready",
            Some((true, "reachable")),
        );
        n.created_at = "2025-05-30T12:00:00.5Z".into();
        n.description.platform.os = "linux".into();
        n.description.platform.architecture = "x86_64".into();
        n.description.resources.nano_cpus = 4_000_000_000;
        n.description.resources.memory_bytes = 8_589_934_592;
        n.description.engine.engine_version = "0.1.0".into();
        n.spec.labels.insert("zone".into(), "a".into());
        let want = "ID:\t\t\tl111111111111111111111111
Labels:
 - zone=a
Hostname:              \tnode-1
Joined at:             \t2025-05-30 12:00:00.5 +0000 utc
Status:
 State:\t\t\tReady
 Availability:         \tActive
 Address:\t\t10.0.0.1
Manager Status:
 Address:\t\t10.0.0.1:2377
 Raft Status:\t\tReachable
 Leader:\t\tYes
Platform:
 Operating System:\tlinux
 Architecture:\t\tx86_64
Resources:
 CPUs:\t\t\t4
 Memory:\t\t8GiB
Engine Version:\t\t0.1.0";
        assert_eq!(render_pretty(&n), want);
    }
}
