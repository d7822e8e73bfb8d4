//! A container of the `docker` engine on one host and a `process` task on another, on one overlay network: each
//! reaches the other by address and by service name (the container resolves through the embedded DNS too).
//! Skipped, with the reason printed, when the machine's Docker engine does not answer.

use anyhow::{ensure, Context as _, Result};
use skep_tests::engine::{docker_unavailable, engine, IMAGE};
use skep_tests::services::overlay_addrs;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(60);


fn task_addr(c: &Cluster, svc: &str) -> Result<String> {
    let tasks = c.tasks(0, svc)?;
    let t = tasks.iter().find(|t| t["Status"]["State"] == "running").context("a running task")?;
    Ok(t["NetworksAttachments"][0]["Addresses"][0].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string())
}

#[test]
fn a_container_and_a_process_task_talk_over_one_overlay() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    if let Some(why) = docker_unavailable() {
        eprintln!("skipped: the Docker engine is not usable: {why}");
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.set_engine(Some("docker"));
    c.start(0)?;
    c.set_engine(Some("process"));
    c.start(1)?;
    c.form(1, 1)?;
    c.skep_ok(0, &["network", "create", "-d", "overlay", "mixed"])?;
    c.skep_ok(0, &[
        "service", "create", "-d", "--name", "ctr", "--network", "mixed", "--constraint", "engine.labels.com.skep.engine==docker",
        IMAGE, "busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr",
    ])?;
    c.skep_ok(0, &[
        "service", "create", "-d", "--name", "proc", "--network", "mixed", "--constraint", "engine.labels.com.skep.engine==process",
        "busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr",
    ])?;
    c.wait_running(0, "ctr", 1, CONVERGE)?;
    c.wait_running(0, "proc", 1, CONVERGE)?;
    let (ctr_ip, proc_ip) = (task_addr(&c, "ctr")?, task_addr(&c, "proc")?);
    let ctr_task = c.tasks(0, "ctr")?.iter().find(|t| t["Status"]["State"] == "running").and_then(|t| t["ID"].as_str().map(str::to_owned)).context("ctr task")?;
    let filter = format!("label=com.skep.task.id={ctr_task}");
    let container = engine(&["ps", "-q", "--filter", &filter], Duration::from_secs(10))?.ok()?.to_string();
    let container = container.lines().next().context("the ctr container")?.to_string();

    // container → process task, by address and by name
    wait_until("the container reaches the process task", Duration::from_secs(15), || -> Result<()> {
        let o = engine(&["exec", &container, "busybox", "nc", "-w", "2", &proc_ip, "80"], Duration::from_secs(10))?;
        ensure!(overlay_addrs(&o.stdout).contains(&proc_ip), "by address: {} {}", o.stdout, o.stderr);
        let o = engine(&["exec", &container, "busybox", "nslookup", "tasks.proc"], Duration::from_secs(10))?;
        ensure!(o.stdout.contains(&proc_ip), "tasks.proc from the container: {} {}", o.stdout, o.stderr);
        Ok(())
    })?;
    // process task → container (from the process task's namespace)
    let pid = c.task_processes_matching(1, "nc -ll -p 80").first().map(|p| p.pid).context("the process task")?;
    wait_until("the process task reaches the container", Duration::from_secs(15), || -> Result<()> {
        let o = std::process::Command::new("timeout")
            .args(["5", "nsenter", "-t", &pid.to_string(), "-n", "--", "busybox", "nc", "-w", "2", &ctr_ip, "80"])
            .output()?;
        let out = String::from_utf8_lossy(&o.stdout);
        ensure!(overlay_addrs(&out).contains(&ctr_ip), "container by address: {out}");
        Ok(())
    })?;
    eprintln!("container {ctr_ip} and process task {proc_ip} talk over one overlay");
    c.skep_ok(0, &["service", "rm", "ctr", "proc"])?;
    wait_until("the container is gone", Duration::from_secs(30), || -> Result<()> {
        let left = engine(&["ps", "-aq", "--filter", &filter], Duration::from_secs(10))?.ok()?.to_string();
        ensure!(left.trim().is_empty(), "{left}");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
