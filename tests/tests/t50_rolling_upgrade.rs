//! Upgrading a cluster one manager at a time, as docs/install.md tells an operator to: 3 managers and a worker run a
//! replicated service published through the routing mesh; each manager in turn (followers first, the leader last),
//! then the worker, is stopped with `SIGTERM` (what `systemctl stop` sends under `KillMode=process`) and started
//! again on "the new binary" over the same data root, while a client loop keeps writing configs through the managers
//! and reading the service through the mesh.
//!
//! "The new binary" is **the same build copied to another path**: a test cannot build a second version of skep. What
//! it shows is the mechanics of an upgrade (a different program file started over the old data root, its Raft log,
//! keys and task records, while the other managers keep the quorum), not compatibility between two versions.
//!
//! Asserted in every step: the daemon left on `SIGTERM` (no `SIGKILL` needed); a write sent through another manager
//! as it stopped is acknowledged (after an election when it was the leader); once it is back, it runs the new
//! file and keeps its node ID, the cluster lists 4 Ready nodes and 3 reachable managers with one leader, a write
//! through every manager succeeds and every write acknowledged so far is read back through the restarted manager
//! (Raft caught up; through the first manager after the worker's step), the service's tasks are the same tasks run by
//! the same processes (adopted, never restarted, so never all gone), and the mesh answers on every node. At the end no
//! acknowledged write is missing on any manager. How many writes and mesh reads failed while a daemon was down is
//! printed, not asserted (it depends on timing), as are the step's times.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::json::{count_eq, find_by, str_at};
use skep_tests::process::run;
use skep_tests::services::{http_unix, is_running, node_of, overlay_addrs};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MANAGERS: usize = 3;
const NODES: usize = 4;
const REPLICAS: usize = 4;
const CONVERGE: Duration = Duration::from_secs(45);
/// Each task answers a TCP connection on port 80 with its own addresses, then closes (as in t20).
const RESPONDER: &[&str] = &["busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr"];
const PROGRAM: &str = "nc -ll -p 80";
const PUBLISHED: u16 = 8080;
/// Bounds of the client loop: iterations and time (it normally stops when the main thread says so).
const LOOP_MAX_ROUNDS: usize = 3000;
const LOOP_MAX_TIME: Duration = Duration::from_secs(600);
/// Time limit of one client request in the loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `"rolling"`, base64: every config's data.
const CONFIG_DATA: &str = "cm9sbGluZw==";

/// What the client loop saw, per step (`step` 0 = before the first restart, k = while and after restarting the k-th
/// manager).
#[derive(Debug, Default)]
struct Seen {
    /// Names of the configs whose creation was acknowledged (201).
    acked: Vec<String>,
    /// Per step: (writes acknowledged, writes failed, mesh reads answered, mesh reads failed).
    per_step: BTreeMap<usize, [usize; 4]>,
}

/// What the loop needs, owned: it runs beside the main thread, which stops and starts daemons.
struct LoopTargets {
    /// Each manager's API socket.
    sockets: Vec<PathBuf>,
    /// The worker's namespace (never restarted): mesh reads are made from there.
    worker_ns: String,
    /// Every node's address; the mesh is read through each in turn.
    ips: Vec<String>,
}

/// `POST /configs/create` of `name` through the socket; whether it was acknowledged.
fn create_config(sock: &Path, name: &str) -> Result<()> {
    let body = serde_json::json!({ "Name": name, "Data": CONFIG_DATA }).to_string();
    let r = http_unix(sock, "POST", "/configs/create", Some(&body), REQUEST_TIMEOUT)?;
    ensure!(r.status == 201, "creating config {name}: {} {}", r.status, r.message());
    Ok(())
}

/// Names of every config, read through the socket.
fn config_names(sock: &Path) -> Result<BTreeSet<String>> {
    let v = http_unix(sock, "GET", "/configs", None, REQUEST_TIMEOUT)?.json()?;
    let all = v.as_array().context("GET /configs returned no array")?;
    Ok(all.iter().filter_map(|c| str_at(c, "Spec.Name")).map(str::to_owned).collect())
}

/// One TCP request to `ip:PUBLISHED` from namespace `ns`: the answering task's overlay addresses.
fn mesh_read(ns: &str, ip: &str) -> Result<BTreeSet<String>> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "timeout", "3", "busybox", "nc", "-w", "2", ip, &PUBLISHED.to_string()]);
    let o = run(c, Duration::from_secs(5))?;
    let got = overlay_addrs(&o.stdout);
    ensure!(!got.is_empty(), "no answer from {ip}:{PUBLISHED} in {ns}: {} {}", o.stdout, o.stderr);
    Ok(got)
}

/// The client loop: round `n` creates config `up-<n>` through manager `n % 3` and reads the service through the mesh
/// on node `n % 4`, until `stop` is set or its bounds run out.
fn client_loop(t: &LoopTargets, step: &AtomicUsize, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let start = Instant::now();
    for n in 0..LOOP_MAX_ROUNDS {
        if stop.load(Ordering::SeqCst) || start.elapsed() > LOOP_MAX_TIME {
            break;
        }
        let s = step.load(Ordering::SeqCst);
        let name = format!("up-{n}");
        let wrote = create_config(&t.sockets[n % t.sockets.len()], &name).is_ok();
        let read = mesh_read(&t.worker_ns, &t.ips[n % t.ips.len()]).is_ok();
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let row = seen.per_step.entry(s).or_default();
        row[if wrote { 0 } else { 1 }] += 1;
        row[if read { 2 } else { 3 }] += 1;
        if wrote {
            seen.acked.push(name);
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// IDs of the service's running tasks and, per host, the pids of its task programs.
type TasksSeen = (BTreeSet<String>, Vec<Vec<u32>>);

/// [`TasksSeen`] now, the tasks read through host `from`.
fn tasks_and_programs(c: &Cluster, from: usize) -> Result<TasksSeen> {
    let tasks = c.tasks(from, "web")?;
    let ids = tasks.iter().filter(|t| is_running(t)).filter_map(|t| str_at(t, "ID")).map(str::to_owned).collect();
    let pids = (0..NODES)
        .map(|i| {
            let mut p: Vec<u32> = c.task_processes_matching(i, PROGRAM).iter().map(|p| p.pid).collect();
            p.sort_unstable();
            p
        })
        .collect();
    Ok((ids, pids))
}

/// [`TasksSeen`] twice, 300 ms apart, until both agree (a connection's short-lived `nc` child is not a task program).
fn stable_tasks_and_programs(c: &Cluster, from: usize) -> Result<TasksSeen> {
    wait_until("a stable view of the tasks and their programs", CONVERGE, || -> Result<TasksSeen> {
        let a = tasks_and_programs(c, from)?;
        std::thread::sleep(Duration::from_millis(300));
        let b = tasks_and_programs(c, from)?;
        ensure!(a == b, "{a:?} then {b:?}");
        Ok(a)
    })
}

/// The next host to upgrade: a follower not upgraded yet, else the leader; once every manager is, the worker.
fn next_host(c: &mut Cluster, done: &[usize]) -> Result<usize> {
    let Some(from) = (0..MANAGERS).find(|i| !done.contains(i)) else {
        return (MANAGERS..NODES).find(|i| !done.contains(i)).context("every host is upgraded");
    };
    let leader = c.leader_id(from)?;
    let leader_host = c.host_of(&leader).context("the leader's host")?;
    let left: Vec<usize> = (0..MANAGERS).filter(|i| !done.contains(i)).collect();
    Ok(left.iter().copied().find(|&i| i != leader_host).unwrap_or(leader_host))
}

/// The file the running daemon of host `i` executes (`/proc/<pid>/exe`).
fn running_exe(c: &Cluster, i: usize) -> Result<PathBuf> {
    let pid = c.daemon(i).and_then(|d| d.pid()).context("no daemon pid")?;
    std::fs::read_link(format!("/proc/{pid}/exe")).with_context(|| format!("reading /proc/{pid}/exe"))
}

/// Host `v` itself if it is a manager, else the first manager: where the cluster is read after `v`'s step.
fn reader(v: usize) -> usize {
    if v < MANAGERS {
        v
    } else {
        0
    }
}

/// Everything asserted once host `v` runs again on `bin`.
fn check_after_step(c: &Cluster, v: usize, id: &str, bin: &Path, before: &TasksSeen, acked: &[String]) -> Result<()> {
    let name = c.host(v).name.clone();
    ensure!(running_exe(c, v)? == bin, "{name} does not run {}", bin.display());
    ensure!(c.node_id(v)? == id, "{name} changed its node ID across the upgrade");
    c.wait_nodes(reader(v), CONVERGE, &format!("{NODES} Ready nodes, {MANAGERS} reachable managers, one leader"), |n| {
        let reachable = n.iter().filter(|x| matches!(str_at(x, "ManagerStatus"), Some("Reachable" | "Leader"))).count();
        n.len() == NODES
            && count_eq(n, "Status", "Ready") == NODES
            && reachable == MANAGERS
            && count_eq(n, "ManagerStatus", "Leader") == 1
            && find_by(n, "ID", id).is_some_and(|x| str_at(x, "Status") == Some("Ready"))
    })?;
    // Raft caught up: every write acknowledged so far reads back through the restarted manager
    let names = config_names(&c.host(reader(v)).dir.join("skep.sock"))?;
    let missing: Vec<&String> = acked.iter().filter(|a| !names.contains(*a)).collect();
    ensure!(missing.is_empty(), "h{} lacks acknowledged writes after {name}'s restart: {missing:?}", reader(v) + 1);
    // writes succeed through every manager at the end of the step
    for m in 0..MANAGERS {
        let write = format!("step-{name}-via-h{}", m + 1);
        let sock = c.host(m).dir.join("skep.sock");
        wait_until(&format!("a write through h{}", m + 1), CONVERGE, || create_config(&sock, &write))?;
    }
    // the same tasks, run by the same processes: adopted, not restarted. Waited for, not checked once: a program's
    // child for one mesh connection (`nc -ll` forks) may show for a moment with the program's command line.
    wait_until("the same running tasks and task programs as before the step", CONVERGE, || -> Result<()> {
        let now = tasks_and_programs(c, reader(v))?;
        ensure!(now.0 == before.0, "running tasks {:?} -> {:?}", before.0, now.0);
        ensure!(now.1 == before.1, "task programs per host {:?} -> {:?}", before.1, now.1);
        Ok(())
    })?;
    mesh_answers_everywhere(c)
}

/// Waits until the mesh answers through every node, asked from the worker.
fn mesh_answers_everywhere(c: &Cluster) -> Result<()> {
    for i in 0..NODES {
        let what = format!("the mesh answering on h{}", i + 1);
        wait_until(&what, CONVERGE, || mesh_read(c.host(NODES - 1).ns.name(), &c.host(i).ip))?;
    }
    Ok(())
}

#[test]
fn managers_upgraded_one_at_a_time_keep_the_cluster_serving_writes_and_the_mesh_with_tasks_adopted() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(NODES)?;
    c.form(MANAGERS, NODES - MANAGERS)?;
    let ids: Vec<String> = (0..NODES).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    let mut web = vec!["service", "create", "-d", "--name", "web", "--replicas", "4", "-p", "8080:80"];
    web.extend(RESPONDER);
    c.skep_ok(0, &web)?;
    let tasks: Vec<Value> = c.wait_running(0, "web", REPLICAS, CONVERGE)?;
    let spread: BTreeSet<&str> = tasks.iter().filter(|t| is_running(t)).map(node_of).collect();
    eprintln!("web runs on {} nodes", spread.len());
    wait_until("task programs for every task", CONVERGE, || {
        c.processes_match_tasks(&ids, PROGRAM, &c.tasks(0, "web")?, REPLICAS)
    })?;
    mesh_answers_everywhere(&c)?;

    // "the new binary": the same build at another path (see the module doc)
    let new_bin = c.root().join("upgrade").join("skep");
    std::fs::create_dir_all(new_bin.parent().context("a parent")?)?;
    std::fs::copy(skep_tests::skep_bin()?, &new_bin)?;

    let targets = LoopTargets {
        sockets: (0..MANAGERS).map(|i| c.host(i).dir.join("skep.sock")).collect(),
        worker_ns: c.host(NODES - 1).ns.name().to_owned(),
        ips: (0..NODES).map(|i| c.host(i).ip.clone()).collect(),
    };
    let (step, stop, seen) = (AtomicUsize::new(0), AtomicBool::new(false), Mutex::new(Seen::default()));
    let result = std::thread::scope(|s| -> Result<()> {
        let worker = s.spawn(|| client_loop(&targets, &step, &stop, &seen));
        let steps = (|| -> Result<()> {
            let mut done = Vec::new();
            for k in 1..=NODES {
                let v = next_host(&mut c, &done)?;
                let name = c.host(v).name.clone();
                let role = match (v < MANAGERS, c.leader_id(reader(v))? == ids[v]) {
                    (false, _) => "worker",
                    (true, true) => "leader",
                    (true, false) => "follower",
                };
                let before = stable_tasks_and_programs(&c, reader(v))?;
                ensure!(before.0.len() == REPLICAS, "{} running tasks before upgrading {name}", before.0.len());
                step.store(k, Ordering::SeqCst);
                let t0 = Instant::now();
                let killed = c.daemon_mut(v).context("a daemon")?.stop(skep_tests::cluster::STOP_GRACE)?;
                ensure!(!killed, "{name}'s daemon did not exit on SIGTERM");
                let stopped = t0.elapsed();
                // the cluster serves while this daemon restarts: a write through another manager, sent now, beside
                // the restart (which is not delayed for it: a node silent for 3 heartbeats is marked down)
                let other = c.host((v + 1) % MANAGERS).dir.join("skep.sock");
                let write = format!("while-{name}-restarts");
                let writer = std::thread::spawn(move || -> Result<Duration> {
                    wait_until("a write while the daemon restarts", CONVERGE, || create_config(&other, &write))?;
                    Ok(t0.elapsed())
                });
                c.set_bin(v, &new_bin)?;
                c.start(v)?;
                let back = t0.elapsed();
                let written = writer.join().map_err(|_| anyhow::anyhow!("the writer panicked"))??;
                eprintln!(
                    "step {k}: {name} ({}) stopped in {} ms, back on the new binary {} ms after SIGTERM; a write \
                     through another manager sent at SIGTERM was acknowledged after {} ms",
                    role,
                    stopped.as_millis(),
                    back.as_millis(),
                    written.as_millis()
                );
                let acked = seen.lock().unwrap_or_else(|e| e.into_inner()).acked.clone();
                check_after_step(&c, v, &ids[v], &new_bin, &before, &acked)
                    .with_context(|| format!("after upgrading {name}"))?;
                done.push(v);
            }
            Ok(())
        })();
        stop.store(true, Ordering::SeqCst);
        worker.join().map_err(|_| anyhow::anyhow!("the client loop panicked"))?;
        steps
    });
    result?;

    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    for (k, [w_ok, w_err, r_ok, r_err]) in &seen.per_step {
        eprintln!("step {k}: writes {w_ok} acknowledged, {w_err} failed; mesh reads {r_ok} answered, {r_err} failed");
    }
    ensure!(!seen.acked.is_empty(), "the client loop got no write acknowledged");
    for m in 0..MANAGERS {
        let names = config_names(&c.host(m).dir.join("skep.sock"))?;
        let lost: Vec<&String> = seen.acked.iter().filter(|a| !names.contains(*a)).collect();
        ensure!(lost.is_empty(), "h{} lost acknowledged writes: {lost:?}", m + 1);
    }
    c.pass();
    Ok(())
}
