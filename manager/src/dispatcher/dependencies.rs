//! The secrets and configs that travel with a node's assignments, as swarmkit's dispatcher sends them: a node gets a
//! secret or config only with a task of its set that uses it, and is told to forget it once no task there needs it
//! any more: a task needs its dependencies until its observed state passes running (it is then over, whatever its
//! desired state says).
//!
//! A templated payload (`Templating: golang`) is rendered here, for each task, and travels under a key naming that
//! task: its content is that task's alone (it may show the task's slot, its node's hostname, or another secret of the
//! task). A template that does not render for a task travels as the error, and the node refuses the task with it.

use crate::store::{ClusterState, PayloadKind};
use crate::template::{Context, Lookup, RenderError, Template};
use skep_api::docker::{Task, TaskState};
use skep_api::wire::{Dependency, DependencyContent, DependencyKey, DependencyKind};
use std::collections::BTreeSet;

/// Whether a task of a node's set still needs its secrets and configs.
pub fn uses_dependencies(t: &Task) -> bool {
    t.status.state <= TaskState::Running
}

fn payload_kind(kind: DependencyKind) -> PayloadKind {
    match kind {
        DependencyKind::Secret => PayloadKind::Secret,
        DependencyKind::Config => PayloadKind::Config,
    }
}

/// The dependencies one task needs (payloads missing from the store are left out: the node refuses the task).
pub fn task_dependencies(state: &ClusterState, t: &Task) -> Vec<DependencyKey> {
    let Some(c) = t.spec.container_spec.as_ref().filter(|_| uses_dependencies(t)) else { return vec![] };
    let secrets = c.secrets.iter().map(|r| (DependencyKind::Secret, &r.secret_id));
    let configs = c.configs.iter().map(|r| (DependencyKind::Config, &r.config_id));
    secrets
        .chain(configs)
        .filter_map(|(kind, id)| {
            let p = state.payloads(payload_kind(kind)).get(id)?;
            let task = p.spec.templating.is_some().then(|| t.id.clone());
            Some(DependencyKey { kind, id: id.clone(), task })
        })
        .collect()
}

/// The dependencies of a node's set.
pub fn dependency_keys<'a>(state: &ClusterState, tasks: impl IntoIterator<Item = &'a Task>) -> BTreeSet<DependencyKey> {
    tasks.into_iter().flat_map(|t| task_dependencies(state, t)).collect()
}

/// The content of one dependency: the payload, or for a task's own key the payload rendered for that task.
/// `None` when the payload (or the task it is rendered for) is no longer in the store.
pub fn content(state: &ClusterState, key: &DependencyKey) -> Option<Dependency> {
    let kind = payload_kind(key.kind);
    let p = state.payloads(kind).get(&key.id)?;
    let data = p.spec.data.clone().unwrap_or_default();
    let content = match &key.task {
        None => DependencyContent::Data(data),
        Some(task_id) => {
            let task = state.tasks.get(task_id)?;
            match render(state, task, &data) {
                Ok(d) => DependencyContent::Data(d),
                Err(e) => DependencyContent::Error(format!("failed to expand templated {} {}: {e}", kind.noun(), key.id)),
            }
        }
    };
    Some(Dependency { key: key.clone(), content })
}

/// Render a payload for `task` with swarmkit's template context: its service, its node's description, its own
/// environment, and its other secrets and configs by target (their raw payloads).
fn render(state: &ClusterState, task: &Task, data: &[u8]) -> Result<Vec<u8>, RenderError> {
    let template = Template::parse(data).map_err(|e| RenderError(e.to_string()))?;
    let service = state.services.get(&task.service_id);
    let service_name = service.map(|s| s.spec.name.as_str()).unwrap_or_default();
    let no_labels = Default::default();
    let node = state.nodes.get(&task.node_id).map(|n| &n.node.description);
    let slot = if task.slot > 0 { task.slot.to_string() } else { task.node_id.clone() };
    let task_name = format!("{service_name}.{slot}.{}", task.id);
    let c = task.spec.container_spec.clone().unwrap_or_default();
    let lookup = |kind: Lookup, target: &str| -> Result<Vec<u8>, RenderError> {
        let (id, noun) = match kind {
            Lookup::Secret => (c.secrets.iter().find(|r| r.file.as_ref().is_some_and(|f| f.name == target)).map(|r| &r.secret_id), "secret"),
            Lookup::Config => (c.configs.iter().find(|r| r.file.as_ref().is_some_and(|f| f.name == target)).map(|r| &r.config_id), "config"),
        };
        let pk = if noun == "secret" { PayloadKind::Secret } else { PayloadKind::Config };
        id.and_then(|id| state.payloads(pk).get(id))
            .map(|p| p.spec.data.clone().unwrap_or_default())
            .ok_or_else(|| RenderError(format!("{noun} target {target} not found")))
    };
    let ctx = Context {
        service_id: &task.service_id,
        service_name,
        service_labels: service.map(|s| &s.spec.labels).unwrap_or(&no_labels),
        task_id: &task.id,
        task_name: &task_name,
        task_slot: &slot,
        node_id: &task.node_id,
        node_hostname: node.map(|d| d.hostname.as_str()).unwrap_or_default(),
        node_os: node.map(|d| d.platform.os.as_str()).unwrap_or_default(),
        node_arch: node.map(|d| d.platform.architecture.as_str()).unwrap_or_default(),
        env: &c.env,
        lookup: &lookup,
    };
    template.render(&ctx)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use crate::testing::task;
    use skep_api::docker::{Driver, Secret, SecretReference, SecretSpec, Service, SwarmConfigReference, FileTarget};

    fn file(name: &str) -> Option<FileTarget> {
        Some(FileTarget { name: name.into(), uid: "0".into(), gid: "0".into(), mode: 0o444 })
    }

    /// A store with secret `s1` (`pw`), config `c1` (plain) and config `t1` (a template), and a service `web`.
    pub(crate) fn state() -> ClusterState {
        let mut st = ClusterState::default();
        let obj = |id: &str, data: &[u8], tpl: bool| Secret {
            id: id.into(),
            spec: SecretSpec {
                name: format!("name-{id}"),
                data: Some(data.to_vec()),
                templating: tpl.then(|| Driver { name: "golang".into(), ..Default::default() }),
                ..Default::default()
            },
            ..Default::default()
        };
        st.secrets.insert("s1".into(), obj("s1", b"pw", false));
        st.configs.insert("c1".into(), obj("c1", b"plain", false));
        st.configs.insert("t1".into(), obj("t1", b"{{.Service.Name}}.{{.Task.Slot}}@{{.Node.Hostname}}:{{secret \"db\"}}", true));
        let mut svc = Service { id: "svc".into(), ..Default::default() };
        svc.spec.name = "web".into();
        st.services.insert("svc".into(), svc);
        let mut n = NodeRecord::default();
        n.node.description.hostname = "host-1".into();
        st.nodes.insert("n1".into(), n);
        st
    }

    /// A task of `web` in slot 2 on n1 using the secret as `db` and both configs.
    pub(crate) fn using(id: &str, state: TaskState) -> Task {
        let mut t = task(id, "n1", state, TaskState::Running);
        t.service_id = "svc".into();
        t.slot = 2;
        let mut c = skep_api::docker::ContainerSpec::default();
        c.secrets.push(SecretReference { file: file("db"), secret_id: "s1".into(), secret_name: "name-s1".into() });
        for id in ["c1", "t1"] {
            c.configs.push(SwarmConfigReference { file: file(id), config_id: id.into(), config_name: format!("name-{id}"), runtime: None });
        }
        t.spec.container_spec = Some(c);
        t
    }

    #[test]
    fn a_node_gets_the_dependencies_of_its_running_tasks_only_and_templates_per_task() {
        let mut st = state();
        let a = using("a", TaskState::Running);
        let b = using("b", TaskState::Assigned);
        let done = using("c", TaskState::Failed);
        let plain = task("d", "n1", TaskState::Running, TaskState::Running);
        for t in [&a, &b, &done, &plain] {
            st.tasks.insert(t.id.clone(), t.clone());
        }
        let keys = dependency_keys(&st, [&a, &b, &done, &plain]);
        let shown: Vec<(DependencyKind, &str, Option<&str>)> = keys.iter().map(|k| (k.kind, k.id.as_str(), k.task.as_deref())).collect();
        assert_eq!(
            shown,
            [
                (DependencyKind::Secret, "s1", None),
                (DependencyKind::Config, "c1", None),
                (DependencyKind::Config, "t1", Some("a")),
                (DependencyKind::Config, "t1", Some("b")),
            ]
        );
        // a set with only tasks that are over, or use nothing, needs nothing
        assert!(dependency_keys(&st, [&done, &plain]).is_empty());
        let rendered = content(&st, &DependencyKey { kind: DependencyKind::Config, id: "t1".into(), task: Some("a".into()) }).unwrap();
        assert_eq!(rendered.content, DependencyContent::Data(b"web.2@host-1:pw".to_vec()));
        // a global task (slot 0) renders its node's ID as the slot, as swarmkit does
        let mut g = using("g", TaskState::Assigned);
        g.slot = 0;
        st.tasks.insert("g".into(), g);
        let rendered = content(&st, &DependencyKey { kind: DependencyKind::Config, id: "t1".into(), task: Some("g".into()) }).unwrap();
        assert_eq!(rendered.content, DependencyContent::Data(b"web.n1@host-1:pw".to_vec()));
        let raw = content(&st, &DependencyKey { kind: DependencyKind::Secret, id: "s1".into(), task: None }).unwrap();
        assert_eq!(raw.content, DependencyContent::Data(b"pw".to_vec()));
        // a removed payload is not sent
        st.secrets.remove("s1");
        assert!(content(&st, &DependencyKey { kind: DependencyKind::Secret, id: "s1".into(), task: None }).is_none());
        assert!(!dependency_keys(&st, [&a]).iter().any(|k| k.kind == DependencyKind::Secret));
    }

    #[test]
    fn a_template_that_does_not_render_travels_as_the_error() {
        let mut st = state();
        st.configs.get_mut("t1").unwrap().spec.data = Some(b"{{secret \"nope\"}}".to_vec());
        let a = using("a", TaskState::Assigned);
        st.tasks.insert("a".into(), a);
        let d = content(&st, &DependencyKey { kind: DependencyKind::Config, id: "t1".into(), task: Some("a".into()) }).unwrap();
        assert_eq!(d.content, DependencyContent::Error("failed to expand templated config t1: secret target nope not found".into()));
    }
}
