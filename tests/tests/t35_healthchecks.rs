//! Healthchecks on 1 manager + 2 workers with the `process` engine, driven by the stock docker CLI: a task whose
//! check never passes is never `running`, never answers through the routing mesh, and is failed as Docker fails it
//! (`dockerexec: unhealthy container`) and replaced by the restart policy; a task whose check passes runs and
//! answers. Bad healthchecks are refused with the daemon's words.

use anyhow::{ensure, Result};
use serde_json::Value;
use skep_tests::services::{overlay_addrs as responder_addrs, state};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

/// Each task answers a TCP connection on port 80 with its own addresses, then closes.
const RESPONDER: &[&str] = &["busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr"];

/// One TCP request to `ip:port` from host `i`'s namespace: the responder's addresses (empty: no answer).
fn ask(c: &Cluster, i: usize, ip: &str, port: u16) -> Result<Vec<String>> {
    let o = c.host(i).ns.exec("timeout", &["3", "busybox", "nc", "-w", "2", ip, &port.to_string()], Duration::from_secs(5))?;
    Ok(responder_addrs(&o.stdout).into_iter().collect())
}

fn err_of(t: &Value) -> &str {
    t["Status"]["Err"].as_str().unwrap_or_default()
}

#[test]
fn an_unhealthy_task_is_failed_replaced_and_never_a_backend_while_a_healthy_one_runs() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    c.set_client_timeout(Duration::from_secs(60));

    let check = ["--health-interval", "300ms", "--health-timeout", "2s", "--health-retries", "2"];
    let mut well = vec!["service", "create", "-d", "--name", "well", "--replicas", "2", "-p", "8080:80"];
    well.extend(["--health-cmd", "busybox true"]);
    well.extend(check);
    well.extend(RESPONDER);
    c.docker(0, &well)?.ok()?;
    let mut sick = vec!["service", "create", "-d", "--name", "sick", "-p", "8081:80", "--restart-delay", "1s"];
    sick.extend(["--health-cmd", "exit 1"]);
    sick.extend(check);
    sick.extend(RESPONDER);
    c.docker(0, &sick)?.ok()?;

    c.wait_running(0, "well", 2, Duration::from_secs(40))?;
    let spec = c.docker(0, &["service", "inspect", "sick"])?.json()?;
    let hc = &spec[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"];
    ensure!(hc["Test"] == serde_json::json!(["CMD-SHELL", "exit 1"]) && hc["Retries"] == 2, "stored healthcheck: {hc}");

    // the sick service: failed as unhealthy at least twice (so replaced), never running, never answering
    let ip = c.host(1).ip.clone();
    let mut probes = 0;
    wait_until("sick failed as unhealthy twice", Duration::from_secs(60), || -> Result<()> {
        let tasks = c.tasks(0, "sick")?;
        for t in &tasks {
            assert_ne!(state(t), "running", "a task whose check never passes ran: {t}");
        }
        probes += 1;
        let got = ask(&c, 0, &ip, 8081)?;
        assert!(got.is_empty(), "the mesh sent a connection to an unhealthy task: {got:?}");
        let failed = tasks.iter().filter(|t| state(t) == "failed" && err_of(t) == "dockerexec: unhealthy container").count();
        ensure!(failed >= 2, "{failed} failed as unhealthy so far");
        Ok(())
    })?;
    eprintln!("sick: failed as unhealthy twice; the mesh never answered on 8081 ({probes} probes)");
    let ps = c.docker(0, &["service", "ps", "--no-trunc", "sick"])?.ok()?.to_owned();
    ensure!(ps.contains("dockerexec: unhealthy container"), "service ps: {ps}");

    // the healthy service answers through the mesh from its running tasks
    let got = ask(&c, 0, &ip, 8080)?;
    ensure!(!got.is_empty(), "the healthy service does not answer on 8080");

    // bad healthchecks: the daemon's words, nothing created
    for (flag, value, want) in [
        ("--health-interval", "100us", "Interval in Healthcheck cannot be less than 1ms"),
        ("--health-timeout", "48h", "Timeout in Healthcheck cannot be more than 24h"),
    ] {
        let out = c.docker(0, &["service", "create", "-d", "--name", "bad", "--health-cmd", "true", flag, value, "busybox", "true"])?;
        let text = out.refused()?;
        ensure!(text.contains(want), "{flag} {value}: {text}");
    }
    let body = r#"{"Name":"bad","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Healthcheck":{"Test":["RUN","x"]}}}}"#;
    let r = c.api(0, "POST", "/services/create", Some(body))?;
    ensure!(r.status == 400 && r.message().contains("unknown type \"RUN\""), "{} {}", r.status, r.body);
    let r = c.api(0, "POST", "/services/create", Some(&body.replace(r#"["RUN","x"]"#, r#"["CMD","true"],"Retries":-1"#)))?;
    ensure!(r.status == 400 && r.message().contains("Retries in Healthcheck cannot be negative"), "{} {}", r.status, r.body);
    ensure!(c.docker(0, &["service", "ls", "-q", "--filter", "name=bad"])?.ok()?.trim().is_empty(), "a refused service exists");
    c.pass();
    Ok(())
}
