//! The `docker` engine: a one-node swarm whose daemon runs its tasks as real containers of the machine's Docker
//! engine (reached through /var/run/docker.sock, a filesystem socket, so from inside the host namespace too).
//! Skipped, with the reason printed, when that engine does not answer.

use anyhow::{ensure, Context as _, Result};
use skep_tests::engine::{docker_cluster, engine, service_containers as containers, Leftovers, IMAGE};
use skep_tests::services::summarize_tasks;
use skep_tests::wait_until;
use std::time::{Duration, Instant};

#[test]
fn docker_engine_runs_tasks_as_containers_and_removes_them() -> Result<()> {
    let Some(mut c) = docker_cluster(1, 0)? else { return Ok(()) };
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
