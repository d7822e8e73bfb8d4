//! `service update`: GET the service, change what the flags say (docker's `updateService`), POST the whole spec
//! back with `version=N` (`cli/command/service/update.go`, github.com/docker/cli); `--rollback` asks the server to swap back
//! to the previous spec instead.

use super::super::{query, seg, ApiClient};
use super::create::{kv_map, swarm_network, CommonArgs};
use super::files;
use super::flags::{self, Ports, Words};
use super::{image, post_update, print_warnings, progress};
use anyhow::{bail, Result};
use clap::Args;
use skep_api::docker::{NetworkAttachmentConfig, PlacementPreference, PortConfig, Service, ServiceSpec};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;

/// `skep service update`.
#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    /// Service image tag (for the process engine: the program)
    #[arg(long)]
    pub image: Option<String>,
    /// Service command args
    #[arg(long, value_name = "COMMAND", value_parser = flags::parse_words, allow_hyphen_values = true)]
    pub args: Option<Words>,
    /// Add or update an environment variable
    #[arg(long = "env-add", value_name = "KEY=VALUE", value_parser = flags::validate_env)]
    pub env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long = "env-rm", value_name = "KEY")]
    pub env_rm: Vec<String>,
    /// Add or update a service label
    #[arg(long = "label-add", value_name = "KEY=VALUE")]
    pub label_add: Vec<String>,
    /// Remove a label by its key
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Add or update a container label
    #[arg(long = "container-label-add", value_name = "KEY=VALUE")]
    pub container_label_add: Vec<String>,
    /// Remove a container label by its key
    #[arg(long = "container-label-rm", value_name = "KEY")]
    pub container_label_rm: Vec<String>,
    /// Add or update a placement constraint
    #[arg(long = "constraint-add", value_name = "EXPR")]
    pub constraint_add: Vec<String>,
    /// Remove a constraint
    #[arg(long = "constraint-rm", value_name = "EXPR")]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference
    #[arg(long = "placement-pref-add", value_name = "PREF", value_parser = flags::parse_placement_pref)]
    pub placement_pref_add: Vec<PlacementPreference>,
    /// Remove a placement preference
    #[arg(long = "placement-pref-rm", value_name = "PREF", value_parser = flags::parse_placement_pref)]
    pub placement_pref_rm: Vec<PlacementPreference>,
    /// Add or update a published port
    #[arg(long = "publish-add", value_name = "PORT", value_parser = flags::parse_publish)]
    pub publish_add: Vec<Ports>,
    /// Remove a published port by its target port
    #[arg(long = "publish-rm", value_name = "PORT", value_parser = flags::parse_publish)]
    pub publish_rm: Vec<Ports>,
    /// Add a network (a name or ID, or "name=NET,alias=A,driver-opt=K=V")
    #[arg(long = "network-add", value_name = "NETWORK", value_parser = flags::parse_network)]
    pub network_add: Vec<NetworkAttachmentConfig>,
    /// Remove a network
    #[arg(long = "network-rm", value_name = "NETWORK")]
    pub network_rm: Vec<String>,
    /// Add or update a secret on a service ("name" or "source=name,target=file,uid=0,gid=0,mode=0444")
    #[arg(long = "secret-add", value_name = "SECRET", value_parser = files::parse_secret)]
    pub secret_add: Vec<files::FileRef>,
    /// Remove a secret (by name)
    #[arg(long = "secret-rm", value_name = "SECRET")]
    pub secret_rm: Vec<String>,
    /// Add or update a config file on a service (the same syntax as --secret-add)
    #[arg(long = "config-add", value_name = "CONFIG", value_parser = files::parse_config)]
    pub config_add: Vec<files::FileRef>,
    /// Remove a configuration file (by name)
    #[arg(long = "config-rm", value_name = "CONFIG")]
    pub config_rm: Vec<String>,
    /// Force update even if no changes require it
    #[arg(long)]
    pub force: bool,
    /// Rollback to previous specification
    #[arg(long)]
    pub rollback: bool,
    /// Flags shared with `service create`.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Service ID or name
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

impl UpdateArgs {
    /// Whether a flag other than `--rollback`, `-d`, `-q` was given.
    fn changes_spec(&self) -> bool {
        self.image.is_some()
            || self.args.is_some()
            || !self.env_add.is_empty()
            || !self.env_rm.is_empty()
            || !self.label_add.is_empty()
            || !self.label_rm.is_empty()
            || !self.container_label_add.is_empty()
            || !self.container_label_rm.is_empty()
            || !self.constraint_add.is_empty()
            || !self.constraint_rm.is_empty()
            || !self.placement_pref_add.is_empty()
            || !self.placement_pref_rm.is_empty()
            || !self.publish_add.is_empty()
            || !self.publish_rm.is_empty()
            || !self.network_add.is_empty()
            || !self.network_rm.is_empty()
            || !self.secret_add.is_empty()
            || !self.secret_rm.is_empty()
            || !self.config_add.is_empty()
            || !self.config_rm.is_empty()
            || self.force
            || self.common.changes_spec()
    }
}

/// docker's `updateLabels`: removals, then additions.
fn update_labels(labels: &mut BTreeMap<String, String>, add: &[String], rm: &[String]) {
    for k in rm {
        labels.remove(k);
    }
    labels.extend(kv_map(add));
}

/// `80:8080/tcp/ingress`, the key docker sorts and de-duplicates ports by.
fn port_key(p: &PortConfig) -> String {
    format!(
        "{}:{}/{}/{}",
        p.published_port, p.target_port, p.protocol, p.publish_mode
    )
}

/// docker's `updatePorts`: drop duplicates and the ports `--publish-rm` names (by target port, protocol and mode),
/// add `--publish-add`, sort.
fn update_ports(ports: &mut Vec<PortConfig>, add: &[PortConfig], rm: &[PortConfig]) {
    let same = |a: &str, b: &str, default: &str| {
        a == b || (a.is_empty() && b == default) || (b.is_empty() && a == default)
    };
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<PortConfig> = Vec::new();
    for p in ports.iter() {
        if !seen.insert(port_key(p)) {
            continue;
        }
        let removed = rm.iter().any(|r| {
            same(&p.protocol, &r.protocol, "tcp")
                && p.target_port == r.target_port
                && same(&p.publish_mode, &r.publish_mode, "ingress")
        });
        if !removed {
            out.push(p.clone());
        }
    }
    for p in add {
        if seen.insert(port_key(p)) {
            out.push(p.clone());
        }
    }
    out.sort_by_key(port_key);
    *ports = out;
}

/// Apply the flags of `service update` to a spec (docker's `updateService`; `--rollback` does not come here).
pub fn apply_update(spec: &mut ServiceSpec, a: &UpdateArgs) -> Result<()> {
    if let Some(n) = a.common.replicas {
        match spec.mode.replicated.as_mut() {
            Some(r) => r.replicas = Some(n),
            None => bail!("replicas can only be used with replicated mode"),
        }
    }
    update_labels(&mut spec.labels, &a.label_add, &a.label_rm);
    a.common.apply(spec);
    let tt = &mut spec.task_template;
    let cs = tt.container_spec.get_or_insert_with(Default::default);
    if let Some(img) = &a.image {
        cs.image = img.clone();
    }
    if let Some(w) = &a.args {
        cs.args = w.0.clone();
    }
    update_labels(
        &mut cs.labels,
        &a.container_label_add,
        &a.container_label_rm,
    );
    cs.env
        .retain(|e| !a.env_rm.iter().any(|k| k == flags::env_key(e)));
    for v in &a.env_add {
        match cs
            .env
            .iter()
            .position(|e| flags::env_key(e) == flags::env_key(v))
        {
            Some(i) => cs.env[i] = v.clone(),
            None => cs.env.push(v.clone()),
        }
    }
    if !a.constraint_add.is_empty() || !a.constraint_rm.is_empty() {
        let p = tt.placement.get_or_insert_with(Default::default);
        p.constraints.extend(a.constraint_add.iter().cloned());
        p.constraints.retain(|c| !a.constraint_rm.contains(c));
        p.constraints.sort();
    }
    if !a.placement_pref_add.is_empty() || !a.placement_pref_rm.is_empty() {
        let p = tt.placement.get_or_insert_with(Default::default);
        p.preferences.retain(|x| {
            !a.placement_pref_rm
                .iter()
                .any(|r| r.spread == x.spread)
        });
        p.preferences.extend(a.placement_pref_add.iter().cloned());
    }
    if !a.publish_add.is_empty() || !a.publish_rm.is_empty() {
        let add: Vec<PortConfig> = a.publish_add.iter().flat_map(|p| p.0.clone()).collect();
        let rm: Vec<PortConfig> = a.publish_rm.iter().flat_map(|p| p.0.clone()).collect();
        let ep = spec.endpoint_spec.get_or_insert_with(Default::default);
        update_ports(&mut ep.ports, &add, &rm);
    }
    if a.force {
        spec.task_template.force_update += 1;
    }
    Ok(())
}

/// docker's `updateNetworks`: GET /networks/{n}?scope=swarm for each `--network-rm`, then each `--network-add`; the
/// removed IDs are dropped, the added ones (by ID) appended (an attached one is an error), the list sorted by ID. The
/// deprecated top-level `Networks` moves into the task template, as docker moves it.
async fn update_networks(c: &ApiClient, spec: &mut ServiceSpec, a: &UpdateArgs) -> Result<()> {
    let mut current = std::mem::take(&mut spec.task_template.networks);
    let old = std::mem::take(&mut spec.networks);
    if current.is_empty() {
        current = old;
    }
    let mut remove = HashSet::new();
    for r in &a.network_rm {
        remove.insert(swarm_network(c, r).await?.id);
    }
    current.retain(|n| !remove.contains(&n.target));
    let mut attached: HashSet<String> = current.iter().map(|n| n.target.clone()).collect();
    for add in &a.network_add {
        let mut n = add.clone();
        n.target = swarm_network(c, &n.target).await?.id;
        if !attached.insert(n.target.clone()) {
            bail!("service is already attached to network {}", n.target);
        }
        current.push(n);
    }
    current.sort_by(|a, b| a.target.cmp(&b.target));
    spec.task_template.networks = current;
    Ok(())
}

/// docker's `getUpdatedSecrets` / `getUpdatedConfigs`: drop the references whose name `--secret-rm` (`--config-rm`)
/// gives, then append the `--secret-add` (`--config-add`) ones, resolved to IDs.
async fn update_files(c: &ApiClient, spec: &mut ServiceSpec, a: &UpdateArgs) -> Result<()> {
    let cs = spec.task_template.container_spec.get_or_insert_with(Default::default);
    if !a.secret_add.is_empty() || !a.secret_rm.is_empty() {
        cs.secrets.retain(|r| !a.secret_rm.contains(&r.secret_name));
        cs.secrets.extend(files::secret_refs(c, &a.secret_add).await?);
    }
    if !a.config_add.is_empty() || !a.config_rm.is_empty() {
        cs.configs.retain(|r| !a.config_rm.contains(&r.config_name));
        cs.configs.extend(files::config_refs(c, &a.config_add).await?);
    }
    Ok(())
}

/// `service update`: GET /services/{ref}?insertDefaults=false → [GET /networks/{n}?scope=swarm per --network-rm and
/// --network-add] → [GET /secrets, GET /configs for --secret-add, --config-add] → [GET /distribution/{image}/json with --image] →
/// POST /services/{id}/update?registryAuthFrom=spec[&rollback=previous]&version=N → prints the argument, then the
/// progress display unless `--detach`.
pub async fn update(c: &ApiClient, a: UpdateArgs, out: &mut dyn Write) -> Result<()> {
    let path = format!(
        "/services/{}{}",
        seg(&a.service),
        query(&[("insertDefaults", "false")])
    );
    let mut svc: Service = c.get(&path).await?;
    if a.rollback {
        if a.changes_spec() {
            bail!("other flags may not be combined with --rollback");
        }
    } else {
        apply_update(&mut svc.spec, &a)?;
        if !a.network_add.is_empty() || !a.network_rm.is_empty() {
            update_networks(c, &mut svc.spec, &a).await?;
        }
        update_files(c, &mut svc.spec, &a).await?;
    }
    let mut warnings = Vec::new();
    if a.image.is_some() && !a.common.no_resolve_image {
        if let Some(cs) = svc.spec.task_template.container_spec.as_mut() {
            cs.image = image::with_default_tag(&cs.image);
        }
        warnings.extend(image::pin_digest(c, &mut svc.spec.task_template).await);
    }
    let mut q = vec![("registryAuthFrom", "spec")];
    if a.rollback {
        q.push(("rollback", "previous"));
    }
    let reply = post_update(c, &svc, &q).await?;
    print_warnings(reply.warnings.into_iter().flatten().chain(warnings));
    writeln!(out, "{}", a.service)?;
    if a.common.detach {
        return Ok(());
    }
    progress::wait_on_service(c, &svc.id, a.common.quiet, out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::{json, Value};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: UpdateArgs,
    }

    fn updated(spec: Value, args: &[&str]) -> Result<Value> {
        let cli = Cli::try_parse_from(
            std::iter::once("update")
                .chain(args.iter().copied())
                .chain(["web"]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut spec: ServiceSpec = serde_json::from_value(spec).unwrap();
        apply_update(&mut spec, &cli.args)?;
        Ok(serde_json::to_value(spec).unwrap())
    }

    fn base() -> Value {
        json!({
            "Name": "web", "Labels": {"old": "1", "keep": "2"},
            "TaskTemplate": {"ContainerSpec": {"Image": "nginx:1.26", "Env": ["A=1", "B=2"], "Init": false},
                             "Placement": {"Constraints": ["node.role==worker"]}, "ForceUpdate": 2},
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]},
        })
    }

    #[test]
    fn update_flags_change_only_their_fields() {
        let s = updated(
            base(),
            &[
                "--image",
                "nginx:1.27",
                "--env-add",
                "B=3",
                "--env-add",
                "C=4",
                "--env-rm",
                "A",
                "--label-add",
                "new=x",
                "--label-rm",
                "old",
                "--constraint-add",
                "node.labels.a==b",
                "--constraint-rm",
                "node.role==worker",
                "--force",
                "--replicas",
                "5",
                "--args",
                "-g 'daemon off;'",
            ],
        )
        .unwrap();
        let cs = &s["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["Image"], "nginx:1.27");
        assert_eq!(cs["Env"], json!(["B=3", "C=4"]));
        assert_eq!(cs["Args"], json!(["-g", "daemon off;"]));
        assert_eq!(cs["Init"], false, "unmodelled fields survive");
        assert_eq!(s["Labels"], json!({"keep": "2", "new": "x"}));
        assert_eq!(
            s["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.a==b"])
        );
        assert_eq!(s["TaskTemplate"]["ForceUpdate"], 3);
        assert_eq!(s["Mode"]["Replicated"]["Replicas"], 5);
        assert!(s["TaskTemplate"].get("Resources").is_none());
    }

    #[test]
    fn ports_resources_and_refusals() {
        let s = updated(
            base(),
            &[
                "--publish-add",
                "9090:90",
                "--publish-add",
                "8080:80",
                "--publish-rm",
                "80",
                "--reserve-memory",
                "128M",
                "--limit-cpu",
                "1.5",
            ],
        )
        .unwrap();
        assert_eq!(
            s["EndpointSpec"]["Ports"],
            json!([{"Protocol": "tcp", "TargetPort": 90, "PublishedPort": 9090, "PublishMode": "ingress"}]),
            "8080:80 was already there, so it is not re-added; --publish-rm 80 removes it"
        );
        assert_eq!(
            s["TaskTemplate"]["Resources"],
            json!({"Limits": {"NanoCPUs": 1500000000i64}, "Reservations": {"MemoryBytes": 134217728}})
        );
        let mut global = base();
        global["Mode"] = json!({"Global": {}});
        assert_eq!(
            updated(global, &["--replicas", "2"])
                .unwrap_err()
                .to_string(),
            "replicas can only be used with replicated mode"
        );
    }

    #[test]
    fn ports_are_sorted_by_dockers_key() {
        let p = |pb: u32, t: u32| PortConfig {
            protocol: "tcp".into(),
            target_port: t,
            published_port: pb,
            publish_mode: "ingress".into(),
            ..Default::default()
        };
        let mut ports = vec![p(9000, 90), p(8080, 80), p(8080, 80)];
        update_ports(&mut ports, &[p(10000, 100)], &[]);
        // string order, as docker sorts: "10000:…" < "8080:…" < "9000:…"
        assert_eq!(ports, [p(10000, 100), p(8080, 80), p(9000, 90)]);
    }
}
