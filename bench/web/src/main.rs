//! Issue 17's goals for the web view: "first paint with 10k tasks ≤ 1 s in headless Chromium" and "≤ 5 % of one core
//! in the daemon while 10 browsers watch a scale of 1000 tasks".
//!
//! The server is the daemon's own web view (`skep_node::web::serve`: its listener, hub and stream) in this process,
//! fed store versions made here, so the figures are the web view's cost alone: no Raft, scheduler or engine work.
//!
//! 1. First paint: a store of TASKS tasks (default 10000) over NODES nodes (default 100) and 100 services; ROUNDS
//!    fresh tabs (default 5) open the page in one headless Chromium; each reports, from its own User Timing marks,
//!    when the board was built from the snapshot and when the next frame began (ms since the navigation started).
//! 2. CPU: PAGES tabs (default 10) watch a service scaled from 0 to SCALE tasks (default 1000): 50 new tasks every
//!    100 ms, each task stepping new → pending → assigned → accepted → preparing → starting → running, one step per
//!    version. This process's CPU over the scale is measured once with nobody watching and once with the pages;
//!    the difference is what the pages cost (each condition: 3 scales, summed).
//!
//! `skep-bench-web [TASKS] [NODES] [PAGES] [SCALE] [ROUNDS]` (needs /usr/bin/chromium, or SKEP_CHROMIUM)

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_api::docker::{Node, NodeRole, Service, Task, TaskState};
use skep_manager::store::{ClusterState, NodeRecord};
use skep_node::web::{View, WebHub};
use skep_tests::browser::{chromium, Browser};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The states a task passes through on its way to running, one per store version.
const LADDER: [TaskState; 7] = [
    TaskState::New,
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Starting,
    TaskState::Running,
];
/// Tasks the scale adds per version, and the time between versions.
const BATCH: usize = 50;
const STEP: Duration = Duration::from_millis(100);
/// Scales measured in each condition (the figures are summed: one scale is a few seconds of 10 ms CPU ticks).
const REPEAT: u32 = 3;

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// `nodes` nodes (the first a manager), 100 services in 10 stacks, and `tasks` running tasks spread over them.
fn store(tasks: usize, nodes: usize) -> ClusterState {
    let mut st = ClusterState::default();
    for n in 0..nodes {
        let mut node = Node { id: format!("n{n:024}"), ..Default::default() };
        node.description.hostname = format!("host-{n}");
        node.spec.role = if n == 0 { NodeRole::Manager } else { NodeRole::Worker };
        let raft_id = (n == 0).then_some(1);
        st.nodes.insert(node.id.clone(), NodeRecord { node, raft_id, cluster_addr: String::new() });
    }
    for s in 0..100 {
        let mut svc = Service { id: format!("s{s:024}"), ..Default::default() };
        svc.spec.name = format!("app{}_svc{s}", s % 10);
        svc.spec.labels.insert("com.docker.stack.namespace".into(), format!("app{}", s % 10));
        st.services.insert(svc.id.clone(), svc);
    }
    for t in 0..tasks {
        let task = task(t, &format!("s{:024}", t % 100), t / 100 + 1, nodes, TaskState::Running);
        st.tasks.insert(task.id.clone(), task);
    }
    st
}

fn task(i: usize, service: &str, slot: usize, nodes: usize, state: TaskState) -> Task {
    let mut t = Task { id: format!("t{i:024}"), service_id: service.into(), slot: slot as u64, ..Default::default() };
    t.node_id = format!("n{:024}", i % nodes.max(1));
    t.status.state = state;
    t.desired_state = TaskState::Running;
    t
}

/// This process's CPU time so far (user + system, all threads), from `/proc/self/stat` (in USER_HZ = 100 ticks).
fn cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let f: Vec<u64> = after.split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap_or(0)).collect();
    ensure!(f.len() == 2, "utime and stime in /proc/self/stat");
    Ok(Duration::from_millis((f[0] + f[1]) * 10))
}

/// Wait (bounded) until `expr` is true in the browser's current page.
fn wait_for(b: &mut Browser, expr: &str, bound: Duration) -> Result<()> {
    let deadline = Instant::now() + bound;
    while b.eval(expr)? != Value::Bool(true) {
        ensure!(Instant::now() < deadline, "{expr} not true within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn first_paint(url: &str, tasks: usize, rounds: usize) -> Result<Vec<(f64, f64, f64)>> {
    let log = std::env::temp_dir().join("skep-bench-web-chromium.log");
    let mut b = Browser::launch_with(Command::new("sh"), 1280, 800, &log)?;
    let mut out = Vec::new();
    for _ in 0..rounds {
        b.open(url)?;
        wait_for(&mut b, "performance.getEntriesByName('skep-painted').length > 0", Duration::from_secs(60))?;
        // the first paint shows the first screenful; the rest of the board follows in later tasks
        wait_for(&mut b, "document.body.dataset.ready === '1'", Duration::from_secs(60))?;
        let cards = b.eval("document.querySelectorAll('.card').length")?;
        ensure!(cards.as_u64() == Some(tasks as u64), "the page shows {cards} cards, want {tasks}");
        let mark = |b: &mut Browser, name: &str| -> Result<f64> {
            b.eval(&format!("performance.getEntriesByName('{name}')[0].startTime"))?.as_f64().context("a mark")
        };
        out.push((mark(&mut b, "skep-render")?, mark(&mut b, "skep-painted")?, mark(&mut b, "skep-complete")?));
        b.call("Page.close", serde_json::json!({}))?;
    }
    Ok(out)
}

/// Scale a service from 0 to `scale` tasks through `hub`; returns this process's CPU time and the wall time taken.
fn scale(hub: &WebHub, base: &ClusterState, scale: usize, nodes: usize) -> Result<(Duration, Duration)> {
    let svc = "s000000000000000000000000";
    let (cpu0, t0) = (cpu()?, Instant::now());
    let mut st = base.clone();
    let mut added = 0;
    loop {
        let mut moved = false;
        let ids: Vec<String> = st.tasks.keys().cloned().collect();
        for id in &ids {
            let Some(t) = st.tasks.get_mut(id) else { continue };
            if let Some(i) = LADDER.iter().position(|s| *s == t.status.state).filter(|i| i + 1 < LADDER.len()) {
                t.status.state = LADDER[i + 1];
                moved = true;
            }
        }
        for i in added..(added + BATCH).min(scale) {
            let t = task(i, svc, i + 1, nodes, TaskState::New);
            st.tasks.insert(t.id.clone(), t);
            moved = true;
        }
        added = (added + BATCH).min(scale);
        if !moved {
            break;
        }
        st.index += 1;
        hub.advance(View { store: Arc::new(st.clone()), leader: Some(1) });
        std::thread::sleep(STEP);
    }
    Ok((cpu()? - cpu0, t0.elapsed()))
}

fn main() -> Result<()> {
    let (tasks, nodes, pages, scale_to, rounds) = (arg(1, 10_000), arg(2, 100), arg(3, 10), arg(4, 1000), arg(5, 5));
    let browser = chromium();
    ensure!(browser.exists(), "{} is missing (apt-get install chromium, or set SKEP_CHROMIUM)", browser.display());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let hub = Arc::new(WebHub::default());
    hub.replace(Some(View { store: Arc::new(store(tasks, nodes)), leader: Some(1) }));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/ui/", listener.local_addr()?);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    // spawned on the runtime, which serves it while this thread drives the browsers
    let _in_runtime = rt.enter();
    let _server = skep_node::web::serve(listener, hub.clone(), stop_rx);

    let rounds = first_paint(&url, tasks, rounds.max(1))?;
    println!(
        "first paint, {tasks} tasks on {nodes} nodes (ms since navigation start: first screenful built / next frame \
         painted / every card built):"
    );
    for (i, (render, painted, complete)) in rounds.iter().enumerate() {
        println!("  tab {}: {render:.0} / {painted:.0} / {complete:.0}", i + 1);
    }
    let mut painted: Vec<f64> = rounds.iter().map(|r| r.1).collect();
    painted.sort_by(f64::total_cmp);
    let median = painted[painted.len() / 2];
    let max = painted[painted.len() - 1];
    println!("  median {median:.0} ms, max {max:.0} ms: {:.2} of the 1 s goal", median / 1000.0);

    let base = store(0, nodes);
    hub.replace(Some(View { store: Arc::new(base.clone()), leader: Some(1) }));
    let repeat = |hub: &WebHub| -> Result<(Duration, Duration)> {
        let mut sum = (Duration::ZERO, Duration::ZERO);
        for _ in 0..REPEAT {
            hub.replace(Some(View { store: Arc::new(base.clone()), leader: Some(1) }));
            let (c, w) = scale(hub, &base, scale_to, nodes)?;
            sum = (sum.0 + c, sum.1 + w);
        }
        Ok(sum)
    };
    let (idle_cpu, idle_wall) = repeat(&hub)?;
    hub.replace(Some(View { store: Arc::new(base.clone()), leader: Some(1) }));
    // one browser per page: a browser holds at most 6 HTTP/1.1 connections to one host, so a 7th tab's stream waits
    let mut browsers = Vec::new();
    for i in 0..pages {
        let log = std::env::temp_dir().join(format!("skep-bench-web-chromium-{i}.log"));
        let mut b = Browser::launch_with(Command::new("sh"), 1280, 800, &log)?;
        b.open(&url)?;
        wait_for(&mut b, "!!document.body && document.body.dataset.ready === '1'", Duration::from_secs(30))?;
        browsers.push(b);
    }
    let (cpu, wall) = repeat(&hub)?;
    let done = format!("document.querySelectorAll('.card[data-state=\"running\"]').length === {scale_to}");
    for b in &mut browsers {
        wait_for(b, &done, Duration::from_secs(30))?;
    }
    let pct = |c: Duration, w: Duration| 100.0 * c.as_secs_f64() / w.as_secs_f64();
    let (idle, watched) = (pct(idle_cpu, idle_wall), pct(cpu, wall));
    println!(
        "scale 0 → {scale_to} tasks, {REPEAT} times, {:.1} s in all: this process {idle:.1} % of one core with \
         nobody watching, {watched:.1} % \
         with {pages} pages watching; the pages' share {:.1} %: {:.2} of the 5 % goal",
        wall.as_secs_f64(),
        watched - idle,
        (watched - idle) / 5.0
    );
    Ok(())
}
