//! `skep stack` without the docker CLI, on 1 manager + 1 worker with the `process` engine: a compose file deployed
//! with `skep stack deploy` (a network, a secret from a file, a service published through the routing mesh that
//! answers with the secret), `stack ls` and `stack ps` (and the stock `docker stack ps` / `stack ls` seeing the same
//! stack, as the labels are docker's), a redeploy with a change updating the service in place (same ID, same tasks)
//! and `--prune` removing the service the file no longer names, then `stack rm` leaving no service, task, network
//! or secret behind. And the same compose file deployed by the stock `docker stack deploy` and by
//! `skep stack deploy` gives the same service spec (names, labels, mounts, secrets, configs, healthcheck, resources,
//! policies), and each CLI removes the other's stack.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(60);
const SECRET: &str = "t51-stack-secret-Kw2";

/// The compose file; `version` goes into the web service's labels (a change that restarts no task), `side` is
/// there only when `with_side`.
fn compose(version: &str, with_side: bool) -> String {
    let mut y = format!(
        r#"services:
  web:
    image: busybox
    command: ["nc", "-ll", "-p", "80", "-e", "busybox", "cat", "/run/secrets/pw"]
    ports: ["${{WEB_PORT:-8080}}:80"]
    networks: [app]
    secrets: [pw]
    deploy:
      replicas: 2
      labels:
        version: "{version}"
"#
    );
    if with_side {
        y.push_str("  side:\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    networks: [app]\n");
    }
    y.push_str("networks:\n  app:\n    driver: overlay\nsecrets:\n  pw:\n    file: ./secret.txt\n");
    y
}

/// One TCP connection from host `from` to host `to`'s port 8080 (the mesh): what was answered.
fn ask(c: &Cluster, from: usize, to: usize) -> Result<String> {
    let ip = c.host(to).ip.clone();
    let o = c.host(from).ns.exec("timeout", &["3", "busybox", "nc", "-w", "2", &ip, "8080"], Duration::from_secs(5))?;
    Ok(o.stdout)
}

/// IDs of the tasks of `service` that should run.
fn live_tasks(c: &Cluster, service: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = c
        .tasks(0, service)?
        .iter()
        .filter(|t| t["DesiredState"] == "running")
        .filter_map(|t| t["ID"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

fn objects(c: &Cluster, kind: &str) -> Result<Vec<Value>> {
    let r = c.api(0, "GET", &format!("/{kind}"), None)?;
    Ok(r.json()?.as_array().cloned().unwrap_or_default())
}

#[test]
fn a_compose_file_deployed_with_skep_runs_updates_in_place_prunes_and_is_removed() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.form(1, 1)?;
    c.set_client_timeout(Duration::from_secs(90));
    let root = c.root().to_path_buf();
    std::fs::write(root.join("secret.txt"), SECRET)?;
    let file = root.join("stack.yml");
    let file_arg = file.display().to_string();
    std::fs::write(&file, compose("1", true))?;

    // --detach=false: the command returns once the services converged (quietly with -q)
    let out = c.skep(0, &["stack", "deploy", "--detach=false", "-q", "-c", &file_arg, "st"])?;
    let stdout = out.ok()?.to_string();
    ensure!(
        stdout == "Creating network st_app\nCreating secret st_pw\nCreating service st_side\nCreating service st_web\n",
        "deploy printed {stdout:?}"
    );
    ensure!(!out.stderr.contains("Since --detach=false"), "deploy stderr: {}", out.stderr);
    let running = |s: &str| c.tasks(0, s).map(|t| t.iter().filter(|t| t["Status"]["State"] == "running").count());
    ensure!(running("st_web")? == 2 && running("st_side")? == 1, "deploy returned before the tasks ran");
    c.wait_running(0, "st_web", 2, CONVERGE)?;
    c.wait_running(0, "st_side", 1, CONVERGE)?;
    let svc: Value = skep_tests::json::parse(&c.skep_ok(0, &["service", "inspect", "st_web"])?)?;
    let labels = &svc[0]["Spec"]["Labels"];
    ensure!(labels["com.docker.stack.namespace"] == "st" && labels["com.docker.stack.image"] == "busybox", "{labels}");
    let web_id = svc[0]["ID"].as_str().context("no ID")?.to_string();
    let first_version = svc[0]["Version"]["Index"].as_u64().context("no version")?;

    // the published port answers on both nodes through the mesh, with the secret's content
    for (from, to) in [(1, 0), (0, 1)] {
        wait_until(&format!("host {to} answers 8080 with the secret"), Duration::from_secs(20), || -> Result<()> {
            let got = ask(&c, from, to)?;
            ensure!(got == SECRET, "answered {got:?}");
            Ok(())
        })?;
    }

    // ls and ps, from skep and from the stock docker CLI
    ensure!(c.skep_ok(0, &["stack", "ls"])? == "NAME      SERVICES\nst        2\n", "stack ls");
    let names = c.skep_ok(0, &["stack", "ps", "st", "--format", "{{.Name}} {{.DesiredState}}"])?;
    ensure!(names == "st_side.1 Running\nst_web.1 Running\nst_web.2 Running\n", "stack ps: {names:?}");
    ensure!(c.skep_ok(0, &["stack", "ps", "-q", "st"])?.lines().count() == 3, "stack ps -q");
    let docker_ps = c.docker(0, &["stack", "ps", "st", "--format", "{{.Name}} {{.DesiredState}}"])?.ok()?.to_string();
    ensure!(docker_ps == names, "docker stack ps: {docker_ps:?}");
    let docker_ls = c.docker(0, &["stack", "ls"])?.ok()?.to_string();
    ensure!(docker_ls == "NAME      SERVICES\nst        2\n", "docker stack ls: {docker_ls:?}");
    let services = c.skep_ok(0, &["stack", "services", "st", "--format", "{{.Name}}"])?;
    ensure!(services == "st_side\nst_web\n", "stack services: {services:?}");

    // a redeploy with a change: the service updated in place, its tasks kept; --prune removes `side`
    let tasks_before = live_tasks(&c, "st_web")?;
    std::fs::write(&file, compose("2", false))?;
    let out = c.skep(0, &["stack", "deploy", "--prune", "-c", &file_arg, "st"])?;
    let redeploy = out.ok()?.to_string();
    ensure!(out.stderr.contains("Since --detach=false was not specified"), "redeploy stderr: {}", out.stderr);
    ensure!(
        redeploy == format!("Removing service st_side\nUpdating service st_web (id: {web_id})\n"),
        "redeploy printed {redeploy:?}"
    );
    let svc: Value = skep_tests::json::parse(&c.skep_ok(0, &["service", "inspect", "st_web"])?)?;
    ensure!(svc[0]["ID"] == web_id.as_str(), "the service was recreated");
    ensure!(svc[0]["Spec"]["Labels"]["version"] == "2", "not updated: {}", svc[0]["Spec"]["Labels"]);
    ensure!(svc[0]["Version"]["Index"].as_u64().unwrap_or(0) > first_version, "version did not move");
    wait_until("st_side gone", CONVERGE, || -> Result<()> {
        let names: Vec<Value> = c.services(0)?.iter().map(|s| s["Spec"]["Name"].clone()).collect();
        ensure!(names == [Value::from("st_web")], "services: {names:?}");
        Ok(())
    })?;
    ensure!(live_tasks(&c, "st_web")? == tasks_before, "a label change replaced the tasks");
    ensure!(ask(&c, 1, 0)? == SECRET, "the mesh after the redeploy");

    // a key skep does not carry out is refused before anything changes
    std::fs::write(root.join("bad.yml"), "services:\n  web:\n    image: busybox\n    init: true\n")?;
    let bad = c.skep(0, &["stack", "deploy", "-c", &root.join("bad.yml").display().to_string(), "st"])?;
    ensure!(
        !bad.success() && bad.stderr.contains("services.web.init: not supported by skep stack deploy"),
        "bad key: {}",
        bad.stderr
    );

    // stack rm: services, then the secret, then the network; nothing of the stack left
    let rm = c.skep_ok(0, &["stack", "rm", "st"])?;
    ensure!(rm == "Removing service st_web\nRemoving secret st_pw\nRemoving network st_app\n", "rm printed {rm:?}");
    wait_until("nothing of the stack left", CONVERGE, || -> Result<()> {
        ensure!(c.services(0)?.is_empty(), "services left");
        let tasks = objects(&c, "tasks")?;
        ensure!(tasks.is_empty(), "{} tasks left", tasks.len());
        let nets: Vec<String> =
            objects(&c, "networks")?.iter().filter_map(|n| n["Name"].as_str().map(str::to_string)).collect();
        ensure!(!nets.iter().any(|n| n.starts_with("st_")), "networks left: {nets:?}");
        ensure!(objects(&c, "secrets")?.is_empty(), "secrets left");
        Ok(())
    })?;
    ensure!(c.skep_ok(0, &["stack", "ls"])? == "NAME      SERVICES\n", "stack ls after rm");
    let ps = c.skep(0, &["stack", "ps", "st"])?;
    ensure!(!ps.success() && ps.stderr.trim() == "nothing found in stack: st", "stack ps after rm: {}", ps.stderr);
    c.pass();
    Ok(())
}

/// A compose file using most of what skep carries out; `{ns}`-free so both CLIs deploy it unchanged.
const RICH: &str = r#"services:
  app:
    image: busybox
    command: sh -c "echo hi; exec sleep 3600"
    environment: {A: "1", B: two}
    labels: [team=t51]
    hostname: app-host
    user: "0"
    working_dir: /tmp
    stop_grace_period: 20s
    stop_signal: SIGTERM
    volumes:
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1048576}
    networks:
      back:
        aliases: [api]
    secrets:
      - source: pw
        target: pw
        mode: 0400
    configs: [conf]
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
      retries: 2
    deploy:
      replicas: 1
      labels: {tier: back}
      resources:
        limits: {cpus: "0.5", memory: 32M}
        reservations: {memory: 8M}
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 3}
      update_config: {parallelism: 2, delay: 1s, order: start-first, failure_action: rollback}
      placement: {constraints: [node.role==manager], max_replicas_per_node: 1}
  restarts:
    image: busybox
    entrypoint: sleep
    command: ["3600"]
    restart: on-failure:2
    environment: [X=1, Y]
    cap_add: [NET_ADMIN]
    ports:
      - "90"
      - target: 91
        protocol: udp
    volumes:
      - data:/data:ro
      - type: volume
        target: /anon
    deploy:
      mode: global
      endpoint_mode: vip
  more:
    image: busybox
    command: sleep 3600
    read_only: true
    labels: [flag, k=v]
    sysctls: {net.ipv4.ip_forward: 1}
    healthcheck:
      test: exit 0
      timeout: 3s
      start_period: 1m
    volumes:
      - ./:/host:ro
      - type: tmpfs
        target: /t
        tmpfs: {size: 65536}
    networks: [default, back]
    deploy:
      endpoint_mode: dnsrr
      resources:
        limits: {pids: 64}
      placement:
        preferences: [{spread: node.labels.zone}]
      rollback_config: {parallelism: 0, monitor: 10s, max_failure_ratio: 0.5}
      update_config: {failure_action: continue}
networks:
  back:
    attachable: true
volumes:
  data:
    labels: {kept: "yes"}
secrets:
  pw:
    file: ./secret.txt
configs:
  conf:
    file: ./secret.txt
"#;

/// The service's spec with the stack's name in it replaced, network IDs by their names, and no secret and config
/// IDs (the objects differ).
fn comparable(c: &Cluster, ns: &str, service: &str) -> Result<Value> {
    let mut svc: Value = skep_tests::json::parse(&c.skep_ok(0, &["service", "inspect", &format!("{ns}_{service}")])?)?;
    for n in svc[0]["Spec"]["TaskTemplate"]["Networks"].as_array_mut().into_iter().flatten() {
        let id = n["Target"].as_str().unwrap_or_default().to_string();
        let net: Value = skep_tests::json::parse(&c.skep_ok(0, &["network", "inspect", &id])?)?;
        n["Target"] = net[0]["Name"].clone();
    }
    let text = svc[0]["Spec"].to_string().replace(&format!("{ns}_"), "NS_").replace(&format!("\"{ns}\""), "\"NS\"");
    let mut spec: Value = serde_json::from_str(&text)?;
    let cs = &mut spec["TaskTemplate"]["ContainerSpec"];
    for (list, id) in [("Secrets", "SecretID"), ("Configs", "ConfigID")] {
        for r in cs[list].as_array_mut().into_iter().flatten() {
            r[id] = Value::Null;
        }
    }
    Ok(spec)
}

#[test]
fn a_stack_deployed_by_skep_has_the_spec_docker_stack_deploy_gives() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.form(1, 0)?;
    c.set_client_timeout(Duration::from_secs(90));
    let root = c.root().to_path_buf();
    std::fs::write(root.join("secret.txt"), SECRET)?;
    let file = root.join("rich.yml");
    std::fs::write(&file, RICH)?;
    let file = file.display().to_string();
    c.docker(0, &["stack", "deploy", "-c", &file, "dk"])?.ok()?;
    c.skep_ok(0, &["stack", "deploy", "-c", &file, "sk"])?;
    for service in ["app", "restarts", "more"] {
        let (docker, skep) = (comparable(&c, "dk", service)?, comparable(&c, "sk", service)?);
        ensure!(docker == skep, "{service}: docker's spec:\n{docker:#}\nskep's:\n{skep:#}");
    }
    // each CLI removes the other's stack
    let rm = c.skep_ok(0, &["stack", "rm", "dk"])?;
    let want = "Removing service dk_app\nRemoving service dk_more\nRemoving service dk_restarts\n";
    ensure!(rm.starts_with(want), "skep stack rm dk: {rm:?}");
    c.docker(0, &["stack", "rm", "sk"])?.ok()?;
    wait_until("both stacks gone", CONVERGE, || -> Result<()> {
        ensure!(c.services(0)?.is_empty(), "services left");
        ensure!(objects(&c, "secrets")?.is_empty() && objects(&c, "configs")?.is_empty(), "secrets or configs left");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
