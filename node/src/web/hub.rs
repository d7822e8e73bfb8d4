//! What the web view's stream carries: a compact view of the store (nodes, services, tasks: only what the page
//! shows), as one snapshot and then one delta line per store version that changes it.
//!
//! A manager's store versions are diffed here once, whatever the number of pages watching: the delta is encoded once
//! and the same bytes go to every page ([`WebHub::advance`]). A page that joins takes the latest version and a
//! receiver under one lock ([`WebHub::watch`]), so its snapshot and the deltas after it have no gap and no overlap.
//! The Raft leader is not in the store, so the feed also looks at it once a second (`super::follow_manager`).

use axum::body::Bytes;
use imbl::ordmap::DiffItem;
use serde::Serialize;
use skep_api::docker::health::HealthCheck;
use skep_api::docker::{Service, Task, TaskState};
use skep_manager::store::{ClusterState, NodeRecord, Table};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Delta lines a page may fall behind before its stream ends (it then reconnects and takes a fresh snapshot).
const LAG: usize = 1024;

/// The line that tells pages the view was replaced (the manager stopped or another started): reconnect.
pub(crate) const RESET: &[u8] = b"{\"t\":\"reset\"}\n";

/// One version as the page sees it: the store and the Raft leader (its Raft ID).
#[derive(Clone)]
pub struct View {
    /// A store version the manager applied.
    pub store: Arc<ClusterState>,
    /// The Raft ID of the leader the manager knows.
    pub leader: Option<u64>,
}

/// A node's column heading.
#[derive(Serialize, PartialEq, Debug)]
pub(crate) struct WebNode<'a> {
    id: &'a str,
    name: &'a str,
    role: &'static str,
    availability: &'static str,
    state: &'static str,
    leader: bool,
}

/// What a card needs of a service.
#[derive(Serialize, PartialEq, Debug)]
pub(crate) struct WebService<'a> {
    id: &'a str,
    name: &'a str,
    /// `com.docker.stack.namespace`, as `docker stack deploy` labels its services.
    stack: &'a str,
    /// Whether its tasks have a healthcheck (a task with one is `starting` until healthy, as Docker's).
    health: bool,
}

/// A task's card.
#[derive(Serialize, PartialEq, Debug)]
pub(crate) struct WebTask<'a> {
    id: &'a str,
    service: &'a str,
    node: &'a str,
    slot: u64,
    state: &'static str,
    desired: &'static str,
    err: &'a str,
}

/// The label `docker stack deploy` puts on a stack's objects.
const STACK_LABEL: &str = "com.docker.stack.namespace";

fn node(r: &NodeRecord, leader: Option<u64>) -> WebNode<'_> {
    let n = &r.node;
    WebNode {
        id: &n.id,
        name: n.name(),
        role: n.spec.role.as_str(),
        availability: n.spec.availability.as_str(),
        state: n.status.state.as_str(),
        leader: n.is_manager() && leader.is_some() && r.raft_id == leader,
    }
}

fn service(s: &Service) -> WebService<'_> {
    let check = s.spec.task_template.container_spec.as_ref().and_then(|c| c.healthcheck.as_ref());
    WebService {
        id: &s.id,
        name: &s.spec.name,
        stack: s.spec.labels.get(STACK_LABEL).map(String::as_str).unwrap_or(""),
        health: matches!(HealthCheck::from_spec(check), Ok(Some(_))),
    }
}

fn task(t: &Task) -> WebTask<'_> {
    let state: TaskState = t.status.state;
    WebTask {
        id: &t.id,
        service: &t.service_id,
        node: &t.node_id,
        slot: t.slot,
        state: state.as_str(),
        desired: t.desired_state.as_str(),
        err: &t.status.err,
    }
}

/// The whole view: `{"t":"snapshot","nodes":[…],"services":[…],"tasks":[…]}` and a newline.
#[derive(Serialize)]
struct Snapshot<'a> {
    t: &'static str,
    nodes: Vec<WebNode<'a>>,
    services: Vec<WebService<'a>>,
    tasks: Vec<WebTask<'a>>,
}

/// What changed: objects added or changed (whole), and the IDs of those removed.
#[derive(Serialize, Default)]
struct Delta<'a> {
    t: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<WebNode<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<WebService<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tasks: Vec<WebTask<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gone_nodes: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gone_services: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gone_tasks: Vec<&'a str>,
}

impl Delta<'_> {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.services.is_empty()
            && self.tasks.is_empty()
            && self.gone_nodes.is_empty()
            && self.gone_services.is_empty()
            && self.gone_tasks.is_empty()
    }
}

fn json_line<T: Serialize>(v: &T) -> Bytes {
    // these types hold strings and numbers only: encoding cannot fail
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// The snapshot line of `v`.
pub(crate) fn snapshot(v: &View) -> Bytes {
    let st = &v.store;
    json_line(&Snapshot {
        t: "snapshot",
        nodes: st.nodes.values().map(|r| node(r, v.leader)).collect(),
        services: st.services.values().map(service).collect(),
        tasks: st.tasks.values().map(task).collect(),
    })
}

/// The objects of `new` added or changed as the page sees them (`view`), and the IDs of those gone from `old`.
fn changes<'a, T: Clone + PartialEq, W: PartialEq>(
    old: &'a Table<String, T>,
    new: &'a Table<String, T>,
    view: fn(&'a T) -> W,
    changed: &mut Vec<W>,
    gone: &mut Vec<&'a str>,
) {
    for item in old.diff(new) {
        match item {
            DiffItem::Add(_, v) => changed.push(view(v)),
            DiffItem::Update { old: (_, o), new: (_, v) } if view(o) != view(v) => changed.push(view(v)),
            DiffItem::Update { .. } => {}
            DiffItem::Remove(id, _) => gone.push(id),
        }
    }
}

/// The delta line from `old` to `new`, `None` when nothing the page shows changed.
pub(crate) fn delta(old: &View, new: &View) -> Option<Bytes> {
    let mut d = Delta { t: "delta", ..Default::default() };
    // nodes are few and the leader is not in the store: compare them all
    for (id, r) in new.store.nodes.iter() {
        let now = node(r, new.leader);
        if old.store.nodes.get(id).map(|o| node(o, old.leader)).as_ref() != Some(&now) {
            d.nodes.push(now);
        }
    }
    d.gone_nodes = old.store.nodes.keys().filter(|id| !new.store.nodes.contains_key(*id)).map(String::as_str).collect();
    changes(&old.store.services, &new.store.services, service, &mut d.services, &mut d.gone_services);
    changes(&old.store.tasks, &new.store.tasks, task, &mut d.tasks, &mut d.gone_tasks);
    (!d.is_empty()).then(|| json_line(&d))
}

/// The latest view of this node's manager and the pages following it.
pub struct WebHub {
    inner: Mutex<HubState>,
    live: broadcast::Sender<Bytes>,
}

struct HubState {
    view: Option<View>,
    /// Bumped by every [`WebHub::replace`], so that a feed that ended does not clear its successor's view.
    generation: u64,
}

impl Default for WebHub {
    fn default() -> Self {
        WebHub { inner: Mutex::new(HubState { view: None, generation: 0 }), live: broadcast::channel(LAG).0 }
    }
}

impl WebHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new view (a manager started: `Some`; it stopped: `None`); pages following the old one are told to reconnect.
    /// Returns the view's generation, for [`WebHub::clear`].
    pub fn replace(&self, view: Option<View>) -> u64 {
        let mut s = self.lock();
        s.view = view;
        s.generation += 1;
        let _ = self.live.send(Bytes::from_static(RESET));
        s.generation
    }

    /// The manager of generation `generation` stopped: no view, unless another manager has replaced it since.
    pub fn clear(&self, generation: u64) {
        if self.lock().generation == generation {
            self.replace(None);
        }
    }

    /// The next version: its delta goes to every page.
    pub fn advance(&self, new: View) {
        let mut s = self.lock();
        // Nobody watching: keep the view, skip the delta (it compares every node, and a manager of a thousand nodes
        // spent 4 % of its CPU on deltas nobody read during a 10k-task update). A page that comes later starts from
        // this view (`watch`, under the same lock), so it misses nothing.
        if self.live.receiver_count() == 0 {
            s.view = Some(new);
            return;
        }
        if let Some(line) = s.view.as_ref().and_then(|old| delta(old, &new)) {
            let _ = self.live.send(line);
        }
        s.view = Some(new);
    }

    /// The latest view and the deltas after it; `None` when this node runs no manager.
    pub fn watch(&self) -> Option<(View, broadcast::Receiver<Bytes>)> {
        let s = self.lock();
        s.view.clone().map(|v| (v, self.live.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{Node, NodeRole};

    fn view(tasks: &[(&str, TaskState)], leader: Option<u64>) -> View {
        let mut st = ClusterState::default();
        let mut s = Service { id: "s1".into(), ..Default::default() };
        s.spec.name = "web".into();
        s.spec.labels.insert(STACK_LABEL.into(), "shop".into());
        st.services.insert("s1".into(), s);
        for (i, (id, state)) in tasks.iter().enumerate() {
            let mut t = Task { id: id.to_string(), service_id: "s1".into(), ..Default::default() };
            t.node_id = "n1".into();
            t.slot = i as u64 + 1;
            t.status.state = *state;
            t.desired_state = TaskState::Running;
            st.tasks.insert(id.to_string(), t);
        }
        let mut n = Node { id: "n1".into(), ..Default::default() };
        n.description.hostname = "h1".into();
        n.spec.role = NodeRole::Manager;
        st.nodes.insert("n1".into(), NodeRecord { node: n, raft_id: Some(1), cluster_addr: String::new() });
        View { store: Arc::new(st), leader }
    }

    fn json(b: &Bytes) -> serde_json::Value {
        assert_eq!(b.last(), Some(&b'\n'), "one line");
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn a_snapshot_holds_what_the_page_shows_and_nothing_more() {
        let v = json(&snapshot(&view(&[("t1", TaskState::Running)], Some(1))));
        assert_eq!(v["t"], "snapshot");
        assert_eq!(v["nodes"][0]["name"], "h1");
        assert_eq!((v["nodes"][0]["role"].as_str(), v["nodes"][0]["leader"].as_bool()), (Some("manager"), Some(true)));
        let s = &v["services"][0];
        assert_eq!((s["stack"].as_str(), s["health"].as_bool()), (Some("shop"), Some(false)));
        let t = &v["tasks"][0];
        assert_eq!((t["id"].as_str(), t["state"].as_str(), t["slot"].as_u64()), (Some("t1"), Some("running"), Some(1)));
        assert!(t.get("spec").is_none() && t.as_object().unwrap().len() == 7, "no spec (env, secrets' names): {t}");
    }

    #[test]
    fn a_delta_carries_what_changed_only() {
        let a = view(&[("t1", TaskState::Pending), ("t2", TaskState::Running)], Some(1));
        let b = view(&[("t1", TaskState::Running), ("t2", TaskState::Running), ("t3", TaskState::New)], Some(1));
        let d = json(&delta(&a, &b).unwrap());
        let ids: Vec<&str> = d["tasks"].as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).collect();
        assert_eq!(ids, ["t1", "t3"]);
        assert!(d.get("nodes").is_none() && d.get("services").is_none(), "{d}");
        let c = view(&[("t1", TaskState::Running)], None);
        let d = json(&delta(&b, &c).unwrap());
        assert_eq!(d["gone_tasks"], serde_json::json!(["t2", "t3"]));
        assert_eq!(d["nodes"][0]["leader"], false, "the leader is lost: the node's heading changes");
        assert!(delta(&c, &c.clone()).is_none());
    }

    #[test]
    fn a_page_gets_its_snapshot_then_every_delta_and_a_reset_when_the_manager_goes() {
        let hub = WebHub::default();
        assert!(hub.watch().is_none(), "no manager, no view");
        let first = hub.replace(Some(view(&[("t1", TaskState::Pending)], Some(1))));
        let (v, mut rx) = hub.watch().unwrap();
        assert_eq!(v.store.tasks.len(), 1);
        hub.advance(view(&[("t1", TaskState::Running)], Some(1)));
        hub.advance(view(&[("t1", TaskState::Running)], Some(1)));
        let d = json(&rx.try_recv().unwrap());
        assert_eq!(d["tasks"][0]["state"], "running");
        assert!(rx.try_recv().is_err(), "an unchanged version sends nothing");
        let second = hub.replace(Some(view(&[], Some(1))));
        assert_eq!(&rx.try_recv().unwrap()[..], RESET);
        hub.clear(first);
        assert!(hub.watch().is_some(), "a stale feed's end leaves its successor's view");
        hub.clear(second);
        assert!(hub.watch().is_none());
    }

    #[test]
    fn with_nobody_watching_the_view_still_moves_on_and_a_later_page_starts_from_it() {
        let hub = WebHub::default();
        hub.replace(Some(view(&[("t1", TaskState::Pending)], Some(1))));
        hub.advance(view(&[("t1", TaskState::Running)], Some(1)));
        let (v, mut rx) = hub.watch().unwrap();
        assert_eq!(v.store.tasks["t1"].status.state, TaskState::Running);
        hub.advance(view(&[("t1", TaskState::Complete)], Some(1)));
        assert_eq!(json(&rx.try_recv().unwrap())["tasks"][0]["state"], "complete");
    }
}
