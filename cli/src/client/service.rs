//! `skep service …`: create, inspect, logs, ls, ps, rm, rollback, scale, update.
//!
//! Each command mirrors docker's (`cli/command/service`, github.com/docker/cli): the same flags, requests and output. The
//! commands that change a service (create, update, scale, rollback) then follow it until it converges, unless
//! `--detach` ([`progress`]).
//!
//! # Layout
//! - this file: the subcommand enum, `ls`, `inspect`, `rm`, `scale`, `rollback`, and helpers shared by the others.
//! - [`create`]: `service create` and the flags it shares with `update`.
//! - [`update`]: `service update`.
//! - [`ps`]: `service ps`.
//! - [`logs`]: `service logs`.
//! - [`progress`]: the convergence display.
//! - [`flags`]: flag value parsers (memory, CPUs, ports, …).
//! - [`files`]: `--secret` and `--config` values and their resolution to IDs.
//! - [`image`]: image references (default tag, digest pinning, display form).

pub mod create;
pub mod files;
pub mod flags;
pub mod image;
pub mod logs;
pub mod progress;
pub mod ps;
pub mod update;

#[cfg(test)]
mod tests;

use super::format::{self, Template};
use super::{error_text, opts, query, seg, ApiClient};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skep_api::docker::{Node, NodeState, Service, ServiceCreateResponse, ServiceStatus, Task, TaskState};
use skep_api::filters::Filters;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::SystemTime;

/// `skep service` subcommands.
#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Create a new service
    Create(Box<create::CreateArgs>),
    /// Display detailed information on one or more services
    Inspect(InspectArgs),
    /// Fetch the logs of a service or task
    Logs(logs::LogsArgs),
    /// List services
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// List the tasks of one or more services
    Ps(ps::PsArgs),
    /// Remove one or more services
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Revert changes to a service's configuration
    Rollback(RollbackArgs),
    /// Scale one or multiple replicated services
    Scale(ScaleArgs),
    /// Update a service
    Update(Box<update::UpdateArgs>),
}

/// `skep service ls`.
#[derive(Args, Debug, Clone, Default)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (id, label, mode, name)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = opts::parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: "table" (default), "json", "raw", or a template with {{.Field}} actions (ID, Name, Mode,
    /// Replicas, Image, Ports)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `skep service inspect`.
#[derive(Args, Debug, Clone, Default)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output: "json" (one line per service), "pretty", or a template with {{.Path}} / {{json .Path}} actions
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Service IDs or names
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

/// `skep service rm`.
#[derive(Args, Debug, Clone, Default)]
pub struct RmArgs {
    /// Service IDs or names
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

/// `skep service rollback`.
#[derive(Args, Debug, Clone, Default)]
pub struct RollbackArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Service ID or name
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

/// `skep service scale`.
#[derive(Args, Debug, Clone, Default)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the services to converge
    #[arg(short, long)]
    pub detach: bool,
    /// SERVICE=REPLICAS pairs
    #[arg(value_name = "SERVICE=REPLICAS", required = true)]
    pub pairs: Vec<String>,
}

/// Run a `service` subcommand.
pub async fn run(c: &ApiClient, cmd: ServiceCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ServiceCmd::Create(a) => create::create(c, *a, out).await,
        ServiceCmd::Inspect(a) => inspect(c, a, out).await,
        ServiceCmd::Logs(a) => logs::logs(c, a, out).await,
        ServiceCmd::Ls(a) => ls(c, a, out).await,
        ServiceCmd::Ps(a) => ps::ps(c, a, out).await,
        ServiceCmd::Rm(a) => rm(c, a, out).await,
        ServiceCmd::Rollback(a) => rollback(c, a, out).await,
        ServiceCmd::Scale(a) => scale(c, a, out).await,
        ServiceCmd::Update(a) => update::update(c, *a, out).await,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// shared helpers

/// Warnings from the daemon (and the digest lookup) go to stderr, as docker prints them.
fn print_warnings(warnings: impl IntoIterator<Item = String>) {
    for w in warnings {
        eprintln!("{w}");
    }
}

/// `GET /services/{ref}?insertDefaults=…`.
async fn get_service(c: &ApiClient, reference: &str, insert_defaults: bool) -> Result<Service> {
    let q = query(&[(
        "insertDefaults",
        if insert_defaults { "true" } else { "false" },
    )]);
    Ok(c.get(&format!("/services/{}{q}", seg(reference))).await?)
}

/// `POST /services/{id}/update?…&version=N` with the service's (whole) spec; the image gets docker's default tag,
/// as docker's client library does before every update.
async fn post_update(
    c: &ApiClient,
    svc: &Service,
    params: &[(&str, &str)],
) -> Result<ServiceCreateResponse> {
    let mut spec = svc.spec.clone();
    if let Some(cs) = spec.task_template.container_spec.as_mut() {
        cs.image = image::with_default_tag(&cs.image);
    }
    let version = svc.version.index.to_string();
    let mut params = params.to_vec();
    params.push(("version", &version));
    let path = format!("/services/{}/update{}", seg(&svc.id), query(&params));
    Ok(c.post(&path, &spec).await?)
}

/// How a list command prints: a template per row, through the tabwriter with a header line for `table …`.
#[derive(Clone, Debug)]
pub struct ListFormat {
    tmpl: Template,
    header: Option<Template>,
}

impl ListFormat {
    /// docker's `newFormat` for lists: "table" (`table` for the default table, `{{.ID}}` with `quiet`), "raw"
    /// (`raw`, `raw_quiet`), "json", "table TEMPLATE" or "TEMPLATE".
    pub fn parse(
        format: Option<&str>,
        quiet: bool,
        table: &str,
        raw: &str,
        raw_quiet: &str,
    ) -> Result<ListFormat> {
        let f = format.unwrap_or("").trim();
        let src = match f {
            "" | "table" if quiet => "{{.ID}}",
            "" | "table" => table,
            "raw" if quiet => raw_quiet,
            "raw" => raw,
            "json" => "{{json .}}",
            other => other,
        };
        Ok(match src.strip_prefix("table") {
            Some(t) => ListFormat {
                tmpl: Template::parse(t.trim())?,
                header: Some(Template::parse(t.trim())?),
            },
            None => ListFormat {
                tmpl: Template::parse(src)?,
                header: None,
            },
        })
    }

    /// Whether this is a table (header line, aligned columns).
    pub fn is_table(&self) -> bool {
        self.header.is_some()
    }

    /// Render the rows (each a JSON object of the fields templates see).
    pub fn render(&self, rows: &[Value], header_ctx: &Value) -> String {
        let mut text = String::new();
        if let Some(h) = &self.header {
            text.push_str(&h.render(header_ctx));
            text.push('\n');
        }
        for r in rows {
            text.push_str(&self.tmpl.render(r));
            text.push('\n');
        }
        if self.is_table() {
            format::tabwriter(&text)
        } else {
            text
        }
    }
}

/// Go's `time.Duration.String()`: `5s`, `1m30s`, `1h0m0s`, `500ms`, `1.5µs`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| {
        let (int, rest) = (v / unit, v % unit);
        if rest == 0 {
            return int.to_string();
        }
        let width = unit.to_string().len() - 1;
        let digits = format!("{rest:0width$}");
        format!("{int}.{}", digits.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", frac(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 1_000_000));
    }
    let secs = u / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = frac(u % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// service ls

const LS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}";
const LS_RAW: &str = r"id: {{.ID}}\nname: {{.Name}}\nmode: {{.Mode}}\nreplicas: {{.Replicas}}\nimage: {{.Image}}\nports: {{.Ports}}\n";

/// `service ls`: GET /services?[filters=…&]status=true (no status with `-q`); when the daemon sends no
/// `ServiceStatus`, GET /tasks and GET /nodes to count them as docker does.
pub async fn ls(c: &ApiClient, a: LsArgs, out: &mut dyn Write) -> Result<()> {
    let format = ListFormat::parse(
        a.format.as_deref(),
        a.quiet,
        LS_TABLE,
        LS_RAW,
        "id: {{.ID}}",
    )?;
    let mut filters = Filters::default();
    for (k, v) in &a.filter {
        filters.add(k, v);
    }
    let fj = filters.to_json();
    let mut params: Vec<(&str, &str)> = Vec::new();
    if !filters.0.is_empty() {
        params.push(("filters", &fj));
    }
    if !a.quiet {
        params.push(("status", "true"));
    }
    let mut services: Vec<Service> = c.get(&format!("/services{}", query(&params))).await?;
    if !a.quiet {
        append_service_status(c, &mut services).await?;
    }
    out.write_all(render_service_list(&mut services, &format).as_bytes())?;
    Ok(())
}

/// docker's `AppendServiceStatus`, for daemons that do not fill `ServiceStatus`.
async fn append_service_status(c: &ApiClient, services: &mut [Service]) -> Result<()> {
    let missing: Vec<&str> = services
        .iter()
        .filter(|s| s.service_status.is_none())
        .map(|s| s.id.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut f = Filters::default();
    for id in missing {
        f.add("service", id);
    }
    let tasks: Vec<Task> = c
        .get(&format!("/tasks{}", query(&[("filters", &f.to_json())])))
        .await?;
    let nodes: Vec<Node> = if tasks.is_empty() {
        Vec::new()
    } else {
        c.get("/nodes").await?
    };
    count_service_status(services, &tasks, &nodes);
    Ok(())
}

/// The counting half of docker's `AppendServiceStatus`: for services without `ServiceStatus`, desired = tasks not
/// meant to be shut down (replicas when there are no tasks), running = running tasks on nodes that are not down.
pub fn count_service_status(services: &mut [Service], tasks: &[Task], nodes: &[Node]) {
    let mut status: HashMap<String, ServiceStatus> = HashMap::new();
    for s in services.iter_mut().filter(|s| s.service_status.is_none()) {
        if let Some(r) = s.spec.mode.replicas() {
            s.service_status = Some(ServiceStatus {
                desired_tasks: r,
                ..Default::default()
            });
            status.insert(s.id.clone(), ServiceStatus::default());
        } else if s.spec.mode.is_global() {
            s.service_status = Some(ServiceStatus::default());
            status.insert(s.id.clone(), ServiceStatus::default());
        }
    }
    if tasks.is_empty() {
        return;
    }
    let active: HashSet<&str> = nodes
        .iter()
        .filter(|n| n.status.state != NodeState::Down)
        .map(|n| n.id.as_str())
        .collect();
    for t in tasks {
        let Some(st) = status.get_mut(&t.service_id) else {
            continue;
        };
        if t.desired_state != TaskState::Shutdown {
            st.desired_tasks += 1;
        }
        if active.contains(t.node_id.as_str()) && t.status.state == TaskState::Running {
            st.running_tasks += 1;
        }
    }
    for s in services.iter_mut() {
        if let Some(st) = status.remove(&s.id) {
            s.service_status = Some(st);
        }
    }
}

/// The `service ls` output (services sorted by name, naturally).
pub fn render_service_list(services: &mut [Service], format: &ListFormat) -> String {
    services.sort_by(|a, b| format::natural_cmp(&a.spec.name, &b.spec.name));
    let rows: Vec<Value> = services.iter().map(service_row).collect();
    let header = json!({"ID": "ID", "Image": "IMAGE", "Mode": "MODE", "Name": "NAME", "Ports": "PORTS",
                        "Replicas": "REPLICAS"});
    format.render(&rows, &header)
}

fn mode_name(s: &Service) -> &'static str {
    let m = &s.spec.mode;
    if m.global.is_some() {
        "global"
    } else if m.replicated.is_some() {
        "replicated"
    } else if m.replicated_job.is_some() {
        "replicated job"
    } else if m.global_job.is_some() {
        "global job"
    } else {
        ""
    }
}

/// The fields `service ls` templates see (docker's `serviceContext`).
fn service_row(s: &Service) -> Value {
    let st = s.service_status.clone().unwrap_or_default();
    let max = match &s.spec.task_template.placement {
        Some(p) if mode_name(s) == "replicated" => p.max_replicas,
        _ => 0,
    };
    let replicas = if max > 0 {
        format!(
            "{}/{} (max {max} per node)",
            st.running_tasks, st.desired_tasks
        )
    } else {
        format!("{}/{}", st.running_tasks, st.desired_tasks)
    };
    let image = s
        .spec
        .task_template
        .container_spec
        .as_ref()
        .map_or(String::new(), |c| image::display(&c.image));
    json!({
        "ID": s.id.chars().take(12).collect::<String>(),
        "Image": image,
        "Mode": mode_name(s),
        "Name": s.spec.name,
        "Ports": ports_text(s),
        "Replicas": replicas,
    })
}

/// docker's `serviceContext.Ports`: the ingress ports of `Endpoint.Ports`, consecutive ones merged into ranges
/// (`*:8080-8081->80-81/tcp`).
pub fn ports_text(s: &Service) -> String {
    let Some(ep) = &s.endpoint else {
        return String::new();
    };
    let mut ports = ep.ports.clone();
    ports.sort_by(|a, b| {
        a.protocol
            .cmp(&b.protocol)
            .then(a.published_port.cmp(&b.published_port))
    });
    #[derive(Default)]
    struct Range {
        p_start: u32,
        p_end: u32,
        t_start: u32,
        t_end: u32,
        protocol: String,
    }
    let show = |r: &Range| {
        let pub_ = if r.p_end > r.p_start {
            format!("{}-{}", r.p_start, r.p_end)
        } else {
            r.p_start.to_string()
        };
        let tgt = if r.t_end > r.t_start {
            format!("{}-{}", r.t_start, r.t_end)
        } else {
            r.t_start.to_string()
        };
        format!("*:{pub_}->{tgt}/{}", r.protocol)
    };
    let mut out = Vec::new();
    let mut r = Range::default();
    for p in ports.iter().filter(|p| p.publish_mode == "ingress") {
        let is_range = r.t_end != r.t_start;
        let overlaps = p.target_port <= r.t_end;
        if p.protocol != r.protocol
            || p.published_port.wrapping_sub(r.p_end) > 1
            || p.target_port.wrapping_sub(r.t_end) > 1
            || (is_range && overlaps)
        {
            if r.p_start > 0 {
                out.push(show(&r));
            }
            r = Range {
                p_start: p.published_port,
                p_end: p.published_port,
                t_start: p.target_port,
                t_end: p.target_port,
                protocol: p.protocol.clone(),
            };
            continue;
        }
        r.p_end = p.published_port;
        r.t_end = p.target_port;
    }
    if r.p_start > 0 {
        out.push(show(&r));
    }
    out.join(", ")
}

// ---------------------------------------------------------------------------------------------------------------
// service inspect

/// GET /services/{ref}?insertDefaults=true; a 404 becomes docker's "no such service".
async fn inspect_one(c: &ApiClient, reference: &str) -> Result<Service> {
    match get_service(c, reference, true).await {
        Err(e)
            if e.downcast_ref::<super::ApiError>()
                .is_some_and(|a| a.is_not_found()) =>
        {
            Err(anyhow!("no such service: {reference}"))
        }
        r => r,
    }
}

/// `service inspect`: per service GET /services/{ref}?insertDefaults=true (and GET /networks/{id}?scope=swarm per
/// attached network with `--pretty`); a JSON array by default, the found services printed even when some are
/// missing (then the errors follow, exit 1).
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
        // docker renders everything first and prints nothing if one service fails
        let mut text = String::new();
        for r in &a.services {
            let svc = inspect_one(c, r).await?;
            // docker's resolveNetworks: a network that cannot be found shows as its ID
            let mut networks = HashMap::new();
            for n in &svc.spec.task_template.networks {
                if let Ok(net) = create::swarm_network(c, &n.target).await {
                    networks.insert(net.id, net.name);
                }
            }
            text.push_str(&render_pretty(&svc, &networks, SystemTime::now()));
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    let tmpl = match format.as_str() {
        "" | "json" => None,
        t => Some(Template::parse(t)?),
    };
    let mut services = Vec::new();
    let mut errors = Vec::new();
    for r in &a.services {
        match inspect_one(c, r).await {
            Ok(s) => services.push(s),
            Err(e) => errors.push(error_text(&e)),
        }
    }
    match (format.as_str(), tmpl) {
        ("json", _) => {
            for s in &services {
                writeln!(out, "{}", serde_json::to_string(s)?)?;
            }
        }
        (_, Some(t)) => {
            if services.is_empty() {
                writeln!(out)?;
            }
            for s in &services {
                writeln!(out, "{}", t.render(&serde_json::to_value(s)?))?;
            }
        }
        _ => writeln!(out, "{}", format::json_indent(&services)?)?,
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// Go's `[a b c]` for a list of strings.
fn go_list<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", parts.join(" "))
}

/// docker's `service inspect --pretty` template, rendered (it starts and ends with a newline; docker adds another
/// after each service). `networks` maps network IDs to names.
pub fn render_pretty(s: &Service, networks: &HashMap<String, String>, now: SystemTime) -> String {
    let spec = &s.spec;
    let tt = &spec.task_template;
    let default_cs = Default::default();
    let cs = tt.container_spec.as_ref().unwrap_or(&default_cs);
    let mut o = String::new();
    let _ = write!(o, "\nID:\t\t{}\nName:\t\t{}", s.id, spec.name);
    if !spec.labels.is_empty() {
        o.push_str("\nLabels:");
        for (k, v) in &spec.labels {
            let _ = write!(o, "\n {k}");
            if !v.is_empty() {
                let _ = write!(o, "={v}");
            }
        }
    }
    o.push_str("\nService Mode:");
    if spec.mode.global.is_some() {
        o.push_str("\tGlobal");
    } else if let Some(r) = &spec.mode.replicated {
        o.push_str("\tReplicated");
        if let Some(n) = r.replicas {
            let _ = write!(o, "\n Replicas:\t{n}");
        }
    }
    if let Some(us) = s.update_status.as_ref().filter(|u| !u.state.is_empty()) {
        let _ = write!(o, "\nUpdateStatus:\n State:\t\t{}", us.state);
        if !us.started_at.is_empty() {
            let _ = write!(o, "\n Started:\t{}", format::time_ago(&us.started_at, now));
        }
        if us.state == "completed" && !us.completed_at.is_empty() {
            let _ = write!(
                o,
                "\n Completed:\t{}",
                format::time_ago(&us.completed_at, now)
            );
        }
        let _ = write!(o, "\n Message:\t{}", us.message);
    }
    o.push_str("\nPlacement:");
    if let Some(p) = &tt.placement {
        if !p.constraints.is_empty() {
            let _ = write!(o, "\n Constraints:\t{}", go_list(&p.constraints));
        }
        let prefs: Vec<String> = p
            .preferences
            .iter()
            .filter_map(|x| x.spread.as_ref().map(|s| format!("spread={}", s.spread_descriptor)))
            .collect();
        if !prefs.is_empty() {
            let _ = write!(o, "\n Preferences:   {}", go_list(&prefs));
        }
        if p.max_replicas > 0 {
            let _ = write!(o, "\n Max Replicas Per Node:   {}", p.max_replicas);
        }
    }
    for (title, cfg, order) in [
        ("UpdateConfig", &spec.update_config, "Update order:      "),
        (
            "RollbackConfig",
            &spec.rollback_config,
            "Rollback order:    ",
        ),
    ] {
        let Some(u) = cfg else { continue };
        let _ = write!(o, "\n{title}:\n Parallelism:\t{}", u.parallelism);
        if u.delay > 0 {
            let _ = write!(o, "\n Delay:\t\t{}", go_duration(u.delay));
        }
        let _ = write!(o, "\n On failure:\t{}", u.failure_action);
        if u.monitor > 0 {
            let _ = write!(o, "\n Monitoring Period: {}", go_duration(u.monitor));
        }
        let _ = write!(o, "\n Max failure ratio: {}", u.max_failure_ratio as f32);
        let _ = write!(o, "\n {order}{}", u.order);
    }
    let _ = write!(o, "\nContainerSpec:\n Image:\t\t{}", cs.image);
    if !cs.args.is_empty() {
        o.push_str("\n Args:\t\t");
        for a in &cs.args {
            let _ = write!(o, "{a} ");
        }
    }
    if !cs.env.is_empty() {
        o.push_str("\n Env:\t\t");
        for e in &cs.env {
            let _ = write!(o, "{e} ");
        }
    }
    if !cs.dir.is_empty() {
        let _ = write!(o, "\n Dir:\t\t{}", cs.dir);
    }
    if let Some(b) = cs.init {
        let _ = write!(o, "\n Init:\t\t{b}");
    }
    if !cs.user.is_empty() {
        let _ = write!(o, "\n User: {}", cs.user);
    }
    let (cap_add, cap_drop) = (&cs.capability_add, &cs.capability_drop);
    if !cap_add.is_empty() || !cap_drop.is_empty() {
        o.push_str("\nCapabilities:");
        if !cap_add.is_empty() {
            let _ = write!(o, "\n Add: {}", cap_add.join(", "));
        }
        if !cap_drop.is_empty() {
            let _ = write!(o, "\n Drop: {}", cap_drop.join(", "));
        }
    }
    let s_of = |v: &Value, k: &str| -> String {
        match &v[k] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            x => x.to_string(),
        }
    };
    let mounts = &cs.mounts;
    if !mounts.is_empty() {
        o.push_str("\nMounts:");
        for m in mounts {
            let ro = m["ReadOnly"].as_bool().unwrap_or(false);
            let _ = write!(
                o,
                "\n Target:\t{}\n  Source:\t{}\n  ReadOnly:\t{ro}\n  Type:\t\t{}",
                s_of(m, "Target"),
                s_of(m, "Source"),
                s_of(m, "Type")
            );
        }
    }
    let target = |f: &Option<skep_api::docker::FileTarget>| f.as_ref().map(|f| f.name.clone()).unwrap_or_default();
    let configs: Vec<(String, &str)> = cs.configs.iter().map(|r| (target(&r.file), r.config_name.as_str())).collect();
    let secrets: Vec<(String, &str)> = cs.secrets.iter().map(|r| (target(&r.file), r.secret_name.as_str())).collect();
    for (title, refs) in [("Configs", configs), ("Secrets", secrets)] {
        if refs.is_empty() {
            continue;
        }
        let _ = write!(o, "\n{title}:");
        for (target, source) in refs {
            let _ = write!(o, "\n Target:\t{target}\n  Source:\t{source}");
        }
    }
    if let Some(ld) = &tt.log_driver {
        o.push_str("\nLog Driver:");
        if !ld.name.is_empty() {
            let _ = write!(o, "\n Name:\t\t{}", ld.name);
        }
        if !ld.options.is_empty() {
            o.push_str("\n LogOpts:");
            for (k, v) in &ld.options {
                let _ = write!(o, "\n  {k}");
                if !v.is_empty() {
                    let _ = write!(o, ":       {v}");
                }
            }
        }
        o.push('\n');
    }
    let pids = tt
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .map_or(0, |l| l.pids);
    if let Some(r) = &tt.resources {
        o.push_str("\nResources:");
        if let Some(res) = r
            .reservations
            .as_ref()
            .filter(|x| x.nano_cpus > 0 || x.memory_bytes > 0)
        {
            o.push_str("\n Reservations:");
            if res.nano_cpus > 0 {
                let _ = write!(o, "\n  CPU:\t\t{}", res.nano_cpus as f64 / 1e9);
            }
            if res.memory_bytes > 0 {
                let _ = write!(
                    o,
                    "\n  Memory:\t{}",
                    format::bytes_size(res.memory_bytes as f64)
                );
            }
        }
        if let Some(l) = r
            .limits
            .as_ref()
            .filter(|x| x.nano_cpus > 0 || x.memory_bytes > 0 || pids > 0)
        {
            o.push_str("\n Limits:");
            if l.nano_cpus > 0 {
                let _ = write!(o, "\n  CPU:\t\t{}", l.nano_cpus as f64 / 1e9);
            }
            if l.memory_bytes > 0 {
                let _ = write!(
                    o,
                    "\n  Memory:\t{}",
                    format::bytes_size(l.memory_bytes as f64)
                );
            }
        }
    }
    if pids > 0 {
        let _ = write!(o, "\n  PIDs:\t\t{pids}");
    }
    if !tt.networks.is_empty() {
        o.push_str("\nNetworks:");
        for n in &tt.networks {
            let target = n.target.as_str();
            let _ = write!(
                o,
                " {}",
                networks.get(target).map_or(target, String::as_str)
            );
        }
        o.push(' ');
    }
    let mode = spec.endpoint_spec.as_ref().map_or("", |e| e.mode.as_str());
    let _ = write!(o, "\nEndpoint Mode:\t{mode}");
    let ports = s
        .endpoint
        .as_ref()
        .map(|e| e.ports.as_slice())
        .unwrap_or_default();
    if !ports.is_empty() {
        o.push_str("\nPorts:");
        for p in ports {
            let _ = write!(
                o,
                "\n PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {}",
                p.published_port, p.protocol, p.target_port, p.publish_mode
            );
        }
        o.push(' ');
    }
    if let Some(hc) = cs.healthcheck.as_ref().filter(|v| v.is_object()) {
        let d = |k: &str| go_duration(hc[k].as_i64().unwrap_or(0));
        let _ = write!(
            o,
            "\n Healthcheck:\n  Interval = {}\n  Retries = {}\n  StartPeriod =\t{}\n  Timeout =\t{}",
            d("Interval"),
            hc["Retries"].as_i64().unwrap_or(0),
            d("StartPeriod"),
            d("Timeout")
        );
        let tests: Vec<String> = hc
            .get("Test")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if !tests.is_empty() {
            o.push_str("\n  Tests:");
            for t in &tests {
                let _ = write!(o, "\n\t Test = {t}");
            }
            o.push(' ');
        }
    }
    o.push('\n');
    o
}

// ---------------------------------------------------------------------------------------------------------------
// rm, scale, rollback

/// `service rm`: DELETE /services/{ref} for each; prints each removed argument, then every error (exit 1).
pub async fn rm(c: &ApiClient, a: RmArgs, out: &mut dyn Write) -> Result<()> {
    let mut errors = Vec::new();
    for r in &a.services {
        match c.delete(&format!("/services/{}", seg(r))).await {
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

/// One `scale`: GET /services/{ref}?insertDefaults=false → POST /services/{id}/update?version=N with the new
/// replica count. Returns the daemon's warnings.
async fn scale_one(c: &ApiClient, reference: &str, replicas: u64) -> Result<Vec<String>> {
    let mut svc = get_service(c, reference, false).await?;
    match svc.spec.mode.replicated.as_mut() {
        Some(r) => r.replicas = Some(replicas),
        None => bail!("scale can only be used with replicated or replicated-job mode"),
    }
    Ok(post_update(c, &svc, &[])
        .await?
        .warnings
        .unwrap_or_default())
}

/// `service scale web=5 api=2`: each service scaled in turn ("web scaled to 5"), then, unless `-d`, the progress
/// of each; errors are collected and reported at the end as `web: <error>`.
pub async fn scale(c: &ApiClient, a: ScaleArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(bad) = a.pairs.iter().find(|p| !p.contains('=')) {
        bail!(
            "Invalid scale specifier '{bad}'.\nSee 'skep service scale --help'.\n\nUsage:  skep service scale \
             SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nScale one or multiple replicated services"
        );
    }
    let mut errors = Vec::new();
    let mut scaled = Vec::new();
    for pair in &a.pairs {
        let (name, n) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(replicas) = n.parse::<u64>() else {
            errors.push(format!(
                "{name}: invalid replicas value {n}: strconv.ParseUint: parsing {n:?}: invalid syntax"
            ));
            continue;
        };
        match scale_one(c, name, replicas).await {
            Ok(warnings) => {
                print_warnings(warnings);
                writeln!(out, "{name} scaled to {replicas}")?;
                scaled.push(name);
            }
            Err(e) => errors.push(format!("{name}: {}", error_text(&e))),
        }
    }
    if !a.detach {
        for name in scaled {
            if let Err(e) = progress::wait_on_service(c, name, false, out).await {
                errors.push(format!("{name}: {}", error_text(&e)));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// `service rollback`: GET /services/{ref}?insertDefaults=false → POST /services/{id}/update?rollback=previous&
/// version=N with the current spec (the server swaps in the previous one) → prints the argument, then the progress
/// unless `-d`.
pub async fn rollback(c: &ApiClient, a: RollbackArgs, out: &mut dyn Write) -> Result<()> {
    let svc = get_service(c, &a.service, false).await?;
    let reply = post_update(c, &svc, &[("rollback", "previous")]).await?;
    print_warnings(reply.warnings.unwrap_or_default());
    writeln!(out, "{}", a.service)?;
    if a.detach {
        return Ok(());
    }
    progress::wait_on_service(c, &svc.id, a.quiet, out).await
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use skep_api::docker::{
        ContainerSpec, Endpoint, EndpointSpec, NodeStatus, Placement, PortConfig, ReplicatedMode,
        ServiceMode, TaskStatus, UpdateConfig, UpdateStatus,
    };

    fn port(proto: &str, t: u32, p: u32, mode: &str) -> PortConfig {
        PortConfig {
            protocol: proto.into(),
            target_port: t,
            published_port: p,
            publish_mode: mode.into(),
            ..Default::default()
        }
    }

    fn service(id: &str, name: &str, image: &str, mode: ServiceMode) -> Service {
        let mut s = Service {
            id: id.into(),
            ..Default::default()
        };
        s.spec.name = name.into();
        s.spec.mode = mode;
        s.spec.task_template.container_spec = Some(ContainerSpec {
            image: image.into(),
            ..Default::default()
        });
        s
    }

    fn replicated(n: u64) -> ServiceMode {
        ServiceMode {
            replicated: Some(ReplicatedMode { replicas: Some(n) }),
            ..Default::default()
        }
    }

    fn global() -> ServiceMode {
        ServiceMode {
            global: Some(json!({})),
            ..Default::default()
        }
    }

    const D: &str = "sha256:8307ed1ed4ba1e0a8a7c51b8a4a6a3f8c47c1f8d2c1b5c0b6c2b1a0f8e3d2c1b";

    fn sample() -> Vec<Service> {
        let mut web = service(
            "ny2pwh3w96ztm2v2fc8rstune",
            "web",
            &format!("nginx:alpine@{D}"),
            replicated(3),
        );
        web.service_status = Some(ServiceStatus {
            running_tasks: 2,
            desired_tasks: 3,
            completed_tasks: 0,
        });
        web.endpoint = Some(Endpoint {
            ports: vec![
                port("tcp", 80, 8080, "ingress"),
                port("udp", 53, 53, "ingress"),
                port("tcp", 81, 8081, "ingress"),
                port("tcp", 9000, 9000, "host"),
            ],
            ..Default::default()
        });
        let mut mon = service(
            "g1aaaaaaaaaaaaaaaaaaaaaaa",
            "monitor",
            "busybox:latest",
            global(),
        );
        mon.service_status = Some(ServiceStatus {
            running_tasks: 5,
            desired_tasks: 5,
            completed_tasks: 0,
        });
        let mut api10 = service(
            "a10aaaaaaaaaaaaaaaaaaaaaa",
            "api-10",
            "/usr/bin/api",
            replicated(2),
        );
        api10.spec.task_template.placement = Some(Placement {
            max_replicas: 1,
            ..Default::default()
        });
        api10.service_status = Some(ServiceStatus {
            running_tasks: 0,
            desired_tasks: 2,
            completed_tasks: 0,
        });
        let mut api2 = service("a2aaaaaaaaaaaaaaaaaaaaaaa", "api-2", "api:1", replicated(1));
        api2.service_status = Some(ServiceStatus::default());
        vec![web, mon, api10, api2]
    }

    #[test]
    fn ls_table_like_docker() {
        let f = ListFormat::parse(None, false, LS_TABLE, LS_RAW, "id: {{.ID}}").unwrap();
        let out = render_service_list(&mut sample(), &f);
        let want = "\
ID             NAME      MODE         REPLICAS               IMAGE            PORTS
a2aaaaaaaaaa   api-2     replicated   0/0                    api:1            
a10aaaaaaaaa   api-10    replicated   0/2 (max 1 per node)   /usr/bin/api     
g1aaaaaaaaaa   monitor   global       5/5                    busybox:latest   
ny2pwh3w96zt   web       replicated   2/3                    nginx:alpine     *:8080-8081->80-81/tcp, *:53->53/udp
";
        assert_eq!(out, want);
        let q = ListFormat::parse(None, true, LS_TABLE, LS_RAW, "id: {{.ID}}").unwrap();
        assert_eq!(
            render_service_list(&mut sample(), &q),
            "a2aaaaaaaaaa\na10aaaaaaaaa\ng1aaaaaaaaaa\nny2pwh3w96zt\n"
        );
        let j = ListFormat::parse(Some("json"), false, LS_TABLE, LS_RAW, "").unwrap();
        let first = render_service_list(&mut sample(), &j);
        assert_eq!(
            first.lines().next().unwrap(),
            r#"{"ID":"a2aaaaaaaaaa","Image":"api:1","Mode":"replicated","Name":"api-2","Ports":"","Replicas":"0/0"}"#
        );
        let t = ListFormat::parse(
            Some("table {{.Name}}\t{{.Replicas}}"),
            false,
            LS_TABLE,
            LS_RAW,
            "",
        )
        .unwrap();
        assert_eq!(
            render_service_list(&mut sample(), &t),
            "NAME      REPLICAS\napi-2     0/0\napi-10    0/2 (max 1 per node)\nmonitor   5/5\nweb       2/3\n"
        );
    }

    #[test]
    fn ports_merge_into_ranges_like_docker() {
        let mut s = service("x", "x", "x", replicated(1));
        let set = |s: &mut Service, ports: Vec<PortConfig>| {
            s.endpoint = Some(Endpoint {
                ports,
                ..Default::default()
            })
        };
        set(
            &mut s,
            vec![
                port("tcp", 80, 80, "ingress"),
                port("tcp", 80, 81, "ingress"),
            ],
        );
        assert_eq!(ports_text(&s), "*:80-81->80/tcp");
        set(
            &mut s,
            vec![
                port("tcp", 80, 80, "ingress"),
                port("tcp", 81, 81, "ingress"),
                port("tcp", 80, 82, "ingress"),
            ],
        );
        assert_eq!(ports_text(&s), "*:80-81->80-81/tcp, *:82->80/tcp");
        set(&mut s, vec![port("tcp", 80, 8080, "host")]);
        assert_eq!(ports_text(&s), "");
    }

    #[test]
    fn status_is_counted_when_the_daemon_does_not_send_it() {
        let mut services = vec![
            service("r", "r", "i", replicated(3)),
            service("g", "g", "i", global()),
        ];
        let task = |svc: &str, node: &str, desired: TaskState, state: TaskState| Task {
            service_id: svc.into(),
            node_id: node.into(),
            desired_state: desired,
            status: TaskStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        };
        let tasks = [
            task("r", "n1", TaskState::Running, TaskState::Running),
            task("r", "n2", TaskState::Running, TaskState::Running),
            task("r", "n1", TaskState::Shutdown, TaskState::Shutdown),
            task("g", "n1", TaskState::Running, TaskState::Running),
            task("g", "n2", TaskState::Running, TaskState::Running),
        ];
        let nodes = [
            Node {
                id: "n1".into(),
                ..Default::default()
            },
            Node {
                id: "n2".into(),
                status: NodeStatus {
                    state: NodeState::Down,
                    ..Default::default()
                },
                ..Default::default()
            },
        ];
        count_service_status(&mut services, &tasks, &nodes);
        let st = |s: &Service| {
            let x = s.service_status.clone().unwrap();
            (x.running_tasks, x.desired_tasks)
        };
        assert_eq!(st(&services[0]), (1, 2));
        assert_eq!(st(&services[1]), (1, 2));
        // no tasks at all: replicated services show their replica count
        let mut fresh = vec![service("r", "r", "i", replicated(3))];
        count_service_status(&mut fresh, &[], &[]);
        assert_eq!(st(&fresh[0]), (0, 3));
    }

    #[test]
    fn go_durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(7), "7ns");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn pretty_inspect_layout() {
        let mut s = service(
            "ny2pwh3w96ztm2v2fc8rstune",
            "web",
            &format!("nginx:alpine@{D}"),
            replicated(3),
        );
        s.spec.labels.insert("team".into(), "web".into());
        s.spec.labels.insert("flag".into(), String::new());
        let tt = &mut s.spec.task_template;
        let cs = tt.container_spec.as_mut().unwrap();
        cs.args = vec!["nginx".into(), "-g".into()];
        cs.env = vec!["A=1".into()];
        cs.init = Some(false);
        tt.placement = Some(Placement {
            constraints: vec!["node.role==worker".into(), "node.labels.a==b".into()],
            ..Default::default()
        });
        tt.resources = Some(skep_api::docker::ResourceRequirements {
            limits: Some(Default::default()),
            reservations: Some(skep_api::docker::ResourceAmounts {
                nano_cpus: 500_000_000,
                memory_bytes: 64 * 1024 * 1024,
                ..Default::default()
            }),
        });
        tt.networks = ["netid1", "netid2"]
            .map(|t| skep_api::docker::NetworkAttachmentConfig {
                target: t.into(),
                ..Default::default()
            })
            .to_vec();
        s.spec.update_config = Some(UpdateConfig {
            parallelism: 1,
            delay: 10_000_000_000,
            failure_action: "pause".into(),
            monitor: 5_000_000_000,
            max_failure_ratio: 0.0,
            order: "stop-first".into(),
        });
        s.spec.endpoint_spec = Some(EndpointSpec {
            mode: "vip".into(),
            ..Default::default()
        });
        s.endpoint = Some(Endpoint {
            ports: vec![port("tcp", 80, 8080, "ingress")],
            ..Default::default()
        });
        s.update_status = Some(UpdateStatus {
            state: "updating".into(),
            started_at: "2027-01-15T07:59:00Z".into(),
            completed_at: String::new(),
            message: "update in progress".into(),
        });
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let names = HashMap::from([("netid1".to_string(), "front".to_string())]);
        let want = format!(
            "
ID:\t\tny2pwh3w96ztm2v2fc8rstune
Name:\t\tweb
Labels:
 flag
 team=web
Service Mode:\tReplicated
 Replicas:\t3
UpdateStatus:
 State:\t\tupdating
 Started:\tAbout a minute ago
 Message:\tupdate in progress
Placement:
 Constraints:\t[node.role==worker node.labels.a==b]
UpdateConfig:
 Parallelism:\t1
 Delay:\t\t10s
 On failure:\tpause
 Monitoring Period: 5s
 Max failure ratio: 0
 Update order:      stop-first
ContainerSpec:
 Image:\t\tnginx:alpine@{D}
 Args:\t\tnginx -g 
 Env:\t\tA=1 
 Init:\t\tfalse
Resources:
 Reservations:
  CPU:\t\t0.5
  Memory:\t64MiB
Networks: front netid2 
Endpoint Mode:\tvip
Ports:
 PublishedPort = 8080
  Protocol = tcp
  TargetPort = 80
  PublishMode = ingress 
"
        );
        assert_eq!(render_pretty(&s, &names, now), want);
        // a global service with nothing else set
        let g = service("g", "mon", "busybox", global());
        assert_eq!(
            render_pretty(&g, &HashMap::new(), now),
            "\nID:\t\tg\nName:\t\tmon\nService Mode:\tGlobal\nPlacement:\nContainerSpec:\n Image:\t\tbusybox\nEndpoint Mode:\t\n"
        );
    }
}
