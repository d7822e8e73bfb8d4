//! Network namespaces as hosts, and the switch that joins them.
//!
//! Nothing is created in the root namespace: the bridge lives in a [`Switch`] namespace, and each veth
//! pair is created *inside* the switch namespace with its other end moved straight into the host
//! namespace. Deleting a namespace deletes its end of a veth, which deletes the pair.

use crate::process::{pid_alive, run, signal_group, Output};
use crate::PREFIX;
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Time limit for one `ip` command.
const IP_TIMEOUT: Duration = Duration::from_secs(15);

/// A name stem unique to this process and call: `skt-<pid>-<n>`.
pub fn unique_stem() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Where hosts keep their data directories: env `SKEP_TEST_DIR`, else `/tmp/skt`.
///
/// Kept short: a unix socket path must fit in 108 bytes.
pub fn base_dir() -> PathBuf {
    std::env::var_os("SKEP_TEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/skt"))
}

/// Runs `ip <args>` (bounded) and returns stdout, or an error with stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let mut c = Command::new("ip");
    c.args(args);
    Ok(run(c, IP_TIMEOUT)?.ok()?.to_owned())
}

/// Runs `ip <args>` (bounded) and returns the whole [`Output`], failed or not.
pub fn ip_output(args: &[&str]) -> anyhow::Result<Output> {
    let mut c = Command::new("ip");
    c.args(args);
    run(c, IP_TIMEOUT)
}

/// Names of all network namespaces (`ip netns list`).
pub fn list_netns() -> anyhow::Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Pids of the processes in namespace `name` (`ip netns pids`).
pub fn netns_pids(name: &str) -> Vec<u32> {
    ip(&["netns", "pids", name])
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether this process may create namespaces: effective uid 0 and a working `ip netns`.
///
/// Probes once per process by creating and deleting a namespace. When it returns `false` it prints
/// `skipped: needs root and ip netns`, so a test can simply `return`. With env
/// `SKEP_TESTS_REQUIRE_NETNS=1` it panics instead, so CI cannot pass by skipping everything.
pub fn require_root_and_netns() -> bool {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let ok = OK.get_or_init(|| {
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let probe = format!("{}-probe", unique_stem());
        ip(&["netns", "add", &probe]).map_err(|e| format!("{e:#}"))?;
        ip(&["netns", "delete", &probe]).map_err(|e| format!("{e:#}"))?;
        Ok(())
    });
    match ok {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("SKEP_TESTS_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("SKEP_TESTS_REQUIRE_NETNS=1 but namespaces are unavailable: {why}");
            }
            eprintln!("skipped: needs root and ip netns ({why})");
            false
        }
    }
}

/// Runs `f` on a new thread that first moved into network namespace `ns` (a name under `/run/netns`), and returns
/// its result. Sockets and devices `f` creates belong to that namespace for good, whichever thread uses them later;
/// the calling thread's own namespace never changes.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: setns on a descriptor this thread owns; it changes only this thread's network namespace, and the
            // thread ends with `f`
            #[allow(unsafe_code)]
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).with_context(|| format!("setns into {path}"));
            }
            f().with_context(|| format!("in namespace {ns}"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread that moved into {path} panicked"))?
    })
}

/// A network namespace, deleted on drop together with every process still inside it.
#[derive(Debug)]
pub struct Netns {
    /// The name under `/run/netns`.
    name: String,
}

impl Netns {
    /// Creates namespace `name` with `lo` up.
    pub fn create(name: &str) -> anyhow::Result<Netns> {
        ip(&["netns", "add", name]).with_context(|| format!("creating namespace {name}"))?;
        let ns = Netns { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> <args>` (bounded); stdout or an error.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all).with_context(|| format!("in namespace {}", self.name))
    }

    /// A command that runs `program` inside the namespace (`ip netns exec <name> program`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `program args` inside the namespace with a time limit.
    pub fn exec(&self, program: &str, args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
        let mut c = self.command(program);
        c.args(args);
        run(c, timeout)
    }

    /// Pids of the processes inside.
    pub fn pids(&self) -> Vec<u32> {
        netns_pids(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// Kills everything inside namespace `name`, then deletes it. Errors are printed, not returned: this runs
/// in destructors.
fn delete_netns(name: &str) {
    for pid in netns_pids(name) {
        // A process left inside is ours (spawned through `ip netns exec`): kill its group and itself.
        signal_group(pid, libc::SIGKILL);
        #[allow(unsafe_code)]
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    if let Err(e) = ip(&["netns", "delete", name]) {
        eprintln!("harness: could not delete namespace {name}: {e:#}");
    }
}

/// The LAN of one test: a namespace holding bridge `br0`, with one veth port per plugged host.
#[derive(Debug)]
pub struct Switch {
    /// The namespace that holds the bridge and the switch-side veth ends.
    ns: Netns,
}

/// Name of the bridge inside the switch namespace.
pub const BRIDGE: &str = "br0";
/// Name of a host's interface inside its own namespace.
pub const HOST_IF: &str = "eth0";

impl Switch {
    /// Creates the switch namespace `name` and its bridge.
    pub fn create(name: &str) -> anyhow::Result<Switch> {
        let ns = Netns::create(name)?;
        ns.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        Ok(Switch { ns })
    }

    /// The switch's namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Plugs `host` in: veth `port` (switch side, ≤ 15 chars) ↔ [`HOST_IF`] in `host`, with `cidr`
    /// (e.g. `10.213.7.1/24`) on the host side. No route besides the subnet's own is added.
    pub fn plug(&self, host: &Netns, port: &str, cidr: &str) -> anyhow::Result<()> {
        anyhow::ensure!(port.len() <= 15, "link name {port} is longer than 15 characters");
        self.ns.ip(&["link", "add", port, "type", "veth", "peer", "name", HOST_IF, "netns", host.name()])?;
        self.ns.ip(&["link", "set", port, "master", BRIDGE])?;
        self.ns.ip(&["link", "set", port, "up"])?;
        host.ip(&["addr", "add", cidr, "dev", HOST_IF])?;
        host.ip(&["link", "set", HOST_IF, "up"])?;
        Ok(())
    }

    /// Sets the switch side of `port` up or down (down = the host is cut off; its own link loses carrier).
    pub fn set_port(&self, port: &str, up: bool) -> anyhow::Result<()> {
        self.ns.ip(&["link", "set", port, if up { "up" } else { "down" }])?;
        Ok(())
    }
}

/// Removes what crashed runs left behind: task processes of the `process` engine under `<base dir>/skt-<pid>-…`, and
/// namespaces named `skt-<pid>-…`, whose `<pid>` is gone (after
/// killing the processes inside), and data directories under [`base_dir`] of such runs that are older
/// than an hour (younger ones are kept for debugging a failure that just happened).
///
/// Returns what it removed. Safe to run while other test processes run: it only touches dead pids.
pub fn cleanup_stale() -> anyhow::Result<Vec<String>> {
    // Tasks of the `process` engine first: they live in their own sessions and namespaces, outside the host's.
    let mut removed = crate::services::kill_stale_task_processes();
    for name in list_netns()? {
        if let Some(pid) = stem_pid(&name) {
            if !pid_alive(pid) {
                delete_netns(&name);
                removed.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(base_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = stem_pid(&name) else { continue };
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if !pid_alive(pid) && old && std::fs::remove_dir_all(e.path()).is_ok() {
                removed.push(format!("dir {}", e.path().display()));
            }
        }
    }
    Ok(removed)
}

/// The pid in a harness name `skt-<pid>-…`.
pub fn stem_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_carry_the_pid_and_differ() {
        let (a, b) = (unique_stem(), unique_stem());
        assert_ne!(a, b);
        assert_eq!(stem_pid(&a), Some(std::process::id()));
        assert_eq!(stem_pid("skep-n1"), None);
        assert_eq!(stem_pid("skt-x-1"), None);
    }
}
