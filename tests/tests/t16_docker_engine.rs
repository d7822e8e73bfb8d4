//! The `docker` engine: a one-node swarm whose daemon runs its tasks as real containers of the machine's Docker
//! engine (reached through /var/run/docker.sock, a filesystem socket, so from inside the host namespace too).
//! Skipped, with the reason printed, when that engine does not answer.

use anyhow::{ensure, Context as _, Result};
use skep_tests::engine::{docker_unavailable, engine, IMAGE};
use skep_tests::services::summarize_tasks;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::{Duration, Instant};

/// IDs of the engine's containers labelled with the service (running only, unless `all`).
fn containers(service_id: &str, all: bool) -> Result<Vec<String>> {
    let filter = format!("label=com.skep.service.id={service_id}");
    let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &filter];
    if all {
        args.push("-a");
    }
    Ok(engine(&args, Duration::from_secs(20))?.ok()?.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}

/// Removes whatever a failed run left in the engine for this service.
struct Leftovers(Option<String>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(id) = &self.0 {
            if let Ok(ids) = containers(id, true) {
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids.iter().map(String::as_str));
                    let _ = engine(&args, Duration::from_secs(30));
                }
            }
        }
    }
}

#[test]
fn docker_engine_runs_tasks_as_containers_and_removes_them() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    if let Some(why) = docker_unavailable() {
        eprintln!("skipped: the docker engine is unavailable ({why})");
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.set_engine(Some("docker"));
    c.form(1, 0)?;
    let mut leftovers = Leftovers(None);

    // The image has no entrypoint and no /bin/sleep (sleep is a builtin of busybox's shell only), so, as with
    // `docker run`, the command names busybox itself. `sleep` is PID 1 of its container and so ignores SIGTERM:
    // a short grace period keeps `service rm` quick.
    let t0 = Instant::now();
    let out = c.skep_ok(0, &["service", "create", "--name", "dk", "--replicas", "2", "--stop-grace-period", "2s", "-d", IMAGE, "busybox", "sleep", "3600"])?;
    let service_id = out.trim().lines().last().context("service create printed no ID")?.to_owned();
    leftovers.0 = Some(service_id.clone());
    let tasks = c.wait_running(0, "dk", 2, Duration::from_secs(60))?;
    eprintln!("docker engine: 2 running after {} ms", t0.elapsed().as_millis());

    let ids = wait_until("2 running containers labelled with the service", Duration::from_secs(10), || -> Result<Vec<String>> {
        let ids = containers(&service_id, false)?;
        ensure!(ids.len() == 2, "{ids:?}");
        Ok(ids)
    })?;
    // The containers are the tasks': each task's ContainerStatus.ContainerID is one of them.
    for t in &tasks {
        let cid = t["Status"]["ContainerStatus"]["ContainerID"].as_str().unwrap_or("");
        assert!(ids.iter().any(|i| i == cid), "task container {cid:?} not among {ids:?}; {}", summarize_tasks(&tasks));
    }
    let cmd = engine(&["inspect", "--format", "{{.Config.Image}} {{json .Config.Cmd}}", &ids[0]], Duration::from_secs(10))?.ok()?.trim().to_owned();
    assert!(cmd.starts_with(IMAGE) && cmd.contains(r#"["busybox","sleep","3600"]"#), "container config: {cmd}");

    let t1 = Instant::now();
    c.skep_ok(0, &["service", "rm", "dk"])?;
    wait_until("the service's containers removed from the engine", Duration::from_secs(30), || -> Result<()> {
        let ids = containers(&service_id, true)?;
        ensure!(ids.is_empty(), "still there (docker ps -a): {ids:?}");
        Ok(())
    })?;
    eprintln!("docker engine: containers removed {} ms after service rm", t1.elapsed().as_millis());
    leftovers.0 = None;
    c.pass();
    Ok(())
}
