//! The harness itself, without skep: hosts are isolated namespaces on a private switch, reach each other
//! and nothing else, and everything they were made of disappears afterwards, also after a panic.

use skep_tests::netns::{ip, list_netns};
use skep_tests::process::pid_alive;
use skep_tests::{cleanup_stale, require_root_and_netns, run, wait_until, Cluster, Proc};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Link names of the root namespace.
fn root_links() -> Vec<String> {
    let mut v: Vec<String> = ip(&["-o", "link", "show"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|s| s.trim().split('@').next().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

fn assert_gone(names: &[String]) {
    let now = list_netns().unwrap();
    for n in names {
        assert!(!now.contains(n), "namespace {n} still exists: {now:?}");
    }
}

/// Waits (bounded) for a raw child to be gone and returns how it ended.
fn reaped(child: &mut Child) -> std::process::ExitStatus {
    wait_until("the process inside the namespace to die", Duration::from_secs(10), || {
        child.try_wait().map_err(|e| e.to_string())?.ok_or("still running".to_string())
    })
    .unwrap()
}

#[test]
fn hosts_reach_each_other_over_the_switch_and_nothing_else() {
    if !require_root_and_netns() {
        return;
    }
    let links_before = root_links();
    let mut c = Cluster::new(3).unwrap();
    let names = c.netns_names();
    let listed = list_netns().unwrap();
    for n in &names {
        assert!(listed.contains(n), "{n} missing from {listed:?}");
    }
    assert_eq!(root_links(), links_before, "the harness must not create links in the root namespace");

    for a in c.hosts() {
        for b in c.hosts() {
            if a.index != b.index {
                assert!(a.can_reach(&b.ip).unwrap(), "{} ({}) cannot reach {} ({})", a.name, a.ip, b.name, b.ip);
            }
        }
        // No way out: no default route, and the only route is the switch's subnet.
        assert_eq!(a.ns.ip(&["-4", "route", "show", "default"]).unwrap().trim(), "", "{} has a default route", a.name);
        assert_eq!(a.ns.ip(&["-6", "route", "show", "default"]).unwrap().trim(), "", "{} has an IPv6 default route", a.name);
        let routes = a.ns.ip(&["-4", "route", "show"]).unwrap();
        for r in routes.lines() {
            assert!(r.starts_with(&c.subnet()), "{} has a route outside {}: {r}", a.name, c.subnet());
        }
        assert!(!a.can_reach("192.0.2.1").unwrap(), "{} reached an address outside the test", a.name);
    }

    let root = c.root().to_owned();
    c.pass();
    drop(c);
    assert_gone(&names);
    assert!(!root.exists(), "{} was not removed", root.display());
    assert_eq!(root_links(), links_before);
}

#[test]
fn a_panicking_test_body_still_removes_namespaces_and_processes() {
    if !require_root_and_netns() {
        return;
    }
    let names = Mutex::new(Vec::new());
    let root = Mutex::new(std::path::PathBuf::new());
    let stray: Mutex<Option<Child>> = Mutex::new(None);
    let held_pid = Mutex::new(0u32);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let c = Cluster::new(2).unwrap();
        *names.lock().unwrap() = c.netns_names();
        *root.lock().unwrap() = c.root().to_owned();
        // A process the test spawned and forgot about: the namespace's deletion must kill it.
        let child = c.host(0).ns.command("sleep").arg("300").stdin(Stdio::null()).spawn().unwrap();
        *stray.lock().unwrap() = Some(child);
        // A process the test holds (like a daemon): its guard kills it while unwinding.
        let mut cmd = c.host(1).ns.command("sleep");
        cmd.arg("301");
        let p = Proc::spawn("sleeper", cmd).unwrap();
        *held_pid.lock().unwrap() = p.pid();
        std::thread::sleep(Duration::from_millis(100));
        panic!("test body fails on purpose");
    }));
    assert!(result.is_err(), "the body should have panicked");
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 3);
    assert_gone(&names);
    let st = reaped(stray.lock().unwrap().as_mut().unwrap());
    assert!(!st.success(), "stray process ended with {st}, expected a kill");
    let pid = held_pid.into_inner().unwrap();
    assert!(!pid_alive(pid), "held process {pid} survived the panic");
    // A failed test keeps its data directory as evidence; this one failed on purpose, so tidy up.
    let root = root.into_inner().unwrap();
    assert!(root.is_dir(), "a failed test should keep {}", root.display());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn cleanup_stale_removes_leftovers_of_dead_runs_only() {
    if !require_root_and_netns() {
        return;
    }
    let mut live = Cluster::new(1).unwrap();
    // A pid that has certainly exited.
    let mut t = Command::new("true").spawn().unwrap();
    let dead_pid = t.id();
    t.wait().unwrap();
    let stale = format!("skt-{dead_pid}-0-h1");
    ip(&["netns", "add", &stale]).unwrap();
    let mut inside = Command::new("ip").args(["netns", "exec", &stale, "sleep", "300"]).stdin(Stdio::null()).spawn().unwrap();
    wait_until("the sleeper to enter the stale namespace", Duration::from_secs(5), || {
        let pids = skep_tests::netns::netns_pids(&stale);
        if pids.is_empty() { Err("no pids yet") } else { Ok(()) }
    })
    .unwrap();

    let removed = cleanup_stale().unwrap();
    assert!(removed.iter().any(|r| r.contains(&stale)), "not removed: {removed:?}");
    assert_gone(&[stale]);
    assert!(!reaped(&mut inside).success());
    let listed = list_netns().unwrap();
    for n in live.netns_names() {
        assert!(listed.contains(&n), "cleanup_stale removed {n} of a live run");
    }
    live.pass();
}

#[test]
fn a_partitioned_host_is_unreachable_until_healed() {
    if !require_root_and_netns() {
        return;
    }
    let mut c = Cluster::new(2).unwrap();
    let (a, b) = (c.host(0), c.host(1));
    assert!(a.can_reach(&b.ip).unwrap());
    c.partition(1).unwrap();
    assert!(!a.can_reach(&b.ip).unwrap(), "{} still reaches the partitioned {}", a.name, b.name);
    c.heal(1).unwrap();
    wait_until("h1 to reach h2 after heal", Duration::from_secs(15), || {
        if a.can_reach(&b.ip).map_err(|e| e.to_string())? { Ok(()) } else { Err("unreachable".to_string()) }
    })
    .unwrap();
    c.pass();
}

#[test]
fn a_hung_command_is_killed_at_its_timeout() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let start = Instant::now();
    let err = run(cmd, Duration::from_millis(300)).unwrap_err().to_string();
    assert!(err.contains("timed out after 300 ms"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());

    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
    let o = run(cmd, Duration::from_secs(10)).unwrap();
    assert_eq!((o.code, o.stdout.trim(), o.stderr.trim()), (Some(3), "out", "err"));
    assert!(o.ok().unwrap_err().to_string().contains("exit code 3"));
}
