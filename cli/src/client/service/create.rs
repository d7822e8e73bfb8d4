//! `service create`, and the flags it shares with `service update` ([`CommonArgs`]).
//!
//! The request body is the `ServiceSpec` docker's CLI builds (`cli/command/service/create.go` and `opts.go`, github.com/docker/cli): `Labels` always
//! present, `Resources: {Limits: {}, Reservations: {}}`, `Placement: {}`, `EndpointSpec: {Mode: "vip"}`,
//! `Mode: {Replicated: {}}` when `--replicas` is absent, and the restart policy and update config only when one of
//! their flags is given (filled up with swarmkit's defaults, as docker does).

use super::super::{opts, query, seg, ApiClient};
use super::files;
use super::flags::{self, Ports, Words};
use super::{image, print_warnings, progress};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::json;
use skep_api::docker::{
    ContainerSpec, EndpointSpec, Labels, Network, NetworkAttachmentConfig, Placement, PlacementPreference,
    ReplicatedMode,
    ResourceAmounts, ResourceRequirements, RestartPolicy, ServiceCreateResponse, ServiceMode,
    ServiceSpec, TaskSpec, UpdateConfig, SECOND_NS,
};
use std::io::Write;

/// Flags of both `service create` and `service update`: in both, only the flags given change the spec.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Number of tasks
    #[arg(long, value_name = "N")]
    pub replicas: Option<u64>,
    /// Maximum number of tasks per node (0 = unlimited)
    #[arg(long = "replicas-max-per-node", value_name = "N")]
    pub replicas_max_per_node: Option<u64>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Reserve CPUs (e.g. 0.5)
    #[arg(long = "reserve-cpu", value_name = "CPUS", value_parser = flags::parse_nano_cpus)]
    pub reserve_cpu: Option<i64>,
    /// Reserve Memory (e.g. 64M, 1g, 512MiB)
    #[arg(long = "reserve-memory", value_name = "BYTES", value_parser = flags::parse_mem_bytes)]
    pub reserve_memory: Option<i64>,
    /// Limit CPUs
    #[arg(long = "limit-cpu", value_name = "CPUS", value_parser = flags::parse_nano_cpus)]
    pub limit_cpu: Option<i64>,
    /// Limit Memory
    #[arg(long = "limit-memory", value_name = "BYTES", value_parser = flags::parse_mem_bytes)]
    pub limit_memory: Option<i64>,
    /// Restart when condition is met ("none", "on-failure", "any") [default: any]
    #[arg(long = "restart-condition", value_name = "CONDITION",
          value_parser = clap::builder::PossibleValuesParser::new(["none", "on-failure", "any"]))]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h) [default: 5s]
    #[arg(long = "restart-delay", value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub restart_delay: Option<i64>,
    /// Maximum number of restarts before giving up
    #[arg(long = "restart-max-attempts", value_name = "N")]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long = "restart-window", value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub restart_window: Option<i64>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h) [default: 10s]
    #[arg(long = "stop-grace-period", value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub stop_grace_period: Option<i64>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "COMMAND", value_parser = flags::parse_words, allow_hyphen_values = true)]
    pub entrypoint: Option<Words>,
    /// Endpoint mode (vip or dnsrr) [default: vip]
    #[arg(long = "endpoint-mode", value_name = "MODE")]
    pub endpoint_mode: Option<String>,
    /// Maximum number of tasks updated simultaneously (0 to update all at once) [default: 1]
    #[arg(long = "update-parallelism", value_name = "N")]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h) [default: 0s]
    #[arg(long = "update-delay", value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub update_delay: Option<i64>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h) [default: 5s]
    #[arg(long = "update-monitor", value_name = "DURATION", value_parser = opts::parse_go_duration)]
    pub update_monitor: Option<i64>,
    /// Action on update failure ("pause", "continue", "rollback") [default: pause]
    #[arg(long = "update-failure-action", value_name = "ACTION")]
    pub update_failure_action: Option<String>,
    /// Failure rate to tolerate during an update [default: 0]
    #[arg(long = "update-max-failure-ratio", value_name = "RATIO")]
    pub update_max_failure_ratio: Option<f64>,
    /// Update order ("start-first", "stop-first") [default: stop-first]
    #[arg(long = "update-order", value_name = "ORDER")]
    pub update_order: Option<String>,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not query the registry to resolve image digest and supported platforms
    #[arg(long = "no-resolve-image")]
    pub no_resolve_image: bool,
}

impl CommonArgs {
    /// Whether any flag that changes the spec was given (everything but `-d`, `-q`).
    pub fn changes_spec(&self) -> bool {
        let CommonArgs {
            replicas,
            replicas_max_per_node,
            workdir,
            user,
            reserve_cpu,
            reserve_memory,
            limit_cpu,
            limit_memory,
            restart_condition,
            restart_delay,
            restart_max_attempts,
            restart_window,
            stop_signal,
            stop_grace_period,
            entrypoint,
            endpoint_mode,
            update_parallelism,
            update_delay,
            update_monitor,
            update_failure_action,
            update_max_failure_ratio,
            update_order,
            detach: _,
            quiet: _,
            no_resolve_image,
        } = self;
        replicas.is_some()
            || replicas_max_per_node.is_some()
            || workdir.is_some()
            || user.is_some()
            || reserve_cpu.is_some()
            || reserve_memory.is_some()
            || limit_cpu.is_some()
            || limit_memory.is_some()
            || restart_condition.is_some()
            || restart_delay.is_some()
            || restart_max_attempts.is_some()
            || restart_window.is_some()
            || stop_signal.is_some()
            || stop_grace_period.is_some()
            || entrypoint.is_some()
            || endpoint_mode.is_some()
            || update_parallelism.is_some()
            || update_delay.is_some()
            || update_monitor.is_some()
            || update_failure_action.is_some()
            || update_max_failure_ratio.is_some()
            || update_order.is_some()
            || *no_resolve_image
    }

    /// Apply the given flags to `spec` (all but `--replicas`, whose rules differ between create and update), as
    /// docker's `updateService` does: a section is created with swarmkit's defaults when one of its flags is given.
    pub fn apply(&self, spec: &mut ServiceSpec) {
        let tt = &mut spec.task_template;
        let cs = tt.container_spec.get_or_insert_with(Default::default);
        if let Some(d) = &self.workdir {
            cs.dir = d.clone();
        }
        if let Some(u) = &self.user {
            cs.user = u.clone();
        }
        if let Some(s) = &self.stop_signal {
            cs.stop_signal = s.clone();
        }
        if let Some(g) = self.stop_grace_period {
            cs.stop_grace_period = Some(g);
        }
        if let Some(e) = &self.entrypoint {
            cs.command = e.0.clone();
        }
        let resources = |tt: &mut TaskSpec| {
            let r = tt.resources.get_or_insert_with(Default::default);
            r.limits.get_or_insert_with(Default::default);
            r.reservations.get_or_insert_with(Default::default);
        };
        if self.limit_cpu.is_some() || self.limit_memory.is_some() {
            resources(tt);
            let l = tt
                .resources
                .as_mut()
                .and_then(|r| r.limits.as_mut())
                .expect("created above");
            if let Some(v) = self.limit_cpu {
                l.nano_cpus = v;
            }
            if let Some(v) = self.limit_memory {
                l.memory_bytes = v;
            }
        }
        if self.reserve_cpu.is_some() || self.reserve_memory.is_some() {
            resources(tt);
            let r = tt
                .resources
                .as_mut()
                .and_then(|r| r.reservations.as_mut())
                .expect("created above");
            if let Some(v) = self.reserve_cpu {
                r.nano_cpus = v;
            }
            if let Some(v) = self.reserve_memory {
                r.memory_bytes = v;
            }
        }
        if self.restart_condition.is_some()
            || self.restart_delay.is_some()
            || self.restart_max_attempts.is_some()
            || self.restart_window.is_some()
        {
            let rp = tt.restart_policy.get_or_insert_with(default_restart_policy);
            if let Some(c) = &self.restart_condition {
                rp.condition = c.clone();
            }
            if let Some(d) = self.restart_delay {
                rp.delay = Some(d);
            }
            if let Some(n) = self.restart_max_attempts {
                rp.max_attempts = Some(n);
            }
            if let Some(w) = self.restart_window {
                rp.window = Some(w);
            }
        }
        if let Some(n) = self.replicas_max_per_node {
            tt.placement
                .get_or_insert_with(Default::default)
                .max_replicas = n;
        }
        if let Some(m) = &self.endpoint_mode {
            spec.endpoint_spec.get_or_insert_with(Default::default).mode = m.to_lowercase();
        }
        if self.update_parallelism.is_some()
            || self.update_delay.is_some()
            || self.update_monitor.is_some()
            || self.update_failure_action.is_some()
            || self.update_max_failure_ratio.is_some()
            || self.update_order.is_some()
        {
            let u = spec.update_config.get_or_insert_with(default_update_config);
            if let Some(p) = self.update_parallelism {
                u.parallelism = p;
            }
            if let Some(d) = self.update_delay {
                u.delay = d;
            }
            if let Some(m) = self.update_monitor {
                u.monitor = m;
            }
            if let Some(a) = &self.update_failure_action {
                u.failure_action = a.clone();
            }
            if let Some(r) = self.update_max_failure_ratio {
                u.max_failure_ratio = r;
            }
            if let Some(o) = &self.update_order {
                u.order = o.clone();
            }
        }
    }
}

/// swarmkit's default restart policy, which docker starts from when a restart flag is given.
pub fn default_restart_policy() -> RestartPolicy {
    RestartPolicy {
        condition: "any".into(),
        delay: Some(5 * SECOND_NS),
        max_attempts: Some(0),
        window: Some(0),
    }
}

/// swarmkit's default update config.
pub fn default_update_config() -> UpdateConfig {
    UpdateConfig {
        parallelism: 1,
        delay: 0,
        failure_action: "pause".into(),
        monitor: 5 * SECOND_NS,
        max_failure_ratio: 0.0,
        order: "stop-first".into(),
    }
}

/// `k=v` list → map (a bare `k` maps to "").
pub fn kv_map(items: &[String]) -> Labels {
    items.iter().map(|s| opts::parse_label(s)).collect()
}

/// `skep service create`.
#[derive(Args, Debug, Clone, Default)]
pub struct CreateArgs {
    /// Service name
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode ("replicated" or "global")
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = flags::validate_env)]
    pub env: Vec<String>,
    /// Service labels
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Container labels
    #[arg(long = "container-label", value_name = "KEY=VALUE")]
    pub container_label: Vec<String>,
    /// Placement constraints (e.g. node.role==manager, node.labels.zone==a)
    #[arg(long, value_name = "EXPR")]
    pub constraint: Vec<String>,
    /// Add a placement preference (spread=node.labels.X)
    #[arg(long = "placement-pref", value_name = "PREF", value_parser = flags::parse_placement_pref)]
    pub placement_pref: Vec<PlacementPreference>,
    /// Publish a port as a node port: published:target[/protocol], or mode=host,target=80,published=8080,protocol=udp
    #[arg(short = 'p', long = "publish", value_name = "PORT", value_parser = flags::parse_publish)]
    pub publish: Vec<Ports>,
    /// Network attachments (a name or ID, or "name=NET,alias=A,driver-opt=K=V")
    #[arg(long = "network", value_name = "NETWORK", value_parser = flags::parse_network)]
    pub network: Vec<NetworkAttachmentConfig>,
    /// Specify secrets to expose to the service ("name" or "source=name,target=file,uid=0,gid=0,mode=0444")
    #[arg(long = "secret", value_name = "SECRET", value_parser = files::parse_secret)]
    pub secret: Vec<files::FileRef>,
    /// Specify configurations to expose to the service (the same syntax as --secret)
    #[arg(long = "config", value_name = "CONFIG", value_parser = files::parse_config)]
    pub config: Vec<files::FileRef>,
    /// Flags shared with `service update`.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The image (for the process engine: the program), then the command's arguments; flags after the image belong
    /// to the command
    #[arg(value_name = "IMAGE [COMMAND] [ARG...]", required = true, num_args = 1..,
          trailing_var_arg = true)]
    pub image_and_args: Vec<String>,
}

/// The `ServiceSpec` docker's `service create` sends for these flags (networks still by name; see [`create`]).
pub fn build_spec(a: &CreateArgs) -> Result<ServiceSpec> {
    let (image, args) = a
        .image_and_args
        .split_first()
        .ok_or_else(|| anyhow!("\"skep service create\" requires at least 1 argument"))?;
    let mode = match a.mode.as_str() {
        "replicated" => ServiceMode {
            replicated: Some(ReplicatedMode {
                replicas: a.common.replicas,
            }),
            ..Default::default()
        },
        "global" => {
            if a.common.replicas.is_some() {
                bail!("replicas can only be used with replicated or replicated-job mode");
            }
            if a.common.replicas_max_per_node.is_some_and(|n| n > 0) {
                bail!(
                    "replicas-max-per-node can only be used with replicated or replicated-job mode"
                );
            }
            ServiceMode {
                global: Some(json!({})),
                ..Default::default()
            }
        }
        "replicated-job" | "global-job" => bail!("job services are not supported by skep"),
        m => bail!("unknown mode: {m}, options: replicated, global"),
    };
    // docker's env handling: a later value of a key replaces an earlier one
    let mut env: Vec<String> = Vec::with_capacity(a.env.len());
    for e in &a.env {
        let prefix = format!("{}=", flags::env_key(e));
        env.retain(|cur| cur == e || !cur.starts_with(&prefix));
        env.push(e.clone());
    }
    let mut spec = ServiceSpec {
        name: a.name.clone().unwrap_or_default(),
        labels: kv_map(&a.label),
        task_template: TaskSpec {
            container_spec: Some(ContainerSpec {
                image: image.clone(),
                labels: kv_map(&a.container_label),
                args: args.to_vec(),
                env,
                init: Some(false),
                dns_config: Some(Default::default()),
                ..Default::default()
            }),
            resources: Some(ResourceRequirements {
                limits: Some(Default::default()),
                reservations: Some(ResourceAmounts::default()),
            }),
            placement: Some(Placement {
                constraints: a.constraint.clone(),
                preferences: a.placement_pref.clone(),
                ..Default::default()
            }),
            networks: a.network.clone(),
            ..Default::default()
        },
        mode,
        endpoint_spec: Some(EndpointSpec {
            mode: "vip".into(),
            ports: a.publish.iter().flat_map(|p| p.0.iter().cloned()).collect(),
        }),
        ..Default::default()
    };
    a.common.apply(&mut spec);
    Ok(spec)
}

/// `GET /networks/{ref}?scope=swarm`: the network a `--network` / `--network-add` / `--network-rm` value names
/// (docker resolves them on the client and sends IDs).
pub(crate) async fn swarm_network(c: &ApiClient, reference: &str) -> Result<Network> {
    let path = format!("/networks/{}{}", seg(reference), query(&[("scope", "swarm")]));
    Ok(c.get(&path).await?)
}

/// `service create`: [GET /networks/{n}?scope=swarm per --network] → [GET /secrets, GET /configs with their names]
/// → [GET /distribution/{image}/json] → POST /services/create → prints the ID, then the progress display unless
/// `--detach`.
pub async fn create(c: &ApiClient, a: CreateArgs, out: &mut dyn Write) -> Result<()> {
    let mut spec = build_spec(&a)?;
    if let Some(cs) = spec.task_template.container_spec.as_mut() {
        cs.secrets = files::secret_refs(c, &a.secret).await?;
        cs.configs = files::config_refs(c, &a.config).await?;
    }
    let networks = &mut spec.task_template.networks;
    for net in networks.iter_mut() {
        net.target = swarm_network(c, &net.target).await?.id;
    }
    // docker sorts the attachments by network ID
    networks.sort_by(|a, b| a.target.cmp(&b.target));
    if let Some(cs) = spec.task_template.container_spec.as_mut() {
        cs.image = image::with_default_tag(&cs.image);
    }
    let resolve_warning = if a.common.no_resolve_image {
        None
    } else {
        image::pin_digest(c, &mut spec.task_template).await
    };
    let reply: ServiceCreateResponse = c.post("/services/create", &spec).await?;
    print_warnings(
        reply
            .warnings
            .iter()
            .flatten()
            .cloned()
            .chain(resolve_warning),
    );
    writeln!(out, "{}", reply.id)?;
    if a.common.detach {
        return Ok(());
    }
    progress::wait_on_service(c, &reply.id, a.common.quiet, out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::Value;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn spec(args: &[&str]) -> Value {
        let cli = Cli::try_parse_from(std::iter::once("create").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_value(build_spec(&cli.args).unwrap()).unwrap()
    }

    fn error(args: &[&str]) -> String {
        match Cli::try_parse_from(std::iter::once("create").chain(args.iter().copied())) {
            Ok(cli) => build_spec(&cli.args).unwrap_err().to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_create_is_dockers_body() {
        assert_eq!(
            spec(&["--name", "web", "nginx:alpine"]),
            json!({
                "Name": "web", "Labels": {},
                "TaskTemplate": {"ContainerSpec": {"Image": "nginx:alpine", "Init": false, "DNSConfig": {}},
                                 "Resources": {"Limits": {}, "Reservations": {}}, "Placement": {}, "ForceUpdate": 0},
                "Mode": {"Replicated": {}},
                "EndpointSpec": {"Mode": "vip"},
            })
        );
    }

    #[test]
    fn replicas_global_and_trailing_args() {
        let s = spec(&["--replicas", "3", "busybox", "sleep", "-t", "100"]);
        assert_eq!(s["Mode"], json!({"Replicated": {"Replicas": 3}}));
        assert_eq!(
            s["TaskTemplate"]["ContainerSpec"]["Args"],
            json!(["sleep", "-t", "100"])
        );
        assert!(s["TaskTemplate"]["ContainerSpec"].get("Command").is_none());
        let s = spec(&["--replicas", "0", "busybox"]);
        assert_eq!(s["Mode"], json!({"Replicated": {"Replicas": 0}}));
        // flags after the image belong to the command (docker's SetInterspersed(false))
        let s = spec(&["busybox", "--replicas", "2"]);
        assert_eq!(s["Mode"], json!({"Replicated": {}}));
        assert_eq!(
            s["TaskTemplate"]["ContainerSpec"]["Args"],
            json!(["--replicas", "2"])
        );
        let s = spec(&["--mode", "global", "-d", "busybox"]);
        assert_eq!(s["Mode"], json!({"Global": {}}));
        assert_eq!(
            error(&["--mode", "global", "--replicas", "2", "x"]),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            error(&["--mode", "fancy", "x"]),
            "unknown mode: fancy, options: replicated, global"
        );
    }

    #[test]
    fn env_labels_constraints_and_placement() {
        let s = spec(&[
            "-e",
            "A=1",
            "--env",
            "B=2",
            "-e",
            "A=3",
            "--label",
            "team=web",
            "-l",
            "solo",
            "--container-label",
            "c=1",
            "--constraint",
            "node.role==worker",
            "--constraint",
            "node.labels.zone==a",
            "--placement-pref",
            "spread=node.labels.zone",
            "--replicas-max-per-node",
            "2",
            "-w",
            "/srv",
            "-u",
            "nobody",
            "img",
        ]);
        let cs = &s["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["Env"], json!(["B=2", "A=3"]));
        assert_eq!(cs["Labels"], json!({"c": "1"}));
        assert_eq!(cs["Dir"], "/srv");
        assert_eq!(cs["User"], "nobody");
        assert_eq!(s["Labels"], json!({"team": "web", "solo": ""}));
        assert_eq!(
            s["TaskTemplate"]["Placement"],
            json!({"Constraints": ["node.role==worker", "node.labels.zone==a"],
                   "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                   "MaxReplicas": 2})
        );
    }

    #[test]
    fn publish_short_and_long_forms() {
        let s = spec(&[
            "-p",
            "8080:80",
            "--publish",
            "mode=host,target=53,published=5353,protocol=udp",
            "--endpoint-mode",
            "DNSRR",
            "img",
        ]);
        assert_eq!(
            s["EndpointSpec"],
            json!({"Mode": "dnsrr", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
            ]})
        );
        assert!(error(&["-p", "1.2.3.4:80:80", "img"]).contains("hostip is not supported"));
    }

    #[test]
    fn resources_restart_policy_entrypoint_and_update_config() {
        let s = spec(&[
            "--reserve-cpu",
            "0.5",
            "--reserve-memory",
            "64M",
            "--limit-memory",
            "1g",
            "--restart-condition",
            "on-failure",
            "--restart-max-attempts",
            "3",
            "--stop-grace-period",
            "30s",
            "--stop-signal",
            "SIGINT",
            "--entrypoint",
            "sh -c",
            "--update-parallelism",
            "2",
            "--update-monitor",
            "1s",
            "img",
            "echo hi",
        ]);
        let tt = &s["TaskTemplate"];
        assert_eq!(
            tt["Resources"],
            json!({"Limits": {"MemoryBytes": 1073741824i64},
                   "Reservations": {"NanoCPUs": 500000000, "MemoryBytes": 67108864}})
        );
        assert_eq!(
            tt["RestartPolicy"],
            json!({"Condition": "on-failure", "Delay": 5000000000i64, "MaxAttempts": 3, "Window": 0})
        );
        let cs = &tt["ContainerSpec"];
        assert_eq!(cs["Command"], json!(["sh", "-c"]));
        assert_eq!(cs["Args"], json!(["echo hi"]));
        assert_eq!(cs["StopGracePeriod"], 30_000_000_000i64);
        assert_eq!(cs["StopSignal"], "SIGINT");
        assert_eq!(
            s["UpdateConfig"],
            json!({"Parallelism": 2, "FailureAction": "pause", "Monitor": 1000000000,
                   "MaxFailureRatio": 0, "Order": "stop-first"})
        );
        // no restart flag: no policy (the server applies its default)
        assert!(spec(&["img"])["TaskTemplate"]
            .get("RestartPolicy")
            .is_none());
        assert!(spec(&["img"]).get("UpdateConfig").is_none());
        assert!(error(&["--restart-condition", "sometimes", "img"]).contains("sometimes"));
        assert!(error(&["--reserve-memory", "64X", "img"]).contains("invalid suffix: 'x'"));
        assert!(error(&["--restart-delay", "5", "img"]).contains("missing unit"));
    }
}
