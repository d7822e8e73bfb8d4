//! Services and tasks: the daemon's HTTP API spoken directly over its unix socket (no client in between, so a test
//! sees status codes and the full task objects), waits on a service's tasks, and the processes a host's `process`
//! engine runs for its tasks.
//!
//! The `process` engine runs a task under its init (`skep __skep-task-init outer|supervise <data root>/engine/tasks/
//! <task ID>`, then the program) with its own PID, mount and network namespaces, so its processes are *not* in the
//! host's network namespace (`ip netns pids` does not list them). They are found here by that path instead: every
//! process whose command line names `<host dir>/engine/tasks/`, and all their descendants.

use crate::cluster::{Cluster, CLIENT_TIMEOUT};
use crate::json::{self, str_at};
use crate::process::signal_group;
use crate::wait::wait_until;
use anyhow::Context as _;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A raw API answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Request line, for messages (`GET /tasks`).
    pub request: String,
    /// HTTP status code.
    pub status: u16,
    /// Body (chunked encoding undone; lossy UTF-8).
    pub body: String,
}

impl ApiResponse {
    /// The body parsed as JSON when the status is 2xx, else an error with status and body.
    pub fn json(&self) -> anyhow::Result<Value> {
        anyhow::ensure!((200..300).contains(&self.status), "`{}` answered {}: {}", self.request, self.status, self.body.trim());
        json::parse(&self.body).with_context(|| format!("body of `{}`", self.request))
    }

    /// `message` of a Docker error body (`{"message": "…"}`), or the raw body.
    pub fn message(&self) -> String {
        json::parse(&self.body)
            .ok()
            .and_then(|v| str_at(&v, "message").map(str::to_owned))
            .unwrap_or_else(|| self.body.trim().to_owned())
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for query values such as `filters`).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one HTTP/1.1 request (`Connection: close`) over the unix socket at `sock` and reads the whole answer, all
/// bounded by `timeout`.
pub fn http_unix(sock: &std::path::Path, method: &str, path: &str, body: Option<&str>, timeout: Duration) -> anyhow::Result<ApiResponse> {
    let request = format!("{method} {path}");
    let start = Instant::now();
    let mut s = UnixStream::connect(sock).with_context(|| format!("connecting to {}", sock.display()))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: skep\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = timeout.checked_sub(start.elapsed()).filter(|d| !d.is_zero());
        let left = left.with_context(|| format!("`{request}` on {}: no full answer within {timeout:?}", sock.display()))?;
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading the answer to `{request}`")),
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").with_context(|| format!("`{request}`: no HTTP head in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("`{request}`: bad status line in {head:?}"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
    if chunked {
        payload = dechunk(&payload).with_context(|| format!("`{request}`: bad chunked body"))?;
    }
    Ok(ApiResponse { request, status, body: String::from_utf8_lossy(&payload).into_owned() })
}

/// Undoes `Transfer-Encoding: chunked`.
fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").context("chunk size line")?;
        let line = std::str::from_utf8(&b[..eol])?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(b.len() >= size, "chunk of {size} bytes, {} left", b.len());
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

/// A task's observed state (`Status.State`).
pub fn state(t: &Value) -> &str {
    str_at(t, "Status.State").unwrap_or("")
}

/// A task's desired state.
pub fn desired(t: &Value) -> &str {
    str_at(t, "DesiredState").unwrap_or("")
}

/// A task's node ID (empty while unassigned).
pub fn node_of(t: &Value) -> &str {
    str_at(t, "NodeID").unwrap_or("")
}

/// A task's slot (0 for global tasks).
pub fn slot_of(t: &Value) -> u64 {
    json::at(t, "Slot").and_then(Value::as_u64).unwrap_or(0)
}

/// Whether a task runs and should: observed and desired state both `running`.
pub fn is_running(t: &Value) -> bool {
    state(t) == "running" && desired(t) == "running"
}

/// Whether a task counts against its slot: desired state at most `running` (see the task model).
pub fn is_live(t: &Value) -> bool {
    matches!(desired(t), "new" | "pending" | "assigned" | "accepted" | "preparing" | "ready" | "starting" | "running")
}

/// The tasks that run and should.
pub fn running(tasks: &[Value]) -> Vec<&Value> {
    tasks.iter().filter(|t| is_running(t)).collect()
}

/// Running tasks per node ID.
pub fn running_per_node(tasks: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for t in running(tasks) {
        *m.entry(node_of(t).to_owned()).or_insert(0) += 1;
    }
    m
}

/// Exactly `n` tasks run (and should), every live task runs, and no slot holds two live tasks.
pub fn converged(tasks: &[Value], n: usize) -> bool {
    running(tasks).len() == n && tasks.iter().filter(|t| is_live(t)).count() == n && duplicate_slots(tasks).is_empty()
}

/// Slots holding more than one live task (replicated services only; slot 0 is skipped).
pub fn duplicate_slots(tasks: &[Value]) -> Vec<u64> {
    let mut per: HashMap<u64, usize> = HashMap::new();
    for t in tasks.iter().filter(|t| is_live(t) && slot_of(t) != 0) {
        *per.entry(slot_of(t)).or_insert(0) += 1;
    }
    let mut d: Vec<u64> = per.into_iter().filter(|&(_, n)| n > 1).map(|(s, _)| s).collect();
    d.sort_unstable();
    d
}

/// A compact view of tasks for messages: `slot@node:state/desired[ "err"]`, sorted.
pub fn summarize_tasks(tasks: &[Value]) -> String {
    let mut rows: Vec<String> = tasks
        .iter()
        .map(|t| {
            let node = node_of(t);
            let err = str_at(t, "Status.Err").unwrap_or("");
            let err = if err.is_empty() { String::new() } else { format!(" {err:?}") };
            format!("{}@{}:{}/{}{err}", slot_of(t), &node[..node.len().min(8)], state(t), desired(t))
        })
        .collect();
    rows.sort();
    format!("{} tasks [{}]", tasks.len(), rows.join(", "))
}

/// A process found by [`Cluster::task_processes`].
#[derive(Debug, Clone)]
pub struct TaskProcess {
    /// Pid in the root PID namespace.
    pub pid: u32,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
}

/// `(pid, ppid, cmdline)` of every process (zombies and vanished ones skipped).
fn all_processes() -> Vec<(u32, u32, String)> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return v };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) S ppid …`: comm may hold spaces and parentheses, so parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|k| &stat[k + 1..]) else { continue };
        let mut f = rest.split_whitespace();
        let st = f.next().unwrap_or("");
        let Some(ppid) = f.next().and_then(|p| p.parse().ok()) else { continue };
        if st == "Z" || st == "X" {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd: Vec<String> = cmd.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        v.push((pid, ppid, cmd.join(" ")));
    }
    v
}

/// Pids of the task processes whose command line contains `marker` and `/engine/tasks/` (the `process` engine's
/// init steps), and all their descendants.
fn task_tree(marker: &str) -> Vec<(u32, String)> {
    let procs = all_processes();
    let mut set: BTreeSet<u32> =
        procs.iter().filter(|(_, _, c)| c.contains(marker) && c.contains("/engine/tasks/")).map(|p| p.0).collect();
    loop {
        let before = set.len();
        for (pid, ppid, _) in &procs {
            if set.contains(ppid) {
                set.insert(*pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    procs.into_iter().filter(|(p, _, _)| set.contains(p)).map(|(pid, _, c)| (pid, c)).collect()
}

/// `SIGKILL`s (group and process) every task process under data directory `dir` (a host's, or a whole cluster's):
/// tasks run in their own sessions and namespaces, so neither killing a daemon nor deleting its host namespace
/// reaches them. Returns how many processes were signalled.
pub fn kill_task_processes_under(dir: &std::path::Path) -> usize {
    let marker = format!("{}/", dir.display());
    let procs = task_tree(&marker);
    for (pid, _) in &procs {
        signal_group(*pid, libc::SIGKILL);
        #[allow(unsafe_code)]
        // SAFETY: plain syscall on a pid just read from /proc.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
    procs.len()
}

/// Removes the cgroups of the process-engine tasks under data directory `dir` (a host's, or a whole cluster's):
/// tasks killed by the harness never reach the engine's own cleanup. A task's cgroup is `skep/<task ID>` in every
/// cgroup hierarchy (the daemons, in their own mount namespaces, may have recorded other paths for the same
/// directories). Call after [`kill_task_processes_under`]. Returns how many directories were removed.
pub fn remove_task_cgroups_under(dir: &std::path::Path) -> usize {
    let mut ids = Vec::new();
    for base in [dir.to_path_buf()].into_iter().chain(std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path())) {
        let tasks = base.join("engine").join("tasks");
        ids.extend(std::fs::read_dir(tasks).into_iter().flatten().flatten().map(|e| e.file_name()));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let hierarchies: Vec<std::path::PathBuf> = mountinfo
        .lines()
        .filter(|l| l.split(" - ").nth(1).is_some_and(|r| r.starts_with("cgroup ") || r.starts_with("cgroup2 ")))
        .filter_map(|l| l.split(' ').nth(4).map(std::path::PathBuf::from))
        .collect();
    let mut cgroups: Vec<std::path::PathBuf> =
        ids.iter().flat_map(|id| hierarchies.iter().map(move |h| h.join("skep").join(id))).filter(|d| d.exists()).collect();
    let mut removed = 0;
    // the killed processes may take a moment to leave their cgroups
    for _ in 0..100 {
        cgroups.retain(|d| match std::fs::remove_dir(d) {
            Ok(()) => {
                removed += 1;
                false
            }
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        });
        if cgroups.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    removed
}

/// Kills the task processes left by harness runs whose test process is gone (`<base dir>/skt-<dead pid>-…`); part of
/// [`crate::cleanup_stale`]. Returns one line per cluster directory cleaned.
pub fn kill_stale_task_processes() -> Vec<String> {
    let base = format!("{}/", crate::netns::base_dir().display());
    let mut stems: BTreeSet<String> = BTreeSet::new();
    for (_, _, c) in all_processes() {
        let Some(k) = c.find(&base) else { continue };
        let rest = &c[k + base.len()..];
        let stem = rest.split('/').next().unwrap_or("");
        if c.contains("/engine/tasks/") && crate::netns::stem_pid(stem).is_some_and(|p| !crate::process::pid_alive(p)) {
            stems.insert(stem.to_owned());
        }
    }
    stems
        .into_iter()
        .map(|stem| {
            let n = kill_task_processes_under(&crate::netns::base_dir().join(&stem));
            let cg = remove_task_cgroups_under(&crate::netns::base_dir().join(&stem));
            format!("{n} task processes and {cg} task cgroups of {stem}")
        })
        .collect()
}

impl Cluster {
    /// One raw API request to host `i`'s daemon (bounded by [`CLIENT_TIMEOUT`]); any status is returned, not an
    /// error.
    pub fn api(&self, i: usize, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<ApiResponse> {
        http_unix(&self.host(i).dir.join("skep.sock"), method, path, body, CLIENT_TIMEOUT)
    }

    /// `GET /services` on host `i`.
    pub fn services(&self, i: usize) -> anyhow::Result<Vec<Value>> {
        let v = self.api(i, "GET", "/services", None)?.json()?;
        v.as_array().cloned().with_context(|| format!("GET /services returned no array: {v}"))
    }

    /// `GET /tasks?filters={"service":{"<service>":true}}` on host `i` (name or ID): every stored task of the
    /// service, history included.
    pub fn tasks(&self, i: usize, service: &str) -> anyhow::Result<Vec<Value>> {
        let filters = serde_json::json!({ "service": { service: true } }).to_string();
        let v = self.api(i, "GET", &format!("/tasks?filters={}", url_encode(&filters)), None)?.json()?;
        v.as_array().cloned().with_context(|| format!("GET /tasks returned no array: {v}"))
    }

    /// Waits until the tasks of `service` (seen from host `i`) satisfy `pred`; the error shows the last listing.
    pub fn wait_tasks(
        &self,
        i: usize,
        service: &str,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let what = format!("{what} (tasks of {service} on {})", self.host(i).name);
        wait_until(&what, timeout, || -> anyhow::Result<Vec<Value>> {
            let tasks = self.tasks(i, service)?;
            anyhow::ensure!(pred(&tasks), "{}", summarize_tasks(&tasks));
            Ok(tasks)
        })
    }

    /// Waits until exactly `n` tasks of `service` run (and should), no slot holds two live tasks, and every task
    /// that should run does.
    pub fn wait_running(&self, i: usize, service: &str, n: usize, timeout: Duration) -> anyhow::Result<Vec<Value>> {
        self.wait_tasks(i, service, timeout, &format!("exactly {n} running"), |t| converged(t, n))
    }

    /// The processes that host `i`'s `process` engine runs for tasks: each whose command line names
    /// `<host dir>/engine/tasks/` (the init's outer step and the supervisor) and all their descendants.
    pub fn task_processes(&self, i: usize) -> Vec<TaskProcess> {
        let marker = format!("{}/engine/tasks/", self.host(i).dir.display());
        task_tree(&marker).into_iter().map(|(pid, cmdline)| TaskProcess { pid, cmdline }).collect()
    }

    /// Host `i`'s task *programs* whose command line contains `needle` (e.g. `sleep 3600`): the init's steps (whose
    /// command lines name the task directory) are left out.
    pub fn task_processes_matching(&self, i: usize, needle: &str) -> Vec<TaskProcess> {
        self.task_processes(i)
            .into_iter()
            .filter(|p| p.cmdline.contains(needle) && !p.cmdline.contains("/engine/tasks/"))
            .collect()
    }

    /// Every host's running tasks among `tasks` (per the API; `ids[i]` is host `i`'s node ID) equal its task programs
    /// matching `program`, and `n` run in all: nothing runs twice, nothing runs unknown to the API.
    pub fn processes_match_tasks(&self, ids: &[String], program: &str, tasks: &[Value], n: usize) -> anyhow::Result<()> {
        let per_node = running_per_node(tasks);
        let mut total = 0;
        for (i, id) in ids.iter().enumerate() {
            let procs = self.task_processes_matching(i, program);
            let want = per_node.get(id).copied().unwrap_or(0);
            let name = &self.host(i).name;
            anyhow::ensure!(procs.len() == want, "{name}: {want} running tasks but {} programs: {procs:?}", procs.len());
            total += procs.len();
        }
        anyhow::ensure!(total == n, "{total} programs in all, want {n}");
        Ok(())
    }

    /// `SIGKILL`s every task process of host `i` (groups and processes), e.g. to simulate the loss of a whole
    /// machine together with [`Cluster::kill`]. Returns how many processes were signalled.
    pub fn kill_task_processes(&self, i: usize) -> usize {
        kill_task_processes_under(&self.host(i).dir)
    }
}

/// The overlay IPv4 addresses (10.x, not the tests' 10.213.x underlay) in `ip -o -4 addr` output: what the tests'
/// network responders (`busybox nc -ll -p 80 -e busybox ip -o -4 addr`) answer with.
pub fn overlay_addrs(text: &str) -> std::collections::BTreeSet<String> {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "inet" && w[1].starts_with("10.") && !w[1].starts_with("10.213."))
        .map(|w| w[1].split('/').next().unwrap_or_default().to_string())
        .collect()
}
