//! `stack deploy`: docker's `deployCompose` (`cli/command/stack/swarm/deploy_composefile.go`, github.com/docker/cli)
//! request for request: GET /info (a manager?) → [prune: the stack's services not in the files removed] → external
//! networks looked up (`GET /networks/{name}`, swarm scoped) → the stack's networks listed and the missing ones
//! created → each secret and config looked up by name and updated, or created → the services' secret and config
//! names resolved to IDs → the stack's services listed; each service updated (`POST /services/{id}/update`, keeping
//! `ForceUpdate` and, when the image did not change, the digest-pinned image) or created → with `--detach=false`,
//! the progress of each until it converges.
//!
//! `--with-registry-auth` is not offered: skep's client reads no registry credentials.

use super::compose;
use super::convert::{self, ServicePlan, LABEL_IMAGE};
use super::super::service::{files, image, progress};
use super::super::{query, seg, ApiClient};
use super::stack_services;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use serde_json::Value;
use skep_api::docker::{Info, Network, Secret, ServiceCreateResponse, SecretSpec};
use std::collections::BTreeSet;
use std::io::Write;

/// `skep stack deploy`.
#[derive(Args, Debug, Clone, Default)]
pub struct DeployArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeat to merge files in order)
    #[arg(short = 'c', long = "compose-file", value_name = "FILE")]
    pub compose_file: Vec<String>,
    /// Exit immediately instead of waiting for the stack services to converge (default true)
    #[arg(short, long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub detach: Option<bool>,
    /// Prune services that are no longer referenced
    #[arg(long)]
    pub prune: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Query the registry to resolve image digest and supported platforms ("always", "changed", "never")
    #[arg(long, value_name = "string", default_value = "always")]
    pub resolve_image: String,
    /// The stack
    #[arg(value_name = "STACK")]
    pub stack: String,
}

/// Run `stack deploy`; `env` is the environment for interpolation.
pub async fn deploy(
    c: &ApiClient,
    a: DeployArgs,
    out: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if a.stack.trim_matches(|ch: char| ch.is_whitespace() || ch == '"' || ch == '\'').is_empty() {
        bail!("invalid stack name: {:?}", a.stack);
    }
    if a.compose_file.is_empty() {
        bail!("Specify a Compose file (with --compose-file)");
    }
    if !matches!(a.resolve_image.as_str(), "always" | "changed" | "never") {
        bail!("Invalid option {} for flag --resolve-image", a.resolve_image);
    }
    let loaded = compose::load(&a.compose_file, env)?;
    eprint!("{}", loaded.warnings);
    let plan = convert::convert(&loaded.doc, &a.stack, &loaded.dir, env)?;
    if a.detach.is_none() {
        eprintln!(
            "Since --detach=false was not specified, tasks will be created in the background.\nIn a future \
             release, --detach=false will become the default."
        );
    }
    let info: Info = c.get("/info").await?;
    if !info.swarm.control_available {
        bail!(
            "this node is not a swarm manager. Use \"skep swarm init\" or \"skep swarm join\" to connect this node \
             to swarm and try again"
        );
    }
    if a.prune {
        prune(c, &a.stack, &plan, out).await?;
    }
    for name in &plan.external_networks {
        check_external_network(c, name).await?;
    }
    create_networks(c, &a.stack, &plan, out).await?;
    put_payloads(c, "secret", &plan.secrets, out).await?;
    put_payloads(c, "config", &plan.configs, out).await?;
    let ids = deploy_services(c, &a, plan.services.into_iter().collect(), out).await?;
    if a.detach != Some(false) {
        return Ok(());
    }
    let mut errors = Vec::new();
    for id in ids {
        if let Err(e) = progress::wait_on_service(c, &id, a.quiet, out).await {
            errors.push(super::super::error_text(&e));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// `--prune`: the stack's services the files no longer name are removed ("Removing service st_old").
async fn prune(c: &ApiClient, ns: &str, plan: &convert::Plan, out: &mut dyn Write) -> Result<()> {
    let mut gone: Vec<_> = stack_services(c, ns)
        .await?
        .into_iter()
        .filter(|s| !plan.services.contains_key(&s.spec.name))
        .collect();
    gone.sort_by(|x, y| x.spec.name.cmp(&y.spec.name));
    for s in gone {
        writeln!(out, "Removing service {}", s.spec.name)?;
        if let Err(e) = c.delete(&format!("/services/{}", seg(&s.id))).await {
            eprintln!("Failed to remove service {}: {e}", s.id);
        }
    }
    Ok(())
}

/// An external network must exist and be swarm scoped (networks every node has, like `host`, are not looked up).
async fn check_external_network(c: &ApiClient, name: &str) -> Result<()> {
    if matches!(name, "host" | "bridge" | "none" | "default") {
        return Ok(());
    }
    match c.get::<Network>(&format!("/networks/{}", seg(name))).await {
        Ok(n) if n.scope == "swarm" => Ok(()),
        Ok(n) => bail!(
            "network {name:?} is declared as external, but it is not in the right scope: {:?} instead of \"swarm\"",
            n.scope
        ),
        Err(e) if e.is_not_found() => bail!(
            "network {name:?} is declared as external, but could not be found. You need to create a swarm-scoped \
             network before the stack is deployed"
        ),
        Err(e) => Err(e.into()),
    }
}

/// The stack's networks that do not exist yet are created ("Creating network st_default").
async fn create_networks(c: &ApiClient, ns: &str, plan: &convert::Plan, out: &mut dyn Write) -> Result<()> {
    let existing: Vec<Network> = super::list_of(c, "networks", ns).await?;
    let existing: BTreeSet<&str> = existing.iter().map(|n| n.name.as_str()).collect();
    for (name, body) in &plan.networks {
        if existing.contains(name.as_str()) {
            continue;
        }
        writeln!(out, "Creating network {name}")?;
        c.post::<_, Value>("/networks/create", body)
            .await
            .with_context(|| format!("failed to create network {name}"))?;
    }
    Ok(())
}

/// Each secret (or config) is looked up by name: updated when it exists, else created ("Creating secret st_pw").
async fn put_payloads(c: &ApiClient, kind: &str, specs: &[SecretSpec], out: &mut dyn Write) -> Result<()> {
    for spec in specs {
        match c.get::<Secret>(&format!("/{kind}s/{}", seg(&spec.name))).await {
            Ok(existing) => {
                let path = format!("/{kind}s/{}/update{}", seg(&existing.id),
                                   query(&[("version", &existing.version.index.to_string())]));
                c.post_no_reply(&path, Some(spec))
                    .await
                    .with_context(|| format!("failed to update {kind} {}", spec.name))?;
            }
            Err(e) if e.is_not_found() => {
                writeln!(out, "Creating {kind} {}", spec.name)?;
                c.post::<_, Value>(&format!("/{kind}s/create"), spec)
                    .await
                    .with_context(|| format!("failed to create {kind} {}", spec.name))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Create or update each service (by name); returns their IDs in that order.
async fn deploy_services(
    c: &ApiClient,
    a: &DeployArgs,
    services: Vec<(String, ServicePlan)>,
    out: &mut dyn Write,
) -> Result<Vec<String>> {
    // docker resolves every service's secrets and configs (convert.Services) before listing the stack's services
    let mut specs = Vec::with_capacity(services.len());
    for (name, plan) in services {
        let mut spec = plan.spec;
        let cs = spec.task_template.container_spec.get_or_insert_with(Default::default);
        cs.secrets = files::secret_refs(c, &plan.secrets).await?;
        cs.configs = files::config_refs(c, &plan.configs).await?;
        specs.push((name, spec));
    }
    let existing = stack_services(c, &a.stack).await?;
    let mut ids = Vec::with_capacity(specs.len());
    for (name, mut spec) in specs {
        let cs = spec.task_template.container_spec.get_or_insert_with(Default::default);
        let wanted = cs.image.clone();
        cs.image = image::with_default_tag(&cs.image);
        let mut warnings = Vec::new();
        if let Some(svc) = existing.iter().find(|s| s.spec.name == name) {
            writeln!(out, "Updating service {name} (id: {})", svc.id)?;
            let same_image = svc.spec.labels.get(LABEL_IMAGE) == Some(&wanted);
            let query_registry = match a.resolve_image.as_str() {
                "always" => true,
                "changed" => !same_image,
                _ => false,
            };
            if !query_registry && same_image {
                // keep the digest a previous deploy pinned, or the spec would change and the tasks restart
                if let Some(old) = svc.spec.task_template.container_spec.as_ref() {
                    cs.image = old.image.clone();
                }
            }
            spec.task_template.force_update = svc.spec.task_template.force_update;
            if query_registry {
                warnings.extend(image::pin_digest(c, &mut spec.task_template).await);
            }
            let path = format!(
                "/services/{}/update{}",
                seg(&svc.id),
                query(&[("version", &svc.version.index.to_string())])
            );
            let reply: ServiceCreateResponse =
                c.post(&path, &spec).await.with_context(|| format!("failed to update service {name}"))?;
            warnings.extend(reply.warnings.into_iter().flatten());
            ids.push(svc.id.clone());
        } else {
            writeln!(out, "Creating service {name}")?;
            if a.resolve_image != "never" {
                warnings.extend(image::pin_digest(c, &mut spec.task_template).await);
            }
            let reply: ServiceCreateResponse =
                c.post("/services/create", &spec).await.with_context(|| format!("failed to create service {name}"))?;
            warnings.extend(reply.warnings.into_iter().flatten());
            ids.push(reply.id);
        }
        for w in warnings {
            eprintln!("{w}");
        }
    }
    Ok(ids)
}
