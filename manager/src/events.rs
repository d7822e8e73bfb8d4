//! Events: what changed between two versions of the store, as Docker's `/events` reports it. Pure: two snapshots in,
//! events out. Every manager derives them from the versions it applies, so any manager can serve `/events`.
//!
//! Docker reports services, nodes, networks, secrets and configs (`create`, `update`, `remove`, with the name and,
//! for updates, what changed as `<field>.old`/`<field>.new` attributes). skep reports tasks too (`type=task`: a
//! task's state and desired state), which Docker's swarm keeps to itself. (The web view has a feed of its own,
//! with the leader and the stacks: `skep_node::web`.)
//! The maps are persistent (`imbl`), so the diff walks only what changed.

use crate::store::ClusterState;
use imbl::ordmap::DiffItem;
use skep_api::docker::{Actor, Event};
use std::collections::BTreeMap;

/// Event types.
pub const TYPES: &[&str] = &["service", "node", "task", "network", "secret", "config"];

/// The events between `old` and `new`, with `now_ns` (Unix nanoseconds) for removals, whose object no longer says
/// when it changed; other events carry the object's own `UpdatedAt`, so every manager reports the same time.
pub fn diff(old: &ClusterState, new: &ClusterState, now_ns: i64) -> Vec<Event> {
    let mut out = Vec::new();
    for d in old.services.diff(&new.services) {
        out.push(match d {
            DiffItem::Add(id, s) => event("service", "create", id, &s.spec.name, &s.updated_at, now_ns, []),
            DiffItem::Remove(id, s) => event("service", "remove", id, &s.spec.name, "", now_ns, []),
            DiffItem::Update { old: (_, o), new: (id, s) } => {
                let mut changed = Vec::new();
                change(&mut changed, "replicas", o.spec.mode.replicas().map(|r| r.to_string()), s.spec.mode.replicas().map(|r| r.to_string()));
                let image = |s: &skep_api::docker::Service| s.spec.task_template.container_spec.as_ref().map(|c| c.image.clone());
                change(&mut changed, "image", image(o), image(s));
                let update = |s: &skep_api::docker::Service| s.update_status.as_ref().map(|u| u.state.clone());
                change(&mut changed, "updatestate", update(o), update(s));
                if changed.is_empty() && o.spec == s.spec && o.update_status == s.update_status {
                    continue; // bookkeeping only (e.g. the service's status counts)
                }
                event("service", "update", id, &s.spec.name, &s.updated_at, now_ns, changed)
            }
        });
    }
    for d in old.nodes.diff(&new.nodes) {
        out.push(match d {
            DiffItem::Add(id, r) => event("node", "create", id, r.node.name(), &r.node.updated_at, now_ns, []),
            DiffItem::Remove(id, r) => event("node", "remove", id, r.node.name(), "", now_ns, []),
            DiffItem::Update { old: (_, o), new: (id, r) } => {
                let mut changed = Vec::new();
                change(&mut changed, "state", Some(o.node.status.state.to_string()), Some(r.node.status.state.to_string()));
                change(&mut changed, "availability", Some(o.node.spec.availability.to_string()), Some(r.node.spec.availability.to_string()));
                change(&mut changed, "role", Some(o.node.spec.role.to_string()), Some(r.node.spec.role.to_string()));
                if changed.is_empty() && o.node.spec == r.node.spec {
                    continue;
                }
                event("node", "update", id, r.node.name(), &r.node.updated_at, now_ns, changed)
            }
        });
    }
    for d in old.tasks.diff(&new.tasks) {
        let (action, t, ts) = match d {
            DiffItem::Add(_, t) => ("create", t, t.updated_at.as_str()),
            DiffItem::Remove(_, t) => ("remove", t, ""),
            DiffItem::Update { old: (_, o), new: (_, t) } => {
                if o.status.state == t.status.state && o.desired_state == t.desired_state && o.node_id == t.node_id {
                    continue;
                }
                ("update", t, t.updated_at.as_str())
            }
        };
        let mut e = event("task", action, &t.id, "", ts, now_ns, []);
        let name = new.services.get(&t.service_id).or_else(|| old.services.get(&t.service_id)).map(|s| s.spec.name.clone());
        let a = &mut e.actor.attributes;
        a.remove("name");
        if let Some(n) = name {
            a.insert("service.name".into(), n);
        }
        a.insert("service".into(), t.service_id.clone());
        a.insert("node".into(), t.node_id.clone());
        a.insert("slot".into(), t.slot.to_string());
        a.insert("state".into(), t.status.state.as_str().to_string());
        a.insert("desiredstate".into(), t.desired_state.as_str().to_string());
        out.push(e);
    }
    for d in old.networks.diff(&new.networks) {
        match d {
            DiffItem::Add(id, n) => out.push(event("network", "create", id, &n.network.name, "", now_ns, [])),
            DiffItem::Remove(id, n) => out.push(event("network", "remove", id, &n.network.name, "", now_ns, [])),
            // allocations only
            DiffItem::Update { .. } => {}
        }
    }
    for (typ, o, n) in [("secret", &old.secrets, &new.secrets), ("config", &old.configs, &new.configs)] {
        for d in o.diff(n) {
            out.push(match d {
                DiffItem::Add(id, s) => event(typ, "create", id, &s.spec.name, &s.updated_at, now_ns, []),
                DiffItem::Remove(id, s) => event(typ, "remove", id, &s.spec.name, "", now_ns, []),
                DiffItem::Update { new: (id, s), .. } => event(typ, "update", id, &s.spec.name, &s.updated_at, now_ns, []),
            });
        }
    }
    out
}

/// Records `<field>.old`/`<field>.new` when the value changed.
fn change(into: &mut Vec<(String, String)>, field: &str, old: Option<String>, new: Option<String>) {
    if old != new {
        into.push((format!("{field}.old"), old.unwrap_or_default()));
        into.push((format!("{field}.new"), new.unwrap_or_default()));
    }
}

fn event(
    typ: &str,
    action: &str,
    id: &str,
    name: &str,
    updated_at: &str,
    now_ns: i64,
    attributes: impl IntoIterator<Item = (String, String)>,
) -> Event {
    let t = skep_api::time::parse(updated_at)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(now_ns);
    let mut attrs: BTreeMap<String, String> = attributes.into_iter().collect();
    attrs.insert("name".into(), name.to_string());
    Event {
        typ: typ.into(),
        action: action.into(),
        actor: Actor { id: id.into(), attributes: attrs },
        scope: "swarm".into(),
        time: t / 1_000_000_000,
        time_nano: t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::{Node, NodeState, ReplicatedMode, Service, ServiceMode, Task, TaskState};

    fn service(id: &str, name: &str, replicas: u64) -> Service {
        let mut s = Service { id: id.into(), updated_at: "2026-12-06T10:00:00.5Z".into(), ..Default::default() };
        s.spec.name = name.into();
        s.spec.mode = ServiceMode { replicated: Some(ReplicatedMode { replicas: Some(replicas) }), ..Default::default() };
        s
    }

    fn kinds(ev: &[Event]) -> Vec<(String, String)> {
        ev.iter().map(|e| (e.typ.clone(), e.action.clone())).collect()
    }

    #[test]
    fn a_service_created_scaled_and_removed_gives_three_events_with_its_name_and_what_changed() {
        let a = ClusterState::default();
        let mut b = a.clone();
        b.services.insert("s1".into(), service("s1", "web", 2));
        let ev = diff(&a, &b, 7);
        assert_eq!(kinds(&ev), [("service".into(), "create".into())]);
        assert_eq!(ev[0].actor.attributes["name"], "web");
        assert_eq!((ev[0].time, ev[0].time_nano % 1_000_000_000), (1_796_551_200, 500_000_000), "the object's UpdatedAt");
        let mut c = b.clone();
        c.services.insert("s1".into(), service("s1", "web", 5));
        let ev = diff(&b, &c, 7);
        assert_eq!(kinds(&ev), [("service".into(), "update".into())]);
        assert_eq!((ev[0].actor.attributes["replicas.old"].as_str(), ev[0].actor.attributes["replicas.new"].as_str()), ("2", "5"));
        let mut d = c.clone();
        d.services.remove("s1");
        let ev = diff(&c, &d, 7);
        assert_eq!(kinds(&ev), [("service".into(), "remove".into())]);
        assert_eq!(ev[0].time_nano, 7, "a removal carries the manager's time");
        assert!(diff(&d, &d, 7).is_empty());
    }

    #[test]
    fn task_state_changes_and_node_state_changes_are_reported_and_bookkeeping_is_not() {
        let mut a = ClusterState::default();
        a.services.insert("s1".into(), service("s1", "web", 1));
        let t = Task { id: "t1".into(), service_id: "s1".into(), slot: 1, node_id: "n1".into(), ..Default::default() };
        a.tasks.insert("t1".into(), t.clone());
        let mut node = Node { id: "n1".into(), ..Default::default() };
        node.description.hostname = "h1".into();
        a.nodes.insert("n1".into(), NodeRecord { node: node.clone(), raft_id: None, cluster_addr: String::new() });
        let mut b = a.clone();
        let mut running = t.clone();
        running.status.state = TaskState::Running;
        b.tasks.insert("t1".into(), running);
        let mut down = node.clone();
        down.status.state = NodeState::Down;
        b.nodes.insert("n1".into(), NodeRecord { node: down, raft_id: None, cluster_addr: String::new() });
        let ev = diff(&a, &b, 0);
        assert_eq!(kinds(&ev), [("node".into(), "update".into()), ("task".into(), "update".into())]);
        assert_eq!(ev[0].actor.attributes["state.new"], "down");
        assert_eq!(ev[0].actor.attributes["name"], "h1");
        let task = &ev[1].actor.attributes;
        assert_eq!((task["state"].as_str(), task["service.name"].as_str(), task["node"].as_str()), ("running", "web", "n1"));
        // a change that is neither state, desired state nor node: nothing
        let mut c = b.clone();
        c.tasks.get_mut("t1").unwrap().status.message = "still running".into();
        assert!(diff(&b, &c, 0).is_empty());
    }
}
