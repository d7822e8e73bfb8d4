//! Service and task requests: validation (everything is checked before anything is proposed), normalisation
//! (the spec as Docker stores and shows it), and the read-side views (`ServiceStatus`, defaults, task filters).
//!
//! Docker's daemon converts a spec to swarmkit's protobuf and back, and swarmkit validates it; what `inspect` then
//! shows is the result. [`validate_spec`] does both steps at once, with Docker's error texts and statuses: the
//! daemon's own conversion errors are plain 400s (`invalid RestartCondition: "x"`), swarmkit's carry the gRPC
//! prefix (`rpc error: code = InvalidArgument desc = …`). Fields no engine carries out are refused by the table in
//! `skep_api::docker::fields`.

use super::ControlError;
use crate::store::{ClusterState, Op};
use skep_api::docker::{
    fields, ContainerSpec, ReplicatedMode, RestartPolicy, Service, ServiceMode, ServiceSpec, ServiceStatus, Task,
    TaskState, UpdateConfig, SECOND_NS,
};
use skep_api::filters::Filters;

/// Most replicas one service may ask for (a typo must not create a billion tasks).
pub const MAX_REPLICAS: u64 = 100_000;

/// swarmkit's refusal (`codes.InvalidArgument`).
fn invalid(msg: impl std::fmt::Display) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = InvalidArgument desc = {msg}"))
}

/// The daemon's refusal while converting the spec (a plain 400, no gRPC prefix).
fn bad(msg: impl std::fmt::Display) -> ControlError {
    ControlError::InvalidArgument(msg.to_string())
}

/// Check a service spec and normalise it as Docker stores it (`Mode: {}` → one replica, `Condition` → `any`,
/// port protocol → `tcp`, ...), so that inspect answers what Docker's inspect answers.
pub fn validate_spec(mut spec: ServiceSpec) -> Result<ServiceSpec, ControlError> {
    // the daemon's conversion (daemon/cluster/convert/service.go ServiceSpecToGRPC), in its order
    let t = &mut spec.task_template;
    match t.runtime.as_str() {
        "" | "container" if t.container_spec.is_none() => return Err(bad("mismatched Runtime and *Spec fields")),
        "" | "container" => {}
        "plugin" if t.plugin_spec.as_ref().is_none_or(fields::is_zero) => {
            return Err(bad("mismatched Runtime and *Spec fields"))
        }
        "plugin" => return Err(ControlError::NotImplemented("TaskTemplate.PluginSpec is not supported by skep".into())),
        _ => return Err(bad("unsupported runtime")),
    }
    let t = &mut spec.task_template;
    t.runtime = "container".into();
    let c = t.container_spec.as_mut().expect("checked above");
    if c.isolation.is_empty() {
        c.isolation = "default".into();
    }
    if let Some(p) = t.restart_policy.as_mut() {
        normalize_restart(p)?;
    }
    if let Some(p) = t.placement.as_mut() {
        p.preferences.retain(|pr| pr.spread.is_some());
    }
    for u in [&mut spec.update_config, &mut spec.rollback_config].into_iter().flatten() {
        normalize_update(u)?;
    }
    if let Some(e) = spec.endpoint_spec.as_mut() {
        match e.mode.as_str() {
            "" => e.mode = "vip".into(),
            "vip" | "dnsrr" => {}
            other => return Err(bad(format!("invalid resolution mode: {other:?}"))),
        }
        for p in &mut e.ports {
            // unknown spellings read as the first enum value, as the daemon's lookup does
            p.protocol = match p.protocol.to_ascii_lowercase().as_str() {
                "udp" => "udp".into(),
                "sctp" => "sctp".into(),
                _ => "tcp".into(),
            };
            p.publish_mode = if p.publish_mode.eq_ignore_ascii_case("host") { "host".into() } else { "ingress".into() };
        }
    }
    normalize_mode(&mut spec.mode)?;

    // swarmkit's validateServiceSpec (manager/controlapi/service.go), in its order
    if !spec.name.is_empty() && !valid_name(&spec.name) {
        return Err(invalid("name must be valid as a DNS name component"));
    }
    if spec.name.len() > 63 {
        return Err(invalid("name must be 63 characters or fewer"));
    }
    let t = &spec.task_template;
    if let Some(r) = &t.resources {
        let limits = r.limits.as_ref().map(|l| (l.nano_cpus, l.memory_bytes));
        let reservations = r.reservations.as_ref().map(|r| (r.nano_cpus, r.memory_bytes));
        for (cpus, memory) in [limits, reservations].into_iter().flatten() {
            check_resources(cpus, memory)?;
        }
    }
    if let Some(p) = &t.restart_policy {
        if p.delay.is_some_and(|d| d < 0) {
            return Err(invalid("TaskSpec: restart-delay cannot be negative"));
        }
        if p.window.is_some_and(|w| w < 0) {
            return Err(invalid("TaskSpec: restart-window cannot be negative"));
        }
    }
    if let Some(p) = &t.placement {
        crate::scheduler::check_constraints(&p.constraints)
            .map_err(|e| ControlError::Internal(format!("rpc error: code = Unknown desc = {}", e.swarmkit())))?;
    }
    let c = t.container_spec.as_ref().expect("checked above");
    check_image(c)?;
    skep_api::docker::health::HealthCheck::from_spec(c.healthcheck.as_ref()).map_err(bad)?;
    super::payloads::check_references(c)?;
    if let Some(u) = &spec.update_config {
        check_update(u, "update")?;
    }
    // swarmkit leaves RollbackConfig unchecked (the CLI checks it); skep refuses the same values there too
    if let Some(u) = &spec.rollback_config {
        check_update(u, "rollback")?;
    }
    if let Some(e) = &spec.endpoint_spec {
        let mut published = std::collections::BTreeSet::new();
        for p in &e.ports {
            if e.mode == "dnsrr" && p.publish_mode == "ingress" {
                return Err(invalid("EndpointSpec: port published with ingress mode can't be used with dnsrr mode"));
            }
            // skep's own bounds (the allocator needs a target port; Docker leaves these to later failures)
            if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
                return Err(invalid(format!("EndpointSpec: invalid port {}:{}", p.published_port, p.target_port)));
            }
            if let Some(why) = reserved_port(p.published_port) {
                return Err(invalid(format!(
                    "EndpointSpec: port {} is reserved for the swarm ({why}) and cannot be published",
                    p.published_port
                )));
            }
            if p.published_port != 0 && !published.insert((p.published_port, p.protocol.clone())) {
                return Err(invalid("EndpointSpec: duplicate published ports provided"));
            }
        }
    }
    if let Some(n) = spec.mode.replicas() {
        if n > MAX_REPLICAS {
            return Err(invalid(format!("replicas must be at most {MAX_REPLICAS} (got {n})")));
        }
    }
    // jobs are never rolling-updated (every update runs them again): update settings would be ignored
    if spec.mode.is_job() {
        let set = fields::SERVICE_SPEC_FIELDS
            .iter()
            .find(|f| (f.path.starts_with("UpdateConfig.") || f.path.starts_with("RollbackConfig.")) && (f.set)(&spec));
        if let Some(f) = set {
            return Err(invalid(format!("{} cannot be used with jobs (a job is run again by every update, never rolled)", f.path)));
        }
    }
    if let Some((max, total)) = spec.mode.job_limits() {
        if max > MAX_REPLICAS || total > MAX_REPLICAS {
            return Err(invalid(format!("MaxConcurrent and TotalCompletions must be at most {MAX_REPLICAS}")));
        }
    }
    // mounts: a known type, the option blocks that fit it, absolute paths, no target twice (templates are checked on
    // the node, once they are expanded)
    if let Some(c) = spec.task_template.container_spec.as_ref() {
        let bad = |e: skep_api::docker::MountError| ControlError::InvalidArgument(e.to_string());
        skep_api::docker::validate_spec_mounts(&c.mounts().map_err(bad)?).map_err(bad)?;
    }
    // skep keeps task output itself (records on each node, bounded by the daemon's --log-opt): no other driver
    if let Some(d) = spec.task_template.log_driver.as_ref().filter(|d| !d.name.is_empty() || !d.options.is_empty()) {
        return Err(ControlError::NotImplemented(format!(
            "TaskTemplate.LogDriver is not supported by skep: log driver {:?} (skep keeps task output itself, bounded by the daemon's --log-opt max-size and max-file)",
            d.name
        )));
    }
    // valid for Docker, but not carried out by skep: refused, naming the field
    if let Some(f) = fields::refused(&spec) {
        return Err(ControlError::NotImplemented(format!("{} is not supported by skep", f.path)));
    }
    Ok(spec)
}

/// `Mode`: exactly one; none (or `Replicated` without a count) is one replica; `Global` shows as `{}`.
fn normalize_mode(m: &mut ServiceMode) -> Result<(), ControlError> {
    let set = [m.replicated.is_some(), m.global.is_some(), m.replicated_job.is_some(), m.global_job.is_some()];
    if set.iter().filter(|b| **b).count() > 1 {
        return Err(bad("must specify only one service mode"));
    }
    if m.global.is_some() {
        m.global = Some(serde_json::json!({}));
    } else if m.global_job.is_some() {
        m.global_job = Some(serde_json::json!({}));
    } else if let Some(j) = m.replicated_job.as_mut() {
        // the daemon's defaults: one at a time, as many completions as run at once
        let max = *j.max_concurrent.get_or_insert(1);
        j.total_completions.get_or_insert(max);
    } else {
        let r = m.replicated.get_or_insert_with(ReplicatedMode::default);
        r.replicas.get_or_insert(1);
    }
    Ok(())
}

fn normalize_restart(p: &mut RestartPolicy) -> Result<(), ControlError> {
    match p.condition.as_str() {
        "" => p.condition = "any".into(),
        "none" | "on-failure" | "any" => {}
        other => return Err(bad(format!("invalid RestartCondition: {other:?}"))),
    }
    p.max_attempts.get_or_insert(0);
    Ok(())
}

fn normalize_update(u: &mut UpdateConfig) -> Result<(), ControlError> {
    match u.failure_action.as_str() {
        "" => u.failure_action = "pause".into(),
        "pause" | "continue" | "rollback" => {}
        other => return Err(bad(format!("unrecognized update failure action {other}"))),
    }
    match u.order.as_str() {
        "" => u.order = "stop-first".into(),
        "stop-first" | "start-first" => {}
        other => return Err(bad(format!("unrecognized update order {other}"))),
    }
    Ok(())
}

/// Longest `Delay` or `Monitor` skep accepts (a day): longer is a typo, and would stall an update for ever.
pub const MAX_UPDATE_DURATION_NS: i64 = 24 * 3600 * SECOND_NS;

/// swarmkit's `validateUpdate` (`what` is `update` or `rollback`), and skep's bound on the durations.
fn check_update(u: &UpdateConfig, what: &str) -> Result<(), ControlError> {
    if u.delay < 0 {
        return Err(invalid(format!("TaskSpec: {what}-delay cannot be negative")));
    }
    if u.monitor < 0 {
        return Err(invalid(format!("TaskSpec: {what}-monitor cannot be negative")));
    }
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return Err(invalid(format!("TaskSpec: {what}-maxfailureratio cannot be less than 0 or bigger than 1")));
    }
    if u.delay > MAX_UPDATE_DURATION_NS || u.monitor > MAX_UPDATE_DURATION_NS {
        return Err(invalid(format!("TaskSpec: {what}-delay and {what}-monitor cannot be more than 24h")));
    }
    Ok(())
}

/// swarmkit's `validateResources`: at least a thousandth of a CPU and 4 MiB, when set.
fn check_resources(nano_cpus: i64, memory_bytes: i64) -> Result<(), ControlError> {
    if nano_cpus != 0 && nano_cpus < 1_000_000 {
        return Err(invalid(format!("invalid cpu value {}: Must be at least 0.001", go_g(nano_cpus as f64 / 1e9))));
    }
    if memory_bytes != 0 && memory_bytes < 4 * 1024 * 1024 {
        return Err(invalid(format!("invalid memory value {memory_bytes}: Must be at least 4MiB")));
    }
    Ok(())
}

/// Go's `%g` for the small numbers above: exponent form below 1e-4 (`5e-09`), plain otherwise.
fn go_g(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-4 {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{v}")
    }
}

/// swarmkit's `validateImage` (as far as skep can: the process engine also takes a path as its program).
fn check_image(c: &ContainerSpec) -> Result<(), ControlError> {
    if c.image.is_empty() {
        return Err(invalid("ContainerSpec: image reference must be provided"));
    }
    if c.image.len() > 4096 || c.image.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(invalid(format!("ContainerSpec: {:?} is not a valid repository/tag", c.image)));
    }
    Ok(())
}

/// swarmkit's service name: a DNS name component, `^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// Network references (ID, name or ID prefix; stack deploy sends names) become IDs, as `populateNetworkID` does;
/// the deprecated service-level `Networks` moves into the task template. Unknown networks are 404s.
fn resolve_networks(state: &ClusterState, spec: &mut ServiceSpec) -> Result<(), ControlError> {
    let old = std::mem::take(&mut spec.networks);
    spec.task_template.networks.extend(old);
    let mut seen = std::collections::BTreeSet::new();
    for a in &mut spec.task_template.networks {
        let rec = state.resolve_network(&a.target)?;
        if rec.network.ingress {
            return Err(invalid("service cannot be explicitly attached to the ingress network \"ingress\""));
        }
        a.target = rec.network.id.clone();
        if !seen.insert(a.target.clone()) {
            return Err(invalid(format!("duplicate network attachment to network {}", rec.network.name)));
        }
    }
    Ok(())
}

/// `POST /services/create`.
pub fn create(state: &ClusterState, spec: ServiceSpec, id: String) -> Result<Op, ControlError> {
    let mut spec = validate_spec(spec)?;
    check_node_ports(state, &spec)?;
    if spec.name.is_empty() {
        spec.name = format!("svc-{}", &id[..10.min(id.len())]);
    }
    if state.services.values().any(|s| s.spec.name == spec.name) {
        return Err(ControlError::Conflict(format!(
            "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {} already exists",
            spec.name
        )));
    }
    resolve_networks(state, &mut spec)?;
    state.check_references(&spec)?;
    // the allocator fills in `Endpoint` (ports, VIPs) at apply time
    Ok(Op::CreateService { service: Box::new(Service { id, spec, ..Default::default() }) })
}

/// `POST /services/{id}/update?version=N[&rollback=previous]`.
/// Where an update's registry credentials come from (moby's `registryAuthFrom` and `X-Registry-Auth`).
#[derive(Clone, PartialEq, Eq)]
pub enum AuthFrom {
    /// The request's `X-Registry-Auth` (non-empty).
    Header(String),
    /// The service's current spec (`registryAuthFrom=spec`, the default).
    Spec,
    /// Its previous spec (`registryAuthFrom=previous-spec`).
    PreviousSpec,
}

impl std::fmt::Debug for AuthFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthFrom::Header(_) => "Header(<redacted>)",
            AuthFrom::Spec => "Spec",
            AuthFrom::PreviousSpec => "PreviousSpec",
        })
    }
}

impl AuthFrom {
    /// From the request: the header when given, else `registryAuthFrom` (`spec`, `previous-spec`; anything else
    /// is invalid, as in moby's router).
    pub fn from_request(header: &str, from: Option<&str>) -> Result<AuthFrom, ControlError> {
        if !header.is_empty() {
            return Ok(AuthFrom::Header(header.to_string()));
        }
        match from.unwrap_or("spec") {
            "" | "spec" => Ok(AuthFrom::Spec),
            "previous-spec" => Ok(AuthFrom::PreviousSpec),
            other => Err(ControlError::InvalidArgument(format!("invalid registryAuthFrom value {other:?}"))),
        }
    }
}

/// Sets the credentials a new spec is stored with: the header's (only the header sets them; a request body's are
/// dropped), else none.
pub fn set_credentials(spec: &mut ServiceSpec, header: &str) {
    spec.strip_credentials();
    if !header.is_empty() {
        if let Some(c) = spec.task_template.container_spec.as_mut() {
            c.pull_options = Some(skep_api::docker::PullOptions { registry_auth: header.to_string() });
        }
    }
}

/// `POST /services/{id}/update`.
pub fn update(state: &ClusterState, reference: &str, version: u64, mut spec: ServiceSpec, rollback: bool, auth: AuthFrom) -> Result<Op, ControlError> {
    let svc = state.resolve_service(reference)?;
    if svc.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    let kept = |s: Option<&ServiceSpec>| {
        s.and_then(|s| s.task_template.container_spec.as_ref()).and_then(|c| c.pull_options.clone())
    };
    let pull_options = match &auth {
        AuthFrom::Header(h) => Some(skep_api::docker::PullOptions { registry_auth: h.clone() }),
        AuthFrom::Spec => kept(Some(&svc.spec)),
        AuthFrom::PreviousSpec => kept(svc.previous_spec.as_ref()),
    };
    spec.strip_credentials();
    if let Some(c) = spec.task_template.container_spec.as_mut() {
        c.pull_options = pull_options;
    }
    if rollback {
        // swarmkit's manual rollback: the previous spec (checked when it was stored) becomes the spec, and the
        // updater rolls the tasks back with the RollbackConfig
        let previous = svc.previous_spec.as_ref().ok_or_else(|| {
            ControlError::InvalidArgument(format!(
                "rpc error: code = FailedPrecondition desc = service {} does not have a previous spec",
                svc.id
            ))
        })?;
        state.check_references(previous)?;
        return Ok(Op::RollbackService {
            id: svc.id.clone(),
            version: Some(version),
            message: "manually requested rollback".into(),
        });
    }
    let mut spec = validate_spec(spec)?;
    check_node_ports(state, &spec)?;
    resolve_networks(state, &mut spec)?;
    state.check_references(&spec)?;
    if spec.name != svc.spec.name {
        return Err(ControlError::NotImplemented("rpc error: code = Unimplemented desc = renaming services is not supported".into()));
    }
    if spec.mode.kind() != svc.spec.mode.kind() {
        return Err(ControlError::NotImplemented("rpc error: code = Unimplemented desc = service mode change is not allowed".into()));
    }
    // a change of the replica count alone is a scale, not an update
    let mut without_mode = spec.clone();
    without_mode.mode = svc.spec.mode.clone();
    let spec_changed = without_mode != svc.spec;
    Ok(Op::UpdateService { id: svc.id.clone(), version, spec: Box::new(spec), spec_changed })
}

/// `DELETE /services/{id}`.
pub fn remove(state: &ClusterState, reference: &str) -> Result<Op, ControlError> {
    let svc = state.resolve_service(reference)?;
    Ok(Op::RemoveService { id: svc.id.clone() })
}

/// The service as the API shows it: never with its registry credentials; with `ServiceStatus` when asked, with swarmkit's defaults when asked.
pub fn view(state: &ClusterState, svc: &Service, status: bool, insert_defaults: bool) -> Service {
    let mut s = svc.clone();
    s.strip_credentials();
    if insert_defaults {
        insert_spec_defaults(&mut s.spec);
        if let Some(p) = s.previous_spec.as_mut() {
            insert_spec_defaults(p);
        }
    }
    if s.spec.task_template.container_spec.is_none() {
        s.spec.task_template.container_spec = Some(ContainerSpec::default());
    }
    if s.endpoint.is_none() {
        s.endpoint = Some(skep_api::docker::Endpoint {
            spec: s.spec.endpoint_spec.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    if status {
        let mut st = ServiceStatus::default();
        for t in state.service_tasks(&svc.id) {
            if t.status.state == TaskState::Running && t.desired_state <= TaskState::Running {
                st.running_tasks += 1;
            }
            if svc.spec.mode.is_global() && t.desired_state == TaskState::Running {
                st.desired_tasks += 1;
            }
        }
        if let Some(n) = svc.spec.mode.replicas() {
            st.desired_tasks = n;
        }
        if svc.spec.mode.is_job() {
            // the current run's tasks: those completed, and those still to run at once
            let run = svc.job_status.as_ref().map(|j| j.job_iteration.index);
            let mine: Vec<&Task> = state
                .service_tasks(&svc.id)
                .filter(|t| t.job_iteration.map(|v| v.index) == run)
                .collect();
            st.completed_tasks = mine.iter().filter(|t| t.status.state == TaskState::Complete).count() as u64;
            st.desired_tasks = match svc.spec.mode.job_limits() {
                Some((max, total)) => max.min(total.saturating_sub(st.completed_tasks)),
                None => mine.iter().filter(|t| t.status.state != TaskState::Complete && t.desired_state <= TaskState::Running).count() as u64,
            };
        }
        s.service_status = Some(st);
    }
    s
}

/// swarmkit's `InterpolateService` (api/defaults/service.go), what `insertDefaults=true` shows: absent parts get
/// swarmkit's defaults, present ones only their unset durations.
fn insert_spec_defaults(spec: &mut ServiceSpec) {
    let t = &mut spec.task_template;
    if let Some(c) = t.container_spec.as_mut() {
        c.stop_grace_period.get_or_insert(10 * SECOND_NS);
        c.dns_config.get_or_insert_with(Default::default);
    }
    t.resources.get_or_insert_with(Default::default);
    let rp = t.restart_policy.get_or_insert_with(|| RestartPolicy {
        condition: "any".into(),
        max_attempts: Some(0),
        ..Default::default()
    });
    rp.delay.get_or_insert(5 * SECOND_NS);
    t.placement.get_or_insert_with(Default::default);
    for u in [&mut spec.update_config, &mut spec.rollback_config] {
        let u = u.get_or_insert_with(|| UpdateConfig {
            parallelism: 1,
            failure_action: "pause".into(),
            order: "stop-first".into(),
            ..Default::default()
        });
        if u.monitor == 0 {
            u.monitor = 5 * SECOND_NS;
        }
    }
}

/// Keys `GET /tasks` accepts.
pub const TASK_FILTERS: &[&str] = &["name", "id", "label", "service", "node", "desired-state", "_up-to-date", "runtime"];
/// Keys `GET /services` accepts.
pub const SERVICE_FILTERS: &[&str] = &["id", "name", "label", "mode", "runtime"];

/// `GET /tasks?filters=…`: service and node filters take names too.
pub fn filter_tasks<'a>(state: &'a ClusterState, f: &Filters) -> Result<Vec<&'a Task>, ControlError> {
    for d in f.get("desired-state") {
        if !matches!(d, "running" | "shutdown" | "accepted") {
            return Err(ControlError::InvalidArgument(format!("Invalid desired-state filter value '{d}'")));
        }
    }
    let services: Vec<String> = f
        .get("service")
        .map(|s| state.resolve_service(s).map(|x| x.id.clone()).unwrap_or_else(|_| s.to_string()))
        .collect();
    let nodes: Vec<String> =
        f.get("node").map(|n| state.resolve_node(n).map(|x| x.node.id.clone()).unwrap_or_else(|_| n.to_string())).collect();
    let up_to_date = f.has("_up-to-date");
    let out = state
        .tasks
        .values()
        .filter(|t| services.is_empty() || services.contains(&t.service_id))
        .filter(|t| nodes.is_empty() || nodes.contains(&t.node_id))
        .filter(|t| f.matches_any("id", |v| t.id.starts_with(v)))
        .filter(|t| {
            f.matches_any("name", |v| {
                let svc = state.services.get(&t.service_id).map(|s| s.spec.name.as_str()).unwrap_or("");
                let name = if t.slot > 0 { format!("{svc}.{}", t.slot) } else { format!("{svc}.{}", t.node_id) };
                name.starts_with(v)
            })
        })
        .filter(|t| {
            f.matches_any("desired-state", |d| match d {
                "running" => t.desired_state <= TaskState::Running,
                "shutdown" => t.desired_state >= TaskState::Shutdown,
                _ => t.desired_state == TaskState::Accepted,
            })
        })
        .filter(|t| {
            !f.has("label")
                || state.services.get(&t.service_id).is_some_and(|s| f.matches_labels("label", &s.spec.labels))
        })
        .filter(|t| !up_to_date || state.services.get(&t.service_id).is_some_and(|s| crate::orchestrator::is_current(state, t, s)))
        .filter(|_| f.matches_any("runtime", |r| r == "container"))
        .collect();
    Ok(out)
}

/// `GET /services?filters=…`.
pub fn filter_services<'a>(state: &'a ClusterState, f: &Filters) -> Result<Vec<&'a Service>, ControlError> {
    for m in f.get("mode") {
        if !matches!(m, "replicated" | "global" | "replicated-job" | "global-job") {
            return Err(ControlError::InvalidArgument(format!("Invalid filter: 'mode'='{m}'")));
        }
    }
    Ok(state
        .services
        .values()
        .filter(|s| f.matches_any("id", |v| s.id.starts_with(v)))
        .filter(|s| f.matches_any("name", |v| s.spec.name.starts_with(v)))
        .filter(|s| f.matches_labels("label", &s.spec.labels))
        .filter(|s| {
            f.matches_any("mode", |m| match m {
                "replicated" => s.spec.mode.replicated.is_some(),
                "global" => s.spec.mode.is_global(),
                _ => false,
            })
        })
        .filter(|_| f.matches_any("runtime", |r| r == "container"))
        .collect())
}

/// Ports the swarm itself uses on every node, which a service may not publish: its traffic would be taken by the
/// routing mesh (or would take the swarm's), cutting the node off. The cluster port, the gossip port Docker reserves,
/// and VXLAN.
pub const RESERVED_PORTS: [(u32, &str); 3] =
    [(2377, "cluster management"), (7946, "node communication"), (4789, "overlay network traffic, VXLAN")];

/// A published port that is a node's own cluster port (`--listen-addr` with another port than 2377) is refused too.
fn check_node_ports(state: &ClusterState, spec: &ServiceSpec) -> Result<(), ControlError> {
    let Some(e) = &spec.endpoint_spec else { return Ok(()) };
    for p in e.ports.iter().filter(|p| p.published_port != 0) {
        let taken = state.nodes.values().find(|r| {
            r.cluster_addr.rsplit_once(':').and_then(|(_, port)| port.parse::<u32>().ok()) == Some(p.published_port)
        });
        if let Some(r) = taken {
            return Err(ControlError::InvalidArgument(format!(
                "EndpointSpec: port {} is reserved for the swarm (the cluster port of node {}) and cannot be published",
                p.published_port, r.node.id
            )));
        }
    }
    Ok(())
}

/// Why `port` may not be published, if it may not.
pub fn reserved_port(port: u32) -> Option<&'static str> {
    RESERVED_PORTS.iter().find(|(p, _)| *p == port).map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> ServiceSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn mode_is_normalised_and_bad_specs_are_refused_before_anything_is_proposed() {
        let s = validate_spec(spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"Replicated":{}}}"#)).unwrap();
        assert_eq!(s.mode.replicas(), Some(1));
        let s = validate_spec(spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{}}"#)).unwrap();
        assert_eq!(s.mode.replicas(), Some(1));
        // Docker's statuses and texts (recorded from Docker 20.10, tests/fixtures/docker-api-decoding)
        let bad = [
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":""}}}"#, 400, "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{"Replicas":3},"Global":{}}}"#, 400, "must specify only one service mode"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{"Replicas":1000000000}}}"#, 400, "at most"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"},"Placement":{"Constraints":["node.role"]}}}"#, 500, "rpc error: code = Unknown desc = constraint expected one operator from ==, !="),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"},"RestartPolicy":{"Condition":"sometimes"}}}"#, 400, "invalid RestartCondition: \"sometimes\""),
            (r#"{"Name":"-w","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}"#, 400, "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"),
            (r#"{"Name":"w.x","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}"#, 400, "name must be valid as a DNS name component"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"UpdateConfig":{"FailureAction":"explode"}}"#, 400, "unrecognized update failure action explode"),
            (r#"{"Name":"w","TaskTemplate":{}}"#, 400, "mismatched Runtime and *Spec fields"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"},"Resources":{"Reservations":{"NanoCPUs":5}}}}"#, 400, "invalid cpu value 5e-09: Must be at least 0.001"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x","Privileges":{"NoNewPrivileges":true}}}}"#, 501, "TaskTemplate.ContainerSpec.Privileges is not supported by skep"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"EndpointSpec":{"Ports":[{"TargetPort":80,"PublishedPort":2377}]}}"#, 400, "port 2377 is reserved for the swarm"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"EndpointSpec":{"Ports":[{"TargetPort":80,"PublishedPort":4789,"Protocol":"udp"}]}}"#, 400, "port 4789 is reserved"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"EndpointSpec":{"Ports":[{"TargetPort":80,"PublishedPort":7946}]}}"#, 400, "port 7946 is reserved"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"},"LogDriver":{"Name":"syslog"}}}"#, 501, "TaskTemplate.LogDriver is not supported by skep: log driver \"syslog\" (skep keeps task output itself, bounded by the daemon's --log-opt max-size and max-file)"),
        ];
        for (json, status, msg) in bad {
            let e = validate_spec(spec(json)).unwrap_err();
            assert_eq!(e.status(), status, "{json}: {e}");
            assert!(e.to_string().contains(msg), "{json}: {e}");
        }
        // jobs: Docker's defaults (one at a time, as many completions as run at once), bounded
        let job = validate_spec(spec(r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"ReplicatedJob":{"MaxConcurrent":3}}}"#)).unwrap();
        assert_eq!(job.mode.job_limits(), Some((3, 3)));
        assert!(job.mode.replicated.is_none());
        let big = validate_spec(spec(r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"ReplicatedJob":{"TotalCompletions":100000000}}}"#));
        assert_eq!(big.unwrap_err().status(), 400);
        let rolled = validate_spec(spec(r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"GlobalJob":{}},"UpdateConfig":{"Parallelism":1,"Order":"start-first"}}"#));
        assert!(rolled.unwrap_err().to_string().contains("UpdateConfig.Order cannot be used with jobs"));
        let both = validate_spec(spec(r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"ReplicatedJob":{},"Replicated":{}}}"#));
        assert!(both.unwrap_err().to_string().contains("must specify only one service mode"));
        // negative replicas do not even parse (the API answers 400 invalid JSON)
        assert!(serde_json::from_str::<ServiceSpec>(r#"{"Mode":{"Replicated":{"Replicas":-1}}}"#).is_err());
    }

    #[test]
    fn a_nodes_own_cluster_port_cannot_be_published() {
        let mut st = ClusterState::default();
        let mut n = crate::store::NodeRecord { cluster_addr: "10.0.0.1:4000".into(), ..Default::default() };
        n.node.id = "n1".into();
        st.nodes.insert("n1".into(), n);
        let with = |port: u32| spec(&format!(r#"{{"Name":"w","TaskTemplate":{{"ContainerSpec":{{"Image":"x"}}}},"EndpointSpec":{{"Ports":[{{"TargetPort":80,"PublishedPort":{port}}}]}}}}"#));
        let e = create(&st, with(4000), "s1".into()).unwrap_err();
        assert!(e.to_string().contains("cluster port of node n1"), "{e}");
        assert!(create(&st, with(4001), "s1".into()).is_ok());
    }

    #[test]
    fn duplicate_names_conflict_and_updates_check_version_name_and_mode() {
        let mut st = ClusterState::default();
        let op = create(&st, spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}"#), "s1".into()).unwrap();
        st.apply(1, &crate::store::Command { at: "t".into(), op }).unwrap();
        let e = create(&st, spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"y"}}}"#), "s2".into()).unwrap_err();
        assert_eq!(e.status(), 409);
        let cur = st.services["s1"].spec.clone();
        assert_eq!(update(&st, "web", 7, cur.clone(), false, AuthFrom::Spec).unwrap_err(), ControlError::OutOfSequence);
        let mut renamed = cur.clone();
        renamed.name = "other".into();
        assert_eq!(update(&st, "web", 1, renamed, false, AuthFrom::Spec).unwrap_err().status(), 501);
        let mut global = cur.clone();
        global.mode = ServiceMode { global: Some(serde_json::json!({})), ..Default::default() };
        assert_eq!(update(&st, "web", 1, global, false, AuthFrom::Spec).unwrap_err().status(), 501);
        let mut scaled = cur.clone();
        scaled.mode.replicated = Some(ReplicatedMode { replicas: Some(5) });
        assert!(matches!(update(&st, "web", 1, scaled, false, AuthFrom::Spec).unwrap(), Op::UpdateService { spec_changed: false, .. }));
        let e = update(&st, "web", 1, cur.clone(), true, AuthFrom::Spec).unwrap_err();
        assert!(e.to_string().contains("does not have a previous spec"), "{e}");
        assert_eq!(remove(&st, "nope").unwrap_err().status(), 404);
    }

    #[test]
    fn registry_credentials_are_stored_from_the_header_kept_by_updates_and_never_shown() {
        let pulled = |st: &ClusterState| {
            st.services["s1"].spec.task_template.container_spec.as_ref().unwrap().pull_options.as_ref().map(|p| p.registry_auth.clone())
        };
        let mut st = ClusterState::default();
        // a body's PullOptions are dropped: only the header sets them
        let mut s = spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"x","PullOptions":{"RegistryAuth":"body"}}}}"#);
        set_credentials(&mut s, "header-auth");
        let op = create(&st, s, "s1".into()).unwrap();
        st.apply(1, &crate::store::Command { at: "t".into(), op }).unwrap();
        assert_eq!(pulled(&st).as_deref(), Some("header-auth"));
        let shown = view(&st, &st.services["s1"], false, false);
        assert!(!serde_json::to_string(&shown).unwrap().contains("header-auth"));
        assert!(!format!("{:?}", st.services["s1"]).contains("header-auth"), "Debug redacts");
        // registryAuthFrom=spec keeps them; a new header replaces them; the body never sets them
        let mut next = view(&st, &st.services["s1"], false, false).spec;
        next.task_template.container_spec.as_mut().unwrap().image = "y".into();
        let op = update(&st, "web", 1, next.clone(), false, AuthFrom::Spec).unwrap();
        st.apply(2, &crate::store::Command { at: "t".into(), op }).unwrap();
        assert_eq!(pulled(&st).as_deref(), Some("header-auth"));
        let op = update(&st, "web", 2, next.clone(), false, AuthFrom::Header("new".into())).unwrap();
        st.apply(3, &crate::store::Command { at: "t".into(), op }).unwrap();
        assert_eq!(pulled(&st).as_deref(), Some("new"));
        let op = update(&st, "web", 3, next, false, AuthFrom::PreviousSpec).unwrap();
        st.apply(4, &crate::store::Command { at: "t".into(), op }).unwrap();
        assert_eq!(pulled(&st).as_deref(), Some("header-auth"));
        assert!(AuthFrom::from_request("", Some("bogus")).is_err());
        assert_eq!(AuthFrom::from_request("", None).unwrap(), AuthFrom::Spec);
    }

    #[test]
    fn insert_defaults_fills_what_the_cli_prints() {
        let st = ClusterState::default();
        let svc = Service { id: "s".into(), spec: validate_spec(spec(r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}"#)).unwrap(), ..Default::default() };
        let v = view(&st, &svc, true, true);
        let rp = v.spec.task_template.restart_policy.unwrap();
        assert_eq!(rp.condition, "any");
        assert_eq!(rp.delay, Some(5 * SECOND_NS));
        assert_eq!(v.spec.update_config.unwrap().order, "stop-first");
        assert_eq!(v.service_status.unwrap().desired_tasks, 1);
        let plain = view(&st, &svc, false, false);
        assert!(plain.spec.task_template.restart_policy.is_none());
        assert!(plain.service_status.is_none());
    }
}
