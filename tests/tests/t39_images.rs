//! Images on a cluster whose process engine runs them (no Docker involved): a registry (Debian's `docker-registry`)
//! on a lab host, an image built in the test from busybox-static and pushed to it, and the stock docker CLI.
//! `service create` pins the tag's digest; every task runs that digest, also after the tag is moved and the service
//! scaled; an image's HEALTHCHECK runs in the task's root (the task runs once healthy), and a spec check that always
//! fails, with the image's interval and retries, fails the task as Docker does; a missing image and a registry that
//! does not answer each reject the task with a clear error. Skipped,
//! with the reason printed, without root, network namespaces or the registry package.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_registry::build::{self, Entry, ImageSpec};
use skep_registry::manifest::RunConfig;
use skep_registry::testing::LocalRegistry;
use skep_registry::{Client, Credentials};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

/// A one-layer busybox image whose command prints `tag`, then sleeps.
fn image(tag: &str) -> Result<ImageSpec> {
    let busybox = std::fs::read("/bin/busybox").context("busybox-static is needed (/bin/busybox)")?;
    let layer = build::tar(&[
        Entry::Dir { path: "bin/".into(), mode: 0o755 },
        Entry::File { path: "bin/busybox".into(), mode: 0o755, data: busybox },
        Entry::Symlink { path: "bin/sh".into(), target: "/bin/busybox".into() },
        Entry::Symlink { path: "bin/sleep".into(), target: "/bin/busybox".into() },
        Entry::Dir { path: "etc/".into(), mode: 0o755 },
        Entry::File { path: "etc/version".into(), mode: 0o644, data: tag.into() },
    ])?;
    Ok(ImageSpec {
        layers: vec![layer],
        config: RunConfig { cmd: vec!["/bin/sh".into(), "-c".into(), "cat /etc/version; exec sleep 3600".into()], ..Default::default() },
        platform: None,
    })
}

/// Pushes `spec` as `reference` from inside network namespace `ns` (the registry's address is a lab address);
/// returns the manifest digest.
fn push_from(ns: &str, reference: &str, spec: ImageSpec, insecure: &str) -> Result<String> {
    let (ns, reference, insecure) = (ns.to_string(), reference.to_string(), insecure.to_string());
    std::thread::spawn(move || -> Result<String> {
        let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let tag = reference.rsplit_once(':').map(|(_, t)| t.to_string());
            let session = Client::new(vec![insecure]).session(&reference, Credentials::default())?.for_push();
            let mut last = None;
            for _ in 0..100 {
                match build::push_image(&session, &spec, tag.as_deref()).await {
                    Ok(d) => return Ok(d.digest),
                    Err(e) if e.is_unreachable() => last = Some(e), // the registry is still starting
                    Err(e) => return Err(e.into()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(anyhow::anyhow!("the registry never answered: {last:?}"))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the push thread panicked"))?
}

fn task_images(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or("").to_string()).collect()
}

fn errors(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["Status"]["Err"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn services_pin_image_digests_and_process_nodes_run_them_from_a_registry() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    if LocalRegistry::skip() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    let reg = format!("{}:5000", c.host(2).ip);
    c.set_daemon_args(&["--host-programs", "paths", "--insecure-registry", &reg]);
    let ns = c.host(2).ns.name().to_string();
    let _registry = LocalRegistry::start(&c.root().join("registry"), &reg, None, &["ip", "netns", "exec", &ns])?;
    let repo = format!("{reg}/demo/bb");
    let v1 = push_from(&ns, &format!("{repo}:v1"), image("v1")?, &reg)?;
    c.form(1, 2)?;

    // the docker CLI resolves the tag through /distribution and stores the digest
    c.docker(0, &["service", "create", "-d", "--name", "img", "--replicas", "3", &format!("{repo}:v1")])?.ok()?;
    let spec_image = c.services(0)?.iter().find(|s| s["Spec"]["Name"] == "img").map(|s| s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].as_str().unwrap_or("").to_string()).context("no service")?;
    ensure!(spec_image == format!("{repo}:v1@{v1}"), "pinned: {spec_image}");
    let tasks = c.wait_running(0, "img", 3, Duration::from_secs(90))?;
    ensure!(task_images(&tasks).iter().all(|i| i.ends_with(&v1)), "{:?}", task_images(&tasks));

    // the tag moves; new tasks still run the pinned digest, and no node pulled the new one
    let v2 = push_from(&ns, &format!("{repo}:v1"), image("v2")?, &reg)?;
    ensure!(v2 != v1, "the two images differ");
    c.docker(0, &["service", "scale", "-d", "img=5"])?.ok()?;
    let tasks = c.wait_running(0, "img", 5, Duration::from_secs(90))?;
    ensure!(task_images(&tasks).iter().all(|i| i.ends_with(&v1)), "{:?}", task_images(&tasks));
    for i in 0..3 {
        let list = c.api(i, "GET", "/images/json", None)?.json()?;
        let text = list.to_string();
        ensure!(text.contains(&v1) && !text.contains(&v2), "host {i} images: {text}");
    }

    // the image's HEALTHCHECK passes only inside its root (no /etc/version on the host); `--health-cmd` replaces its
    // command and keeps its interval and retries (Docker's merge), and a check that always fails fails the task
    let mut checked = image("hc")?;
    checked.config.healthcheck =
        Some(serde_json::json!({"Test": ["CMD-SHELL", "test \"$(cat /etc/version)\" = hc"], "Interval": 200_000_000, "Retries": 2}));
    let hc = push_from(&ns, &format!("{repo}:hc"), checked, &reg)?;
    c.docker(0, &["service", "create", "-d", "--name", "healthy", &format!("{repo}:hc@{hc}")])?.ok()?;
    c.wait_running(0, "healthy", 1, Duration::from_secs(90))?;
    c.docker(0, &["service", "create", "-d", "--name", "sick", "--restart-condition", "none", "--health-cmd", "exit 1", &format!("{repo}:hc@{hc}")])?.ok()?;
    let tasks = c.wait_tasks(0, "sick", Duration::from_secs(60), "a task failed unhealthy", |t| t.iter().any(|t| t["Status"]["State"] == "failed"))?;
    ensure!(errors(&tasks).iter().any(|e| e == "dockerexec: unhealthy container"), "{:?}", errors(&tasks));

    // a missing image, and a registry that does not answer: rejected tasks saying why
    c.docker(0, &["service", "create", "-d", "--name", "missing", "--restart-condition", "none", &format!("{repo}:nope")])?.ok()?;
    let tasks = c.wait_tasks(0, "missing", Duration::from_secs(60), "a rejected task", |t| t.iter().any(|t| t["Status"]["State"] == "rejected"))?;
    ensure!(errors(&tasks).iter().any(|e| e.contains("manifest unknown") || e.contains("not found")), "{:?}", errors(&tasks));
    let down = format!("{}:5999/demo/bb:v1", c.host(1).ip);
    c.docker(0, &["service", "create", "-d", "--name", "down", "--no-resolve-image", "--restart-condition", "none", &down])?.ok()?;
    let tasks = c.wait_tasks(0, "down", Duration::from_secs(90), "a rejected task", |t| t.iter().any(|t| t["Status"]["State"] == "rejected"))?;
    ensure!(errors(&tasks).iter().any(|e| e.contains("unreachable")), "{:?}", errors(&tasks));
    println!("pinned {spec_image}; the moved tag is {v2}; a registry down: {:?}", errors(&tasks));

    for s in ["img", "healthy", "sick", "missing", "down"] {
        c.docker(0, &["service", "rm", s])?.ok()?;
    }
    wait_until("the tasks gone", Duration::from_secs(60), || -> Result<()> {
        let left: usize = (0..3).map(|i| c.task_processes(i).len()).sum();
        ensure!(left == 0, "{left} task processes left");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
