//! The convergence display of `service create | update | scale | rollback` (docker's
//! `cli/command/service/progress`, github.com/docker/cli).
//!
//! Every 200 ms: `GET /services/{id}?insertDefaults=false`, `GET /tasks` of the service's up-to-date tasks and
//! `GET /nodes`. A replicated service has converged when, per slot (the task with the lowest desired state, then
//! the lowest observed state, tasks on down nodes ignored), as many tasks run as the spec asks; a global service
//! when every node holding a task runs it. Then the tasks must stay running for `UpdateConfig.Monitor` (5 s by
//! default) before the service is declared converged.
//!
//! The pieces are separate so that tests can drive them: [`convergence`] is the pure judgement, [`Updater`] turns
//! one poll into display [`Event`]s as docker's updaters do, [`Display`] renders events (redrawn in place with ANSI
//! sequences on a terminal, one line per change otherwise), and [`wait_on_service`] is the polling loop.
//!
//! Unlike docker, the loop gives up after [`GIVE_UP_AFTER`] with an error (docker polls forever). Ctrl-C stops
//! waiting, as in docker: "Operation continuing in background.", exit 0.

use super::super::{query, seg, ApiClient};
use anyhow::{bail, Result};
use skep_api::docker::{Node, NodeState, Service, Task, TaskState};
use skep_api::filters::Filters;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Time between polls (docker's).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long the loop waits for convergence before giving up (docker waits forever).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// `UpdateConfig.Monitor` when the service does not set one.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// docker draws per-task bars only up to this many tasks.
const MAX_PROGRESS_BARS: u64 = 20;
/// The bar of a task is its state's number out of this (running = 9).
const MAX_PROGRESS: u8 = 9;
/// Width of the longest non-terminal state name (`allocated`, `preparing`), states are padded to it.
const LONGEST_STATE: usize = 9;
/// Terminal width assumed when `COLUMNS` is not set (docker's fallback when it cannot ask the terminal).
const DEFAULT_WIDTH: usize = 200;

/// Whether stdout is a terminal; set once by [`crate::client::main`] (tests leave it off).
static TERMINAL: AtomicBool = AtomicBool::new(false);

/// Tell the progress display whether stdout is a terminal.
pub fn set_terminal(on: bool) {
    TERMINAL.store(on, Ordering::Relaxed);
}

/// docker's `numberedStates`: 1 (new) … 9 (running) … 13 (rejected); 0 for states the display ignores.
fn numbered(s: TaskState) -> u8 {
    match s {
        TaskState::Remove | TaskState::Orphaned => 0,
        s => s as u8 + 1,
    }
}

/// Past running (complete, shutdown, failed, rejected).
fn terminal(s: TaskState) -> bool {
    numbered(s) > numbered(TaskState::Running)
}

/// IDs of the nodes that are not down.
pub fn active_nodes(nodes: &[Node]) -> HashSet<String> {
    nodes
        .iter()
        .filter(|n| n.status.state != NodeState::Down)
        .map(|n| n.id.clone())
        .collect()
}

/// Whether `candidate` should replace `existing` for its slot or node: lower desired state first, then lower
/// observed state (docker's rule, which favours the replacement task during a restart or a start-first update).
fn preferred(candidate: &Task, existing: &Task) -> bool {
    let (cd, ed) = (
        numbered(candidate.desired_state),
        numbered(existing.desired_state),
    );
    cd < ed || (cd == ed && numbered(candidate.status.state) < numbered(existing.status.state))
}

/// The task shown for each slot of a replicated service; tasks on down nodes are skipped.
pub fn tasks_by_slot<'a>(tasks: &'a [Task], active: &HashSet<String>) -> BTreeMap<u64, &'a Task> {
    let mut by_slot: BTreeMap<u64, &Task> = BTreeMap::new();
    for t in tasks {
        if numbered(t.desired_state) == 0 || numbered(t.status.state) == 0 {
            continue;
        }
        if let Some(existing) = by_slot.get(&t.slot) {
            if !preferred(t, existing) {
                continue;
            }
        }
        if !t.node_id.is_empty() && !active.contains(&t.node_id) {
            continue;
        }
        by_slot.insert(t.slot, t);
    }
    by_slot
}

/// The task shown for each node of a global service. Unlike docker, tasks on down nodes are skipped here too, so a
/// node that went down does not hold the display forever.
pub fn tasks_by_node<'a>(
    tasks: &'a [Task],
    active: &HashSet<String>,
) -> BTreeMap<String, &'a Task> {
    let mut by_node: BTreeMap<String, &Task> = BTreeMap::new();
    for t in tasks {
        if numbered(t.desired_state) == 0 || numbered(t.status.state) == 0 {
            continue;
        }
        if !active.contains(&t.node_id) {
            continue;
        }
        if let Some(existing) = by_node.get(&t.node_id) {
            if !preferred(t, existing) {
                continue;
            }
        }
        by_node.insert(t.node_id.clone(), t);
    }
    by_node
}

/// Whether the counted task runs and is meant to.
fn counts_as_running(t: &Task) -> bool {
    !terminal(t.desired_state) && t.status.state == TaskState::Running
}

/// How far a service is from its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Convergence {
    /// Slots (or nodes) whose task runs.
    pub running: u64,
    /// Replicas (or nodes holding a task).
    pub desired: u64,
    /// Whether the spec is met (a global service with no task yet is not).
    pub converged: bool,
}

/// The kinds of service the display knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `Mode.Replicated` with its replica count.
    Replicated(u64),
    /// `Mode.Global`.
    Global,
}

fn kind(service: &Service) -> Result<Kind> {
    let mode = &service.spec.mode;
    match (&mode.replicated, &mode.global) {
        (Some(r), _) => match r.replicas {
            Some(n) => Ok(Kind::Replicated(n)),
            None => bail!("no replica count"),
        },
        (None, Some(_)) => Ok(Kind::Global),
        _ if mode.replicated_job.is_some() || mode.global_job.is_some() => {
            bail!("skep does not support job services")
        }
        _ => bail!("unrecognized service mode"),
    }
}

/// The judgement of one poll: `tasks` are the service's up-to-date tasks, `nodes` every node.
pub fn convergence(service: &Service, tasks: &[Task], nodes: &[Node]) -> Result<Convergence> {
    let active = active_nodes(nodes);
    Ok(match kind(service)? {
        Kind::Replicated(replicas) => {
            let running = tasks_by_slot(tasks, &active)
                .values()
                .filter(|t| counts_as_running(t))
                .count() as u64;
            Convergence {
                running,
                desired: replicas,
                converged: running == replicas,
            }
        }
        Kind::Global => {
            let by_node = tasks_by_node(tasks, &active);
            let running = by_node.values().filter(|t| counts_as_running(t)).count() as u64;
            let desired = by_node.len() as u64;
            Convergence {
                running,
                desired,
                converged: desired > 0 && running == desired,
            }
        }
    })
}

/// What the display shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A line kept up to date under its ID (`overall progress`, `1/3`, `verify`), with an optional bar
    /// `(current, total)`.
    Progress {
        /// Line ID.
        id: String,
        /// Text after the ID.
        action: String,
        /// Bar as (current, total).
        bar: Option<(u8, u8)>,
    },
    /// A message printed once (`rollback: …`, "Operation continuing in background.").
    Message {
        /// Optional ID prefix (empty for none).
        id: String,
        /// The text.
        text: String,
    },
}

fn progress(id: impl Into<String>, action: impl Into<String>) -> Event {
    Event::Progress {
        id: id.into(),
        action: action.into(),
        bar: None,
    }
}

fn message(id: &str, text: impl Into<String>) -> Event {
    Event::Message {
        id: id.to_string(),
        text: text.into(),
    }
}

/// docker's `truncError`: one line, at most 75 bytes.
fn trunc_error(e: &str) -> String {
    let e = e.replace('\n', " ");
    if e.len() <= 75 {
        return e;
    }
    let mut end = 74;
    while !e.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &e[..end])
}

/// The line of one task: its error, or its state with a bar while it is on its way to running.
fn task_event(id: String, t: &Task) -> Option<Event> {
    if !t.status.err.is_empty() {
        return Some(progress(id, trunc_error(&t.status.err)));
    }
    if !terminal(t.desired_state) && !terminal(t.status.state) {
        return Some(Event::Progress {
            id,
            action: format!("{:<LONGEST_STATE$}", t.status.state.as_str()),
            bar: Some((numbered(t.status.state), MAX_PROGRESS)),
        });
    }
    None
}

fn overall(running: u64, desired: u64, rollback: bool) -> Event {
    if rollback {
        progress(
            "overall progress",
            format!("rolling back update: {running} out of {desired} tasks"),
        )
    } else {
        progress(
            "overall progress",
            format!("{running} out of {desired} tasks"),
        )
    }
}

/// docker's replicated and global progress updaters: state kept across polls (slot numbering, whether the bars
/// were drawn, whether convergence was reached).
#[derive(Debug)]
pub struct Updater {
    kind: Kind,
    /// Slot → line number 1..n, in order of first sight.
    slot_map: HashMap<u64, u64>,
    initialized: bool,
    done: bool,
}

impl Updater {
    /// An updater for this service's mode ("unrecognized service mode" otherwise, as docker says).
    pub fn new(service: &Service) -> Result<Updater> {
        Ok(Updater {
            kind: kind(service)?,
            slot_map: HashMap::new(),
            initialized: false,
            done: false,
        })
    }

    /// Judge one poll, appending what to display to `events`; returns whether the service has converged.
    pub fn update(
        &mut self,
        service: &Service,
        tasks: &[Task],
        active: &HashSet<String>,
        rollback: bool,
        events: &mut Vec<Event>,
    ) -> Result<bool> {
        match self.kind {
            Kind::Replicated(_) => self.update_replicated(service, tasks, active, rollback, events),
            Kind::Global => Ok(self.update_global(tasks, active, rollback, events)),
        }
    }

    fn update_replicated(
        &mut self,
        service: &Service,
        tasks: &[Task],
        active: &HashSet<String>,
        rollback: bool,
        events: &mut Vec<Event>,
    ) -> Result<bool> {
        let Kind::Replicated(replicas) = kind(service)? else {
            bail!("no replica count");
        };
        if !self.initialized {
            events.push(overall(0, replicas, rollback));
            if replicas <= MAX_PROGRESS_BARS {
                for i in 1..=replicas {
                    events.push(progress(format!("{i}/{replicas}"), " "));
                }
            }
            self.initialized = true;
        }
        let by_slot = tasks_by_slot(tasks, active);
        if self.done
            && by_slot
                .values()
                .any(|t| t.status.state != TaskState::Running)
        {
            self.done = false;
        }
        let mut running = 0;
        for (slot, t) in &by_slot {
            let next = self.slot_map.len() as u64 + 1;
            let mapped = *self.slot_map.entry(*slot).or_insert(next);
            if counts_as_running(t) {
                running += 1;
            }
            if !self.done && replicas <= MAX_PROGRESS_BARS && mapped <= replicas {
                events.extend(task_event(format!("{mapped}/{replicas}"), t));
            }
        }
        if !self.done {
            events.push(overall(running, replicas, rollback));
            if running == replicas {
                self.done = true;
            }
        }
        Ok(running == replicas)
    }

    fn update_global(
        &mut self,
        tasks: &[Task],
        active: &HashSet<String>,
        rollback: bool,
        events: &mut Vec<Event>,
    ) -> bool {
        let by_node = tasks_by_node(tasks, active);
        let node_count = by_node.len() as u64;
        if !self.initialized {
            if node_count == 0 {
                events.push(progress("overall progress", "waiting for new tasks"));
                return false;
            }
            events.push(overall(0, node_count, rollback));
            self.initialized = true;
        }
        if self.done
            && by_node
                .values()
                .any(|t| t.status.state != TaskState::Running)
        {
            self.done = false;
        }
        let mut running = 0;
        for (node, t) in &by_node {
            if counts_as_running(t) {
                running += 1;
            }
            if !self.done && node_count <= MAX_PROGRESS_BARS {
                let short: String = node.chars().take(12).collect();
                events.extend(task_event(short, t));
            }
        }
        if !self.done {
            events.push(overall(running, node_count, rollback));
            if running == node_count {
                self.done = true;
            }
        }
        node_count > 0 && running == node_count
    }
}

/// docker's progress bar (`JSONProgress.String` with hidden counts): `[====>   ] ` on terminals wider than 110
/// columns, nothing otherwise.
fn bar_text(current: u8, total: u8, width: usize) -> String {
    if total == 0 || width <= 110 {
        return String::new();
    }
    let pct = ((f64::from(current) / f64::from(total) * 100.0) as usize / 2).min(50);
    format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct))
}

/// How events are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayMode {
    /// Lines redrawn in place (ANSI cursor movement), as docker does on a terminal.
    Terminal,
    /// One plain line whenever a line's text changes (logs, pipes).
    Lines,
    /// Nothing (`--quiet`).
    Quiet,
}

/// Renders [`Event`]s.
pub struct Display<'a> {
    out: &'a mut dyn Write,
    mode: DisplayMode,
    /// Terminal: line index of each progress ID, in order of appearance.
    lines: HashMap<String, usize>,
    /// Lines mode: the last text printed for each ID.
    last: HashMap<String, String>,
    width: usize,
}

impl<'a> Display<'a> {
    /// A display writing to `out`.
    pub fn new(out: &'a mut dyn Write, mode: DisplayMode) -> Display<'a> {
        let width = match mode {
            DisplayMode::Terminal => std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(DEFAULT_WIDTH),
            _ => DEFAULT_WIDTH,
        };
        Display {
            out,
            mode,
            lines: HashMap::new(),
            last: HashMap::new(),
            width,
        }
    }

    /// Render one event.
    pub fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
        match (self.mode, ev) {
            (DisplayMode::Quiet, _) => Ok(()),
            (DisplayMode::Lines, Event::Progress { id, action, bar }) => {
                let bar = bar.map_or(String::new(), |(c, t)| bar_text(c, t, self.width));
                let text = format!("{id}: {action} {bar}").trim_end().to_string();
                if self.last.get(id) == Some(&text) {
                    return Ok(());
                }
                writeln!(self.out, "{text}")?;
                self.last.insert(id.clone(), text);
                Ok(())
            }
            (DisplayMode::Terminal, Event::Progress { id, action, bar }) => {
                let line = match self.lines.get(id) {
                    Some(l) => *l,
                    None => {
                        let l = self.lines.len();
                        self.lines.insert(id.clone(), l);
                        writeln!(self.out)?;
                        l
                    }
                };
                let diff = self.lines.len() - line;
                let bar = bar.map_or(String::new(), |(c, t)| bar_text(c, t, self.width));
                if diff > 0 {
                    write!(self.out, "\x1b[{diff}A")?;
                }
                write!(self.out, "\x1b[2K\r{id}: {action} {bar}\r")?;
                if diff > 0 {
                    write!(self.out, "\x1b[{diff}B")?;
                }
                self.out.flush()
            }
            (_, Event::Message { id, text }) => {
                self.lines.clear();
                if id.is_empty() {
                    writeln!(self.out, "{text}")
                } else {
                    writeln!(self.out, "{id}: {text}")
                }
            }
        }
    }
}

/// Limits of the polling loop (tests shorten them).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time between polls.
    pub poll: Duration,
    /// When to give up.
    pub give_up_after: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            poll: POLL_INTERVAL,
            give_up_after: GIVE_UP_AFTER,
        }
    }
}

/// Wait for `service` (ID or name, as printed in the messages) to converge, showing progress on `out` (nothing with
/// `quiet`).
pub async fn wait_on_service(
    c: &ApiClient,
    service: &str,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mode = if quiet {
        DisplayMode::Quiet
    } else if TERMINAL.load(Ordering::Relaxed) {
        DisplayMode::Terminal
    } else {
        DisplayMode::Lines
    };
    let mut display = Display::new(out, mode);
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    let mut poll = Box::pin(poll_until_converged(
        c,
        service,
        &mut display,
        Limits::default(),
    ));
    let result = tokio::select! {
        r = &mut poll => r,
        _ = &mut interrupted => Err(anyhow::Error::new(Interrupted)),
    };
    drop(poll);
    match result {
        Err(e) if e.is::<Interrupted>() => {
            display.emit(&message("", "Operation continuing in background."))?;
            display.emit(&message(
                "",
                format!("Use `skep service ps {service}` to check progress."),
            ))?;
            Ok(())
        }
        r => r,
    }
}

/// Ctrl-C while waiting.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// The polling loop of docker's `ServiceProgress`, bounded by `limits.give_up_after`.
pub async fn poll_until_converged(
    c: &ApiClient,
    service: &str,
    display: &mut Display<'_>,
    limits: Limits,
) -> Result<()> {
    let started = Instant::now();
    let mut updater: Option<Updater> = None;
    let mut converged = false;
    let mut converged_at: Option<Instant> = None;
    let mut rollback = false;
    let mut final_message: Option<Event> = None;
    let mut events = Vec::new();
    loop {
        if started.elapsed() >= limits.give_up_after {
            bail!(
                "service {service} has not converged after {}s; giving up waiting (the operation continues in the \
                 background: use `skep service ps {service}` to check progress)",
                limits.give_up_after.as_secs()
            );
        }
        let svc: Service = c
            .get(&format!(
                "/services/{}{}",
                seg(service),
                query(&[("insertDefaults", "false")])
            ))
            .await?;
        let monitor = svc
            .spec
            .update_config
            .as_ref()
            .filter(|u| u.monitor > 0)
            .map_or(DEFAULT_MONITOR, |u| Duration::from_nanos(u.monitor as u64));
        if updater.is_none() {
            updater = Some(Updater::new(&svc)?);
        }
        if let Some(us) = &svc.update_status {
            match us.state.as_str() {
                "updating" => rollback = false,
                "completed" if !converged => return Ok(()),
                "paused" => bail!("service update paused: {}", us.message),
                "rollback_started" => {
                    if !rollback && !us.message.is_empty() {
                        display.emit(&progress("rollback", us.message.clone()))?;
                    }
                    rollback = true;
                }
                "rollback_paused" => bail!("service rollback paused: {}", us.message),
                "rollback_completed" => {
                    if !converged {
                        final_message = Some(message("rollback", us.message.clone()));
                    }
                    rollback = true;
                }
                _ => {}
            }
        }
        if let Some(at) = converged_at.filter(|_| converged) {
            if at.elapsed() >= monitor {
                display.emit(&progress("verify", format!("Service {service} converged")))?;
                if let Some(m) = &final_message {
                    display.emit(m)?;
                }
                return Ok(());
            }
        }
        let mut filters = Filters::default();
        filters.add("_up-to-date", "true");
        filters.add("service", &svc.id);
        let tasks: Vec<Task> = c
            .get(&format!(
                "/tasks{}",
                query(&[("filters", &filters.to_json())])
            ))
            .await?;
        let nodes: Vec<Node> = c.get("/nodes").await?;
        let active = active_nodes(&nodes);
        events.clear();
        let up = updater
            .as_mut()
            .map(|u| u.update(&svc, &tasks, &active, rollback, &mut events));
        converged = up.transpose()?.unwrap_or(false);
        for ev in &events {
            display.emit(ev)?;
        }
        if converged {
            let at = *converged_at.get_or_insert_with(Instant::now);
            if let Some(wait) = monitor.checked_sub(at.elapsed()) {
                display.emit(&progress(
                    "verify",
                    format!(
                        "Waiting {} seconds to verify that tasks are stable...",
                        wait.as_secs() + 1
                    ),
                ))?;
            }
        } else {
            if converged_at.is_some() {
                display.emit(&progress("verify", "Detected task failure"))?;
            }
            converged_at = None;
        }
        tokio::time::sleep(limits.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{NodeStatus, ReplicatedMode, ServiceMode, TaskStatus};

    fn svc(mode: ServiceMode) -> Service {
        let mut s = Service {
            id: "svc1".into(),
            ..Default::default()
        };
        s.spec.mode = mode;
        s
    }

    fn replicated(n: u64) -> Service {
        svc(ServiceMode {
            replicated: Some(ReplicatedMode { replicas: Some(n) }),
            ..Default::default()
        })
    }

    fn global() -> Service {
        svc(ServiceMode {
            global: Some(serde_json::json!({})),
            ..Default::default()
        })
    }

    fn task(id: &str, slot: u64, node: &str, desired: TaskState, state: TaskState) -> Task {
        Task {
            id: id.into(),
            slot,
            node_id: node.into(),
            desired_state: desired,
            status: TaskStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn node(id: &str, state: &str) -> Node {
        Node {
            id: id.into(),
            status: NodeStatus {
                state: state.parse().unwrap(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    use TaskState::{Failed, Pending, Running, Shutdown, Starting};

    #[test]
    fn replicated_converges_when_every_slot_runs() {
        let nodes = [node("n1", "ready"), node("n2", "ready")];
        let mut tasks = vec![
            task("a", 1, "n1", Running, Running),
            task("b", 2, "n2", Running, Starting),
            task("c", 3, "", Running, Pending),
        ];
        let c = convergence(&replicated(3), &tasks, &nodes).unwrap();
        assert_eq!(
            c,
            Convergence {
                running: 1,
                desired: 3,
                converged: false
            }
        );
        tasks[1].status.state = Running;
        tasks[2].status.state = Running;
        tasks[2].node_id = "n1".into();
        assert!(
            convergence(&replicated(3), &tasks, &nodes)
                .unwrap()
                .converged
        );
        // zero replicas: converged at once
        assert!(convergence(&replicated(0), &[], &nodes).unwrap().converged);
    }

    #[test]
    fn tasks_on_down_nodes_do_not_count() {
        let nodes = [node("n1", "ready"), node("n2", "down")];
        let tasks = [
            task("a", 1, "n1", Running, Running),
            task("b", 2, "n2", Running, Running),
        ];
        let c = convergence(&replicated(2), &tasks, &nodes).unwrap();
        assert_eq!((c.running, c.converged), (1, false));
        // the replacement of slot 2 on a live node makes it
        let mut more = tasks.to_vec();
        more.push(task("c", 2, "n1", Running, Running));
        assert!(
            convergence(&replicated(2), &more, &nodes)
                .unwrap()
                .converged
        );
    }

    #[test]
    fn per_slot_the_lowest_desired_then_observed_state_wins() {
        let nodes = [node("n1", "ready")];
        // history: the old task of slot 1 is shut down, the new one starting
        let tasks = [
            task("old", 1, "n1", Shutdown, Running),
            task("new", 1, "n1", Running, Starting),
        ];
        let active = active_nodes(&nodes);
        assert_eq!(tasks_by_slot(&tasks, &active)[&1].id, "new");
        assert!(
            !convergence(&replicated(1), &tasks, &nodes)
                .unwrap()
                .converged
        );
        // a shut-down task that still runs does not count
        let only_old = [task("old", 1, "n1", Shutdown, Running)];
        assert_eq!(
            convergence(&replicated(1), &only_old, &nodes)
                .unwrap()
                .running,
            0
        );
        // same desired state: the lower observed state is shown (start-first updates)
        let both = [
            task("a", 1, "n1", Running, Running),
            task("b", 1, "n1", Running, Pending),
        ];
        assert_eq!(tasks_by_slot(&both, &active)[&1].id, "b");
        // a failed task with desired running still counts as the slot's task, not running
        let failed = [task("f", 1, "n1", Running, Failed)];
        assert_eq!(
            convergence(&replicated(1), &failed, &nodes)
                .unwrap()
                .running,
            0
        );
    }

    #[test]
    fn global_converges_when_every_node_with_a_task_runs_it() {
        let nodes = [node("n1", "ready"), node("n2", "ready"), node("n3", "down")];
        assert_eq!(
            convergence(&global(), &[], &nodes).unwrap(),
            Convergence {
                running: 0,
                desired: 0,
                converged: false
            }
        );
        let mut tasks = vec![
            task("a", 0, "n1", Running, Running),
            task("b", 0, "n2", Running, Starting),
            task("c", 0, "n3", Running, Running),
        ];
        let c = convergence(&global(), &tasks, &nodes).unwrap();
        assert_eq!((c.running, c.desired, c.converged), (1, 2, false));
        tasks[1].status.state = Running;
        assert!(convergence(&global(), &tasks, &nodes).unwrap().converged);
    }

    #[test]
    fn unknown_modes_are_refused_like_docker() {
        let err = convergence(&svc(ServiceMode::default()), &[], &[]).unwrap_err();
        assert_eq!(err.to_string(), "unrecognized service mode");
    }

    #[test]
    fn updater_events_like_dockers() {
        let s = replicated(2);
        let nodes = [node("n1", "ready")];
        let active = active_nodes(&nodes);
        let mut u = Updater::new(&s).unwrap();
        let mut ev = Vec::new();
        let mut t = vec![task("a", 1, "n1", Running, Pending)];
        t[0].status.err = "no suitable node (1 node not available for new tasks)".into();
        assert!(!u.update(&s, &t, &active, false, &mut ev).unwrap());
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, DisplayMode::Lines);
        for e in &ev {
            d.emit(e).unwrap();
        }
        t[0].status.err.clear();
        t[0].status.state = Running;
        t.push(task("b", 2, "n1", Running, Running));
        ev.clear();
        assert!(u.update(&s, &t, &active, false, &mut ev).unwrap());
        for e in &ev {
            d.emit(e).unwrap();
        }
        let bar = format!("[{}>]", "=".repeat(50));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "overall progress: 0 out of 2 tasks\n1/2:\n2/2:\n\
                 1/2: no suitable node (1 node not available for new tasks)\n\
                 1/2: running   {bar}\n2/2: running   {bar}\noverall progress: 2 out of 2 tasks\n"
            )
        );
        // once done, nothing more is drawn until a task leaves running
        ev.clear();
        assert!(u.update(&s, &t, &active, false, &mut ev).unwrap());
        assert!(ev.is_empty());
        t[1].status.state = Failed;
        ev.clear();
        assert!(!u.update(&s, &t, &active, true, &mut ev).unwrap());
        assert_eq!(
            ev.last(),
            Some(&progress(
                "overall progress",
                "rolling back update: 1 out of 2 tasks"
            ))
        );
    }

    #[test]
    fn terminal_display_redraws_in_place() {
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, DisplayMode::Terminal);
        d.width = 200;
        d.emit(&progress("overall progress", "0 out of 1 tasks"))
            .unwrap();
        d.emit(&Event::Progress {
            id: "1/1".into(),
            action: "pending  ".into(),
            bar: Some((3, 9)),
        })
        .unwrap();
        d.emit(&progress("overall progress", "1 out of 1 tasks"))
            .unwrap();
        d.emit(&message("", "done")).unwrap();
        let s = String::from_utf8(out).unwrap();
        let bar = format!("[{}>{}] ", "=".repeat(16), " ".repeat(34));
        assert_eq!(
            s,
            format!(
                "\n\x1b[1A\x1b[2K\roverall progress: 0 out of 1 tasks \r\x1b[1B\
                 \n\x1b[1A\x1b[2K\r1/1: pending   {bar}\r\x1b[1B\
                 \x1b[2A\x1b[2K\roverall progress: 1 out of 1 tasks \r\x1b[2B\
                 done\n"
            )
        );
    }

    #[test]
    fn errors_are_truncated_to_one_short_line() {
        assert_eq!(trunc_error("a\nb"), "a b");
        let long = "x".repeat(80);
        assert_eq!(trunc_error(&long), format!("{}…", "x".repeat(74)));
    }
}
