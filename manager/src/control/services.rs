//! Service and task requests: validation (everything is checked before anything is proposed), normalisation
//! (what swarmkit stores), and the read-side views (`ServiceStatus`, defaults, task filters).

use super::ControlError;
use crate::store::{ClusterState, Op};
use skep_api::docker::{
    ContainerSpec, ReplicatedMode, RestartPolicy, Service, ServiceMode, ServiceSpec, ServiceStatus, Task, TaskState,
    UpdateConfig, SECOND_NS,
};
use skep_api::filters::Filters;

/// Most replicas one service may ask for (a typo must not create a billion tasks).
pub const MAX_REPLICAS: u64 = 100_000;

fn invalid(msg: impl std::fmt::Display) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = InvalidArgument desc = {msg}"))
}

/// Check a service spec and normalise it as swarmkit stores it (`Mode: {}` → one replica, port defaults...).
pub fn validate_spec(mut spec: ServiceSpec) -> Result<ServiceSpec, ControlError> {
    if spec.name.len() > 63 {
        return Err(invalid(format!("name must be 63 characters or fewer: {}", spec.name)));
    }
    if !spec.name.is_empty() && !valid_name(&spec.name) {
        return Err(invalid(format!("invalid name {:?}: use letters, digits, '-', '_' and '.', starting with a letter or digit", spec.name)));
    }
    // mode: exactly one
    let m = &spec.mode;
    let set = [m.replicated.is_some(), m.global.is_some(), m.replicated_job.is_some(), m.global_job.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        return Err(invalid("invalid mode: only one of Replicated, Global, ReplicatedJob, GlobalJob may be set"));
    }
    if m.replicated_job.is_some() || m.global_job.is_some() {
        return Err(ControlError::NotImplemented("job modes are not supported by skep yet".into()));
    }
    if set == 0 {
        spec.mode = ServiceMode { replicated: Some(ReplicatedMode { replicas: Some(1) }), ..Default::default() };
    }
    if let Some(r) = spec.mode.replicated.as_mut() {
        let n = r.replicas.unwrap_or(1);
        if n > MAX_REPLICAS {
            return Err(invalid(format!("replicas must be at most {MAX_REPLICAS} (got {n})")));
        }
        r.replicas = Some(n);
    }
    // container
    let c = spec.task_template.container_spec.get_or_insert_with(ContainerSpec::default);
    if c.image.trim().is_empty() {
        return Err(invalid("ContainerSpec: image reference must be provided"));
    }
    if c.image.len() > 4096 || c.image.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(invalid(format!("ContainerSpec: {:?} is not a valid repository/tag", c.image)));
    }
    if let Some(g) = c.stop_grace_period {
        if g < 0 {
            return Err(invalid("ContainerSpec: StopGracePeriod must not be negative"));
        }
    }
    for e in &c.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(invalid(format!("ContainerSpec: invalid environment variable {e:?}")));
        }
    }
    // restart policy
    if let Some(p) = &spec.task_template.restart_policy {
        check_restart(p)?;
    }
    // placement
    if let Some(p) = &spec.task_template.placement {
        crate::scheduler::validate_constraints(&p.constraints).map_err(invalid)?;
        for pref in &p.preferences {
            if !pref.spread.spread_descriptor.starts_with("node.labels.") && !pref.spread.spread_descriptor.starts_with("engine.labels.") {
                return Err(invalid(format!("invalid placement preference {:?}: spread over node.labels.<key>", pref.spread.spread_descriptor)));
            }
        }
    }
    if let Some(r) = &spec.task_template.resources {
        for a in [&r.limits, &r.reservations].into_iter().flatten() {
            if a.nano_cpus < 0 || a.memory_bytes < 0 {
                return Err(invalid("resources must not be negative"));
            }
        }
    }
    for u in [&spec.update_config, &spec.rollback_config].into_iter().flatten() {
        check_update(u)?;
    }
    if let Some(e) = spec.endpoint_spec.as_mut() {
        match e.mode.as_str() {
            "" | "vip" | "dnsrr" => {}
            other => return Err(invalid(format!("invalid endpoint mode {other:?}: vip or dnsrr"))),
        }
        for p in &mut e.ports {
            if p.protocol.is_empty() {
                p.protocol = "tcp".into();
            }
            if p.publish_mode.is_empty() {
                p.publish_mode = "ingress".into();
            }
            if !matches!(p.protocol.as_str(), "tcp" | "udp" | "sctp") {
                return Err(invalid(format!("invalid protocol {:?}", p.protocol)));
            }
            if !matches!(p.publish_mode.as_str(), "ingress" | "host") {
                return Err(invalid(format!("invalid publish mode {:?}", p.publish_mode)));
            }
            if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
                return Err(invalid(format!("invalid port {}:{}", p.published_port, p.target_port)));
            }
        }
    }
    Ok(spec)
}

/// Network references (ID, name or ID prefix; stack deploy sends names) become IDs, as `populateNetworkID` does;
/// the deprecated service-level `Networks` moves into the task template. Unknown networks are 404s.
fn resolve_networks(state: &ClusterState, spec: &mut ServiceSpec) -> Result<(), ControlError> {
    if let Some(old) = spec.extra.remove("Networks") {
        let old: Vec<skep_api::docker::NetworkAttachmentConfig> = serde_json::from_value(old)
            .map_err(|e| invalid(format!("invalid Networks: {e}")))?;
        spec.task_template.networks.extend(old);
    }
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

/// Letters, digits, `-`, `_` and `.`, starting with a letter or digit.
fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn check_restart(p: &RestartPolicy) -> Result<(), ControlError> {
    match p.condition.as_str() {
        "" | "none" | "on-failure" | "any" => {}
        other => return Err(invalid(format!("invalid restart condition {other:?}: none, on-failure or any"))),
    }
    if p.delay.is_some_and(|d| d < 0) || p.window.is_some_and(|w| w < 0) {
        return Err(invalid("TaskSpec: restart-delay and restart-window cannot be negative"));
    }
    Ok(())
}

fn check_update(u: &UpdateConfig) -> Result<(), ControlError> {
    match u.failure_action.as_str() {
        "" | "pause" | "continue" | "rollback" => {}
        other => return Err(invalid(format!("invalid failure action {other:?}"))),
    }
    match u.order.as_str() {
        "" | "stop-first" | "start-first" => {}
        other => return Err(invalid(format!("invalid update order {other:?}"))),
    }
    if u.delay < 0 || u.monitor < 0 {
        return Err(invalid("TaskSpec: update-delay and update-monitor cannot be negative"));
    }
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return Err(invalid("TaskSpec: update-maxfailureratio must be between 0 and 1"));
    }
    Ok(())
}

/// `POST /services/create`.
pub fn create(state: &ClusterState, spec: ServiceSpec, id: String) -> Result<Op, ControlError> {
    let mut spec = validate_spec(spec)?;
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
    // the allocator fills in `Endpoint` (ports, VIPs) at apply time
    Ok(Op::CreateService { service: Box::new(Service { id, spec, ..Default::default() }) })
}

/// `POST /services/{id}/update?version=N[&rollback=previous]`.
pub fn update(state: &ClusterState, reference: &str, version: u64, spec: ServiceSpec, rollback: bool) -> Result<Op, ControlError> {
    let svc = state.resolve_service(reference)?;
    if svc.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    let spec = if rollback {
        svc.previous_spec.clone().ok_or_else(|| {
            ControlError::InvalidArgument(format!(
                "rpc error: code = FailedPrecondition desc = service {} does not have a previous spec",
                svc.id
            ))
        })?
    } else {
        spec
    };
    let mut spec = validate_spec(spec)?;
    resolve_networks(state, &mut spec)?;
    if spec.name != svc.spec.name {
        return Err(ControlError::NotImplemented("rpc error: code = Unimplemented desc = renaming services is not supported".into()));
    }
    if spec.mode.is_global() != svc.spec.mode.is_global() {
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

/// The service as the API shows it: with `ServiceStatus` when asked, with swarmkit's defaults when asked.
pub fn view(state: &ClusterState, svc: &Service, status: bool, insert_defaults: bool) -> Service {
    let mut s = svc.clone();
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
        s.service_status = Some(st);
    }
    s
}

fn insert_spec_defaults(spec: &mut ServiceSpec) {
    let t = &mut spec.task_template;
    let c = t.container_spec.get_or_insert_with(ContainerSpec::default);
    c.stop_grace_period.get_or_insert(10 * SECOND_NS);
    c.extra.entry("DNSConfig".into()).or_insert_with(|| serde_json::json!({}));
    t.resources.get_or_insert_with(Default::default);
    t.placement.get_or_insert_with(Default::default);
    let rp = t.restart_policy.get_or_insert_with(Default::default);
    if rp.condition.is_empty() {
        rp.condition = "any".into();
    }
    rp.delay.get_or_insert(5 * SECOND_NS);
    rp.max_attempts.get_or_insert(0);
    for u in [&mut spec.update_config, &mut spec.rollback_config] {
        let u = u.get_or_insert_with(|| UpdateConfig { parallelism: 1, ..Default::default() });
        if u.failure_action.is_empty() {
            u.failure_action = "pause".into();
        }
        if u.monitor == 0 {
            u.monitor = 5 * SECOND_NS;
        }
        if u.order.is_empty() {
            u.order = "stop-first".into();
        }
    }
    let e = spec.endpoint_spec.get_or_insert_with(Default::default);
    if e.mode.is_empty() {
        e.mode = "vip".into();
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
        let bad = [
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":""}}}"#, "image reference must be provided"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{"Replicas":3},"Global":{}}}"#, "invalid mode"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{"Replicas":1000000000}}}"#, "at most"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"},"Placement":{"Constraints":["node.role"]}}}"#, ""),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"},"RestartPolicy":{"Condition":"sometimes"}}}"#, "restart condition"),
            (r#"{"Name":"-w","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}"#, "invalid name"),
            (r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"UpdateConfig":{"FailureAction":"explode"}}"#, "failure action"),
        ];
        for (json, msg) in bad {
            let e = validate_spec(spec(json)).unwrap_err();
            assert_eq!(e.status(), 400, "{json}: {e}");
            assert!(e.to_string().contains(msg), "{json}: {e}");
        }
        assert_eq!(validate_spec(spec(r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"ReplicatedJob":{}}}"#)).unwrap_err().status(), 501);
        // negative replicas do not even parse (the API answers 400 invalid JSON)
        assert!(serde_json::from_str::<ServiceSpec>(r#"{"Mode":{"Replicated":{"Replicas":-1}}}"#).is_err());
    }

    #[test]
    fn duplicate_names_conflict_and_updates_check_version_name_and_mode() {
        let mut st = ClusterState::default();
        let op = create(&st, spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}"#), "s1".into()).unwrap();
        st.apply(1, &crate::store::Command { at: "t".into(), op }).unwrap();
        let e = create(&st, spec(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"y"}}}"#), "s2".into()).unwrap_err();
        assert_eq!(e.status(), 409);
        let cur = st.services["s1"].spec.clone();
        assert_eq!(update(&st, "web", 7, cur.clone(), false).unwrap_err(), ControlError::OutOfSequence);
        let mut renamed = cur.clone();
        renamed.name = "other".into();
        assert_eq!(update(&st, "web", 1, renamed, false).unwrap_err().status(), 501);
        let mut global = cur.clone();
        global.mode = ServiceMode { global: Some(serde_json::json!({})), ..Default::default() };
        assert_eq!(update(&st, "web", 1, global, false).unwrap_err().status(), 501);
        let mut scaled = cur.clone();
        scaled.mode.replicated = Some(ReplicatedMode { replicas: Some(5) });
        assert!(matches!(update(&st, "web", 1, scaled, false).unwrap(), Op::UpdateService { spec_changed: false, .. }));
        let e = update(&st, "web", 1, cur.clone(), true).unwrap_err();
        assert!(e.to_string().contains("does not have a previous spec"), "{e}");
        assert_eq!(remove(&st, "nope").unwrap_err().status(), 404);
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
