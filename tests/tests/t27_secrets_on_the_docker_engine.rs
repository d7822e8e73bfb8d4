//! Secrets and configs with the `docker` engine: the files skep makes on its tmpfs are bound read-only into the
//! containers of the machine's Docker engine, at `/run/secrets/<target>` and at a config's target (Docker's default
//! `/<name>` included), with their content, owner and mode; they go with the service. Skipped, with the reason
//! printed, when that engine does not answer.

use anyhow::{ensure, Context as _, Result};
use skep_tests::engine::{docker_cluster, engine, service_containers, Leftovers, IMAGE};
use skep_tests::files::docker_task_files_exist;
use skep_tests::wait_until;
use std::time::Duration;

#[test]
fn docker_engine_containers_get_their_secrets_and_configs_read_only() -> Result<()> {
    let Some(mut c) = docker_cluster(1, 0)? else { return Ok(()) };
    c.set_client_timeout(Duration::from_secs(90));
    let mut leftovers = Leftovers::default();
    let put = |name: &str, data: &[u8]| -> Result<String> {
        let p = c.root().join(name);
        std::fs::write(&p, data)?;
        Ok(p.display().to_string())
    };
    c.docker(0, &["secret", "create", "pw", &put("pw", b"dk-secret-4Rt")?])?.ok()?;
    c.docker(0, &["config", "create", "--template-driver", "golang", "tpl", &put("tpl", b"slot={{.Task.Slot}} svc={{.Service.Name}}")?])?.ok()?;
    let out = c.docker(
        0,
        &[
            "service", "create", "-d", "--name", "dk", "--stop-grace-period", "1s",
            "--secret", "src=pw,uid=1000,gid=1001,mode=0400", "--config", "tpl",
            IMAGE, "busybox", "sleep", "3600",
        ],
    )?;
    let service_id = out.ok()?.trim().lines().last().context("no service ID")?.to_owned();
    leftovers.0 = Some(service_id.clone());
    let tasks = c.wait_running(0, "dk", 1, Duration::from_secs(60))?;
    let task_id = tasks[0]["ID"].as_str().unwrap_or_default().to_owned();
    ensure!(docker_task_files_exist(&task_id), "no files under /dev/shm for task {task_id}");
    let cid = wait_until("the task's container", Duration::from_secs(20), || -> Result<String> {
        service_containers(&service_id, true)?.into_iter().next().context("no container yet")
    })?;
    let exec = |args: &[&str]| -> Result<String> {
        let mut all = vec!["exec", cid.as_str(), "busybox"];
        all.extend_from_slice(args);
        Ok(engine(&all, Duration::from_secs(20))?.ok()?.to_owned())
    };
    ensure!(exec(&["cat", "/run/secrets/pw"])? == "dk-secret-4Rt", "secret content");
    ensure!(exec(&["stat", "-c", "%a %u %g", "/run/secrets/pw"])?.trim() == "400 1000 1001", "secret owner and mode");
    ensure!(exec(&["cat", "/tpl"])? == "slot=1 svc=dk", "template: {}", exec(&["cat", "/tpl"])?);
    let mounts = exec(&["cat", "/proc/mounts"])?;
    for target in ["/run/secrets/pw", "/tpl"] {
        let line = mounts.lines().find(|l| l.split(' ').nth(1) == Some(target)).unwrap_or("");
        ensure!(line.split(' ').nth(3).is_some_and(|o| o.split(',').any(|o| o == "ro")), "{target} is not read-only: {line:?}");
    }
    let denied = engine(&["exec", &cid, "busybox", "sh", "-c", "echo x > /run/secrets/pw"], Duration::from_secs(20))?;
    ensure!(!denied.success(), "a secret file could be written");

    c.docker(0, &["service", "rm", "dk"])?.ok()?;
    wait_until("the containers and the task files gone", Duration::from_secs(60), || -> Result<()> {
        ensure!(service_containers(&service_id, true)?.is_empty(), "containers left");
        ensure!(!docker_task_files_exist(&task_id), "the files of task {task_id} are still there");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
