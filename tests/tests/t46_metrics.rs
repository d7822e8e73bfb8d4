//! `skep daemon --metrics-addr IP:PORT`: every node serves `GET /metrics` (scraped here from inside its host's
//! namespace, as Prometheus next to it would): the managers show Raft (one leader between them, a commit index) and
//! the store's counts, and the task gauges follow a `service scale` up and down; the leader counts the nodes'
//! heartbeats and times their assignments; a service no node satisfies shows as pending for its constraints; a
//! task's DNS query and a connection through the routing mesh are counted by the nodes they reach; a worker shows
//! only its own tasks; any other path is a 404; a killed worker is counted as a missed heartbeat; a bad address stops
//! the daemon at start.

use anyhow::{ensure, Context as _, Result};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

/// Bound on a service converging, and on the gauges following it.
const CONVERGE: Duration = Duration::from_secs(30);
const METRICS_PORT: u16 = 9323;

fn url(c: &Cluster, i: usize, path: &str) -> String {
    format!("http://{}:{METRICS_PORT}{path}", c.host(i).ip)
}

/// `/metrics` of host `i`, fetched in its namespace (busybox `wget -T` crashes: the exec's timeout bounds it).
fn scrape(c: &Cluster, i: usize) -> Result<String> {
    let out = c.host(i).ns.exec("busybox", &["wget", "-qO-", &url(c, i, "/metrics")], Duration::from_secs(10))?;
    Ok(out.ok().with_context(|| format!("scraping {}", c.host(i).name))?.to_owned())
}

/// The value of the sample `name` (labels included, as written) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of metric `name` whose labels contain `with` (e.g. `state="running"`).
fn sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let labels = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = labels.split_once("} ")?;
            labels.contains(with).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The leader's `/metrics` (of hosts 0 and 1, the managers).
fn scrape_leader(c: &Cluster) -> Result<String> {
    for i in 0..2 {
        let m = scrape(c, i)?;
        if sample(&m, "skep_raft_leader") == Some(1.0) {
            return Ok(m);
        }
    }
    anyhow::bail!("no manager says it leads")
}

/// The sum over the three hosts of the samples of `name` whose labels contain `with`.
fn sum_everywhere(c: &Cluster, name: &str, with: &str) -> Result<f64> {
    (0..3).map(|i| scrape(c, i).map(|m| sum(&m, name, with))).sum()
}

/// Each task answers a TCP connection on port 80 with its own addresses, then closes (as in t20).
const RESPONDER: &[&str] = &["busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr"];

/// Every host's `/metrics` agrees that `n` tasks of the cluster run: the store's count on both managers, its count by
/// node, and the nodes' own counts added up.
fn running_everywhere(c: &Cluster, n: usize) -> Result<()> {
    let n = n as f64;
    let mut local = 0.0;
    for i in 0..3 {
        let m = scrape(c, i)?;
        local += sum(&m, "skep_local_tasks", "state=\"running\"");
        if i < 2 {
            let store = sample(&m, "skep_tasks{state=\"running\"}");
            ensure!(store == Some(n), "{}: skep_tasks running {store:?}, want {n}", c.host(i).name);
            let by_node = sum(&m, "skep_node_tasks", "state=\"running\"");
            ensure!(by_node == n, "{}: skep_node_tasks running add up to {by_node}, want {n}", c.host(i).name);
        }
    }
    ensure!(local == n, "the nodes' skep_local_tasks running add up to {local}, want {n}");
    Ok(())
}

#[test]
fn metrics_show_raft_and_follow_a_scale() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    for i in 0..3 {
        let addr = format!("{}:{METRICS_PORT}", c.host(i).ip);
        c.set_daemon_extras(i, &["--metrics-addr", &addr], &[])?;
    }
    c.form(2, 1)?;

    // Raft on the managers, one leader between them; a worker has no Raft and no store
    let (m0, m1, w) = wait_until("both managers to know a leader", CONVERGE, || -> Result<_> {
        let (m0, m1) = (scrape(&c, 0)?, scrape(&c, 1)?);
        for m in [&m0, &m1] {
            ensure!(sample(m, "skep_raft_has_leader") == Some(1.0), "no leader yet:\n{m}");
        }
        Ok((m0, m1, scrape(&c, 2)?))
    })?;
    let leaders = sample(&m0, "skep_raft_leader").unwrap_or(0.0) + sample(&m1, "skep_raft_leader").unwrap_or(0.0);
    assert_eq!(leaders, 1.0, "one leader:\n{m0}\n{m1}");
    for m in [&m0, &m1] {
        assert!(sample(m, "skep_raft_term").is_some_and(|t| t >= 1.0), "{m}");
        assert!(sample(m, "skep_raft_applied_index").is_some_and(|a| a >= 1.0), "{m}");
        assert!(sample(m, "skep_raft_last_log_index") >= sample(m, "skep_raft_applied_index"), "{m}");
        // read after the applied index, which never passes it
        assert!(sample(m, "skep_raft_commit_index") >= sample(m, "skep_raft_applied_index"), "{m}");
        assert!(sample(m, "skep_raft_leader_changes_seen_total").is_some(), "{m}");
        assert_eq!(sample(m, "skep_store_objects{kind=\"nodes\"}"), Some(3.0), "{m}");
    }
    let leader = if sample(&m0, "skep_raft_leader") == Some(1.0) { &m0 } else { &m1 };
    assert!(sample(leader, "skep_raft_proposal_duration_seconds_count").is_some_and(|n| n >= 1.0), "{leader}");
    assert!(!w.contains("skep_raft_") && !w.contains("skep_tasks{"), "a worker shows no Raft or store:\n{w}");
    assert_eq!(sample(&w, "skep_local_tasks{state=\"running\"}"), Some(0.0), "{w}");
    wait_until("three ready nodes in the managers' metrics", CONVERGE, || -> Result<()> {
        let m = scrape(&c, 0)?;
        ensure!(sample(&m, "skep_nodes{state=\"ready\"}") == Some(3.0), "{m}");
        Ok(())
    })?;

    // the task gauges follow the service
    c.skep_ok(0, &["service", "create", "--name", "m", "--replicas", "2", "-d", "busybox", "sleep", "3600"])?;
    c.wait_running(0, "m", 2, CONVERGE)?;
    wait_until("2 running tasks in every host's metrics", CONVERGE, || running_everywhere(&c, 2))?;
    c.skep_ok(1, &["service", "scale", "-d", "m=5"])?;
    c.wait_running(0, "m", 5, CONVERGE)?;
    wait_until("5 running tasks in every host's metrics", CONVERGE, || running_everywhere(&c, 5))?;
    let started: f64 = (0..3)
        .map(|i| scrape(&c, i).map(|m| sample(&m, "skep_engine_start_duration_seconds_count").unwrap_or(0.0)))
        .sum::<Result<f64>>()?;
    assert!(started >= 5.0, "{started} engine starts timed for 5 tasks");
    // the leader timed the tasks' assignments (a new leader starts from zero, so at least the scale's three) and
    // heard every node's heartbeats
    let worker = c.node_id(2)?;
    let leader = scrape_leader(&c)?;
    let assigned = sample(&leader, "skep_assignment_duration_seconds_count").unwrap_or(0.0);
    assert!(assigned >= 3.0, "{assigned} assignments timed:\n{leader}");
    let beats = sample(&leader, &format!("skep_heartbeats_received_total{{node=\"{worker}\"}}")).unwrap_or(0.0);
    assert!(beats >= 1.0, "{beats} heartbeats from the worker:\n{leader}");
    c.skep_ok(0, &["service", "scale", "-d", "m=1"])?;
    wait_until("1 running task in every host's metrics", CONVERGE, || running_everywhere(&c, 1))?;
    let m = scrape(&c, 0)?;
    assert_eq!(sample(&m, "skep_store_objects{kind=\"services\"}"), Some(1.0), "{m}");

    // a service no node satisfies waits for its constraints
    let nowhere = ["service", "create", "-d", "--name", "p", "--constraint", "node.labels.nowhere==1"];
    c.skep_ok(0, &[&nowhere[..], &["busybox", "sleep", "3600"][..]].concat())?;
    wait_until("a task pending for its constraints", CONVERGE, || -> Result<()> {
        let m = scrape_leader(&c)?;
        ensure!(sample(&m, "skep_pending_tasks{reason=\"constraints\"}") == Some(1.0), "{m}");
        Ok(())
    })?;
    c.skep_ok(0, &["service", "rm", "p"])?;

    // a task's DNS query is counted by its node's embedded server, a connection through the mesh by the node it
    // reaches
    c.skep_ok(0, &["network", "create", "-d", "overlay", "app"])?;
    let web = ["service", "create", "-d", "--name", "web", "--network", "app", "-p", "8080:80"];
    c.skep_ok(0, &[&web[..], RESPONDER].concat())?;
    c.wait_running(0, "web", 1, CONVERGE)?;
    let pid = (0..3)
        .flat_map(|i| c.task_processes_matching(i, "nc -ll -p 80"))
        .map(|p| p.pid)
        .next()
        .context("the web task's process")?;
    wait_until("a task's DNS query counted", CONVERGE, || -> Result<()> {
        let looked_up = std::process::Command::new("timeout")
            .args(["5", "nsenter", "-t", &pid.to_string(), "-n", "--", "busybox", "nslookup", "web", "127.0.0.11"])
            .output()?;
        ensure!(looked_up.status.success(), "nslookup: {}", String::from_utf8_lossy(&looked_up.stderr));
        let local = sum_everywhere(&c, "skep_dns_queries_total", "result=\"local\"")?;
        ensure!(local >= 1.0, "{local} local DNS answers counted");
        Ok(())
    })?;
    let mesh = "port=\"8080\",via=\"nftables\"";
    wait_until("a connection through the mesh counted", CONVERGE, || -> Result<()> {
        let ip = c.host(2).ip.clone();
        let o = c.host(0).ns.exec("timeout", &["3", "busybox", "nc", "-w", "2", &ip, "8080"], Duration::from_secs(5))?;
        ensure!(o.stdout.contains("inet "), "no answer through the mesh: {} {}", o.stdout, o.stderr);
        let counted = sum(&scrape(&c, 2)?, "skep_mesh_connections_total", mesh);
        ensure!(counted >= 1.0, "{counted} connections counted on {}", c.host(2).name);
        Ok(())
    })?;

    // nothing else is served there
    let other = c.host(0).ns.exec("busybox", &["wget", "-qO-", &url(&c, 0, "/info")], Duration::from_secs(10))?;
    assert!(!other.success() && other.stderr.contains("404"), "{other:?}");

    // a killed worker falls silent: the leader marks it down and counts the missed heartbeats
    c.kill(2)?;
    let missed = format!("skep_heartbeats_missed_total{{node=\"{worker}\"}}");
    wait_until("the killed worker's missed heartbeats counted", CONVERGE, || -> Result<()> {
        let m = scrape_leader(&c)?;
        ensure!(sample(&m, &missed).is_some_and(|n| n >= 1.0), "{m}");
        ensure!(sample(&m, "skep_nodes{state=\"down\"}") == Some(1.0), "{m}");
        Ok(())
    })?;
    c.pass();
    Ok(())
}

#[test]
fn a_bad_metrics_address_stops_the_daemon_at_start() -> Result<()> {
    let out = std::process::Command::new(skep_tests::skep_bin()?)
        .args(["daemon", "--data-root", "/nonexistent/skep-t46", "--metrics-addr", "localhost"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad --metrics-addr: {err}");
    assert!(err.contains("--metrics-addr") && err.contains("IP:PORT"), "{err}");
    Ok(())
}
