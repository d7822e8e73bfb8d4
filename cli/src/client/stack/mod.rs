//! `skep stack deploy | ls | ps | rm | services`: compose files deployed as swarm services, for users without the
//! docker CLI. Each command makes the requests docker's `cli/command/stack/swarm` (github.com/docker/cli) makes, so a
//! stack deployed by `skep` is one to `docker stack …` and the other way round: the same names (`<stack>_<name>`),
//! the label `com.docker.stack.namespace=<stack>` on every object, `com.docker.stack.image` on services.
//!
//! # Layout
//! - [`compose`]: reading, interpolating and merging the files; docker's lists of keys swarm mode ignores.
//! - [`convert`]: the document to networks, secrets, configs and service specs; every key checked.
//! - [`deploy`]: the requests of `stack deploy`.
//! - this file: the subcommands, `ls`, `ps`, `rm`, `services`.

pub mod compose;
pub mod convert;
pub mod deploy;

#[cfg(test)]
mod tests;

use super::format;
use super::service::{self, ps, ListFormat};
use super::{query, seg, ApiClient};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use convert::LABEL_NAMESPACE;
use serde_json::{json, Value};
use skep_api::docker::{Network, Secret, Service, Task};
use skep_api::filters::Filters;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// `skep stack` subcommands.
#[derive(Subcommand, Debug)]
pub enum StackCmd {
    /// Deploy a new stack or update an existing stack
    #[command(visible_alias = "up")]
    Deploy(deploy::DeployArgs),
    /// List stacks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// List the tasks in the stack
    Ps(PsArgs),
    /// Remove one or more stacks
    #[command(visible_aliases = ["remove", "down"])]
    Rm(RmArgs),
    /// List the services in the stack
    Services(ServicesArgs),
}

/// `skep stack ls`.
#[derive(Args, Debug, Clone, Default)]
pub struct LsArgs {
    /// Format output: "table" (default), "json", or a template with {{.Name}} and {{.Services}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `skep stack ps`.
#[derive(Args, Debug, Clone, Default)]
pub struct PsArgs {
    #[command(flatten)]
    pub flags: ps::TaskListFlags,
    /// The stack
    #[arg(value_name = "STACK")]
    pub stack: String,
}

/// `skep stack rm`.
#[derive(Args, Debug, Clone, Default)]
pub struct RmArgs {
    /// Do not wait for stack removal (default true; --detach=false waits until the stack's tasks are gone)
    #[arg(short, long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub detach: Option<bool>,
    /// The stacks
    #[arg(value_name = "STACK", required = true)]
    pub stacks: Vec<String>,
}

/// `skep stack services`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub list: service::LsArgs,
    /// The stack
    #[arg(value_name = "STACK")]
    pub stack: String,
}

/// Run a `stack` subcommand.
pub async fn run(c: &ApiClient, cmd: StackCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        StackCmd::Deploy(a) => deploy::deploy(c, a, out, &|k| std::env::var(k).ok()).await,
        StackCmd::Ls(a) => ls(c, a, out).await,
        StackCmd::Ps(a) => ps(c, a, out).await,
        StackCmd::Rm(a) => rm(c, a, out).await,
        StackCmd::Services(a) => services(c, a, out).await,
    }
}

/// `{"label":{"com.docker.stack.namespace=<ns>":true}}`.
fn stack_filter(ns: &str) -> Filters {
    let mut f = Filters::default();
    f.add("label", &format!("{LABEL_NAMESPACE}={ns}"));
    f
}

/// `GET /<kind>?filters={"label":{"com.docker.stack.namespace=<ns>":true}}`.
async fn list_of<T: serde::de::DeserializeOwned>(c: &ApiClient, kind: &str, ns: &str) -> Result<Vec<T>> {
    Ok(c.get(&format!("/{kind}{}", query(&[("filters", &stack_filter(ns).to_json())]))).await?)
}

/// The services of stack `ns`.
pub async fn stack_services(c: &ApiClient, ns: &str) -> Result<Vec<Service>> {
    list_of(c, "services", ns).await
}

/// `stack ls`: GET /services?filters={"label":{"com.docker.stack.namespace":true}} → stacks by name (naturally)
/// with their service counts.
pub async fn ls(c: &ApiClient, a: LsArgs, out: &mut dyn Write) -> Result<()> {
    let format = ListFormat::parse(a.format.as_deref(), false, LS_TABLE, LS_TABLE, LS_TABLE)?;
    let mut f = Filters::default();
    f.add("label", LABEL_NAMESPACE);
    let services: Vec<Service> = c.get(&format!("/services{}", query(&[("filters", &f.to_json())]))).await?;
    out.write_all(render_stacks(&services, &format).as_bytes())?;
    Ok(())
}

const LS_TABLE: &str = "table {{.Name}}\t{{.Services}}";

/// The `stack ls` output for the stacks' services.
pub fn render_stacks(services: &[Service], format: &ListFormat) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in services {
        if let Some(ns) = s.spec.labels.get(LABEL_NAMESPACE) {
            *counts.entry(ns).or_default() += 1;
        }
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| format::natural_cmp(a.0, b.0));
    let rows: Vec<Value> = names.iter().map(|(n, c)| json!({"Name": n, "Services": c.to_string()})).collect();
    format.render(&rows, &json!({"Name": "NAME", "Services": "SERVICES"}))
}

/// `stack ps`: GET /tasks?filters={…,"label":{"com.docker.stack.namespace=<ns>":true}} → `service ps`'s output;
/// "nothing found in stack: <ns>" when there is no task.
pub async fn ps(c: &ApiClient, a: PsArgs, out: &mut dyn Write) -> Result<()> {
    let filter = a.flags.filters(stack_filter(&a.stack));
    let tasks: Vec<Task> = c.get(&format!("/tasks{}", query(&[("filters", &filter.to_json())]))).await?;
    if tasks.is_empty() {
        bail!("nothing found in stack: {}", a.stack);
    }
    a.flags.print(c, tasks, out).await
}

/// `stack services`: `service ls` with the stack's label filter (after a first listing to tell an empty stack:
/// "Nothing found in stack: <ns>" on stderr).
pub async fn services(c: &ApiClient, a: ServicesArgs, out: &mut dyn Write) -> Result<()> {
    if stack_services(c, &a.stack).await?.is_empty() {
        eprintln!("Nothing found in stack: {}", a.stack);
        return Ok(());
    }
    let mut list = a.list;
    list.filter.push(("label".into(), format!("{LABEL_NAMESPACE}={}", a.stack)));
    service::ls(c, list, out).await
}

/// How long `stack rm --detach=false` waits for the tasks to go.
const RM_WAIT: Duration = Duration::from_secs(300);

/// `stack rm`: for each stack, its services (by name), secrets, configs and networks are listed and removed in
/// that order ("Removing service st_web", …); "Nothing found in stack: st" on stderr for an empty stack; a failed
/// removal is reported and the command fails at the end.
pub async fn rm(c: &ApiClient, a: RmArgs, out: &mut dyn Write) -> Result<()> {
    let mut errors = Vec::new();
    for ns in &a.stacks {
        let mut services = stack_services(c, ns).await?;
        let networks: Vec<Network> = list_of(c, "networks", ns).await?;
        let secrets: Vec<Secret> = list_of(c, "secrets", ns).await?;
        let configs: Vec<Secret> = list_of(c, "configs", ns).await?;
        if services.is_empty() && networks.is_empty() && secrets.is_empty() && configs.is_empty() {
            eprintln!("Nothing found in stack: {ns}");
            continue;
        }
        services.sort_by(|x, y| x.spec.name.cmp(&y.spec.name));
        let mut failed = false;
        let service_ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
        for s in &services {
            writeln!(out, "Removing service {}", s.spec.name)?;
            if let Err(e) = c.delete(&format!("/services/{}", seg(&s.id))).await {
                eprintln!("Failed to remove service {}: {e}", s.id);
                failed = true;
            }
        }
        for (kind, list) in [("secret", &secrets), ("config", &configs)] {
            for s in list {
                writeln!(out, "Removing {kind} {}", s.spec.name)?;
                if let Err(e) = c.delete(&format!("/{kind}s/{}", seg(&s.id))).await {
                    eprintln!("Failed to remove {kind} {}: {e}", s.id);
                    failed = true;
                }
            }
        }
        for n in &networks {
            writeln!(out, "Removing network {}", n.name)?;
            if let Err(e) = c.delete(&format!("/networks/{}", seg(&n.id))).await {
                eprintln!("Failed to remove network {}: {e}", n.id);
                failed = true;
            }
        }
        if failed {
            errors.push(format!("Failed to remove some resources from stack: {ns}"));
            continue;
        }
        if a.detach == Some(false) {
            if let Err(e) = wait_for_tasks_gone(c, &service_ids).await {
                errors.push(format!("{ns}: {e}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// Poll `GET /tasks?filters={"service":…}` until none of the removed services' tasks is left, bounded by [`RM_WAIT`].
async fn wait_for_tasks_gone(c: &ApiClient, service_ids: &[String]) -> Result<()> {
    if service_ids.is_empty() {
        return Ok(());
    }
    let mut f = Filters::default();
    for id in service_ids {
        f.add("service", id);
    }
    let path = format!("/tasks{}", query(&[("filters", &f.to_json())]));
    let started = Instant::now();
    loop {
        let tasks: Vec<Task> = c.get(&path).await?;
        if tasks.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= RM_WAIT {
            bail!("{} tasks still present after {}s", tasks.len(), RM_WAIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
