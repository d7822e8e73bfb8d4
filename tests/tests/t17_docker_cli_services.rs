//! The stock docker CLI manages services on skep: create (with its progress display converging), ls, ps,
//! inspect --pretty, scale, rm, and prints what a docker user expects.

use anyhow::{ensure, Result};
use skep_tests::services::summarize_tasks;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::{Duration, Instant};

/// The last non-empty line (the progress display prints many).
fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

#[test]
fn the_docker_cli_creates_lists_inspects_scales_and_removes_services() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    c.set_client_timeout(Duration::from_secs(60));

    let t0 = Instant::now();
    let out = c.docker(0, &["service", "create", "--name", "web", "--replicas", "3", "busybox", "sleep", "3600"])?;
    let text = format!("{}{}", out.ok()?, out.stderr);
    eprintln!("docker service create: exit 0 after {} ms; last line: {}", t0.elapsed().as_millis(), last_line(&text));
    assert!(text.contains("verify: Service") && text.contains("converged"), "progress did not converge: {text}");
    let tasks = c.wait_running(0, "web", 3, Duration::from_secs(10))?;
    eprintln!("{}", summarize_tasks(&tasks));

    let ls = wait_until("service ls to show 3/3", Duration::from_secs(10), || -> Result<String> {
        let t = c.docker(0, &["service", "ls"])?.ok()?.to_owned();
        let row = t.lines().find(|l| l.contains(" web ")).unwrap_or("");
        ensure!(row.contains("3/3") && row.contains("replicated") && row.contains("busybox"), "{t}");
        Ok(t)
    })?;
    for col in ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"] {
        assert!(ls.lines().next().unwrap_or("").contains(col), "service ls header lacks {col}: {ls}");
    }
    let j = c.docker(0, &["service", "ls", "--format", "{{json .}}"])?.json_lines()?;
    assert_eq!(j.len(), 1, "{j:?}");
    assert_eq!(j[0]["Name"], "web");
    assert_eq!(j[0]["Replicas"], "3/3", "{}", j[0]);

    let ps = c.docker(0, &["service", "ps", "web"])?.ok()?.to_owned();
    for col in ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"] {
        assert!(ps.lines().next().unwrap_or("").contains(col), "service ps header lacks {col}: {ps}");
    }
    for slot in 1..=3 {
        let row = ps.lines().find(|l| l.contains(&format!("web.{slot} "))).unwrap_or("");
        assert!(row.contains("Running") && row.contains("busybox"), "slot {slot}: {ps}");
    }
    let ps_json = c.docker(0, &["service", "ps", "web", "--format", "json"])?.json_lines()?;
    assert_eq!(ps_json.len(), 3, "{ps_json:?}");
    assert!(ps_json.iter().all(|t| t["DesiredState"] == "Running"), "{ps_json:?}");

    let pretty = c.docker(0, &["service", "inspect", "--pretty", "web"])?.ok()?.to_owned();
    for want in ["Name:\t\tweb", "Replicated", "Replicas:\t3", "Image:\t\tbusybox", "Args:\t\tsleep 3600"] {
        assert!(pretty.contains(want), "inspect --pretty lacks {want:?}: {pretty}");
    }
    let v = c.docker(0, &["service", "inspect", "web"])?.json()?;
    assert_eq!(v[0]["Spec"]["Mode"]["Replicated"]["Replicas"], 3, "{v}");

    let t0 = Instant::now();
    let out = c.docker(0, &["service", "scale", "web=5"])?;
    let text = format!("{}{}", out.ok()?, out.stderr);
    eprintln!("docker service scale: exit 0 after {} ms; last line: {}", t0.elapsed().as_millis(), last_line(&text));
    assert!(text.contains("web scaled to 5"), "{text}");
    assert!(text.contains("converged"), "scale progress did not converge: {text}");
    c.wait_running(0, "web", 5, Duration::from_secs(10))?;
    let replicas = c.docker(0, &["service", "ls", "--format", "{{.Replicas}}", "--filter", "name=web"])?.ok()?.trim().to_owned();
    assert_eq!(replicas, "5/5");

    let out = c.docker(0, &["service", "rm", "web"])?;
    assert_eq!(out.ok()?.trim(), "web");
    let ls = c.docker(0, &["service", "ls", "-q"])?.ok()?.trim().to_owned();
    assert!(ls.is_empty(), "service ls after rm: {ls}");
    wait_until("no sleep left on any host", Duration::from_secs(15), || -> Result<()> {
        let left: Vec<_> = (0..3).flat_map(|i| c.task_processes_matching(i, "sleep 3600")).collect();
        ensure!(left.is_empty(), "{left:?}");
        Ok(())
    })?;
    let out = c.docker(0, &["service", "ps", "web"])?;
    let text = out.refused()?;
    assert!(text.contains("no such service: web"), "{text}");

    // networks: create, ls, inspect, a service on it with a published port, rm (refused while in use)
    let id = c.docker(0, &["network", "create", "-d", "overlay", "--subnet", "10.60.0.0/24", "front"])?.ok()?.trim().to_owned();
    ensure!(id.len() == 25, "network create printed {id:?}");
    let ls = c.docker(0, &["network", "ls"])?.ok()?.to_owned();
    ensure!(ls.contains("front") && ls.contains("ingress") && ls.contains("overlay") && ls.contains("swarm"), "{ls}");
    let v = c.docker(0, &["network", "inspect", "front"])?.json()?;
    ensure!(v[0]["IPAM"]["Config"][0]["Subnet"] == "10.60.0.0/24" && v[0]["Scope"] == "swarm", "{v}");
    let out = c.docker(0, &["service", "create", "-d", "--name", "api", "--network", "front", "-p", "8080:80", "busybox", "sleep", "3600"])?;
    out.ok()?;
    let ports = c.docker(0, &["service", "ls", "--format", "{{.Ports}}", "--filter", "name=api"])?.ok()?.trim().to_owned();
    ensure!(ports == "*:8080->80/tcp", "PORTS {ports:?}");
    let refused = c.docker(0, &["network", "rm", "front"])?;
    ensure!(!refused.success() && refused.stderr.contains("in use"), "network rm while in use: {}", refused.stderr);
    c.docker(0, &["service", "rm", "api"])?.ok()?;
    wait_until("docker network rm front succeeds", Duration::from_secs(20), || -> Result<()> {
        c.docker(0, &["network", "rm", "front"])?.ok()?;
        Ok(())
    })?;
    c.pass();
    Ok(())
}
