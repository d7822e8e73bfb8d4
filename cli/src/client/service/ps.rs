//! `service ps`: the tasks of one or more services, history included (docker's `service ps` and `task.Print`).

use super::super::format;
use super::super::{node, opts, query, seg, ApiClient};
use super::{image, ListFormat};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Value};
use skep_api::docker::{Node, Service, Task};
use skep_api::filters::Filters;
use std::collections::HashMap;
use std::io::Write;
use std::time::SystemTime;

/// `skep service ps`.
#[derive(Args, Debug, Clone, Default)]
pub struct PsArgs {
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not map IDs to names
    #[arg(long)]
    pub no_resolve: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (id, name, node, desired-state)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = opts::parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: "table" (default), "json", "raw", or a template with {{.Field}} actions (ID, Name, Image,
    /// Node, DesiredState, CurrentState, Error, Ports)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Service IDs or names
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

/// The flags `node ps` and `stack ps` share (docker's `task.Print` options).
#[derive(Args, Debug, Clone, Default)]
pub struct TaskListFlags {
    /// Filter output based on conditions provided (id, name, node, desired-state, label, service)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = opts::parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: "table" (default), "json", "raw", or a template with {{.Field}} actions (ID, Name, Image,
    /// Node, DesiredState, CurrentState, Error, Ports)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Do not map IDs to Names
    #[arg(long)]
    pub no_resolve: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
}

impl TaskListFlags {
    /// `filters` with the `--filter` values added.
    pub fn filters(&self, mut filters: Filters) -> Filters {
        for (k, v) in &self.filter {
            filters.add(k, v);
        }
        filters
    }

    /// Print `tasks` as these flags ask.
    pub async fn print(&self, c: &ApiClient, tasks: Vec<Task>, out: &mut dyn Write) -> Result<()> {
        let format = ListFormat::parse(self.format.as_deref(), self.quiet, TABLE, RAW, "id: {{.ID}}")?;
        print_tasks(c, tasks, &format, self.no_resolve, !self.no_trunc && !self.quiet, out).await
    }
}

pub const TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}";
pub const RAW: &str = r"id: {{.ID}}\nname: {{.Name}}\nimage: {{.Image}}\nnode: {{.Node}}\ndesired_state: {{.DesiredState}}\ncurrent_state: {{.CurrentState}}\nerror: {{.Error}}\nports: {{.Ports}}\n";
/// Longest error shown when truncating.
const MAX_ERR_LENGTH: usize = 30;

/// `service ps`: GET /services?filters={"id":…}, GET /services?filters={"name":…}, [GET /info for `node=self`],
/// GET /tasks?filters=…, then the name lookups (GET /services/{id}, GET /nodes/{id}, each once).
pub async fn ps(c: &ApiClient, a: PsArgs, out: &mut dyn Write) -> Result<()> {
    let format = ListFormat::parse(a.format.as_deref(), a.quiet, TABLE, RAW, "id: {{.ID}}")?;
    let mut filter = Filters::default();
    for (k, v) in &a.filter {
        filter.add(k, v);
    }
    let (mut by_id_f, mut by_name_f) = (Filters::default(), Filters::default());
    for s in &a.services {
        by_id_f.add("id", s);
        by_name_f.add("name", s);
    }
    let list = |f: Filters| async move {
        c.get::<Vec<Service>>(&format!("/services{}", query(&[("filters", &f.to_json())])))
            .await
    };
    let by_id = list(by_id_f).await?;
    let by_name = list(by_name_f).await?;
    let mut not_found = Vec::new();
    let mut found = 0;
    'services: for s in &a.services {
        // full ID, then full name, then a unique ID prefix
        let exact = by_id
            .iter()
            .find(|x| &x.id == s)
            .or_else(|| by_name.iter().find(|x| &x.spec.name == s));
        if let Some(svc) = exact {
            filter.add("service", &svc.id);
            found += 1;
            continue 'services;
        }
        let mut prefixed = by_id.iter().filter(|x| x.id.starts_with(s.as_str()));
        match (prefixed.next(), prefixed.next()) {
            (Some(_), Some(_)) => bail!("multiple services found with provided prefix: {s}"),
            (Some(svc), None) => {
                filter.add("service", &svc.id);
                found += 1;
            }
            _ => not_found.push(format!("no such service: {s}")),
        }
    }
    if found == 0 {
        return Err(anyhow!(not_found.join("\n")));
    }
    let node_refs: Vec<String> = filter.get("node").map(str::to_string).collect();
    if !node_refs.is_empty() {
        let mut resolved = Vec::new();
        for r in &node_refs {
            resolved.push(node::resolve(c, r).await?);
        }
        filter.0.remove("node");
        for r in resolved {
            filter.add("node", &r);
        }
    }
    let tasks: Vec<Task> = c
        .get(&format!(
            "/tasks{}",
            query(&[("filters", &filter.to_json())])
        ))
        .await?;

    print_tasks(c, tasks, &format, a.no_resolve, !a.no_trunc && !a.quiet, out).await?;
    if not_found.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(not_found.join("\n")))
    }
}

/// Name, sort and print `tasks` as `service ps` and `stack ps` do: service lookups in task order, then the sort,
/// then node lookups in display order (docker's order), each ID looked up once.
pub async fn print_tasks(
    c: &ApiClient,
    tasks: Vec<Task>,
    format: &ListFormat,
    no_resolve: bool,
    trunc: bool,
    out: &mut dyn Write,
) -> Result<()> {
    // names first (service lookups in task order), then sort, then node lookups in display order (docker's order)
    let mut service_names: HashMap<String, String> = HashMap::new();
    let mut named = Vec::with_capacity(tasks.len());
    for t in tasks {
        let svc = match service_names.get(&t.service_id) {
            Some(n) => n.clone(),
            None => {
                let n = service_name(c, &t.service_id, no_resolve).await;
                service_names.insert(t.service_id.clone(), n.clone());
                n
            }
        };
        let name = task_name(&svc, &t);
        named.push((name, t));
    }
    sort_tasks(&mut named);
    let mut node_names: HashMap<String, String> = HashMap::new();
    let mut rows = Vec::with_capacity(named.len());
    for (name, t) in named {
        if !node_names.contains_key(&t.node_id) {
            let n = node_name(c, &t.node_id, no_resolve).await;
            node_names.insert(t.node_id.clone(), n);
        }
        let node = node_names[&t.node_id].clone();
        rows.push(TaskRow {
            task: t,
            name,
            node,
        });
    }
    out.write_all(render_tasks(&rows, format, trunc, SystemTime::now()).as_bytes())?;
    Ok(())
}

/// idresolver for services: the name, or the ID when the lookup fails.
async fn service_name(c: &ApiClient, id: &str, no_resolve: bool) -> String {
    if no_resolve || id.is_empty() {
        return id.to_string();
    }
    let path = format!(
        "/services/{}{}",
        seg(id),
        query(&[("insertDefaults", "false")])
    );
    match c.get::<Service>(&path).await {
        Ok(s) => s.spec.name,
        Err(_) => id.to_string(),
    }
}

/// idresolver for nodes: `Spec.Name`, else the hostname, or the ID when the lookup fails.
async fn node_name(c: &ApiClient, id: &str, no_resolve: bool) -> String {
    if no_resolve || id.is_empty() {
        return id.to_string();
    }
    match c.get::<Node>(&format!("/nodes/{}", seg(id))).await {
        Ok(n) if !n.spec.name.is_empty() => n.spec.name,
        Ok(n) => n.description.hostname,
        Err(_) => id.to_string(),
    }
}

/// `svc.slot`, or `svc.nodeID` for global tasks (slot 0).
pub fn task_name(service: &str, t: &Task) -> String {
    if t.slot != 0 {
        format!("{service}.{}", t.slot)
    } else {
        format!("{service}.{}", t.node_id)
    }
}

/// docker's order: by name (naturally), then newest first within a name.
pub fn sort_tasks(named: &mut [(String, Task)]) {
    let created = |t: &Task| skep_api::time::parse(&t.created_at);
    named.sort_by(|(an, at), (bn, bt)| {
        format::natural_cmp(an, bn).then_with(|| created(bt).cmp(&created(at)))
    });
}

/// One task with its display name (`web.1`) and node name, in display order.
#[derive(Clone, Debug)]
pub struct TaskRow {
    /// The task.
    pub task: Task,
    /// `svc.slot` or `svc.nodeID`.
    pub name: String,
    /// Node name (or ID).
    pub node: String,
}

/// The `service ps` output for rows already in display order: in tables, older tasks of a slot are indented
/// (`\_ web.1`).
pub fn render_tasks(rows: &[TaskRow], format: &ListFormat, trunc: bool, now: SystemTime) -> String {
    let mut prev = "";
    let ctxs: Vec<Value> = rows
        .iter()
        .map(|r| {
            let name = if format.is_table() && r.name == prev {
                format!(" \\_ {}", r.name)
            } else {
                r.name.clone()
            };
            prev = &r.name;
            row_context(r, name, trunc, now)
        })
        .collect();
    format.render(&ctxs, &header_context())
}

/// The fields `service ps` templates see (docker's task context).
fn row_context(r: &TaskRow, name: String, trunc: bool, now: SystemTime) -> Value {
    let t = &r.task;
    let id = if trunc {
        t.id.chars().take(12).collect()
    } else {
        t.id.clone()
    };
    let img = t
        .spec
        .container_spec
        .as_ref()
        .map_or(String::new(), |c| c.image.clone());
    let img = if trunc { image::display(&img) } else { img };
    let age = format::time_ago(&t.status.timestamp, now).to_lowercase();
    let current = format!("{} {age}", format::pretty_print(t.status.state.as_str()));
    let mut err = t.status.err.clone();
    if trunc && err.chars().count() > MAX_ERR_LENGTH {
        err = err.chars().take(MAX_ERR_LENGTH - 1).collect::<String>() + "…";
    }
    if !err.is_empty() {
        err = format!("\"{err}\"");
    }
    let ports: Vec<String> = t
        .status
        .port_status
        .iter()
        .flat_map(|ps| &ps.ports)
        .map(|p| format!("*:{}->{}/{}", p.published_port, p.target_port, p.protocol))
        .collect();
    json!({
        "CurrentState": current,
        "DesiredState": format::pretty_print(t.desired_state.as_str()),
        "Error": err,
        "ID": id,
        "Image": img,
        "Name": name,
        "Node": r.node,
        "Ports": ports.join(","),
    })
}

fn header_context() -> Value {
    json!({
        "CurrentState": "CURRENT STATE", "DesiredState": "DESIRED STATE", "Error": "ERROR", "ID": "ID",
        "Image": "IMAGE", "Name": "NAME", "Node": "NODE", "Ports": "PORTS",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{ContainerSpec, PortConfig, PortStatus, TaskState, TaskStatus};

    fn t(
        id: &str,
        slot: u64,
        node: &str,
        created: &str,
        desired: TaskState,
        state: TaskState,
    ) -> Task {
        let mut t = Task {
            id: id.into(),
            service_id: "svc".into(),
            slot,
            node_id: node.into(),
            created_at: created.into(),
            desired_state: desired,
            status: TaskStatus {
                state,
                timestamp: "2027-01-15T07:59:55Z".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        t.spec.container_spec = Some(ContainerSpec {
            image: "nginx:alpine@sha256:8307ed1ed4ba1e0a8a7c51b8a4a6a3f8c47c1f8d2c1b5c0b6c2b1a0f8e3d2c1b".into(),
            ..Default::default()
        });
        t
    }

    #[test]
    fn ps_table_groups_history_under_each_slot() {
        use TaskState::*;
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000); // 2027-01-15T08:00:00Z
        let mut failed = t(
            "bbbbbbbbbbbbbbbbbbbbbbbbb",
            1,
            "n1",
            "2027-01-15T07:00:00Z",
            Shutdown,
            Failed,
        );
        failed.status.err = "task: non-zero exit (1): the process failed badly".into();
        failed.status.timestamp = "2027-01-15T07:00:00Z".into();
        let mut running1 = t(
            "aaaaaaaaaaaaaaaaaaaaaaaaa",
            1,
            "n1",
            "2027-01-15T07:30:00Z",
            Running,
            Running,
        );
        running1.status.port_status = Some(PortStatus {
            ports: vec![PortConfig {
                protocol: "tcp".into(),
                target_port: 80,
                published_port: 8080,
                publish_mode: "host".into(),
                ..Default::default()
            }],
        });
        let running10 = t(
            "ccccccccccccccccccccccccc",
            10,
            "n2",
            "2027-01-15T07:30:00Z",
            Running,
            Pending,
        );
        let running2 = t(
            "ddddddddddddddddddddddddd",
            2,
            "n2",
            "2027-01-15T07:30:00Z",
            Running,
            Running,
        );
        let mut named: Vec<(String, Task)> = [failed, running10, running1, running2]
            .into_iter()
            .map(|x| (task_name("web", &x), x))
            .collect();
        sort_tasks(&mut named);
        let rows: Vec<TaskRow> = named
            .into_iter()
            .map(|(name, task)| TaskRow {
                node: if task.node_id == "n1" {
                    "node-1".into()
                } else {
                    "node-2".into()
                },
                task,
                name,
            })
            .collect();
        let fmt = ListFormat::parse(None, false, TABLE, RAW, "id: {{.ID}}").unwrap();
        let out = render_tasks(&rows, &fmt, true, now);
        let want = [
            "ID             NAME        IMAGE          NODE      DESIRED STATE   CURRENT STATE              ERROR                              PORTS",
            "aaaaaaaaaaaa   web.1       nginx:alpine   node-1    Running         Running 5 seconds ago                                         *:8080->80/tcp",
            "bbbbbbbbbbbb    \\_ web.1   nginx:alpine   node-1    Shutdown        Failed about an hour ago   \"task: non-zero exit (1): the …\"   ",
            "dddddddddddd   web.2       nginx:alpine   node-2    Running         Running 5 seconds ago                                         ",
            "cccccccccccc   web.10      nginx:alpine   node-2    Running         Pending 5 seconds ago                                         ",
        ];
        assert_eq!(out, want.join("\n") + "\n");
        // --no-trunc keeps IDs, digests and errors whole; -q prints full IDs only
        let full = render_tasks(&rows, &fmt, false, now);
        assert!(full.contains("aaaaaaaaaaaaaaaaaaaaaaaaa   web.1"), "{full}");
        assert!(full.contains("nginx:alpine@sha256:8307"), "{full}");
        assert!(full.contains("\"task: non-zero exit (1): the process failed badly\""));
        let q = ListFormat::parse(None, true, TABLE, RAW, "id: {{.ID}}").unwrap();
        assert_eq!(
            render_tasks(&rows, &q, false, now),
            "aaaaaaaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbbbbb\nddddddddddddddddddddddddd\nccccccccccccccccccccccccc\n"
        );
        // templates see the plain name (no indentation outside tables)
        let tmpl =
            ListFormat::parse(Some("{{.Name}} {{.DesiredState}}"), false, TABLE, RAW, "").unwrap();
        assert_eq!(
            render_tasks(&rows, &tmpl, true, now),
            "web.1 Running\nweb.1 Shutdown\nweb.2 Running\nweb.10 Running\n"
        );
    }

    #[test]
    fn global_tasks_are_named_by_node() {
        let g = t(
            "x",
            0,
            "nodeid123",
            "",
            TaskState::Running,
            TaskState::Running,
        );
        assert_eq!(task_name("mon", &g), "mon.nodeid123");
    }
}
