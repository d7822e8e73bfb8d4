//! `docker login` against a node (`POST /auth`): the daemon checks the credentials with the registry (Debian's
//! `docker-registry` with htpasswd auth, on the host), the CLI keeps them, and `service create
//! --with-registry-auth` runs an image that registry serves only to them. A wrong password is Docker's 401 message; a
//! registry that does not answer is an error saying so. Skipped, with the reason printed, without root, network
//! namespaces or the registry package.

use anyhow::{ensure, Context as _, Result};
use skep_registry::build::{self, Entry, ImageSpec};
use skep_registry::manifest::RunConfig;
use skep_registry::testing::LocalRegistry;
use skep_registry::{Client, Credentials};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const USER: (&str, &str) = ("alice", "s3cret");

/// Pushes a one-layer busybox image as `reference` from inside network namespace `ns`, with the user's password.
fn push_from(ns: &str, reference: &str, insecure: &str) -> Result<()> {
    let busybox = std::fs::read("/bin/busybox").context("busybox-static is needed (/bin/busybox)")?;
    let layer = build::tar(&[
        Entry::Dir { path: "bin/".into(), mode: 0o755 },
        Entry::File { path: "bin/busybox".into(), mode: 0o755, data: busybox },
    ])?;
    let spec = ImageSpec {
        layers: vec![layer],
        config: RunConfig { cmd: vec!["/bin/busybox".into(), "sleep".into(), "3600".into()], ..Default::default() },
        platform: None,
    };
    let (ns, reference, insecure) = (ns.to_string(), reference.to_string(), insecure.to_string());
    std::thread::spawn(move || -> Result<()> {
        let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let creds = Credentials { username: USER.0.into(), password: USER.1.into(), ..Default::default() };
            let session = Client::new(vec![insecure]).session(&reference, creds)?.for_push();
            let tag = reference.rsplit_once(':').map(|(_, t)| t.to_string());
            build::push_image(&session, &spec, tag.as_deref()).await?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the push thread panicked"))?
}

#[test]
fn docker_login_checks_credentials_with_the_registry_and_services_pull_with_them() -> Result<()> {
    if !require_root_and_netns() || LocalRegistry::skip() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    let reg = format!("{}:5000", c.host(0).ip);
    c.set_daemon_args(&["--host-programs", "paths", "--insecure-registry", &reg]);
    let ns = c.host(0).ns.name().to_string();
    let _registry = LocalRegistry::start(&c.root().join("registry"), &reg, Some(USER), &["ip", "netns", "exec", &ns])?;
    c.form(1, 0)?;

    let login = wait_until("a login through the node", Duration::from_secs(30), || -> Result<String> {
        Ok(c.docker(0, &["login", "-u", USER.0, "-p", USER.1, &reg])?.ok()?.to_string())
    })?;
    ensure!(login.contains("Login Succeeded"), "{login}");
    let bad = c.docker(0, &["login", "-u", USER.0, "-p", "wrong", &reg])?;
    let expected = format!("login attempt to http://{reg}/v2/ failed with status: 401 Unauthorized");
    ensure!(!bad.success() && bad.stderr.contains(&expected), "{}", bad.stderr);
    let down = c.docker(0, &["login", "-u", USER.0, "-p", USER.1, &format!("{}:5999", c.host(0).ip)])?;
    ensure!(!down.success() && down.stderr.contains("unreachable"), "{}", down.stderr);

    // the CLI kept the good credentials (its own config): a private image runs with them
    let image = format!("{reg}/demo/private:v1");
    push_from(&ns, &image, &reg)?;
    c.docker(0, &["login", "-u", USER.0, "-p", USER.1, &reg])?.ok()?;
    c.docker(0, &["service", "create", "-d", "--name", "private", "--with-registry-auth", &image])?.ok()?;
    let tasks = c.wait_running(0, "private", 1, Duration::from_secs(60))?;
    let pinned = tasks[0]["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or_default().to_string();
    ensure!(pinned.starts_with(&format!("{image}@sha256:")), "pinned with the credentials: {pinned}");
    c.docker(0, &["service", "rm", "private"])?.ok()?;
    c.pass();
    Ok(())
}
