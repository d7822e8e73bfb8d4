use super::*;
use crate::store::{Command, NodeRecord};
use skep_api::docker::{Availability, Node, NodeRole, NodeState, ReplicatedMode, ServiceMode, ServiceSpec, TaskStatus, UpdateConfig};

const S: i64 = SECOND_NS;
const T0: i64 = 1_800_000_000 * S;

struct World {
    state: ClusterState,
    index: u64,
    ids: u64,
}

impl World {
    fn new(nodes: &[(&str, &str, &str)]) -> World {
        let mut state = ClusterState::default();
        for (id, st, avail) in nodes {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.spec.role = NodeRole::Worker;
            n.spec.availability = avail.parse().unwrap();
            n.status.state = st.parse().unwrap();
            state.nodes.insert(id.to_string(), NodeRecord { node: n, ..Default::default() });
        }
        World { state, index: 1, ids: 0 }
    }

    fn apply(&mut self, op: Op, now: i64) {
        self.index += 1;
        let at = skep_api::time::format_unix_nanos(now as u128);
        self.state.apply(self.index, &Command { at, op }).unwrap();
    }

    fn service(&mut self, id: &str, mode: ServiceMode, policy: Option<RestartPolicy>) {
        let mut svc = Service { id: id.into(), ..Default::default() };
        svc.spec.name = id.into();
        svc.spec.mode = mode;
        svc.spec.task_template.container_spec = Some(Default::default());
        svc.spec.task_template.restart_policy = policy;
        self.apply(Op::CreateService { service: Box::new(svc) }, T0);
    }

    /// Run the orchestrator once at `now` and apply what it wants; returns the number of ops.
    fn step(&mut self, now: i64) -> usize {
        let mut ids = self.ids;
        let mut next = || {
            ids += 1;
            format!("t{ids:04}")
        };
        let ops = reconcile(&self.state, &mut Env { now_ns: now, new_id: &mut next });
        self.ids = ids;
        let n = ops.len();
        for op in ops {
            self.apply(op, now);
        }
        n
    }

    /// Pretend the scheduler and workers did their part: pending tasks go to `node` and run.
    fn run_all_on(&mut self, node: &str, now: i64) {
        let mut tasks: Vec<Task> = self.state.tasks.values().filter(|t| is_live(t) && !t.status.state.is_terminal()).cloned().collect();
        for t in &mut tasks {
            if t.node_id.is_empty() {
                t.node_id = node.into();
            }
            t.status.state = TaskState::Running;
            t.status.timestamp = skep_api::time::format_unix_nanos(now as u128);
        }
        self.apply(Op::PutTasks { tasks }, now);
    }

    fn set_status(&mut self, task: &str, state: TaskState, now: i64) {
        let st = TaskStatus { state, timestamp: skep_api::time::format_unix_nanos(now as u128), ..Default::default() };
        self.apply(Op::ReportTaskStatus { updates: vec![(task.into(), st)] }, now);
    }

    fn live(&self, svc: &str) -> Vec<&Task> {
        self.state.tasks.values().filter(|t| t.service_id == svc && is_live(t)).collect()
    }
}

fn replicated(n: u64) -> ServiceMode {
    ServiceMode { replicated: Some(ReplicatedMode { replicas: Some(n) }), ..Default::default() }
}

fn global() -> ServiceMode {
    ServiceMode { global: Some(serde_json::json!({})), ..Default::default() }
}

#[test]
fn a_replicated_service_gets_one_pending_task_per_slot_and_then_nothing_more() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(3), None);
    w.step(T0);
    let mut slots: Vec<u64> = w.live("web").iter().map(|t| t.slot).collect();
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3]);
    assert!(w.live("web").iter().all(|t| t.status.state == TaskState::Pending && t.status.message == "pending task scheduling"));
    assert_eq!(w.step(T0 + S), 0, "a converged service produces no ops");
}

#[test]
fn scaling_down_removes_tasks_from_the_most_loaded_node_first_and_up_refills_low_slots() {
    let mut w = World::new(&[("n1", "ready", "active"), ("n2", "ready", "active")]);
    w.service("web", replicated(4), None);
    w.step(T0);
    // slots 1..3 on n1, slot 4 on n2
    let mut tasks: Vec<Task> = w.state.tasks.values().cloned().collect();
    for t in &mut tasks {
        t.node_id = if t.slot == 4 { "n2".into() } else { "n1".into() };
        t.status.state = TaskState::Running;
    }
    w.apply(Op::PutTasks { tasks }, T0);
    let mut spec = w.state.services["web"].spec.clone();
    spec.mode = replicated(2);
    let v = w.state.services["web"].version.index;
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec.clone()), spec_changed: false }, T0);
    w.step(T0 + S);
    let live = w.live("web");
    assert_eq!(live.len(), 2);
    assert!(live.iter().any(|t| t.node_id == "n2"), "the lone task on n2 stays: {live:?}");
    let removed: Vec<_> = w.state.tasks.values().filter(|t| t.desired_state == TaskState::Remove).collect();
    assert_eq!(removed.len(), 2);
    assert!(removed.iter().all(|t| t.node_id == "n1"));
    spec.mode = replicated(4);
    let v = w.state.services["web"].version.index;
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: false }, T0);
    w.step(T0 + 2 * S);
    let mut slots: Vec<u64> = w.live("web").iter().map(|t| t.slot).collect();
    slots.sort();
    assert_eq!(slots.len(), 4);
    assert!(slots.windows(2).all(|p| p[0] != p[1]), "one live task per slot: {slots:?}");
}

#[test]
fn a_failed_task_is_replaced_in_its_slot_after_the_restart_delay_and_attempts_are_remembered() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    let policy = RestartPolicy { condition: "any".into(), delay: Some(2 * S), max_attempts: Some(2), window: None };
    w.service("web", replicated(1), Some(policy));
    w.step(T0);
    w.run_all_on("n1", T0);
    let first = w.live("web")[0].id.clone();
    w.set_status(&first, TaskState::Failed, T0 + S);
    assert_eq!(w.step(T0 + 2 * S), 0, "not before the delay");
    w.step(T0 + 3 * S + 1);
    let live = w.live("web");
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].id, first);
    assert_eq!(live[0].slot, 1);
    assert_eq!(w.state.tasks[&first].desired_state, TaskState::Shutdown);
    assert_eq!(w.state.restarts["web/1"].len(), 1);
    // second failure: second and last attempt
    w.run_all_on("n1", T0 + 4 * S);
    let second = w.live("web")[0].id.clone();
    w.set_status(&second, TaskState::Failed, T0 + 5 * S);
    w.step(T0 + 8 * S);
    let third = w.live("web")[0].id.clone();
    assert_ne!(third, second);
    w.run_all_on("n1", T0 + 9 * S);
    w.set_status(&third, TaskState::Failed, T0 + 10 * S);
    assert_eq!(w.step(T0 + 60 * S), 0, "max attempts reached: the failed task keeps its slot");
    assert_eq!(w.live("web")[0].id, third);
}

#[test]
fn restart_conditions_none_and_on_failure_are_honoured() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    let none = RestartPolicy { condition: "none".into(), delay: Some(0), ..Default::default() };
    let on_failure = RestartPolicy { condition: "on-failure".into(), delay: Some(0), ..Default::default() };
    w.service("a", replicated(1), Some(none));
    w.service("b", replicated(1), Some(on_failure));
    w.step(T0);
    w.run_all_on("n1", T0);
    let a = w.live("a")[0].id.clone();
    let b = w.live("b")[0].id.clone();
    w.set_status(&a, TaskState::Failed, T0 + S);
    w.set_status(&b, TaskState::Complete, T0 + S);
    assert_eq!(w.step(T0 + 10 * S), 0);
    w.set_status(&b, TaskState::Failed, T0 + 11 * S); // ignored: complete is later than failed? no: failed > complete
    w.step(T0 + 12 * S);
    assert_ne!(w.live("b")[0].id, b, "on-failure restarts a failed task");
    assert_eq!(w.live("a")[0].id, a);
}

#[test]
fn tasks_on_a_down_or_drained_node_are_replaced_without_counting_as_restarts() {
    let mut w = World::new(&[("n1", "ready", "active"), ("n2", "ready", "active")]);
    w.service("web", replicated(2), None);
    w.step(T0);
    w.run_all_on("n1", T0);
    let before: Vec<String> = w.live("web").iter().map(|t| t.id.clone()).collect();
    w.apply(Op::SetNodeStatus { id: "n1".into(), state: NodeState::Down, message: String::new(), addr: String::new() }, T0 + S);
    w.step(T0 + S);
    let live = w.live("web");
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|t| !before.contains(&t.id) && t.status.state == TaskState::Pending));
    assert!(w.state.restarts.is_empty());
    // the old tasks are told to shut down: when n1 comes back its agent stops them (no duplicates)
    assert!(before.iter().all(|id| w.state.tasks[id].desired_state == TaskState::Shutdown));
}

#[test]
fn a_global_service_runs_one_task_per_usable_node_including_new_ones_and_leaves_drained_ones() {
    let mut w = World::new(&[("n1", "ready", "active"), ("n2", "ready", "drain"), ("n3", "down", "active")]);
    w.service("agent", global(), None);
    w.step(T0);
    let live = w.live("agent");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].node_id, "n1");
    assert_eq!(live[0].slot, 0);
    assert_eq!(live[0].status.state, TaskState::Assigned);
    // a node joins
    let mut n = Node { id: "n4".into(), ..Default::default() };
    n.spec.availability = Availability::Active;
    n.status.state = NodeState::Ready;
    w.apply(Op::AddNode { node: Box::new(n), cluster_addr: String::new() }, T0 + S);
    w.step(T0 + S);
    assert_eq!(w.live("agent").len(), 2);
    // n1 drained: its task is shut down
    let spec = skep_api::docker::NodeSpec { availability: Availability::Drain, ..w.state.nodes["n1"].node.spec.clone() };
    let v = w.state.nodes["n1"].node.version.index;
    w.apply(Op::UpdateNodeSpec { id: "n1".into(), version: v, spec }, T0 + 2 * S);
    w.step(T0 + 2 * S);
    let live = w.live("agent");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].node_id, "n4");
}

#[test]
fn a_spec_change_replaces_tasks_one_at_a_time_and_reports_the_update() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(3), None);
    w.step(T0);
    w.run_all_on("n1", T0);
    let mut spec = w.state.services["web"].spec.clone();
    spec.task_template.force_update = 1;
    let v = w.state.services["web"].version.index;
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + S);
    w.step(T0 + S);
    let svc = &w.state.services["web"];
    assert_eq!(svc.update_status.as_ref().unwrap().state, "updating");
    let fresh = w.live("web").iter().filter(|t| is_up_to_date(t, svc)).count();
    assert_eq!(fresh, 1, "parallelism 1");
    for round in 2..6 {
        w.run_all_on("n1", T0 + round * S);
        w.step(T0 + round * S);
    }
    let svc = &w.state.services["web"];
    assert!(w.live("web").iter().all(|t| is_up_to_date(t, svc)));
    assert_eq!(svc.update_status.as_ref().unwrap().state, "updating", "the last task is monitored for 5 s");
    w.step(T0 + 10 * S);
    let svc = &w.state.services["web"];
    assert_eq!(svc.update_status.as_ref().unwrap().state, "completed");
    assert_eq!(svc.update_status.as_ref().unwrap().message, "update completed");
}

#[test]
fn the_reaper_keeps_the_history_limit_per_slot_and_clears_removed_services() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(1), Some(RestartPolicy { condition: "any".into(), delay: Some(0), ..Default::default() }));
    w.step(T0);
    for i in 0..8 {
        w.run_all_on("n1", T0 + i * 10 * S);
        let id = w.live("web")[0].id.clone();
        w.set_status(&id, TaskState::Failed, T0 + i * 10 * S + 1);
        w.step(T0 + i * 10 * S + 2 * S);
    }
    let dead = reap(&w.state, 5);
    let history = w.state.tasks.values().filter(|t| !is_live(t)).count();
    assert_eq!(history, 8);
    assert_eq!(dead.len(), 3);
    w.run_all_on("n1", T0 + 99 * S);
    w.apply(Op::RemoveService { id: "web".into() }, T0 + 100 * S);
    w.step(T0 + 100 * S);
    let live_id = w.state.tasks.values().find(|t| t.status.state == TaskState::Running).map(|t| t.id.clone()).unwrap();
    assert_eq!(w.state.tasks[&live_id].desired_state, TaskState::Remove);
    let dead = reap(&w.state, 5);
    assert!(!dead.contains(&live_id), "still running: reaped once it stops");
    w.set_status(&live_id, TaskState::Shutdown, T0 + 101 * S);
    assert_eq!(reap(&w.state, 5).len(), 9);
}

fn update_spec(w: &World, svc: &str, u: UpdateConfig) -> (ServiceSpec, u64) {
    let mut spec = w.state.services[svc].spec.clone();
    spec.update_config = Some(u);
    spec.task_template.force_update += 1;
    (spec, w.state.services[svc].version.index)
}

fn state_of(w: &World, svc: &str) -> String {
    w.state.services[svc].update_status.as_ref().map(|u| u.state.clone()).unwrap_or_default()
}

fn running(w: &World, svc: &str) -> usize {
    w.live(svc).iter().filter(|t| t.status.state == TaskState::Running).count()
}

#[test]
fn a_start_first_update_starts_the_new_task_before_it_stops_the_old_one() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(3), None);
    w.step(T0);
    w.run_all_on("n1", T0);
    let u = UpdateConfig { parallelism: 1, order: "start-first".into(), monitor: S, failure_action: "pause".into(), ..Default::default() };
    let (spec, v) = update_spec(&w, "web", u);
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + S);
    let mut t = T0 + S;
    for _ in 0..20 {
        w.step(t);
        assert!(running(&w, "web") >= 3, "never below the replica count");
        assert!(w.live("web").len() <= 4, "one new task at a time");
        t += S;
        w.run_all_on("n1", t);
    }
    w.step(t);
    let svc = &w.state.services["web"];
    assert_eq!(w.live("web").len(), 3);
    assert!(w.live("web").iter().all(|t| is_up_to_date(t, svc) && t.status.state == TaskState::Running));
    assert_eq!(state_of(&w, "web"), "completed");
}

#[test]
fn a_failing_update_rolls_back_to_the_previous_spec_and_leaves_the_old_tasks_running() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(3), Some(RestartPolicy { condition: "any".into(), delay: Some(0), ..Default::default() }));
    w.step(T0);
    w.run_all_on("n1", T0);
    let old: Vec<String> = w.live("web").iter().map(|t| t.id.clone()).collect();
    let old_template = w.state.services["web"].spec.task_template.clone();
    let u = UpdateConfig { parallelism: 1, failure_action: "rollback".into(), monitor: 10 * S, ..Default::default() };
    let (spec, v) = update_spec(&w, "web", u);
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + S);
    w.step(T0 + S);
    assert_eq!(state_of(&w, "web"), "updating");
    let new: Vec<String> = w.live("web").iter().filter(|t| !old.contains(&t.id)).map(|t| t.id.clone()).collect();
    assert_eq!(new.len(), 1);
    w.run_all_on("n1", T0 + 2 * S);
    // fails within the monitor period
    w.set_status(&new[0], TaskState::Failed, T0 + 3 * S);
    w.step(T0 + 3 * S);
    let svc = &w.state.services["web"];
    assert_eq!(state_of(&w, "web"), "rollback_started");
    assert_eq!(svc.update_status.as_ref().unwrap().message, format!("update rolled back due to failure or early termination of task {}", new[0]));
    assert_eq!(svc.spec.task_template, old_template);
    for i in 4..30 {
        w.step(T0 + i * S);
        w.run_all_on("n1", T0 + i * S);
    }
    assert_eq!(state_of(&w, "web"), "rollback_completed");
    let live = w.live("web");
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|t| t.spec == old_template && t.status.state == TaskState::Running));
    let kept = live.iter().filter(|t| old.contains(&t.id)).count();
    assert_eq!(kept, 2, "the slots the update never reached keep their tasks");
}

#[test]
fn a_failure_pauses_the_update_and_the_next_update_resumes_it() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(3), Some(RestartPolicy { condition: "none".into(), ..Default::default() }));
    w.step(T0);
    w.run_all_on("n1", T0);
    let u = UpdateConfig { parallelism: 1, failure_action: "pause".into(), monitor: 10 * S, ..Default::default() };
    let (spec, v) = update_spec(&w, "web", u);
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec.clone()), spec_changed: true }, T0 + S);
    w.step(T0 + S);
    let svc = w.state.services["web"].clone();
    let new = w.live("web").into_iter().find(|t| is_up_to_date(t, &svc)).unwrap().id.clone();
    w.set_status(&new, TaskState::Rejected, T0 + 2 * S);
    w.step(T0 + 2 * S);
    assert_eq!(state_of(&w, "web"), "paused");
    for i in 3..10 {
        w.run_all_on("n1", T0 + i * S);
        w.step(T0 + i * S);
    }
    let svc = w.state.services["web"].clone();
    assert_eq!(w.live("web").iter().filter(|t| is_up_to_date(t, &svc)).count(), 1, "nothing more while paused");
    // the same spec again: the update resumes
    let v = svc.version.index;
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: false }, T0 + 10 * S);
    w.step(T0 + 10 * S);
    assert_eq!(state_of(&w, "web"), "updating");
    for i in 11..40 {
        w.run_all_on("n1", T0 + i * S);
        w.step(T0 + i * S);
    }
    assert_eq!(state_of(&w, "web"), "completed");
}

#[test]
fn the_delay_spaces_the_slots_and_parallelism_zero_updates_all_at_once() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(3), None);
    w.step(T0);
    w.run_all_on("n1", T0);
    let u = UpdateConfig { parallelism: 1, delay: 10 * S, monitor: S, ..Default::default() };
    let (spec, v) = update_spec(&w, "web", u);
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + S);
    w.step(T0 + S);
    w.run_all_on("n1", T0 + 2 * S);
    let fresh = |w: &World| {
        let svc = w.state.services["web"].clone();
        w.live("web").iter().filter(|t| is_up_to_date(t, &svc)).count()
    };
    w.step(T0 + 5 * S);
    assert_eq!(fresh(&w), 1, "within the delay");
    w.step(T0 + 12 * S);
    assert_eq!(fresh(&w), 2, "after the delay");
    let u = UpdateConfig { parallelism: 0, monitor: S, ..Default::default() };
    let (spec, v) = update_spec(&w, "web", u);
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + 20 * S);
    w.step(T0 + 20 * S);
    assert_eq!(fresh(&w), 3);
}

#[test]
fn a_global_service_updates_node_by_node() {
    let mut w = World::new(&[("n1", "ready", "active"), ("n2", "ready", "active"), ("n3", "ready", "active")]);
    w.service("agent", global(), None);
    w.step(T0);
    w.run_all_on("n1", T0);
    let u = UpdateConfig { parallelism: 1, monitor: S, ..Default::default() };
    let (spec, v) = update_spec(&w, "agent", u);
    w.apply(Op::UpdateService { id: "agent".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + S);
    let mut done = Vec::new();
    for i in 1..20 {
        w.step(T0 + i * S);
        let svc = w.state.services["agent"].clone();
        let fresh = w.live("agent").iter().filter(|t| is_up_to_date(t, &svc)).count();
        let starting = w.live("agent").iter().filter(|t| t.status.state != TaskState::Running).count();
        assert!(starting <= 1, "one node at a time");
        done.push(fresh);
        w.run_all_on("n1", T0 + i * S);
    }
    assert_eq!(state_of(&w, "agent"), "completed");
    assert!(w.live("agent").len() == 3);
}

#[test]
fn a_new_leader_decides_the_same_from_the_store() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    w.service("web", replicated(4), None);
    w.step(T0);
    w.run_all_on("n1", T0);
    let u = UpdateConfig { parallelism: 2, monitor: S, ..Default::default() };
    let (spec, v) = update_spec(&w, "web", u);
    w.apply(Op::UpdateService { id: "web".into(), version: v, spec: Box::new(spec), spec_changed: true }, T0 + S);
    w.step(T0 + S);
    w.run_all_on("n1", T0 + 2 * S);
    // what a new leader reads back from a snapshot
    let copy: ClusterState = serde_json::from_str(&serde_json::to_string(&w.state).unwrap()).unwrap();
    let mut ids = 0;
    let mut next = || {
        ids += 1;
        format!("x{ids}")
    };
    let a = reconcile(&w.state, &mut Env { now_ns: T0 + 3 * S, new_id: &mut next });
    let mut ids2 = 0;
    let mut next2 = || {
        ids2 += 1;
        format!("x{ids2}")
    };
    let b = reconcile(&copy, &mut Env { now_ns: T0 + 3 * S, new_id: &mut next2 });
    assert!(!a.is_empty(), "the update goes on");
    assert_eq!(a, b);
}

#[test]
fn a_replicated_job_runs_to_its_completions_max_concurrent_at_a_time_and_again_after_an_update() {
    let mut w = World::new(&[("n1", "ready", "active")]);
    let mode = ServiceMode {
        replicated_job: Some(skep_api::docker::ReplicatedJob { max_concurrent: Some(2), total_completions: Some(5) }),
        ..Default::default()
    };
    w.service("job", mode, None);
    let run = w.state.services["job"].job_status.clone().unwrap().job_iteration;
    let mut t = T0;
    for _ in 0..10 {
        w.step(t);
        let live: Vec<String> = w.live("job").iter().map(|t| t.id.clone()).collect();
        assert!(live.len() <= 2, "MaxConcurrent: {live:?}");
        w.run_all_on("n1", t);
        for id in &live {
            w.set_status(id, TaskState::Complete, t + S / 2);
        }
        t += S;
    }
    assert_eq!(w.step(t), 0, "done: nothing more");
    let done: Vec<&Task> = w.state.tasks.values().filter(|t| t.status.state == TaskState::Complete).collect();
    assert_eq!(done.len(), 5);
    let mut slots: Vec<u64> = done.iter().map(|t| t.slot).collect();
    slots.sort();
    assert_eq!(slots, [0, 1, 2, 3, 4], "0-based, as swarmkit and the docker CLI count them");
    assert!(done.iter().all(|t| t.desired_state == TaskState::Complete && t.job_iteration == Some(run)));
    // an update (--force) runs it again
    let mut spec = w.state.services["job"].spec.clone();
    spec.task_template.force_update = 1;
    let v = w.state.services["job"].version.index;
    w.apply(Op::UpdateService { id: "job".into(), version: v, spec: Box::new(spec), spec_changed: true }, t);
    let run2 = w.state.services["job"].job_status.clone().unwrap().job_iteration;
    assert_ne!(run, run2);
    w.step(t + S);
    let live = w.live("job");
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|t| t.job_iteration == Some(run2)));
}

#[test]
fn a_global_job_runs_once_per_node_and_a_failed_task_is_retried() {
    let mut w = World::new(&[("n1", "ready", "active"), ("n2", "ready", "active")]);
    let mode = ServiceMode { global_job: Some(serde_json::json!({})), ..Default::default() };
    w.service("gj", mode, Some(RestartPolicy { condition: "on-failure".into(), delay: Some(0), ..Default::default() }));
    w.step(T0);
    let live: Vec<Task> = w.live("gj").into_iter().cloned().collect();
    assert_eq!(live.len(), 2);
    w.run_all_on("n1", T0);
    w.set_status(&live[0].id, TaskState::Complete, T0 + S);
    w.set_status(&live[1].id, TaskState::Failed, T0 + S);
    w.step(T0 + 2 * S);
    let again = w.live("gj");
    assert_eq!(again.len(), 1, "the failed one is retried, the completed one is done");
    assert_eq!(again[0].node_id, live[1].node_id);
}
