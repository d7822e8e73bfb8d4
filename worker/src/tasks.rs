//! The task manager: runs this node's assignments through an engine and reports what happens.
//!
//! It long-polls the leader for the node's assignment set, and for each task moves it forward one way only:
//! accepted → preparing → starting → running → complete/failed, or shutdown when the managers say stop. What it runs
//! is persisted (`<dir>/tasks.json`), so after an agent restart it adopts the tasks still running instead of starting
//! duplicates. A node cut off from the managers keeps its tasks running; when it gets through again, tasks that were
//! replaced meanwhile arrive with desired state shutdown and are stopped.
//!
//! The secrets and configs of the node's tasks arrive with the assignments and stay in memory (never in
//! `tasks.json`); a task that uses some gets them as files on a tmpfs for as long as it runs (see [`crate::secrets`]).

use crate::engine::{Engine, EngineError, Exit, Handle};
use crate::network::NetAgent;
use crate::secrets::{self, Dependencies};
use serde::{Deserialize, Serialize};
use skep_api::docker::health::Health;
use skep_api::docker::{ContainerStatus, Task, TaskState, TaskStatus};
use skep_api::netview::NetworkView;
use skep_api::wire::{Request, Response};
use skep_transport::{LeaderCaller, Policy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

/// What the node keeps about one task.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Local {
    task: Task,
    handle: Option<Handle>,
    /// Last state this node observed (reported or not yet).
    state: TaskState,
}

/// The task table: what the node runs, by task ID.
type Table = Mutex<BTreeMap<String, Local>>;

/// Shared with the per-task runners.
struct Shared<E> {
    engine: E,
    table: Arc<Table>,
    file: PathBuf,
    reports: mpsc::UnboundedSender<(String, TaskStatus)>,
    /// Desired state per task, updated from assignments; runners watch it to know when to stop.
    desired: Mutex<BTreeMap<String, watch::Sender<TaskState>>>,
    /// Serialises writes of `tasks.json` (runners save concurrently; they share the temporary file).
    saving: Mutex<()>,
    /// Changes made to the table that must be written (a counter), and how many of them the last write held.
    changes: AtomicU64,
    saved: AtomicU64,
    /// Networking (sandboxes, overlays, DNS), when the node has it.
    net: Option<Arc<NetAgent>>,
    /// The secrets and configs the managers sent for the node's tasks (in memory only).
    deps: Mutex<Dependencies>,
    /// Where the daemon's metrics look in.
    watch: TaskWatch,
}

/// A window onto the running task manager for the daemon's metrics: the states of its tasks, read when asked, and
/// how long its engine takes to start one. Cheap to clone; a node keeps one for the task managers it starts (one at a
/// time: each one shows its own table from its start on, and a stopped one's runners no longer show).
#[derive(Clone, Debug)]
pub struct TaskWatch {
    /// The current task manager's table.
    table: Arc<Mutex<Weak<Table>>>,
    /// Seconds from the engine's start call to its return with the task started (health checks not included).
    pub start_duration: Histogram,
}

impl Default for TaskWatch {
    fn default() -> TaskWatch {
        // 1 ms to ~65 s: a host program starts in milliseconds, a container in a second or more
        TaskWatch { table: Default::default(), start_duration: Histogram::new(exponential_buckets(0.001, 2.0, 17)) }
    }
}

impl TaskWatch {
    /// How many of the node's tasks are in each state (as last observed here), or `None` when no task manager runs.
    pub fn states(&self) -> Option<BTreeMap<TaskState, usize>> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner()).upgrade()?;
        let mut n = BTreeMap::new();
        for l in table.lock().unwrap_or_else(|p| p.into_inner()).values() {
            *n.entry(l.state).or_default() += 1;
        }
        Some(n)
    }

    fn show(&self, table: &Arc<Table>) {
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(table);
    }
}

fn now() -> String {
    skep_api::time::format(SystemTime::now())
}

fn status(state: TaskState, message: &str) -> TaskStatus {
    TaskStatus { timestamp: now(), state, message: message.into(), ..Default::default() }
}

impl<E: Engine> Shared<E> {
    /// Write the table; concurrent callers share one write (group commit): a caller whose change is already in a
    /// write that finished while it waited for its turn returns at once.
    fn save(&self) {
        // the caller's change is in the table before it takes a ticket, so a write that read the counter at or past
        // the ticket (and cloned the table after) holds it
        let ticket = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        if self.saved.load(Ordering::SeqCst) >= ticket {
            return;
        }
        let upto = self.changes.load(Ordering::SeqCst);
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let body = match serde_json::to_vec(&table) {
            Ok(b) => b,
            Err(e) => return tracing::warn!("encoding the task table: {e}"),
        };
        match crate::private_file::write(&self.file, &body) {
            Ok(()) => self.saved.store(upto, Ordering::SeqCst),
            Err(e) => tracing::warn!("saving {}: {e}", self.file.display()),
        }
    }

    /// Record and report a forward move; returns false when the task is already at or past `st.state`.
    ///
    /// Only what a restarted agent acts on is written before the report: a new handle (the task is adopted through
    /// it) and the end of a task. The steps in between (accepted, preparing, starting) would change nothing after a
    /// restart, since a task without a handle is reported as never started; writing the whole table at each of them
    /// was most of a busy worker's CPU.
    fn advance(&self, id: &str, st: TaskStatus, handle: Option<Handle>) -> bool {
        let durable = handle.is_some() || st.state.is_terminal();
        {
            let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
            let Some(l) = t.get_mut(id) else { return false };
            if st.state < l.state || (st.state == l.state && st.state != TaskState::Running) {
                return false;
            }
            l.state = st.state;
            if handle.is_some() {
                l.handle = handle;
            }
        }
        if durable {
            self.save();
        }
        let _ = self.reports.send((id.to_string(), st));
        true
    }

    /// Record a started task's handle (durably: a restarted agent adopts the task through it), without a report.
    fn record_handle(&self, id: &str, h: Handle) {
        if let Some(l) = self.table.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            l.handle = Some(h);
        }
        self.save();
    }

    fn desired(&self, id: &str) -> watch::Receiver<TaskState> {
        let mut d = self.desired.lock().unwrap_or_else(|p| p.into_inner());
        d.entry(id.to_string()).or_insert_with(|| watch::channel(TaskState::Running).0).subscribe()
    }
}

/// Longest wait for an assignments long poll: the leader answers within 4 s even when nothing changed.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(15);

/// Task manager settings.
pub struct TaskManagerConfig {
    /// Where `tasks.json` lives.
    pub dir: PathBuf,
    /// How the leader is reached (the agent keeps its manager list current).
    pub leader: LeaderCaller,
    /// The node's networking agent (`None`: tasks with networks are rejected, views are ignored).
    pub net: Option<Arc<NetAgent>>,
    /// Where the daemon's metrics see the task manager.
    pub watch: TaskWatch,
}

/// Run the task manager until `stop` turns true.
pub async fn run<E: Engine>(engine: E, cfg: TaskManagerConfig, mut stop: watch::Receiver<bool>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let file = cfg.dir.join("tasks.json");
    let table: BTreeMap<String, Local> = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| tracing::warn!("{}: {e}", file.display())).ok())
        .unwrap_or_default();
    let table = Arc::new(Mutex::new(table));
    cfg.watch.show(&table);
    let shared = Arc::new(Shared {
        engine,
        table,
        file,
        reports: tx,
        desired: Mutex::new(BTreeMap::new()),
        saving: Mutex::new(()),
        changes: AtomicU64::new(0),
        saved: AtomicU64::new(0),
        net: cfg.net.clone(),
        deps: Mutex::new(Dependencies::new()),
        watch: cfg.watch.clone(),
    });
    // network views are applied by their own loop, latest first, so a slow kernel update never delays assignments
    let (views, mut view_rx) = watch::channel(None::<NetworkView>);
    if let Some(net) = cfg.net.clone() {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    c = view_rx.changed() => if c.is_err() { return },
                    _ = stop.changed() => return,
                }
                let v = view_rx.borrow_and_update().clone();
                if let Some(v) = v {
                    net.apply_view(v).await;
                }
            }
        });
    }
    tokio::spawn(report_loop(cfg.leader.clone(), rx, stop.clone()));
    adopt(&shared).await;
    let mut set = AssignedSet::default();
    loop {
        if *stop.borrow() {
            return;
        }
        let req = Request::Assignments { known: set.known };
        let reply = tokio::select! {
            r = cfg.leader.call(&req, Policy::one_round(LONG_POLL_TIMEOUT)) => r.ok(),
            _ = stop.changed() => return,
        };
        match reply.map(|r| set.take(r)) {
            Some(Taken::Set { tasks, network }) => {
                views.send_replace(Some(network));
                // before the tasks: a task that starts finds what it uses
                *shared.deps.lock().unwrap_or_else(|p| p.into_inner()) = set.deps.clone();
                if let Some(tasks) = tasks {
                    apply_assignments(&shared, tasks);
                }
            }
            Some(Taken::Mismatch) => tracing::debug!("assignment changes did not apply to this node's set; asking for all"),
            Some(Taken::Other) | None => {
                // no leader reachable: keep everything running and try again soon
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// The node's copy of its assignment set, kept whole from the leader's whole sets and changes.
#[derive(Default)]
struct AssignedSet {
    /// Digest to send as `known` (0: ask for the whole set).
    known: u64,
    tasks: BTreeMap<String, Task>,
    /// The secrets and configs of the set.
    deps: Dependencies,
}

/// What an answer to the long poll came to.
#[derive(Debug)]
enum Taken {
    /// The set to act on (`None`: unchanged, nothing to do) and the network view.
    Set { tasks: Option<Vec<Task>>, network: NetworkView },
    /// Changes that do not apply to the set held; the next poll asks for the whole set.
    Mismatch,
    /// Not an assignments answer (an error, or not the leader).
    Other,
}

impl AssignedSet {
    fn take(&mut self, reply: Response) -> Taken {
        match reply {
            Response::Assignments { digest, tasks, network, dependencies } => {
                self.known = digest;
                self.tasks = tasks.iter().map(|t| (t.id.clone(), t.clone())).collect();
                self.deps.clear();
                secrets::apply(&mut self.deps, dependencies, &[]);
                Taken::Set { tasks: Some(tasks), network }
            }
            Response::AssignmentChanges {
                digest,
                base,
                set_digest,
                updated,
                removed,
                network,
                dependencies,
                removed_dependencies,
                dependency_digest,
            } => {
                if base != self.known {
                    self.known = 0;
                    return Taken::Mismatch;
                }
                let changed = !updated.is_empty() || !removed.is_empty();
                for id in &removed {
                    self.tasks.remove(id);
                }
                for t in updated {
                    self.tasks.insert(t.id.clone(), t);
                }
                secrets::apply(&mut self.deps, dependencies, &removed_dependencies);
                let got = skep_api::wire::assignment_digest(self.tasks.values().map(|t| (t.id.as_str(), t.desired_state)));
                if got != set_digest || skep_api::wire::dependency_digest(self.deps.keys()) != dependency_digest {
                    self.known = 0;
                    return Taken::Mismatch;
                }
                self.known = digest;
                Taken::Set { tasks: changed.then(|| self.tasks.values().cloned().collect()), network }
            }
            _ => Taken::Other,
        }
    }
}

/// After a restart: find out which recorded tasks still run, re-attach waiters to them, report the others as ended.
async fn adopt<E: Engine>(shared: &Arc<Shared<E>>) {
    let entries: Vec<Local> = shared.table.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    let handles: Vec<Handle> = entries.iter().filter_map(|l| l.handle.clone()).collect();
    let alive = shared.engine.adopt(&handles).await;
    for (h, running) in alive {
        let id = h.task_id.clone();
        if running {
            tracing::info!(task = %id, "adopted a running task");
            if let Some(net) = &shared.net {
                let task = entries.iter().find(|l| l.task.id == id).map(|l| l.task.clone());
                if let Some(task) = task {
                    net.adopt_task(&task).await;
                }
            }
            let s = shared.clone();
            tokio::spawn(async move { supervise(s, id, Some(h)).await });
        } else {
            let exit = shared.engine.wait(&h).await.ok();
            finish(shared, &id, exit, Ending::Exited);
        }
    }
    // tasks recorded without a handle never started: they are over
    for l in entries.iter().filter(|l| l.handle.is_none() && !l.state.is_terminal()) {
        shared.advance(&l.task.id, status(TaskState::Rejected, "agent restarted before the task started"), None);
    }
}

fn apply_assignments<E: Engine>(shared: &Arc<Shared<E>>, tasks: Vec<Task>) {
    let assigned: BTreeMap<String, Task> = tasks.into_iter().map(|t| (t.id.clone(), t)).collect();
    // desired states
    {
        let mut d = shared.desired.lock().unwrap_or_else(|p| p.into_inner());
        for t in assigned.values() {
            let tx = d.entry(t.id.clone()).or_insert_with(|| watch::channel(t.desired_state).0);
            tx.send_if_modified(|cur| {
                if *cur != t.desired_state {
                    *cur = t.desired_state;
                    true
                } else {
                    false
                }
            });
        }
    }
    let mut start = Vec::new();
    let mut forget = Vec::new();
    {
        let mut table = shared.table.lock().unwrap_or_else(|p| p.into_inner());
        for t in assigned.values() {
            if table.contains_key(&t.id) {
                continue;
            }
            if t.desired_state <= TaskState::Running && !t.status.state.is_terminal() {
                table.insert(t.id.clone(), Local { task: t.clone(), handle: None, state: TaskState::Assigned });
                start.push(t.id.clone());
            } else if !t.status.state.is_terminal() {
                // told to stop a task this node never ran (e.g. replaced while it was cut off before starting it)
                table.insert(t.id.clone(), Local { task: t.clone(), handle: None, state: TaskState::Assigned });
                forget.push(t.id.clone());
            }
        }
        // tasks the managers no longer list: stop them (their runner sees desired=remove) and forget them
        for (id, l) in table.iter() {
            if !assigned.contains_key(id) && !l.state.is_terminal() {
                let mut d = shared.desired.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(tx) = d.get_mut(id) {
                    let _ = tx.send(TaskState::Remove);
                }
            }
        }
        table.retain(|id, l| assigned.contains_key(id) || !l.state.is_terminal());
    }
    shared.save();
    for id in forget {
        shared.advance(&id, status(TaskState::Shutdown, "shutdown before it started"), None);
    }
    for id in start {
        let s = shared.clone();
        tokio::spawn(async move { supervise(s, id, None).await });
    }
}

/// Run one task to its end: prepare and start it (unless adopted), wait for it or for the order to stop.
async fn supervise<E: Engine>(shared: Arc<Shared<E>>, id: String, adopted: Option<Handle>) {
    let Some(task) = shared.table.lock().unwrap_or_else(|p| p.into_inner()).get(&id).map(|l| l.task.clone()) else {
        return;
    };
    let mut desired = shared.desired(&id);
    let handle = match adopted {
        Some(h) => h,
        None => {
            shared.advance(&id, status(TaskState::Accepted, "accepted"), None);
            shared.advance(&id, status(TaskState::Preparing, "preparing"), None);
            if let Err(e) = give_files(&shared, &task) {
                reject(&shared, &id, e);
                return;
            }
            if let Err(e) = shared.engine.prepare(&task).await {
                reject(&shared, &id, e);
                return;
            }
            // the network sandbox: the engine starts the task in it, or it is plumbed through the PID after start
            let mut plumb_after_start = false;
            if NetAgent::needs_sandbox(&task) {
                let Some(net) = &shared.net else {
                    reject(&shared, &id, EngineError::Invalid("this node has no networking agent".into()));
                    return;
                };
                match net.prepare_task(&task).await {
                    Ok(Some((ns, resolv))) => plumb_after_start = !shared.engine.use_netns(&id, &ns, &resolv),
                    Ok(None) => {}
                    Err(e) => {
                        net.release_task(&id).await;
                        reject(&shared, &id, EngineError::Invalid(e.to_string()));
                        let _ = shared.engine.remove(&id).await;
                        return;
                    }
                }
            }
            shared.advance(&id, status(TaskState::Ready, "prepared"), None);
            if *desired.borrow() > TaskState::Running {
                shared.advance(&id, status(TaskState::Shutdown, "shutdown before it started"), None);
                release(&shared, &task).await;
                let _ = shared.engine.remove(&id).await;
                return;
            }
            shared.advance(&id, status(TaskState::Starting, "starting"), None);
            let began = tokio::time::Instant::now();
            match shared.engine.start(&task).await {
                Ok(h) => {
                    shared.watch.start_duration.observe(began.elapsed().as_secs_f64());
                    if plumb_after_start {
                        if let Some(net) = &shared.net {
                            if let Err(e) = net.attach_pid(&task, h.pid).await {
                                tracing::warn!(task = %id, "plumbing the task's network namespace: {e}");
                            }
                        }
                    }
                    // running once healthy, or at once when it has no check (the loop below)
                    shared.record_handle(&id, h.clone());
                    h
                }
                Err(e) => {
                    release(&shared, &task).await;
                    reject(&shared, &id, e);
                    return;
                }
            }
        }
    };
    // wait for the exit, for the managers to want it stopped, or for its health to decide (Docker's executor: a
    // task with a healthcheck is STARTING until healthy, and fails once unhealthy)
    let wait = shared.engine.wait(&handle);
    tokio::pin!(wait);
    let (health_tx, mut health) = watch::channel(Health::Starting);
    let checks = shared.engine.watch_health(&handle, &task, health_tx);
    tokio::pin!(checks);
    let mut watching = true;
    let ending;
    let exit = loop {
        let unhealthy = *health.borrow() == Health::Unhealthy;
        if *desired.borrow() > TaskState::Running || unhealthy {
            if !task.networks_attachments.is_empty() && !unhealthy {
                // the managers took the task out of every node's backends when they changed its desired state;
                // give the nodes a moment to apply that before the task stops answering
                tokio::time::sleep(DRAIN).await;
            }
            if let Err(e) = shared.engine.stop(&handle, &task).await {
                tracing::warn!(task = %id, "stopping: {e}");
            }
            ending = if unhealthy { Ending::Unhealthy } else { Ending::Stopped };
            break (&mut wait).await.ok();
        }
        tokio::select! {
            r = &mut wait => { ending = Ending::Exited; break r.ok(); }
            c = desired.changed() => { if c.is_err() { ending = Ending::Exited; break (&mut wait).await.ok(); } }
            checked = &mut checks, if watching => {
                watching = false;
                if !checked {
                    report_running(&shared, &id, &handle);
                }
            }
            c = health.changed(), if watching => {
                if c.is_ok() && *health.borrow_and_update() == Health::Healthy {
                    report_running(&shared, &id, &handle);
                }
            }
        }
    };
    finish(&shared, &id, exit, ending);
    release(&shared, &task).await;
    if *desired.borrow() >= TaskState::Shutdown {
        let _ = shared.engine.remove(&id).await;
    }
}

/// How long a networked task keeps answering after the managers took it out of the backends.
const DRAIN: Duration = Duration::from_millis(250);

/// Give back what a task that ended held on the node: its network sandbox (its files are the engine's).
async fn release<E: Engine>(shared: &Arc<Shared<E>>, task: &Task) {
    if let (Some(net), true) = (&shared.net, NetAgent::needs_sandbox(task)) {
        net.release_task(&task.id).await;
    }
}

/// The task's secrets and configs, handed to its engine as files (before `prepare`: Docker's create needs them).
fn give_files<E: Engine>(shared: &Arc<Shared<E>>, task: &Task) -> Result<(), EngineError> {
    if !secrets::uses_files(task) {
        return Ok(());
    }
    let files = {
        let held = shared.deps.lock().unwrap_or_else(|p| p.into_inner());
        secrets::task_files(task, &held).map_err(EngineError::Invalid)?
    };
    shared.engine.use_files(&task.id, files)
}

fn reject<E: Engine>(shared: &Arc<Shared<E>>, id: &str, e: EngineError) {
    let mut st = status(TaskState::Rejected, "preparing failed");
    st.err = e.to_string();
    shared.advance(id, st, None);
}

/// Reports a started task as running (once: an adopted task may be running already).
fn report_running<E: Engine>(shared: &Arc<Shared<E>>, id: &str, h: &Handle) {
    let before = shared.table.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|l| l.state);
    if before.is_some_and(|s| s < TaskState::Running) {
        let mut st = status(TaskState::Running, "started");
        st.container_status = Some(ContainerStatus { container_id: h.id.clone(), pid: h.pid, exit_code: 0 });
        shared.advance(id, st, None);
    }
}

/// Why a started task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Its program exited (or vanished).
    Exited,
    /// The managers wanted it stopped.
    Stopped,
    /// Its healthcheck failed `Retries` times: stopped and failed, as Docker's executor fails it.
    Unhealthy,
}

/// Docker's error for a task whose healthcheck failed (moby `daemon/cluster/executor/container/errors.go`).
pub const UNHEALTHY: &str = "dockerexec: unhealthy container";

fn finish<E: Engine>(shared: &Arc<Shared<E>>, id: &str, exit: Option<Exit>, ending: Ending) {
    let (code, sig, oom) = match exit {
        Some(Exit::Code(c)) => (c, None, None),
        Some(Exit::Signal(s)) => (128 + s as i64, Some(s), None),
        Some(Exit::OomKilled { code, memory_limit }) => (code, None, Some(memory_limit)),
        None => (-1, None, None),
    };
    let mut st = if ending == Ending::Stopped {
        status(TaskState::Shutdown, "shutdown")
    } else if ending == Ending::Unhealthy {
        let mut s = status(TaskState::Failed, "unhealthy container");
        s.err = UNHEALTHY.into();
        s
    } else if code == 0 {
        status(TaskState::Complete, "finished")
    } else {
        let mut s = status(TaskState::Failed, "task: non-zero exit");
        s.err = match (sig, oom) {
            (_, Some(0)) => format!("task: non-zero exit ({code}): OOM killed"),
            (_, Some(limit)) => {
                format!("task: non-zero exit ({code}): OOM killed (memory limit {})", crate::engine::spec::human_bytes(limit))
            }
            (Some(sig), None) => format!("task: killed by signal {sig}"),
            (None, None) if code < 0 => "task: exit status unknown".into(),
            (None, None) => format!("task: non-zero exit ({code})"),
        };
        s
    };
    let (cid, pid) = shared
        .table
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .and_then(|l| l.handle.clone())
        .map(|h| (h.id, h.pid))
        .unwrap_or_default();
    st.container_status = Some(ContainerStatus { container_id: cid, pid, exit_code: code });
    shared.advance(id, st, None);
}

/// Send status reports to the leader, batched; keep the newest per task until a leader took them.
async fn report_loop(
    leader: LeaderCaller,
    mut rx: mpsc::UnboundedReceiver<(String, TaskStatus)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending: BTreeMap<String, TaskStatus> = BTreeMap::new();
    loop {
        if pending.is_empty() {
            tokio::select! {
                m = rx.recv() => match m { Some((id, st)) => { pending.insert(id, st); } None => return },
                _ = stop.changed() => return,
            }
        }
        // gather what else is ready (20 ms)
        let until = tokio::time::Instant::now() + Duration::from_millis(20);
        while let Ok(Some((id, st))) = tokio::time::timeout_at(until, rx.recv()).await {
            pending.insert(id, st);
        }
        let updates: Vec<(String, TaskStatus)> = pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let req = Request::TaskStatus { updates };
        match leader.call(&req, Policy::one_round(Duration::from_secs(5))).await {
            Ok(Response::Ok) => pending.clear(),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use std::collections::BTreeSet;

    /// An engine that runs nothing: tasks "run" until stopped; a program named `missing` is not found.
    #[derive(Default, Clone)]
    struct Fake {
        running: Arc<Mutex<BTreeSet<String>>>,
        started: Arc<Mutex<Vec<String>>>,
    }

    impl Engine for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
            match task.spec.container_spec.as_ref().map(|c| c.image.as_str()) {
                Some("missing") => Err(EngineError::NotFound("exec: \"missing\": executable file not found in $PATH".into())),
                _ => Ok(()),
            }
        }
        async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
            self.running.lock().unwrap().insert(task.id.clone());
            self.started.lock().unwrap().push(task.id.clone());
            Ok(Handle { task_id: task.id.clone(), engine: "fake".into(), id: format!("fake-{}", task.id), pid: 1 })
        }
        async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
            while self.running.lock().unwrap().contains(&h.task_id) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(Exit::Code(0))
        }
        async fn stop(&self, h: &Handle, _task: &Task) -> Result<(), EngineError> {
            self.running.lock().unwrap().remove(&h.task_id);
            Ok(())
        }
        async fn remove(&self, _task_id: &str) -> Result<(), EngineError> {
            Ok(())
        }
        async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
            let r = self.running.lock().unwrap();
            hs.iter().map(|h| (h.clone(), r.contains(&h.task_id))).collect()
        }
        async fn list(&self) -> Result<Vec<Handle>, EngineError> {
            Ok(vec![])
        }
        async fn logs(&self, _task_id: &str, _max: usize) -> Result<Vec<u8>, EngineError> {
            Ok(vec![])
        }
        async fn read_logs(&self, req: &skep_api::logs::LogsRequest) -> Result<skep_api::logs::LogsBatch, EngineError> {
            Err(EngineError::NotFound(format!("no logs of {}: a simulated task", req.task_id)))
        }

        /// `healthy-later`: healthy 100 ms after the start; `unhealthy`: unhealthy 50 ms after; others: no check.
        async fn watch_health(&self, _h: &Handle, task: &Task, tx: watch::Sender<Health>) -> bool {
            let image = task.spec.container_spec.as_ref().map(|c| c.image.clone()).unwrap_or_default();
            let (after, to) = match image.as_str() {
                "healthy-later" => (100, Health::Healthy),
                "unhealthy" => (50, Health::Unhealthy),
                _ => return false,
            };
            tokio::time::sleep(Duration::from_millis(after)).await;
            tx.send_replace(to);
            std::future::pending::<bool>().await
        }
    }

    fn task(id: &str, image: &str, desired: TaskState) -> Task {
        let mut t = Task { id: id.into(), desired_state: desired, ..Default::default() };
        t.spec.container_spec = Some(skep_api::docker::ContainerSpec { image: image.into(), ..Default::default() });
        t.status.state = TaskState::Assigned;
        t
    }

    fn shared(dir: &std::path::Path, engine: Fake) -> (Arc<Shared<Fake>>, mpsc::UnboundedReceiver<(String, TaskStatus)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let file = dir.join("tasks.json");
        let table = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let deps = Mutex::new(Dependencies::new());
        let table = Arc::new(Mutex::new(table));
        let watch = TaskWatch::default();
        watch.show(&table);
        let desired = Mutex::new(BTreeMap::new());
        let (saving, changes, saved) = (Mutex::new(()), AtomicU64::new(0), AtomicU64::new(0));
        let (reports, net) = (tx, None);
        (Arc::new(Shared { engine, table, file, reports, desired, saving, changes, saved, net, deps, watch }), rx)
    }

    /// Collect reports until `task` reaches `state` (bounded).
    async fn until(rx: &mut mpsc::UnboundedReceiver<(String, TaskStatus)>, task: &str, state: TaskState) -> Vec<TaskState> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some((id, st))) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if id == task {
                seen.push(st.state);
                if st.state == state {
                    return seen;
                }
            }
        }
        panic!("{task} never reached {state:?}; saw {seen:?}");
    }

    #[tokio::test]
    async fn an_assigned_task_runs_moves_only_forward_and_stops_when_told() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-a", std::process::id()));
        let engine = Fake::default();
        let (s, mut rx) = shared(&dir, engine.clone());
        apply_assignments(&s, vec![task("t1", "prog", TaskState::Running)]);
        let seen = until(&mut rx, "t1", TaskState::Running).await;
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.first(), Some(&TaskState::Accepted));
        // the same set again starts nothing new
        apply_assignments(&s, vec![task("t1", "prog", TaskState::Running)]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(engine.started.lock().unwrap().len(), 1);
        // what the daemon's metrics see: the task running, one engine start timed
        assert_eq!(s.watch.states(), Some(BTreeMap::from([(TaskState::Running, 1)])));
        assert_eq!(s.watch.start_duration.count(), 1);
        apply_assignments(&s, vec![task("t1", "prog", TaskState::Shutdown)]);
        until(&mut rx, "t1", TaskState::Shutdown).await;
        assert!(engine.running.lock().unwrap().is_empty());
        assert_eq!(s.watch.states(), Some(BTreeMap::from([(TaskState::Shutdown, 1)])));
        drop(s);
        assert_eq!(TaskWatch::default().states(), None, "no task manager, nothing to show");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_task_with_a_healthcheck_is_starting_until_healthy() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-h", std::process::id()));
        let (s, mut rx) = shared(&dir, Fake::default());
        let started = tokio::time::Instant::now();
        apply_assignments(&s, vec![task("th", "healthy-later", TaskState::Running)]);
        let seen = until(&mut rx, "th", TaskState::Running).await;
        assert!(started.elapsed() >= Duration::from_millis(100), "running only once healthy");
        assert_eq!(seen.iter().filter(|s| **s == TaskState::Running).count(), 1);
        assert!(seen.contains(&TaskState::Starting));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_unhealthy_task_is_stopped_and_failed_as_docker_fails_it() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-u", std::process::id()));
        let engine = Fake::default();
        let (s, mut rx) = shared(&dir, engine.clone());
        apply_assignments(&s, vec![task("tu", "unhealthy", TaskState::Running)]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (id, st) = tokio::time::timeout_at(deadline, rx.recv()).await.unwrap().unwrap();
            assert!(id != "tu" || st.state != TaskState::Running, "never running");
            if id == "tu" && st.state == TaskState::Failed {
                assert_eq!(st.err, UNHEALTHY);
                break;
            }
        }
        assert!(engine.running.lock().unwrap().is_empty(), "stopped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_missing_program_is_rejected_with_the_engines_reason() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-b", std::process::id()));
        let (s, mut rx) = shared(&dir, Fake::default());
        apply_assignments(&s, vec![task("t2", "missing", TaskState::Running)]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (id, st) = tokio::time::timeout_at(deadline, rx.recv()).await.unwrap().unwrap();
            if id == "t2" && st.state == TaskState::Rejected {
                assert!(st.err.contains("executable file not found"), "{}", st.err);
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_assigned_set_follows_whole_sets_and_changes_and_asks_again_when_they_do_not_fit() {
        let digest = |ts: &[&Task]| skep_api::wire::assignment_digest(ts.iter().map(|t| (t.id.as_str(), t.desired_state)));
        let no_deps = skep_api::wire::dependency_digest([]);
        let a = task("a", "prog", TaskState::Running);
        let b = task("b", "prog", TaskState::Running);
        let mut set = AssignedSet::default();
        let full = Response::Assignments { digest: 7, tasks: vec![a.clone(), b.clone()], network: Default::default(), dependencies: vec![] };
        assert!(matches!(set.take(full), Taken::Set { tasks: Some(t), .. } if t.len() == 2));
        assert_eq!(set.known, 7);
        // b stops, c arrives
        let mut b2 = b.clone();
        b2.desired_state = TaskState::Shutdown;
        let c = task("c", "prog", TaskState::Running);
        let changes = Response::AssignmentChanges {
            digest: 8,
            base: 7,
            set_digest: digest(&[&a, &b2, &c]),
            updated: vec![b2.clone(), c.clone()],
            removed: vec![],
            network: Default::default(),
            dependencies: vec![],
            removed_dependencies: vec![],
            dependency_digest: no_deps,
        };
        let Taken::Set { tasks: Some(t), .. } = set.take(changes) else { panic!() };
        assert_eq!(t.iter().map(|t| (t.id.as_str(), t.desired_state)).collect::<Vec<_>>(),
            [("a", TaskState::Running), ("b", TaskState::Shutdown), ("c", TaskState::Running)]);
        assert_eq!(set.known, 8);
        // nothing changed (a long poll that timed out): nothing to act on
        let same = Response::AssignmentChanges {
            digest: 8, base: 8, set_digest: digest(&[&a, &b2, &c]), updated: vec![], removed: vec![], network: Default::default(),
            dependencies: vec![], removed_dependencies: vec![], dependency_digest: no_deps,
        };
        assert!(matches!(set.take(same), Taken::Set { tasks: None, .. }));
        // changes whose result is not what the leader computed: ask for the whole set
        let wrong = Response::AssignmentChanges {
            digest: 9, base: 8, set_digest: digest(&[&a]), updated: vec![], removed: vec!["b".into()], network: Default::default(),
            dependencies: vec![], removed_dependencies: vec![], dependency_digest: no_deps,
        };
        assert!(matches!(set.take(wrong), Taken::Mismatch));
        assert_eq!(set.known, 0);
    }

    /// Runners that save at once share writes, and the file still holds every handle recorded before each of them
    /// returned (what a restarted agent adopts through).
    #[test]
    fn concurrent_saves_lose_no_handle() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-d", std::process::id()));
        let (s, _rx) = shared(&dir, Fake::default());
        let ids: Vec<String> = (0..64).map(|i| format!("t{i:02}")).collect();
        {
            let mut t = s.table.lock().unwrap();
            for id in &ids {
                t.insert(id.clone(), Local { task: task(id, "prog", TaskState::Running), handle: None, state: TaskState::Starting });
            }
        }
        std::thread::scope(|scope| {
            for id in &ids {
                let s = s.clone();
                scope.spawn(move || {
                    let h = Handle { task_id: id.clone(), engine: "fake".into(), id: format!("c-{id}"), pid: 1 };
                    assert!(s.advance(id, status(TaskState::Running, "started"), Some(h)));
                    // what this runner recorded is on disk once `advance` returned
                    let on_disk: BTreeMap<String, Local> = serde_json::from_slice(&std::fs::read(&s.file).unwrap()).unwrap();
                    assert!(on_disk[id.as_str()].handle.is_some(), "{id}");
                });
            }
        });
        let on_disk: BTreeMap<String, Local> = serde_json::from_slice(&std::fs::read(&s.file).unwrap()).unwrap();
        assert!(ids.iter().all(|id| on_disk[id.as_str()].handle.as_ref().is_some_and(|h| h.id == format!("c-{id}"))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_oom_kill_is_the_tasks_error() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-e", std::process::id()));
        let (s, mut rx) = shared(&dir, Fake::default());
        s.table.lock().unwrap().insert(
            "t4".into(),
            Local { task: task("t4", "prog", TaskState::Running), handle: None, state: TaskState::Running },
        );
        finish(&s, "t4", Some(Exit::OomKilled { code: 137, memory_limit: 8 << 20 }), Ending::Exited);
        let (_, st) = rx.try_recv().unwrap();
        assert_eq!(st.state, TaskState::Failed);
        assert_eq!(st.err, "task: non-zero exit (137): OOM killed (memory limit 8MiB)");
        assert_eq!(st.container_status.unwrap().exit_code, 137);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn after_a_restart_a_running_task_is_adopted_not_started_again() {
        let dir = std::env::temp_dir().join(format!("skep-tm-{}-c", std::process::id()));
        let engine = Fake::default();
        {
            let (s, mut rx) = shared(&dir, engine.clone());
            apply_assignments(&s, vec![task("t3", "prog", TaskState::Running)]);
            until(&mut rx, "t3", TaskState::Running).await;
        }
        // a new task manager over the same directory and the same (still running) engine
        let (s, mut rx) = shared(&dir, engine.clone());
        adopt(&s).await;
        apply_assignments(&s, vec![task("t3", "prog", TaskState::Running)]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(engine.started.lock().unwrap().len(), 1, "no duplicate start");
        // and it is still supervised: a shutdown order stops it
        apply_assignments(&s, vec![task("t3", "prog", TaskState::Shutdown)]);
        until(&mut rx, "t3", TaskState::Shutdown).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
