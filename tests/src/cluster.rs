//! A test's hosts on one switch, their daemons, the clients that talk to them, and swarm-level helpers.

use crate::daemon::Daemon;
use crate::json;
use crate::netns::{base_dir, cleanup_stale, unique_stem, Netns, Switch};
use crate::process::{run, Output};
use crate::wait::wait_until;
use anyhow::Context as _;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

/// Swarm port every daemon listens on (on its own address).
pub const SWARM_PORT: u16 = 2377;
/// Default time limit of one client command.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a daemon's start (socket up and `info` answering).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace between `SIGTERM` and `SIGKILL` in [`Cluster::stop`].
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of each daemon log printed when a test fails.
pub const LOG_TAIL: usize = 50;

/// Role a node joins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Raft member, runs the control plane.
    Manager,
    /// Runs tasks only.
    Worker,
}

impl Role {
    /// `"manager"` / `"worker"`, as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// One host: a namespace with one address on the switch, and a data directory on the shared filesystem.
#[derive(Debug)]
pub struct Host {
    /// 0-based position in the cluster.
    pub index: usize,
    /// `h1`, `h2`, … (1-based, as people count).
    pub name: String,
    /// The host's namespace.
    pub ns: Netns,
    /// IPv4 address on the switch (`10.213.X.<index+1>`).
    pub ip: String,
    /// Switch-side veth name (`v1`, …); setting it down partitions the host.
    pub port: String,
    /// Data root of the host's daemon (socket and log inside).
    pub dir: PathBuf,
}

impl Host {
    /// `<ip>:2377`.
    pub fn addr(&self) -> String {
        format!("{}:{SWARM_PORT}", self.ip)
    }

    /// Whether this host reaches `ip`: `ping -c1 -W1` when ping is installed, otherwise a TCP connect to
    /// port 9 with bash's `/dev/tcp` (an answer, even "connection refused", proves the path works).
    pub fn can_reach(&self, ip: &str) -> anyhow::Result<bool> {
        if crate::find_in_path("ping").is_some() {
            let o = self.ns.exec("ping", &["-c1", "-W1", ip], Duration::from_secs(5))?;
            return Ok(o.success());
        }
        let script = format!("exec 3<>/dev/tcp/{ip}/9");
        let o = self.ns.exec("timeout", &["2", "bash", "-c", &script], Duration::from_secs(5))?;
        Ok(o.success() || o.stderr.contains("Connection refused"))
    }
}

/// Hosts on a private switch, each able to run one skep daemon.
///
/// Dropping it kills every daemon (process groups), deletes every namespace (which removes the veths),
/// and removes the data directories, except when the test failed (panicked, or [`Cluster::pass`] was not
/// called): then the last [`LOG_TAIL`] lines of each daemon log are printed and the directory is kept. With env
/// `SKEP_TEST_KEEP=1` the directory (daemon logs included) is kept after a pass too.
#[derive(Debug)]
pub struct Cluster {
    /// `skt-<pid>-<n>`: prefix of every name of this cluster.
    stem: String,
    /// X in 10.213.X.0/24.
    subnet: u8,
    /// Daemons, one per host, created on first start. Declared first: dropped (killed) first.
    daemons: Vec<Option<Daemon>>,
    /// The hosts.
    hosts: Vec<Host>,
    /// The bridge namespace; dropped after the hosts.
    switch: Switch,
    /// `<base>/<stem>`: all hosts' data plus an empty docker config dir.
    root: PathBuf,
    /// Time limit of each client command.
    client_timeout: Duration,
    /// Set by [`Cluster::pass`]; decides between cleanup and keeping evidence.
    passed: bool,
    /// One of the machine-wide daemon slots, taken at the first daemon start (see [`slot::Slot`]).
    slot: Option<slot::Slot>,
    /// `--engine` of daemons created from now on (see [`Cluster::set_engine`]).
    engine: Option<String>,
    /// Further daemon flags for daemons created from now on (`None`: the harness's defaults).
    extra_args: Option<Vec<String>>,
}

impl Cluster {
    /// Creates `n_hosts` hosts (namespaces `skt-<pid>-<n>-h<i>`) on a new switch (`skt-<pid>-<n>-sw`),
    /// addresses `10.213.X.1..n` with X derived from the name. Starts no daemon.
    ///
    /// The first call in a process also runs [`cleanup_stale`].
    pub fn new(n_hosts: usize) -> anyhow::Result<Cluster> {
        anyhow::ensure!((1..=200).contains(&n_hosts), "1..=200 hosts, not {n_hosts}");
        static CLEAN: Once = Once::new();
        CLEAN.call_once(|| match cleanup_stale() {
            Ok(r) if !r.is_empty() => eprintln!("harness: removed stale leftovers: {}", r.join(", ")),
            Ok(_) => {}
            Err(e) => eprintln!("harness: cleanup_stale failed: {e:#}"),
        });
        let stem = unique_stem();
        // Each switch is its own L2 segment, so equal subnets could not even collide; still, distinct X
        // per cluster keeps logs unambiguous. 250 is left to deploy/local-cluster.sh.
        let subnet = 1 + (fnv1a(stem.as_bytes()) % 249) as u8;
        let root = base_dir().join(&stem);
        std::fs::create_dir_all(root.join("docker-config"))
            .with_context(|| format!("creating {}", root.display()))?;
        let switch = Switch::create(&format!("{stem}-sw"))?;
        let mut c = Cluster {
            stem,
            subnet,
            daemons: Vec::new(),
            hosts: Vec::new(),
            switch,
            root,
            client_timeout: CLIENT_TIMEOUT,
            passed: false,
            slot: None,
            engine: default_engine(),
            extra_args: None,
        };
        for i in 0..n_hosts {
            let name = format!("h{}", i + 1);
            let ns = Netns::create(&format!("{}-{name}", c.stem))?;
            let ip = format!("10.213.{}.{}", c.subnet, i + 1);
            let port = format!("v{}", i + 1);
            c.switch.plug(&ns, &port, &format!("{ip}/24"))?;
            let dir = c.root.join(&name);
            std::fs::create_dir_all(&dir)?;
            c.hosts.push(Host { index: i, name, ns, ip, port, dir });
            c.daemons.push(None);
        }
        Ok(c)
    }

    /// Marks the test as passed: on drop, data directories are removed and no logs are printed.
    pub fn pass(&mut self) {
        self.passed = true;
    }

    /// Name prefix of this cluster's namespaces.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// `10.213.X.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.213.{}.0/24", self.subnet)
    }

    /// Directory holding all hosts' data.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// All hosts.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `i` (0-based).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Never true: a cluster has at least one host.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The switch.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// Names of every namespace of this cluster (switch first).
    pub fn netns_names(&self) -> Vec<String> {
        let mut v = vec![self.switch.netns().name().to_owned()];
        v.extend(self.hosts.iter().map(|h| h.ns.name().to_owned()));
        v
    }

    /// Changes the time limit of client commands.
    pub fn set_client_timeout(&mut self, t: Duration) {
        self.client_timeout = t;
    }

    // ---- daemons ----

    /// Host `i`'s daemon, if it was ever started.
    pub fn daemon(&self, i: usize) -> Option<&Daemon> {
        self.daemons[i].as_ref()
    }

    /// Mutable access to host `i`'s daemon, if it was ever started.
    pub fn daemon_mut(&mut self, i: usize) -> Option<&mut Daemon> {
        self.daemons[i].as_mut()
    }

    /// Sets the `--engine` of every daemon from its next start on (`None`: the daemon's own default, `auto`).
    ///
    /// The default is `process` (env `SKEP_TEST_ENGINE` overrides it; `default` means no flag): every host
    /// namespace shares the machine's one Docker engine, so `auto` would let five "hosts" run their tasks as
    /// containers of the same engine.
    pub fn set_engine(&mut self, engine: Option<&str>) {
        self.engine = engine.map(str::to_owned);
        for d in self.daemons.iter_mut().flatten() {
            d.set_engine(engine);
        }
    }

    /// Host `i`'s daemon, made (not started) on first use, with the cluster's further flags.
    fn daemon_entry(&mut self, i: usize) -> anyhow::Result<&mut Daemon> {
        if self.daemons[i].is_none() {
            let bin = crate::skep_bin()?;
            let h = &self.hosts[i];
            let mut d = Daemon::new(&h.name, h.ns.name(), &h.dir, &bin);
            d.set_engine(self.engine.as_deref());
            if let Some(a) = &self.extra_args {
                d.set_extra_args(a);
            }
            self.daemons[i] = Some(d);
        }
        Ok(self.daemons[i].as_mut().expect("created above"))
    }

    /// Sets more flags (besides the cluster's, see [`Cluster::set_daemon_args`]) and environment for host `i`'s
    /// daemon from its next start on.
    pub fn set_daemon_extras(&mut self, i: usize, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut all: Vec<String> = match &self.extra_args {
            Some(a) => a.clone(),
            None => crate::daemon::DEFAULT_EXTRA_ARGS.iter().map(|s| s.to_string()).collect(),
        };
        all.extend(args.iter().map(|s| s.to_string()));
        let d = self.daemon_entry(i)?;
        d.set_extra_args(&all);
        d.set_extra_env(env);
        Ok(())
    }

    /// Sets further daemon flags (replacing `daemon::DEFAULT_EXTRA_ARGS`) for every daemon from its next start on.
    pub fn set_daemon_args(&mut self, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for d in self.daemons.iter_mut().flatten() {
            d.set_extra_args(&args);
        }
        self.extra_args = Some(args);
    }

    /// Sets the skep binary of host `i`'s daemon from its next start on (an upgrade over the same data root).
    pub fn set_bin(&mut self, i: usize, bin: &std::path::Path) -> anyhow::Result<()> {
        self.daemon_entry(i)?.set_bin(bin);
        Ok(())
    }

    /// Whether host `i`'s daemon runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.daemons[i].as_mut().is_some_and(Daemon::is_running)
    }

    /// Starts (or restarts, keeping the data root) host `i`'s daemon and waits until its API answers
    /// `info` (bounded by [`START_TIMEOUT`]).
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        if self.slot.is_none() {
            self.slot = Some(slot::Slot::acquire()?);
        }
        let d = self.daemon_entry(i)?;
        d.start()?;
        d.wait_socket(START_TIMEOUT)?;
        let what = format!("daemon {} to answer `info`", self.hosts[i].name);
        wait_until(&what, START_TIMEOUT, || self.skep_ok(i, &["info", "--format", "json"]).map(drop))?;
        Ok(())
    }

    /// Starts every host's daemon.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        (0..self.len()).try_for_each(|i| self.start(i))
    }

    /// `SIGKILL`s host `i`'s daemon (a crash).
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.daemons[i].as_mut().with_context(|| format!("{} has no daemon", self.hosts[i].name))?.kill()
    }

    /// Stops host `i`'s daemon: `SIGTERM`, then `SIGKILL` after [`STOP_GRACE`].
    pub fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        self.daemons[i]
            .as_mut()
            .with_context(|| format!("{} has no daemon", self.hosts[i].name))?
            .stop(STOP_GRACE)
            .map(drop)
    }

    /// Stops host `i`'s daemon if it runs, then starts it again on the same data root.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.is_running(i) {
            self.stop(i)?;
        }
        self.start(i)
    }

    /// Whether host `i`'s daemon log (every start of it so far) holds `text`; false when it never started.
    pub fn log_contains(&self, i: usize, text: &str) -> bool {
        self.daemon(i).is_some_and(|d| std::fs::read_to_string(d.log_path()).unwrap_or_default().contains(text))
    }

    /// Prints the last `n` log lines of every daemon that was started.
    pub fn dump_logs(&self, n: usize) {
        for (h, d) in self.hosts.iter().zip(&self.daemons) {
            if let Some(d) = d {
                eprintln!("---- {} ({}, {}) last {n} lines of {} ----", h.name, h.ip, h.ns.name(), d.log_path().display());
                eprintln!("{}", d.log_tail(n));
            }
        }
    }

    // ---- network faults ----

    /// Cuts host `i` off the switch (its switch-side veth goes down).
    pub fn partition(&self, i: usize) -> anyhow::Result<()> {
        self.switch.set_port(&self.hosts[i].port, false)
    }

    /// Plugs host `i` back in.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        self.switch.set_port(&self.hosts[i].port, true)
    }

    // ---- clients ----

    /// Runs `skep -H unix://<host i socket> <args>` from the root namespace, killed after the client
    /// timeout. A non-zero exit is returned, not an error (see [`Output::ok`]).
    pub fn skep(&self, i: usize, args: &[&str]) -> anyhow::Result<Output> {
        let mut c = Command::new(crate::skep_bin()?);
        c.arg("-H").arg(self.host_arg(i)).args(args).env_remove("SKEP_HOST").env("RUST_LOG", "warn");
        run(c, self.client_timeout)
    }

    /// [`Cluster::skep`] that must succeed; returns stdout.
    pub fn skep_ok(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.skep(i, args)?.ok()?.to_owned())
    }

    /// Runs the stock docker CLI against host `i`'s socket, with an empty `DOCKER_CONFIG` and no docker
    /// environment of the caller.
    pub fn docker(&self, i: usize, args: &[&str]) -> anyhow::Result<Output> {
        let mut c = Command::new(crate::docker_bin());
        clean_docker_env(&mut c, &self.root.join("docker-config"));
        c.arg("-H").arg(self.host_arg(i)).args(args);
        run(c, self.client_timeout)
    }

    /// `unix://<host i data root>/skep.sock`.
    pub fn host_arg(&self, i: usize) -> String {
        format!("unix://{}", self.hosts[i].dir.join("skep.sock").display())
    }

    // ---- swarm ----

    /// `swarm init --advertise-addr <ip> --listen-addr <ip>:2377` on host `i`; returns stdout.
    pub fn init(&self, i: usize) -> anyhow::Result<String> {
        let h = &self.hosts[i];
        self.skep_ok(i, &["swarm", "init", "--advertise-addr", &h.ip, "--listen-addr", &h.addr()])
    }

    /// `swarm join-token -q <role>` on host `i`.
    pub fn join_token(&self, i: usize, role: Role) -> anyhow::Result<String> {
        Ok(self.skep_ok(i, &["swarm", "join-token", "-q", role.as_str()])?.trim().to_owned())
    }

    /// `swarm join --token <token> --advertise-addr <ip> --listen-addr <ip>:2377 <host via>:2377` on host
    /// `i`. Returns the output, failed or not, so refusals can be asserted.
    pub fn join(&self, i: usize, via: usize, token: &str) -> anyhow::Result<Output> {
        let h = &self.hosts[i];
        let remote = self.hosts[via].addr();
        self.skep(i, &["swarm", "join", "--token", token, "--advertise-addr", &h.ip, "--listen-addr", &h.addr(), &remote])
    }

    /// Builds a swarm on hosts `0..managers+workers`: starts their daemons, inits on host 0, joins hosts
    /// `1..managers` as managers and the next `workers` as workers (all through host 0), then waits until
    /// host 0 lists every node as Ready.
    pub fn form(&mut self, managers: usize, workers: usize) -> anyhow::Result<()> {
        let n = managers + workers;
        anyhow::ensure!(managers >= 1 && n <= self.len(), "{managers} managers + {workers} workers on {} hosts", self.len());
        for i in 0..n {
            if !self.is_running(i) {
                self.start(i)?;
            }
        }
        self.init(0)?;
        let mtoken = self.join_token(0, Role::Manager)?;
        let wtoken = self.join_token(0, Role::Worker)?;
        for i in 1..n {
            let token = if i < managers { &mtoken } else { &wtoken };
            self.join(i, 0, token)?.ok().with_context(|| format!("joining {}", self.hosts[i].name))?;
        }
        self.wait_nodes(0, Duration::from_secs(30), &format!("{n} nodes Ready"), |nodes| {
            nodes.len() == n && nodes.iter().all(|v| json::str_at(v, "Status") == Some("Ready"))
        })?;
        Ok(())
    }

    /// `node ls --format json` on host `i`: one object per node.
    pub fn node_ls(&self, i: usize) -> anyhow::Result<Vec<Value>> {
        self.skep(i, &["node", "ls", "--format", "json"])?.json_lines()
    }

    /// `node inspect <id>` on host `i`: the first (only) Node object.
    pub fn node_inspect(&self, i: usize, id: &str) -> anyhow::Result<Value> {
        let v = self.skep(i, &["node", "inspect", id])?.json()?;
        v.get(0).cloned().with_context(|| format!("node inspect {id} returned no node: {v}"))
    }

    /// `info --format json` on host `i`.
    pub fn info(&self, i: usize) -> anyhow::Result<Value> {
        self.skep(i, &["info", "--format", "json"])?.json()
    }

    /// Host `i`'s node ID (`Swarm.NodeID` of its `info`); an error when empty.
    pub fn node_id(&self, i: usize) -> anyhow::Result<String> {
        let info = self.info(i)?;
        let id = json::req_str(&info, "Swarm.NodeID")?;
        anyhow::ensure!(!id.is_empty(), "{} has no node ID (not in a swarm?)", self.hosts[i].name);
        Ok(id.to_owned())
    }

    /// The host whose running daemon has node ID `id`.
    pub fn host_of(&mut self, id: &str) -> Option<usize> {
        (0..self.len()).find(|&i| self.is_running(i) && self.node_id(i).ok().as_deref() == Some(id))
    }

    /// The leader's node ID as `node ls` on host `i` reports it; an error unless exactly one node is
    /// `Leader`.
    pub fn leader_id(&self, i: usize) -> anyhow::Result<String> {
        let nodes = self.node_ls(i)?;
        let leaders: Vec<&str> = nodes
            .iter()
            .filter(|v| json::str_at(v, "ManagerStatus") == Some("Leader"))
            .filter_map(|v| json::str_at(v, "ID"))
            .collect();
        anyhow::ensure!(leaders.len() == 1, "{} leaders seen from {}: {leaders:?}", leaders.len(), self.hosts[i].name);
        Ok(leaders[0].to_owned())
    }

    /// Waits until `node ls` on host `i` satisfies `pred`; `what` names the condition in the error, which
    /// also shows the last listing.
    pub fn wait_nodes(
        &self,
        i: usize,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let what = format!("{what} (node ls on {})", self.hosts[i].name);
        wait_until(&what, timeout, || -> anyhow::Result<Vec<Value>> {
            let nodes = self.node_ls(i)?;
            anyhow::ensure!(pred(&nodes), "{}", summarize(&nodes));
            Ok(nodes)
        })
    }
}

/// A compact view of a `node ls` listing for messages: `ID/Status/Availability/ManagerStatus` per node.
pub fn summarize(nodes: &[Value]) -> String {
    let rows: Vec<String> = nodes
        .iter()
        .map(|v| {
            let f = |k| json::str_at(v, k).unwrap_or("-").to_owned();
            format!("{}/{}/{}/{}", f("ID"), f("Status"), f("Availability"), f("ManagerStatus"))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

pub mod slot {
    //! How many clusters run daemons at once on this machine, across test processes.
    //!
    //! nextest runs every test in its own process, as many as there are cores; five daemons per test on
    //! a small machine starve each other and turn timing bounds (elections, heartbeats) into noise. A
    //! cluster therefore holds one of `SKEP_TEST_MAX_CLUSTERS` (default 2) slots, an exclusive `flock` on
    //! `<base dir>/slot-<k>.lock`, from its first daemon start until it is dropped. The kernel releases a
    //! lock when its holder dies, so a crashed run never keeps a slot.

    use anyhow::Context as _;
    use std::fs::File;
    use std::os::fd::AsRawFd as _;
    use std::time::{Duration, Instant};

    /// Longest wait for a free slot.
    pub const SLOT_WAIT: Duration = Duration::from_secs(900);

    /// A held slot; released when dropped (the file closes).
    #[derive(Debug)]
    pub struct Slot {
        /// The locked file; closing it releases the lock.
        _file: File,
    }

    impl Slot {
        /// Waits (bounded by [`SLOT_WAIT`]) for a free slot.
        pub fn acquire() -> anyhow::Result<Slot> {
            let n: usize = std::env::var("SKEP_TEST_MAX_CLUSTERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2).max(1);
            let dir = crate::netns::base_dir();
            std::fs::create_dir_all(&dir)?;
            let start = Instant::now();
            let mut announced = false;
            for _ in 0..(SLOT_WAIT.as_millis() / 100 + 1) {
                for k in 0..n {
                    let path = dir.join(format!("slot-{k}.lock"));
                    let file = File::options().create(true).truncate(false).write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
                    #[allow(unsafe_code)]
                    // SAFETY: flock on a descriptor we own.
                    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                        return Ok(Slot { _file: file });
                    }
                }
                if !announced {
                    eprintln!("harness: waiting for one of {n} cluster slots (SKEP_TEST_MAX_CLUSTERS)");
                    announced = true;
                }
                if start.elapsed() >= SLOT_WAIT {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            anyhow::bail!("no cluster slot free after {SLOT_WAIT:?} (SKEP_TEST_MAX_CLUSTERS={n})")
        }
    }
}

/// `--engine` of new clusters' daemons: env `SKEP_TEST_ENGINE` (`default` = no flag), else `process`.
fn default_engine() -> Option<String> {
    match std::env::var("SKEP_TEST_ENGINE") {
        Ok(e) if e == "default" || e.is_empty() => None,
        Ok(e) => Some(e),
        Err(_) => Some("process".into()),
    }
}

/// FNV-1a, to derive a subnet from a name.
fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ x as u32).wrapping_mul(0x0100_0193))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failed = std::thread::panicking() || !self.passed;
        if failed {
            self.dump_logs(LOG_TAIL);
        }
        // Kill daemons first, then their tasks (own sessions and namespaces: nothing else reaches them), then
        // namespaces (Netns drops kill stragglers), then the switch.
        for d in &mut self.daemons {
            drop(d.take());
        }
        let tasks = crate::services::kill_task_processes_under(&self.root);
        let cgroups = crate::services::remove_task_cgroups_under(&self.root);
        if (tasks > 0 || cgroups > 0) && failed {
            eprintln!("harness: killed {tasks} task processes of cluster {}, removed {cgroups} task cgroups", self.stem);
        }
        self.hosts.clear();
        // the daemons' network and sandbox namespaces (`<host>-x-…`) lived in their mount namespaces and are gone
        // with them; only the empty files under /run/netns remain
        for n in crate::netns::list_netns().unwrap_or_default() {
            if n.starts_with(&format!("{}-", self.stem)) && n.contains("-x-") {
                let _ = std::fs::remove_file(std::path::Path::new("/run/netns").join(&n));
            }
        }
        if failed {
            eprintln!("harness: test failed; kept data of cluster {} in {}", self.stem, self.root.display());
        } else if std::env::var("SKEP_TEST_KEEP").as_deref() == Ok("1") {
            eprintln!("harness: SKEP_TEST_KEEP=1: kept data of cluster {} in {}", self.stem, self.root.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("harness: could not remove {}: {e}", self.root.display());
        }
        // `switch` drops after this body, deleting the bridge namespace; then `slot` is released.
    }
}

/// Gives a docker CLI command an own `DOCKER_CONFIG` and none of the caller's docker environment.
pub fn clean_docker_env(c: &mut Command, config: &std::path::Path) {
    c.env("DOCKER_CONFIG", config)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_API_VERSION");
}
