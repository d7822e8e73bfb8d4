//! A loaded compose document to the objects `docker stack deploy` creates: docker's `cli/compose/convert`
//! (github.com/docker/cli) for the keys skep carries out. Every key is checked: one skep does not carry out fails the
//! deploy with its path (`services.web.init: not supported by skep stack deploy`), never dropped.
//!
//! Names are `<stack>_<name>` (unless the object sets `name:`), every object gets the label
//! `com.docker.stack.namespace=<stack>`, a service also `com.docker.stack.image=<image as written>`, and a service
//! without networks joins `<stack>_default` (an overlay network created for it).

use super::super::service::files::FileRef;
use super::super::service::flags;
use super::super::opts::parse_go_duration;
use serde_json::{json, Map, Value};
use skep_api::docker::{
    ContainerSpec, EndpointSpec, FileTarget, Limit, NetworkAttachmentConfig, Placement, PlacementPreference,
    Privileges, ReplicatedJob, ReplicatedMode, ResourceAmounts, ResourceRequirements, RestartPolicy, SecretSpec,
    ServiceMode, ServiceSpec, SpreadOver, TaskSpec, UpdateConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The label naming a stack's objects.
pub const LABEL_NAMESPACE: &str = "com.docker.stack.namespace";
/// The label keeping a service's image as the compose file wrote it (to tell on redeploy whether it changed).
pub const LABEL_IMAGE: &str = "com.docker.stack.image";
/// Largest secret or config file read (bytes), as the daemon's limit for a payload.
const MAX_PAYLOAD: u64 = 500 * 1024;

/// A compose key or value skep cannot carry out, or a bad value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

type R<T> = Result<T, ConvertError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(ConvertError(msg.into()))
}

/// One service to create or update.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// The spec, secrets and configs not yet in it (their IDs are looked up after they are created).
    pub spec: ServiceSpec,
    /// `secrets:` of the service, with the stack's names.
    pub secrets: Vec<FileRef>,
    /// `configs:` of the service, with the stack's names.
    pub configs: Vec<FileRef>,
}

/// Everything a deploy creates, in docker's terms.
#[derive(Debug, Default)]
pub struct Plan {
    /// Networks to create (name → `POST /networks/create` body), only those some service uses.
    pub networks: BTreeMap<String, Value>,
    /// External networks the services use (must exist, swarm scoped).
    pub external_networks: Vec<String>,
    /// Secrets to create or update.
    pub secrets: Vec<SecretSpec>,
    /// Configs to create or update.
    pub configs: Vec<SecretSpec>,
    /// Services by full name.
    pub services: BTreeMap<String, ServicePlan>,
}

/// A mapping being read: its path for messages and the keys it may have.
struct Obj<'a> {
    m: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str, allowed: &[&str]) -> R<Obj<'a>> {
        let Value::Object(m) = v else {
            return err(format!("{path} must be a mapping"));
        };
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) && !k.starts_with("x-") {
                return err(format!("{path}.{k}: not supported by skep stack deploy"));
            }
        }
        Ok(Obj { m, path: path.to_string() })
    }

    fn at(&self, k: &str) -> String {
        format!("{}.{k}", self.path)
    }

    fn get(&self, k: &str) -> Option<&'a Value> {
        self.m.get(k).filter(|v| !v.is_null())
    }

    fn str(&self, k: &str) -> R<Option<String>> {
        self.get(k).map(|v| scalar(v, &self.at(k))).transpose()
    }

    fn bool(&self, k: &str) -> R<bool> {
        match self.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(_) => err(format!("{} must be a boolean", self.at(k))),
        }
    }

    fn u64(&self, k: &str) -> R<Option<u64>> {
        self.get(k)
            .map(|v| {
                scalar(v, &self.at(k))?.parse::<u64>().or_else(|_| err(format!("{} must be a number", self.at(k))))
            })
            .transpose()
    }

    fn duration(&self, k: &str) -> R<Option<i64>> {
        self.str(k)?
            .map(|s| parse_go_duration(&s).or_else(|e| err(format!("{}: {e}", self.at(k)))))
            .transpose()
    }

    fn obj(&self, k: &str, allowed: &[&str]) -> R<Option<Obj<'a>>> {
        self.get(k).map(|v| Obj::new(v, &self.at(k), allowed)).transpose()
    }

    /// A list of strings, or one string split like a shell (`command`, `entrypoint`).
    fn words(&self, k: &str) -> R<Option<Vec<String>>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => {
                flags::parse_words(s).map(|w| Some(w.0)).or_else(|e| err(format!("{}: {e}", self.at(k))))
            }
            Some(v) => strings(v, &self.at(k)).map(Some),
        }
    }

    /// A mapping or a list of `key=value` (`labels`, `environment`, `sysctls`); a list entry without `=` and a
    /// null value map to `None`.
    fn dict(&self, k: &str) -> R<BTreeMap<String, Option<String>>> {
        let mut out = BTreeMap::new();
        match self.get(k) {
            None => {}
            Some(Value::Object(m)) => {
                for (key, v) in m {
                    let v = if v.is_null() { None } else { Some(scalar(v, &format!("{}.{key}", self.at(k)))?) };
                    out.insert(key.clone(), v);
                }
            }
            Some(v) => {
                for item in strings(v, &self.at(k))? {
                    match item.split_once('=') {
                        Some((a, b)) => out.insert(a.to_string(), Some(b.to_string())),
                        None => out.insert(item, None),
                    };
                }
            }
        }
        Ok(out)
    }

    /// [`Obj::dict`] where every key has a value (`key` alone is an empty value, as docker's labels).
    fn labels(&self, k: &str) -> R<BTreeMap<String, String>> {
        Ok(self.dict(k)?.into_iter().map(|(a, b)| (a, b.unwrap_or_default())).collect())
    }
}

/// A scalar as text (numbers and booleans as YAML wrote them).
fn scalar(v: &Value, path: &str) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => err(format!("{path} must be a string")),
    }
}

fn strings(v: &Value, path: &str) -> R<Vec<String>> {
    match v {
        Value::Array(a) => a.iter().enumerate().map(|(i, x)| scalar(x, &format!("{path}[{i}]"))).collect(),
        Value::String(s) => Ok(vec![s.clone()]),
        _ => err(format!("{path} must be a list")),
    }
}

/// `<stack>_<name>`.
pub fn scope(ns: &str, name: &str) -> String {
    format!("{ns}_{name}")
}

fn with_stack_label(ns: &str, mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.insert(LABEL_NAMESPACE.into(), ns.into());
    labels
}

/// A top-level network, volume, secret or config: its real name and whether it is external.
fn external(o: &Obj<'_>, key: &str, ns: &str) -> R<(String, bool)> {
    let name = o.str("name")?;
    let (ext, ext_name) = match o.get("external") {
        None => (false, None),
        Some(Value::Bool(b)) => (*b, None),
        Some(v) => {
            let e = Obj::new(v, &o.at("external"), &["name"])?;
            (true, e.str("name")?)
        }
    };
    if ext {
        if let Some(k) = o.m.keys().find(|k| !matches!(k.as_str(), "external" | "name") && !k.starts_with("x-")) {
            return err(format!("{}: external cannot be combined with {k} (the object is not created)", o.path));
        }
    }
    let real = ext_name.or(name).unwrap_or_else(|| if ext { key.to_string() } else { scope(ns, key) });
    Ok((real, ext))
}

const SERVICE_KEYS: &[&str] = &[
    "image", "command", "entrypoint", "environment", "env_file", "labels", "deploy", "ports", "networks", "volumes",
    "secrets", "configs", "healthcheck", "user", "working_dir", "hostname", "stop_grace_period", "stop_signal",
    "cap_add", "cap_drop", "sysctls", "read_only", "tty", "restart",
];

/// Convert the document for stack `ns`; `dir` is where relative paths start; `env` the environment for
/// `environment:` entries without a value and secrets from the environment.
pub fn convert(doc: &Map<String, Value>, ns: &str, dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> R<Plan> {
    let root = Value::Object(doc.clone());
    let top = Obj::new(&root, "", &["version", "services", "networks", "volumes", "secrets", "configs"])
        .map_err(|e| ConvertError(e.0.replacen(".", "", 1)))?;
    let section = |k: &str| -> R<Map<String, Value>> {
        match top.get(k) {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => err(format!("{k} must be a mapping")),
        }
    };
    let (services, networks, volumes) = (section("services")?, section("networks")?, section("volumes")?);
    let (secrets, configs) = (section("secrets")?, section("configs")?);
    let mut plan = Plan::default();

    // networks: the declared ones, read once; created only when a service uses them
    let mut net_names: BTreeMap<String, (String, bool, Value)> = BTreeMap::new();
    for (key, v) in &networks {
        let null = json!({});
        let o = Obj::new(if v.is_null() { &null } else { v }, &format!("networks.{key}"),
                         &["driver", "driver_opts", "labels", "external", "name", "internal", "attachable", "ipam"])?;
        let (name, ext) = external(&o, key, ns)?;
        let mut ipam = Value::Null;
        if let Some(i) = o.obj("ipam", &["driver", "config"])? {
            let mut configs = Vec::new();
            if let Some(c) = i.get("config") {
                let Value::Array(list) = c else { return err(format!("{} must be a list", i.at("config"))) };
                for (n, c) in list.iter().enumerate() {
                    let c = Obj::new(c, &format!("{}[{n}]", i.at("config")), &["subnet"])?;
                    configs.push(json!({"Subnet": c.str("subnet")?.unwrap_or_default()}));
                }
            }
            ipam = json!({"Driver": i.str("driver")?.unwrap_or_default(), "Config": configs});
        }
        let body = json!({
            "Name": name, "Driver": o.str("driver")?.unwrap_or_else(|| "overlay".into()), "Scope": "",
            "IPAM": ipam, "Internal": o.bool("internal")?, "Attachable": o.bool("attachable")?, "Ingress": false,
            "ConfigOnly": false, "ConfigFrom": null, "Options": o.labels("driver_opts")?,
            "Labels": with_stack_label(ns, o.labels("labels")?),
        });
        net_names.insert(key.clone(), (name, ext, body));
    }

    // volumes: names for the services' mounts
    let mut vols: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (key, v) in &volumes {
        let null = json!({});
        let o = Obj::new(if v.is_null() { &null } else { v }, &format!("volumes.{key}"),
                         &["driver", "driver_opts", "labels", "external", "name"])?;
        let (name, ext) = external(&o, key, ns)?;
        let opts = if ext {
            Value::Null
        } else {
            let mut vo = json!({"Labels": with_stack_label(ns, o.labels("labels")?)});
            if let Some(d) = o.str("driver")? {
                vo["DriverConfig"] = json!({"Name": d, "Options": o.labels("driver_opts")?});
            } else if o.get("driver_opts").is_some() {
                return err(format!("volumes.{key}.driver_opts: needs a driver"));
            }
            vo
        };
        vols.insert(key.clone(), (name, opts));
    }

    let secret_names = files_section(&secrets, "secrets", ns, dir, env, &mut plan.secrets)?;
    let config_names = files_section(&configs, "configs", ns, dir, env, &mut plan.configs)?;

    let mut used_networks = BTreeSet::new();
    for (key, v) in &services {
        let path = format!("services.{key}");
        let s = Obj::new(v, &path, SERVICE_KEYS)?;
        let name = scope(ns, key);
        let image = s.str("image")?.filter(|i| !i.is_empty()).ok_or_else(|| {
            ConvertError(format!("{path}.image: a service needs an image"))
        })?;

        // networks (docker sorts the attachments by target)
        let mut attach = Vec::new();
        let svc_nets: Vec<(String, Option<Obj<'_>>)> = match s.get("networks") {
            None => vec![("default".to_string(), None)],
            Some(Value::Object(m)) => {
                let mut out = Vec::new();
                for (n, c) in m {
                    let o = match c {
                        Value::Null => None,
                        c => Some(Obj::new(c, &format!("{path}.networks.{n}"), &["aliases"])?),
                    };
                    out.push((n.clone(), o));
                }
                out
            }
            Some(v) => strings(v, &s.at("networks"))?.into_iter().map(|n| (n, None)).collect(),
        };
        for (n, o) in svc_nets {
            let target = match net_names.get(&n) {
                Some((real, _, _)) => real.clone(),
                None if n == "default" => scope(ns, "default"),
                None => return err(format!("service {key:?} references network {n:?}, which is not declared")),
            };
            used_networks.insert(n);
            let mut aliases = match &o {
                Some(o) => o.get("aliases").map(|a| strings(a, &o.at("aliases"))).transpose()?.unwrap_or_default(),
                None => Vec::new(),
            };
            if !matches!(target.as_str(), "host" | "bridge" | "none" | "default") {
                aliases.push(key.clone());
            }
            attach.push(NetworkAttachmentConfig { target, aliases, ..Default::default() });
        }
        attach.sort_by(|a, b| a.target.cmp(&b.target));

        // environment: env_file first, then environment; `KEY` alone takes the value from the environment
        let mut envmap: BTreeMap<String, Option<String>> = BTreeMap::new();
        if let Some(f) = s.get("env_file") {
            for file in strings(f, &s.at("env_file"))? {
                envmap.extend(read_env_file(&dir.join(&file), &s.at("env_file"))?);
            }
        }
        envmap.extend(s.dict("environment")?);
        let mut env_list: Vec<String> = envmap
            .into_iter()
            .map(|(k, v)| match v.or_else(|| env(&k)) {
                Some(v) => format!("{k}={v}"),
                None => k,
            })
            .collect();
        env_list.sort();

        let deploy = s.obj("deploy", &["mode", "replicas", "labels", "resources", "restart_policy", "update_config",
                                       "rollback_config", "placement", "endpoint_mode"])?;
        let mut labels = BTreeMap::new();
        let mut mode = ServiceMode { replicated: Some(ReplicatedMode { replicas: None }), ..Default::default() };
        let mut resources = ResourceRequirements::default();
        let (mut restart, mut update, mut rollback) = (restart_key(&s)?, None, None);
        let mut placement = Placement::default();
        let mut endpoint_mode = String::new();
        if let Some(d) = &deploy {
            labels = d.labels("labels")?;
            let replicas = d.u64("replicas")?;
            mode = match d.str("mode")?.as_deref() {
                None | Some("replicated") => {
                    ServiceMode { replicated: Some(ReplicatedMode { replicas }), ..Default::default() }
                }
                Some("global") if replicas.is_some() => {
                    return err("replicas can only be used with replicated or replicated-job mode")
                }
                Some("global") => ServiceMode { global: Some(json!({})), ..Default::default() },
                Some("replicated-job") => ServiceMode {
                    replicated_job: Some(ReplicatedJob { max_concurrent: replicas, total_completions: replicas }),
                    ..Default::default()
                },
                Some("global-job") if replicas.is_some() => {
                    return err("replicas can only be used with replicated or replicated-job mode")
                }
                Some("global-job") => ServiceMode { global_job: Some(json!({})), ..Default::default() },
                Some(m) => return err(format!("Unknown mode: {m}")),
            };
            if let Some(r) = d.obj("resources", &["limits", "reservations"])? {
                if let Some(l) = r.obj("limits", &["cpus", "memory", "pids"])? {
                    resources.limits = Some(Limit {
                        nano_cpus: cpus(&l)?,
                        memory_bytes: memory(&l)?,
                        pids: l.u64("pids")?.map_or(0, |p| p as i64),
                    });
                }
                if let Some(l) = r.obj("reservations", &["cpus", "memory"])? {
                    resources.reservations = Some(ResourceAmounts {
                        nano_cpus: cpus(&l)?,
                        memory_bytes: memory(&l)?,
                        ..Default::default()
                    });
                }
            }
            if let Some(r) = d.obj("restart_policy", &["condition", "delay", "max_attempts", "window"])? {
                let condition = r.str("condition")?.unwrap_or_default();
                if !matches!(condition.as_str(), "" | "none" | "on-failure" | "any") {
                    return err(format!("{}: {condition:?} is not none, on-failure or any", r.at("condition")));
                }
                restart = Some(RestartPolicy {
                    condition,
                    delay: r.duration("delay")?,
                    max_attempts: r.u64("max_attempts")?,
                    window: r.duration("window")?,
                });
            }
            update = d.obj("update_config", UPDATE_KEYS)?.map(|u| update_config(&u)).transpose()?;
            rollback = d.obj("rollback_config", UPDATE_KEYS)?.map(|u| update_config(&u)).transpose()?;
            if let Some(p) = d.obj("placement", &["constraints", "preferences", "max_replicas_per_node"])? {
                if let Some(c) = p.get("constraints") {
                    placement.constraints = strings(c, &p.at("constraints"))?;
                }
                if let Some(Value::Array(prefs)) = p.get("preferences") {
                    for (i, pr) in prefs.iter().enumerate() {
                        let o = Obj::new(pr, &format!("{}[{i}]", p.at("preferences")), &["spread"])?;
                        placement.preferences.push(PlacementPreference {
                            spread: Some(SpreadOver { spread_descriptor: o.str("spread")?.unwrap_or_default() }),
                        });
                    }
                } else if p.get("preferences").is_some() {
                    return err(format!("{} must be a list", p.at("preferences")));
                }
                placement.max_replicas = p.u64("max_replicas_per_node")?.unwrap_or(0);
            }
            endpoint_mode = d.str("endpoint_mode")?.unwrap_or_default().to_lowercase();
            if !matches!(endpoint_mode.as_str(), "" | "vip" | "dnsrr") {
                return err(format!("{}: {endpoint_mode:?} is not vip or dnsrr", d.at("endpoint_mode")));
            }
        }
        let mut service_labels = with_stack_label(ns, labels);
        service_labels.insert(LABEL_IMAGE.into(), image.clone());

        let (cap_add, cap_drop) = capabilities(&s)?;
        let container = ContainerSpec {
            image: image.clone(),
            labels: with_stack_label(ns, s.labels("labels")?),
            command: s.words("entrypoint")?.unwrap_or_default(),
            args: s.words("command")?.unwrap_or_default(),
            hostname: s.str("hostname")?.unwrap_or_default(),
            env: env_list,
            dir: s.str("working_dir")?.unwrap_or_default(),
            user: s.str("user")?.unwrap_or_default(),
            privileges: Some(Privileges::default()),
            stop_signal: s.str("stop_signal")?.unwrap_or_default(),
            tty: s.bool("tty")?,
            read_only: s.bool("read_only")?,
            mounts: mounts(&s, &vols, dir)?,
            stop_grace_period: s.duration("stop_grace_period")?,
            healthcheck: s.obj("healthcheck", &["test", "interval", "timeout", "start_period", "start_interval",
                                                "retries", "disable"])?.map(|h| healthcheck(&h)).transpose()?,
            sysctls: s.labels("sysctls")?,
            capability_add: cap_add,
            capability_drop: cap_drop,
            ..Default::default()
        };
        let spec = ServiceSpec {
            name: name.clone(),
            labels: service_labels,
            task_template: TaskSpec {
                container_spec: Some(container),
                resources: Some(resources),
                restart_policy: restart,
                placement: Some(placement),
                networks: attach,
                ..Default::default()
            },
            mode,
            update_config: update,
            rollback_config: rollback,
            endpoint_spec: Some(EndpointSpec { mode: endpoint_mode, ports: ports(&s)? }),
            ..Default::default()
        };
        let secrets = file_refs(&s, "secrets", &secret_names)?;
        let configs = file_refs(&s, "configs", &config_names)?;
        plan.services.insert(name, ServicePlan { spec, secrets, configs });
    }

    for n in used_networks {
        match net_names.remove(&n) {
            Some((real, true, _)) => plan.external_networks.push(real),
            Some((real, false, body)) => {
                plan.networks.insert(real, body);
            }
            None => {
                let real = scope(ns, &n);
                let body = json!({
                    "Name": real, "Driver": "overlay", "Scope": "", "IPAM": null, "Internal": false,
                    "Attachable": false, "Ingress": false, "ConfigOnly": false, "ConfigFrom": null, "Options": {},
                    "Labels": with_stack_label(ns, BTreeMap::new()),
                });
                plan.networks.insert(real, body);
            }
        }
    }
    Ok(plan)
}

/// docker's `convertRestartPolicy` without `deploy.restart_policy`: the service-level `restart` (which docker also
/// reports as an ignored option) still decides the policy.
fn restart_key(s: &Obj<'_>) -> R<Option<RestartPolicy>> {
    let Some(r) = s.str("restart")? else { return Ok(None) };
    let (name, count) = r.split_once(':').map_or((r.as_str(), None), |(n, c)| (n, Some(c)));
    let policy = |condition: &str, max_attempts| {
        Some(RestartPolicy { condition: condition.into(), max_attempts, ..Default::default() })
    };
    match (name, count) {
        ("" | "no", None) => Ok(None),
        ("always" | "unless-stopped", None) => Ok(policy("any", None)),
        ("on-failure", c) => {
            let n = c
                .map_or(Ok(0), |c| c.parse::<u64>())
                .or_else(|_| err(format!("invalid restart policy format: {r}")))?;
            Ok(policy("on-failure", Some(n)))
        }
        _ => err(format!("unknown restart policy: {r}")),
    }
}

/// docker's `EffectiveCapAddCapDrop`: upper case, `CAP_` prefixed (but `ALL`), sorted, without duplicates; `ALL`
/// alone when present; a capability both added and dropped is only added.
fn capabilities(s: &Obj<'_>) -> R<(Vec<String>, Vec<String>)> {
    let norm = |k: &str| -> R<Vec<String>> {
        let list = s.get(k).map(|v| strings(v, &s.at(k))).transpose()?.unwrap_or_default();
        let mut caps: Vec<String> = list
            .iter()
            .map(|c| c.trim().to_uppercase())
            .filter(|c| !c.is_empty())
            .map(|c| if c == "ALL" || c.starts_with("CAP_") { c } else { format!("CAP_{c}") })
            .collect();
        caps.sort();
        caps.dedup();
        if caps.iter().any(|c| c == "ALL") {
            caps = vec!["ALL".into()];
        }
        Ok(caps)
    };
    let add = norm("cap_add")?;
    let drop = norm("cap_drop")?.into_iter().filter(|c| !add.contains(c)).collect();
    Ok((add, drop))
}

const UPDATE_KEYS: &[&str] = &["parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"];

fn update_config(u: &Obj<'_>) -> R<UpdateConfig> {
    let ratio = match u.get("max_failure_ratio") {
        None => 0.0,
        Some(v) => scalar(v, &u.at("max_failure_ratio"))?
            .parse::<f64>()
            .or_else(|_| err(format!("{} must be a number", u.at("max_failure_ratio"))))?,
    };
    let failure_action = u.str("failure_action")?.unwrap_or_default();
    if !matches!(failure_action.as_str(), "" | "pause" | "continue" | "rollback") {
        return err(format!("{}: {failure_action:?} is not pause, continue or rollback", u.at("failure_action")));
    }
    let order = u.str("order")?.unwrap_or_default();
    if !matches!(order.as_str(), "" | "stop-first" | "start-first") {
        return err(format!("{}: {order:?} is not stop-first or start-first", u.at("order")));
    }
    Ok(UpdateConfig {
        parallelism: u.u64("parallelism")?.unwrap_or(1),
        delay: u.duration("delay")?.unwrap_or(0),
        failure_action,
        monitor: u.duration("monitor")?.unwrap_or(0),
        max_failure_ratio: ratio,
        order,
    })
}

fn cpus(o: &Obj<'_>) -> R<i64> {
    o.str("cpus")?.map_or(Ok(0), |c| flags::parse_nano_cpus(&c).or_else(|e| err(format!("{}: {e}", o.at("cpus")))))
}

fn memory(o: &Obj<'_>) -> R<i64> {
    o.str("memory")?.map_or(Ok(0), |m| flags::parse_mem_bytes(&m).or_else(|e| err(format!("{}: {e}", o.at("memory")))))
}

fn healthcheck(h: &Obj<'_>) -> R<Value> {
    if h.bool("disable")? {
        if h.m.len() > 1 {
            return err(format!("{}: disable cannot be combined with other keys", h.path));
        }
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut v = json!({});
    match h.get("test") {
        None => {}
        Some(Value::String(s)) => v["Test"] = json!(["CMD-SHELL", s]),
        Some(t) => v["Test"] = json!(strings(t, &h.at("test"))?),
    }
    for (k, field) in [("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                       ("start_interval", "StartInterval")] {
        if let Some(d) = h.duration(k)? {
            v[field] = json!(d);
        }
    }
    if let Some(r) = h.u64("retries")? {
        v["Retries"] = json!(r);
    }
    Ok(v)
}

/// `ports:`: the short syntax (`8080:80`, `80`, `8000-8001:80-81/udp`) as `--publish` reads it, or the long one.
fn ports(s: &Obj<'_>) -> R<Vec<skep_api::docker::PortConfig>> {
    let Some(list) = s.get("ports") else { return Ok(Vec::new()) };
    let Value::Array(list) = list else { return err(format!("{} must be a list", s.at("ports"))) };
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let path = format!("{}[{i}]", s.at("ports"));
        if let Value::Object(_) = p {
            let o = Obj::new(p, &path, &["target", "published", "protocol", "mode"])?;
            let port = |k: &str| -> R<u32> {
                Ok(o.u64(k)?.map(|n| n as u32).filter(|n| *n <= 65535).unwrap_or(0))
            };
            let protocol = o.str("protocol")?.unwrap_or_else(|| "tcp".into());
            let mode = o.str("mode")?.unwrap_or_else(|| "ingress".into());
            if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") || !matches!(mode.as_str(), "ingress" | "host") {
                return err(format!("{path}: protocol is tcp, udp or sctp and mode ingress or host"));
            }
            let target = port("target")?;
            if target == 0 {
                return err(format!("{path}.target: a port number is required"));
            }
            out.push(skep_api::docker::PortConfig {
                protocol,
                target_port: target,
                published_port: port("published")?,
                publish_mode: mode,
                ..Default::default()
            });
        } else {
            let text = scalar(p, &path)?;
            if text.matches(':').count() > 1 {
                return err(format!("{path}: a host IP in a port ({text}) is not supported by skep stack deploy"));
            }
            out.extend(flags::parse_publish(&text).or_else(|e| err(format!("{path}: {e}")))?.0);
        }
    }
    out.sort_by_key(|p| p.published_port);
    Ok(out)
}

/// `volumes:` of a service as mounts (docker's `convertVolumeToMount`).
fn mounts(s: &Obj<'_>, vols: &BTreeMap<String, (String, Value)>, dir: &Path) -> R<Vec<Value>> {
    let Some(list) = s.get("volumes") else { return Ok(Vec::new()) };
    let Value::Array(list) = list else { return err(format!("{} must be a list", s.at("volumes"))) };
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("{}[{i}]", s.at("volumes"));
        let (kind, source, target, read_only, extra) = match v {
            Value::Object(_) => {
                let o = Obj::new(v, &path, &["type", "source", "target", "read_only", "bind", "volume", "tmpfs"])?;
                let mut extra = Map::new();
                if let Some(b) = o.obj("bind", &["propagation"])? {
                    if let Some(p) = b.str("propagation")? {
                        extra.insert("BindOptions".into(), json!({"Propagation": p}));
                    }
                }
                if let Some(vo) = o.obj("volume", &["nocopy"])? {
                    extra.insert("NoCopy".into(), json!(vo.bool("nocopy")?));
                }
                if let Some(t) = o.obj("tmpfs", &["size", "mode"])? {
                    let mut to = json!({});
                    if let Some(sz) = t.str("size")? {
                        let bytes = flags::parse_mem_bytes(&sz).or_else(|e| err(format!("{}: {e}", t.at("size"))))?;
                        to["SizeBytes"] = json!(bytes);
                    }
                    // docker's stack deploy drops tmpfs.mode; skep carries it out
                    if let Some(m) = t.get("mode") {
                        to["Mode"] = json!(file_mode(m, &t.at("mode"))?);
                    }
                    extra.insert("TmpfsOptions".into(), to);
                }
                let kind = o.str("type")?.unwrap_or_else(|| "volume".into());
                for opts in ["bind", "volume", "tmpfs"] {
                    if o.get(opts).is_some() && kind != opts {
                        return err(format!("{path}.{opts}: options for {opts} mounts on a {kind} mount"));
                    }
                }
                let target = o.str("target")?.ok_or_else(|| ConvertError(format!("{path}.target: required")))?;
                (kind, o.str("source")?.unwrap_or_default(), target, o.bool("read_only")?, extra)
            }
            _ => {
                let text = scalar(v, &path)?;
                let parts: Vec<&str> = text.split(':').collect();
                let (src, tgt, mode) = match parts.as_slice() {
                    [t] => ("", *t, ""),
                    [s, t] => (*s, *t, ""),
                    [s, t, m] => (*s, *t, *m),
                    _ => return err(format!("{path}: invalid spec: {text}")),
                };
                let ro = match mode {
                    "" | "rw" => false,
                    "ro" => true,
                    m => return err(format!("{path}: mode {m:?} is not supported by skep stack deploy (ro or rw)")),
                };
                let kind = if src.starts_with(['/', '.', '~']) { "bind" } else { "volume" };
                (kind.to_string(), src.to_string(), tgt.to_string(), ro, Map::new())
            }
        };
        let mut m = json!({"Type": kind, "Target": target});
        if read_only {
            m["ReadOnly"] = json!(true);
        }
        match kind.as_str() {
            "bind" => {
                if source.is_empty() {
                    return err(format!("{path}: a bind mount needs a source"));
                }
                let src = if let Some(rest) = source.strip_prefix("~/") {
                    Path::new(&std::env::var("HOME").unwrap_or_default()).join(rest)
                } else {
                    dir.join(&source)
                };
                m["Source"] = json!(clean(&src).to_string_lossy());
                if let Some(b) = extra.get("BindOptions") {
                    m["BindOptions"] = b.clone();
                }
            }
            "volume" if source.is_empty() => {
                if let Some(nc) = extra.get("NoCopy") {
                    m["VolumeOptions"] = json!({"NoCopy": nc});
                }
            }
            "volume" => {
                let Some((name, opts)) = vols.get(&source) else {
                    return err(format!("undefined volume {source:?}"));
                };
                m["Source"] = json!(name);
                let mut opts = opts.clone();
                if let Some(nc) = extra.get("NoCopy") {
                    if opts.is_null() {
                        opts = json!({});
                    }
                    opts["NoCopy"] = nc.clone();
                }
                if !opts.is_null() {
                    m["VolumeOptions"] = opts;
                }
            }
            "tmpfs" => {
                if !source.is_empty() {
                    return err(format!("{path}: invalid tmpfs source, source must be empty"));
                }
                if let Some(t) = extra.get("TmpfsOptions") {
                    m["TmpfsOptions"] = t.clone();
                }
            }
            other => return err(format!("{path}.type: {other:?} is not supported by skep stack deploy")),
        }
        out.push(m);
    }
    Ok(out)
}

/// A file mode: a YAML number as it is, text (`0400`, which YAML 1.2 does not read as a number) as octal, as docker's
/// YAML reads a leading zero.
fn file_mode(v: &Value, path: &str) -> R<u32> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ConvertError(format!("{path}: {n} is not a file mode"))),
        v => {
            let t = scalar(v, path)?;
            let digits = t.strip_prefix("0o").or_else(|| t.strip_prefix('0')).unwrap_or(&t);
            u32::from_str_radix(digits, 8).or_else(|_| err(format!("{path}: {t} is not an octal file mode")))
        }
    }
}

/// Lexically clean a path as Go's `filepath.Clean` does (`a/./b/../c` → `a/c`), as docker's bind sources are.
fn clean(p: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// `KEY=VALUE` lines of an env file (`#` comments and blank lines skipped; `KEY` alone takes the environment's).
fn read_env_file(p: &Path, path: &str) -> R<BTreeMap<String, Option<String>>> {
    let text = read_bounded(p).map_err(|e| ConvertError(format!("{path}: {}: {e}", p.display())))?;
    let text = String::from_utf8(text).map_err(|_| ConvertError(format!("{path}: {}: not UTF-8", p.display())))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (l.to_string(), None),
        })
        .collect())
}

fn read_bounded(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(p)?.take(MAX_PAYLOAD + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_PAYLOAD {
        return Err(std::io::Error::other(format!("larger than {MAX_PAYLOAD} bytes")));
    }
    Ok(buf)
}

/// The top-level `secrets:` or `configs:`: the specs to create (file or environment), and every key's real name.
fn files_section(
    section: &Map<String, Value>,
    kind: &str,
    ns: &str,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<SecretSpec>,
) -> R<BTreeMap<String, String>> {
    let mut names = BTreeMap::new();
    for (key, v) in section {
        let o = Obj::new(v, &format!("{kind}.{key}"), &["file", "environment", "external", "name", "labels"])?;
        let (name, ext) = external(&o, key, ns)?;
        names.insert(key.clone(), name.clone());
        if ext {
            continue;
        }
        let data = match (o.str("file")?, o.str("environment")?) {
            (Some(f), None) => read_bounded(&dir.join(&f))
                .map_err(|e| ConvertError(format!("{}: {}: {e}", o.at("file"), dir.join(&f).display())))?,
            (None, Some(var)) => env(&var)
                .ok_or_else(|| ConvertError(format!("{}: environment variable {var} is not set", o.at("environment"))))?
                .into_bytes(),
            _ => return err(format!("{kind}.{key}: exactly one of file, environment or external is needed")),
        };
        let labels = with_stack_label(ns, o.labels("labels")?);
        out.push(SecretSpec { name, labels, data: Some(data), ..Default::default() });
    }
    Ok(names)
}

/// A service's `secrets:` / `configs:` references (short: the key; long: source, target, uid, gid, mode).
fn file_refs(s: &Obj<'_>, kind: &str, names: &BTreeMap<String, String>) -> R<Vec<FileRef>> {
    let Some(list) = s.get(kind) else { return Ok(Vec::new()) };
    let Value::Array(list) = list else { return err(format!("{} must be a list", s.at(kind))) };
    let singular = &kind[..kind.len() - 1];
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let path = format!("{}[{i}]", s.at(kind));
        let (source, target, uid, gid, mode) = match r {
            Value::Object(_) => {
                let o = Obj::new(r, &path, &["source", "target", "uid", "gid", "mode"])?;
                let source = o.str("source")?.ok_or_else(|| ConvertError(format!("{path}.source: required")))?;
                let mode = o.get("mode").map(|v| file_mode(v, &format!("{path}.mode"))).transpose()?.unwrap_or(0o444);
                (source, o.str("target")?, o.str("uid")?, o.str("gid")?, mode)
            }
            _ => (scalar(r, &path)?, None, None, None, 0o444),
        };
        let Some(real) = names.get(&source) else {
            return err(format!("undefined {singular} {source:?}"));
        };
        out.push(FileRef {
            source: real.clone(),
            file: FileTarget {
                name: target.unwrap_or_else(|| source.clone()),
                uid: uid.unwrap_or_else(|| "0".into()),
                gid: gid.unwrap_or_else(|| "0".into()),
                mode,
            },
        });
    }
    Ok(out)
}
