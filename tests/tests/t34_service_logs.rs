//! `docker service logs` and `skep service logs` against skep: the output of a service's tasks on three hosts, each
//! line named by its task (the stock docker CLI reads the `com.docker.swarm.*` details), `--tail` per task, `-t`;
//! a follower keeps printing across a task's restart (the new task's lines come); and when a node goes down, a
//! follower gets one error line for that node's task while the other tasks keep streaming, and a new `service logs`
//! finishes with an error line for each of that node's tasks instead of hanging (Docker's hangs: moby/moby#33183);
//! a task's output from before its node's daemon restarted is still there after.

use anyhow::{ensure, Context as _, Result};
use skep_tests::{require_root_and_netns, Cluster};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A task writes a line to stdout and one to stderr every 200 ms, and ends after 40 of each (about 8 s); the
/// restart policy starts its successor a second later.
const PROGRAM: &str = "i=0; while [ $i -lt 40 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); sleep 0.2; done";

/// One printed line: stderr or stdout, the task context before ` | `, the rest.
#[derive(Clone, Debug)]
struct Line {
    stderr: bool,
    context: String,
    text: String,
}

impl Line {
    fn parse(stderr: bool, l: &str) -> Option<Line> {
        let (ctx, text) = l.split_once(" | ")?;
        Some(Line { stderr, context: ctx.trim_end().to_string(), text: text.to_string() })
    }

    /// `lg.<slot>.<task ID prefix>@<host>` → the task ID prefix.
    fn task(&self) -> &str {
        let name = self.context.rsplit(' ').next().unwrap_or("");
        name.split('@').next().unwrap_or("").splitn(3, '.').nth(2).unwrap_or("")
    }
}

/// The 12-character ID prefixes of the service's tasks on node `node_id` (history included).
fn tasks_on(c: &Cluster, node_id: &str) -> Result<BTreeSet<String>> {
    Ok(c.tasks(0, "lg")?
        .iter()
        .filter(|t| t["NodeID"] == node_id)
        .filter_map(|t| t["ID"].as_str().map(|id| id[..12].to_string()))
        .collect())
}

fn lines(out: &skep_tests::Output) -> Vec<Line> {
    let mut v: Vec<Line> = out.stdout.lines().filter_map(|l| Line::parse(false, l)).collect();
    v.extend(out.stderr.lines().filter_map(|l| Line::parse(true, l)));
    v
}

/// A follower: a CLI process whose stdout and stderr lines arrive on a channel.
struct Follower {
    child: Child,
    rx: Receiver<Line>,
}

impl Follower {
    fn spawn(mut cmd: Command) -> Result<Follower> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let (tx, rx) = channel();
        for (stderr, pipe) in [
            (false, Box::new(child.stdout.take().context("stdout")?) as Box<dyn std::io::Read + Send>),
            (true, Box::new(child.stderr.take().context("stderr")?)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(std::result::Result::ok) {
                    if let Some(line) = Line::parse(stderr, &l) {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        Ok(Follower { child, rx })
    }

    /// Lines until `done` says so (true), or an error after `limit`.
    fn until(&self, what: &str, limit: Duration, mut done: impl FnMut(&Line) -> bool) -> Result<Vec<Line>> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.rx.recv_timeout(left).with_context(|| format!("{what}: not within {limit:?}; saw {} lines: {:?}", seen.len(), seen.iter().rev().take(5).collect::<Vec<_>>()))?;
            let stop = done(&l);
            seen.push(l);
            if stop {
                return Ok(seen);
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn docker_cmd(c: &Cluster, i: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new(skep_tests::docker_bin());
    cmd.arg("-H").arg(c.host_arg(i)).args(args).env("DOCKER_CONFIG", c.root().join("docker-config")).env_remove("DOCKER_HOST");
    cmd
}

#[test]
fn service_logs_stream_from_every_node_and_survive_a_node_going_down() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    c.docker(
        0,
        &[
            "service", "create", "-d", "--name", "lg", "--replicas", "3", "--replicas-max-per-node", "1",
            "--restart-condition", "any", "--restart-delay", "1s", "busybox", "sh", "-c", PROGRAM,
        ],
    )?
    .ok()?;
    c.wait_running(0, "lg", 3, Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(2));

    // --tail 2: the last two lines of each of the three tasks, each named by its task and node
    let out = c.docker(0, &["service", "logs", "--tail", "2", "lg"])?;
    out.ok()?;
    let got = lines(&out);
    let tasks: BTreeSet<&str> = got.iter().map(Line::task).collect();
    ensure!(tasks.len() == 3 && got.len() == 6, "--tail 2 of three tasks:\n{}\n{}", out.stdout, out.stderr);
    ensure!(got.iter().all(|l| l.context.starts_with("lg.") && l.task().len() == 12), "{got:?}");
    for i in 0..3 {
        let on = tasks_on(&c, &c.node_id(i)?)?;
        ensure!(tasks.iter().filter(|t| on.contains(**t)).count() == 1, "one task of host {i} in the output: {tasks:?}");
    }
    ensure!(got.iter().all(|l| l.text.starts_with(if l.stderr { "err " } else { "out " })), "streams apart: {got:?}");

    // -t: every line starts with its time; all of it: the first lines of every task
    let out = c.docker(0, &["service", "logs", "-t", "lg"])?;
    out.ok()?;
    let got = lines(&out);
    ensure!(got.iter().all(|l| l.context.get(..4).is_some_and(|y| y.starts_with("20")) && l.context.contains("Z ")), "{}", out.stdout);
    ensure!(got.iter().filter(|l| l.text == "out 0").count() >= 3, "every task from its start:\n{}", out.stdout);

    // the skep CLI: the same lines
    let out = c.skep(0, &["service", "logs", "--tail", "1", "lg"])?;
    out.ok()?;
    ensure!(lines(&out).len() == 3, "skep service logs --tail 1:\n{}\n{}", out.stdout, out.stderr);
    let out = c.skep(0, &["service", "logs", "-t", "--tail", "1", "lg"])?;
    out.ok()?;
    ensure!(lines(&out).iter().all(|l| l.context.contains("Z ")), "{}", out.stdout);

    // following across a restart: each task ends after ~8 s and its successor's lines come on the same stream
    let first: BTreeSet<String> = got.iter().map(|l| l.task().to_string()).collect();
    let f = Follower::spawn(docker_cmd(&c, 0, &["service", "logs", "-f", "--tail", "0", "lg"]))?;
    let seen = f.until("a restarted task's lines", Duration::from_secs(40), |l| !first.contains(l.task()) && l.text == "out 3")?;
    eprintln!("follower: {} lines before a new task's 'out 3'", seen.len());

    // a node goes down: one error line for its task, and the other tasks' lines keep coming
    let worker = c.node_id(2)?;
    c.kill(2)?;
    let killed = Instant::now();
    let seen = f.until("an error line for the down node's task", Duration::from_secs(30), |l| l.stderr && l.text.starts_with("error from daemon in stream"))?;
    let err = seen.last().context("the error line")?.clone();
    eprintln!("error line after {} ms: {} | {}", killed.elapsed().as_millis(), err.context, err.text);
    let down = tasks_on(&c, &worker)?;
    ensure!(down.contains(err.task()), "the error names a task of the down node: {err:?} (its tasks: {down:?})");
    let after = f.until("lines of the other tasks after the error", Duration::from_secs(15), {
        let down = down.clone();
        let mut n = 0;
        move |l| {
            if !down.contains(l.task()) && l.text.starts_with("out ") {
                n += 1;
            }
            n >= 5
        }
    })?;
    ensure!(!after.iter().any(|l| down.contains(l.task()) && !l.stderr), "no more lines from the down node: {after:?}");
    drop(f);

    // a new `service logs` once the node is down: finishes, an error line per task of that node, the others' lines
    c.wait_nodes(0, Duration::from_secs(30), "worker down", |nodes| {
        nodes.iter().any(|n| n["ID"] == worker.as_str() && n["Status"] == "Down")
    })?;
    let out = c.docker(0, &["service", "logs", "--tail", "1", "lg"])?;
    let got = lines(&out);
    let errors: Vec<&Line> = got.iter().filter(|l| l.text.starts_with("error from daemon in stream")).collect();
    ensure!(!errors.is_empty() && errors.iter().all(|l| down.contains(l.task()) && l.text.contains("is down")), "{}\n{}", out.stdout, out.stderr);
    ensure!(
        got.iter().any(|l| !down.contains(l.task()) && (l.text.starts_with("out ") || l.text.starts_with("err "))),
        "the other tasks' lines:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    ensure!(out.code == Some(0), "service logs exits 0 with a node down: {out:?}");

    // the manager's daemon restarts (its task goes on running): the output from before the restart is still there
    let manager = c.node_id(0)?;
    let on_manager = tasks_on(&c, &manager)?;
    let before = c.docker(0, &["service", "logs", "lg"])?;
    before.ok()?;
    // the manager's tasks whose first line a listing shows
    let firsts = |out: &skep_tests::Output| -> BTreeSet<String> {
        lines(out).into_iter().filter(|l| on_manager.contains(l.task()) && l.text == "out 0").map(|l| l.task().to_string()).collect()
    };
    let shown = firsts(&before);
    ensure!(!shown.is_empty(), "the manager's tasks' first lines: {}", before.stdout);
    c.restart(0)?;
    let after = skep_tests::wait_until("service logs after the restart", Duration::from_secs(30), || -> Result<skep_tests::Output> {
        let out = c.docker(0, &["service", "logs", "lg"])?;
        out.ok()?;
        Ok(out)
    })?;
    // (a task may have left the store's history meanwhile: only those still there are compared)
    let still = tasks_on(&c, &manager)?;
    let missing: Vec<&String> = shown.iter().filter(|t| still.contains(*t) && !firsts(&after).contains(*t)).collect();
    ensure!(missing.is_empty(), "first lines gone after the daemon restarted, of {missing:?}:\n{}", after.stdout);
    c.pass();
    Ok(())
}
