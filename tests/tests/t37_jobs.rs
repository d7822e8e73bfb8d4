//! Jobs on 1 manager + 2 workers (`process` engine), driven by the stock docker CLI: a `replicated-job` runs to
//! `TotalCompletions` with at most `MaxConcurrent` tasks at once, its tasks show `Complete`, `service update --force`
//! runs it again (a new `JobIteration`); a `global-job` runs once on every node; bad job specs are refused.

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use skep_tests::services::state;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

fn iteration(t: &Value) -> u64 {
    t["JobIteration"]["Index"].as_u64().unwrap_or(0)
}

#[test]
fn jobs_run_to_completion_max_concurrent_at_a_time_and_again_when_forced() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    c.set_client_timeout(Duration::from_secs(90));

    let out = c.docker(0, &[
        "service", "create", "-d", "--name", "job", "--mode", "replicated-job", "--replicas", "5", "--max-concurrent", "2",
        "busybox", "sh", "-c", "sleep 1",
    ])?;
    out.ok()?;
    let svc = c.docker(0, &["service", "inspect", "job"])?.json()?;
    let mode = &svc[0]["Spec"]["Mode"]["ReplicatedJob"];
    ensure!(mode["MaxConcurrent"] == 2 && mode["TotalCompletions"] == 5, "mode: {}", svc[0]["Spec"]["Mode"]);
    let run = svc[0]["JobStatus"]["JobIteration"]["Index"].as_u64().context("JobStatus")?;
    let mut most = 0;
    wait_until("5 completions", Duration::from_secs(60), || -> Result<()> {
        let tasks = c.tasks(0, "job")?;
        let active = tasks.iter().filter(|t| matches!(state(t), "pending" | "assigned" | "accepted" | "preparing" | "ready" | "starting" | "running")).count();
        most = most.max(active);
        assert!(active <= 2, "MaxConcurrent 2, yet {active} tasks at once");
        let done = tasks.iter().filter(|t| state(t) == "complete" && iteration(t) == run).count();
        ensure!(done == 5, "{done} complete");
        Ok(())
    })?;
    eprintln!("replicated job: 5 completions, at most {most} at once");
    let ps = c.docker(0, &["service", "ps", "job"])?.ok()?.to_owned();
    ensure!(ps.lines().skip(1).filter(|l| l.contains("Complete")).count() >= 5, "service ps: {ps}");
    let ls = c.docker(0, &["service", "ls", "--filter", "name=job"])?.ok()?.to_owned();
    ensure!(ls.contains("replicated job") && ls.contains("5/5 completed"), "service ls: {ls}");

    // --force runs it again
    c.docker(0, &["service", "update", "-d", "--force", "job"])?.ok()?;
    let svc = c.docker(0, &["service", "inspect", "job"])?.json()?;
    let run2 = svc[0]["JobStatus"]["JobIteration"]["Index"].as_u64().context("JobStatus")?;
    ensure!(run2 > run, "a new iteration: {run} → {run2}");
    wait_until("5 more completions", Duration::from_secs(60), || -> Result<()> {
        let done = c.tasks(0, "job")?.iter().filter(|t| state(t) == "complete" && iteration(t) == run2).count();
        ensure!(done == 5, "{done} complete");
        Ok(())
    })?;

    // a global job: once per node
    c.docker(0, &["service", "create", "-d", "--name", "gj", "--mode", "global-job", "busybox", "true"])?.ok()?;
    wait_until("the global job completed on 3 nodes", Duration::from_secs(60), || -> Result<()> {
        let tasks = c.tasks(0, "gj")?;
        let nodes: std::collections::BTreeSet<&str> =
            tasks.iter().filter(|t| state(t) == "complete").filter_map(|t| t["NodeID"].as_str()).collect();
        ensure!(nodes.len() == 3, "completed on {nodes:?}");
        Ok(())
    })?;

    // without -d the docker CLI's job progress display follows the job to its end
    let out = c.docker(0, &["service", "create", "--name", "quick", "--mode", "replicated-job", "--replicas", "2", "busybox", "true"])?;
    let text = format!("{}{}", out.ok()?, out.stderr);
    eprintln!("docker service create --mode replicated-job: {}", text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""));

    // bad input
    let body = r#"{"Name":"bad","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"ReplicatedJob":{"TotalCompletions":1000000000}}}"#;
    let r = c.api(0, "POST", "/services/create", Some(body))?;
    ensure!(r.status == 400 && r.message().contains("TotalCompletions must be at most"), "{} {}", r.status, r.body);
    // update settings on a job: the docker CLI refuses them itself; the API does too
    let out = c.docker(0, &["service", "create", "-d", "--name", "bad", "--mode", "replicated-job", "--update-order", "start-first", "busybox", "true"])?;
    let text = out.refused()?;
    ensure!(text.contains("not supported for jobs"), "{text}");
    let body = r#"{"Name":"bad","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"GlobalJob":{}},"UpdateConfig":{"Parallelism":1,"Order":"start-first"}}"#;
    let r = c.api(0, "POST", "/services/create", Some(body))?;
    ensure!(r.status == 400 && r.message().contains("UpdateConfig.Order cannot be used with jobs"), "{} {}", r.status, r.body);
    let version = svc[0]["Version"]["Index"].as_u64().context("version")?;
    let mut spec = svc[0]["Spec"].clone();
    spec["Mode"] = serde_json::json!({"Replicated": {"Replicas": 2}});
    let r = c.api(0, "POST", &format!("/services/job/update?version={version}"), Some(&spec.to_string()))?;
    ensure!(r.status == 501 && r.message().contains("service mode change is not allowed"), "{} {}", r.status, r.body);
    c.pass();
    Ok(())
}
