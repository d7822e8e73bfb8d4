//! One multi-platform image run by both engines, and each node's images as `docker image ls/rm/prune` see them.
//!
//! A registry (Debian's `docker-registry`) on the root namespace's loopback, which the machine's Docker engine
//! pulls from over plain HTTP by default (`127.0.0.0/8` is an insecure registry to dockerd), relayed into the
//! process host's loopback ([`skep_tests::relay`]), so one reference names it on both. The image is an index of a
//! two-layer `linux/amd64` image (the upper layer replaces a file and whites another out) and a `linux/arm64` one
//! that must not be chosen. A global service pinned to the index runs it on a `process` host and a `docker` host;
//! both tasks print what they see. Then the nodes' image APIs: the image is listed, is refused removal while its
//! task is there, is removed once the service is gone (Docker's answer lines), and `image prune -a` takes an
//! unused one but not a used one. Skipped, with the reason printed, without root, network namespaces, the registry
//! package or a usable Docker engine.

use anyhow::{ensure, Context as _, Result};
use skep_registry::build::{self, Entry, ImageSpec};
use skep_registry::manifest::{Platform, RunConfig};
use skep_registry::testing::LocalRegistry;
use skep_registry::{Client, Credentials};
use skep_tests::engine::{docker_unavailable, engine, service_containers, Leftovers};
use skep_tests::relay::LoopbackRelay;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(90);

/// A platform's image: busybox-static and `/etc/version` = `base` plus `/etc/gone` in the lower layer; the upper
/// one writes `/etc/version` = `arch` and whites out `/etc/gone`. The command prints what the task sees.
fn image(arch: &str) -> Result<ImageSpec> {
    let busybox = std::fs::read("/bin/busybox").context("busybox-static is needed (/bin/busybox)")?;
    let lower = build::tar(&[
        Entry::Dir { path: "bin/".into(), mode: 0o755 },
        Entry::File { path: "bin/busybox".into(), mode: 0o755, data: busybox },
        Entry::Symlink { path: "bin/sh".into(), target: "/bin/busybox".into() },
        Entry::Symlink { path: "bin/sleep".into(), target: "/bin/busybox".into() },
        Entry::Symlink { path: "bin/cat".into(), target: "/bin/busybox".into() },
        Entry::Dir { path: "etc/".into(), mode: 0o755 },
        Entry::File { path: "etc/version".into(), mode: 0o644, data: b"base".to_vec() },
        Entry::File { path: "etc/gone".into(), mode: 0o644, data: b"x".to_vec() },
    ])?;
    let upper = build::tar(&[
        Entry::Dir { path: "etc/".into(), mode: 0o755 },
        Entry::File { path: "etc/version".into(), mode: 0o644, data: arch.as_bytes().to_vec() },
        Entry::File { path: "etc/.wh.gone".into(), mode: 0o644, data: Vec::new() },
    ])?;
    let script = "echo \"version=$(cat /etc/version)\"; test -e /etc/gone || echo whited-out; exec sleep 3600";
    Ok(ImageSpec {
        layers: vec![lower, upper],
        config: RunConfig { cmd: vec!["/bin/sh".into(), "-c".into(), script.into()], ..Default::default() },
        platform: Some(Platform { architecture: arch.into(), os: "linux".into(), variant: String::new() }),
    })
}

/// Pushes both platforms and an index of them as `reference` (`host:port/repo:tag`); returns the index digest.
fn push_index(registry: &str, reference: &str) -> Result<String> {
    let (registry, reference) = (registry.to_string(), reference.to_string());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let tag = reference.rsplit_once(':').map(|(_, t)| t.to_string()).context("a tag")?;
        let session = Client::new(vec![registry]).session(&reference, Credentials::default())?.for_push();
        let amd64 = build::push_image(&session, &image("amd64")?, None).await?;
        let arm64 = build::push_image(&session, &image("arm64")?, None).await?;
        Ok(build::push_index(&session, &[amd64, arm64], &tag).await?.digest)
    })
}

/// Pushes one image as `reference`.
fn push_one(registry: &str, reference: &str, spec: ImageSpec) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let tag = reference.rsplit_once(':').map(|(_, t)| t.to_string()).context("a tag")?;
        let session = Client::new(vec![registry.to_string()]).session(reference, Credentials::default())?.for_push();
        build::push_image(&session, &spec, Some(&tag)).await?;
        Ok(())
    })
}

/// A free TCP port on the root namespace's loopback.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Removes what the test pulled into the machine's Docker engine, also when it fails.
struct EngineImages(String);

impl Drop for EngineImages {
    fn drop(&mut self) {
        let filter = format!("reference={}/*/*", self.0);
        if let Ok(o) = engine(&["image", "ls", "-q", "--filter", &filter], Duration::from_secs(20)) {
            for id in o.stdout.split_whitespace() {
                let _ = engine(&["image", "rm", "-f", id], Duration::from_secs(20));
            }
        }
    }
}

#[test]
fn a_multi_platform_image_runs_on_both_engines_and_nodes_list_and_remove_their_images() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    if LocalRegistry::skip() {
        return Ok(());
    }
    if let Some(why) = docker_unavailable() {
        eprintln!("skipped: the Docker engine is not usable: {why}");
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    let port = free_port()?;
    let reg = format!("127.0.0.1:{port}");
    let _registry = LocalRegistry::start(&c.root().join("registry"), &reg, None, &[])?;
    let _engine_images = EngineImages(reg.clone());
    let _relay = LoopbackRelay::start(c.host(0).ns.name(), port)?;
    let repo = format!("{reg}/demo/multi");
    let index = push_index(&reg, &format!("{repo}:v1"))?;

    c.set_daemon_args(&["--host-programs", "paths", "--insecure-registry", &reg]);
    c.set_engine(Some("process"));
    c.start(0)?;
    c.set_engine(Some("docker"));
    c.start(1)?;
    c.form(1, 1)?;

    // the CLI pins the index; each engine picks linux/amd64 from it and stacks both layers
    c.docker(0, &["service", "create", "-d", "--name", "multi", "--mode", "global", &format!("{repo}:v1")])?.ok()?;
    let services = c.services(0)?;
    let multi = services.iter().find(|s| s["Spec"]["Name"] == "multi").context("the service")?;
    let id = multi["ID"].as_str().context("its ID")?.to_string();
    let _containers = Leftovers(Some(id.clone()));
    let tasks = c.wait_running(0, "multi", 2, CONVERGE)?;
    for t in &tasks {
        let image = t["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or("");
        ensure!(image == format!("{repo}:v1@{index}"), "pinned to the index: {image}");
    }
    let logs = wait_until("both tasks' lines", CONVERGE, || -> Result<String> {
        let out = c.docker(0, &["service", "logs", "--raw", "multi"])?.ok()?.to_string();
        ensure!(out.matches("version=amd64").count() == 2 && out.matches("whited-out").count() == 2, "{out}");
        Ok(out)
    })?;
    ensure!(!logs.contains("arm64") && !logs.contains("version=base"), "{logs}");

    // the process host lists the image it pulled, and will not remove it under its task
    let filter = format!("reference={repo}");
    let listed = c.docker(0, &["image", "ls", "--format", "{{json .}}", "--filter", &filter])?.ok()?.to_string();
    ensure!(listed.contains("\"Tag\":\"v1\"") && listed.lines().count() == 1, "process host: {listed}");
    let refused = c.docker(0, &["image", "rm", &format!("{repo}:v1")])?;
    ensure!(!refused.success() && refused.stderr.contains("(must force) - task"), "{}", refused.stderr);
    // the docker host answers from its Docker engine
    // what the store does not compute is refused, not ignored
    for flag in ["shared-size", "manifests"] {
        let r = c.api(0, "GET", &format!("/images/json?{flag}=1"), None)?;
        ensure!(r.status == 501 && r.body.contains(flag), "{flag}: {} {}", r.status, r.body);
    }
    let listed = c.api(1, "GET", "/images/json", None)?.json()?.to_string();
    ensure!(listed.contains(&format!("{repo}@{index}")), "docker host: {listed}");

    // a second image (another command, the same layers) goes with `prune -a` once unused, not with a plain prune
    // (it is tagged, not dangling), and the first one, used, stays
    let mut other = image("amd64")?;
    other.config.cmd = vec!["/bin/sleep".into(), "3600".into()];
    push_one(&reg, &format!("{repo}:v2"), other)?;
    let v2 = format!("{repo}:v2");
    c.docker(0, &["service", "create", "-d", "--name", "other", "--constraint", "node.role==manager", &v2])?.ok()?;
    c.wait_running(0, "other", 1, CONVERGE)?;
    c.docker(0, &["service", "rm", "other"])?.ok()?;
    let pruned = c.docker(0, &["image", "prune", "-f"])?.ok()?.to_string();
    ensure!(pruned.contains("Total reclaimed space: 0B"), "a plain prune keeps tagged images: {pruned}");
    let pruned = wait_until("the other image pruned", CONVERGE, || -> Result<String> {
        let out = c.docker(0, &["image", "prune", "-a", "-f"])?.ok()?.to_string();
        ensure!(out.contains(&format!("untagged: {repo}:v2")), "{out}");
        Ok(out)
    })?;
    ensure!(pruned.matches("deleted: sha256:").count() == 1, "only its config, the layers are shared: {pruned}");
    let listed = c.docker(0, &["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])?.ok()?.to_string();
    ensure!(listed.trim() == format!("{repo}:v1"), "the used image stays: {listed}");

    // removed by name once no task records it: Docker's answer lines, and the layers go
    c.docker(0, &["service", "rm", "multi"])?.ok()?;
    wait_until("the tasks gone", CONVERGE, || -> Result<()> {
        let left = c.task_processes(0).len();
        ensure!(left == 0, "{left} task processes left");
        let ctrs = service_containers(&id, true)?;
        ensure!(ctrs.is_empty(), "containers left: {ctrs:?}");
        Ok(())
    })?;
    let v1 = format!("{repo}:v1");
    let removed = wait_until("the image removable", CONVERGE, || -> Result<String> {
        Ok(c.docker(0, &["image", "rm", &v1])?.ok()?.to_string())
    })?;
    ensure!(removed.contains(&format!("Untagged: {v1}")) && removed.matches("Deleted: sha256:").count() == 3, "{removed}");
    let listed = c.docker(0, &["image", "ls", "-q"])?.ok()?.to_string();
    ensure!(listed.trim().is_empty(), "nothing left: {listed}");
    let layers = std::fs::read_dir(c.host(0).dir.join("engine/images/layers"))?.count();
    ensure!(layers == 0, "{layers} layers left");
    let missing = c.docker(0, &["image", "rm", &format!("{repo}:v1")])?;
    ensure!(missing.stderr.contains(&format!("No such image: {repo}:v1")), "{}", missing.stderr);
    let removed = c.docker(1, &["image", "rm", &format!("{repo}@{index}")])?.ok()?.to_string();
    ensure!(removed.contains("Untagged:"), "the Docker engine's answer: {removed}");
    c.pass();
    Ok(())
}
