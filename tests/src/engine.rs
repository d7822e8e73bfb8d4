//! The machine's own Docker engine, for tests of skep's `docker` engine: the stock CLI against it, and the test
//! image (`FROM scratch` with Debian's static busybox), built on first use.

use crate::{run, Output};
use std::process::Command;
use std::time::Duration;

/// The test image: `FROM scratch` with a static busybox as /bin/busybox and /bin/sh.
pub const IMAGE: &str = "skep-test-busybox:latest";
/// The machine's Docker engine.
pub const SOCKET: &str = "/var/run/docker.sock";

/// The stock docker CLI against the machine's engine (not skep).
pub fn engine(args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
    let mut c = Command::new(crate::docker_bin());
    c.arg("-H").arg(format!("unix://{SOCKET}")).args(args).env_remove("DOCKER_CONTEXT").env_remove("DOCKER_HOST");
    run(c, timeout)
}

/// Why the docker engine cannot be used, if it cannot; builds the test image when missing.
pub fn docker_unavailable() -> Option<String> {
    if !std::path::Path::new(SOCKET).exists() {
        return Some(format!("{SOCKET} does not exist"));
    }
    match engine(&["version", "--format", "{{.Server.Version}}"], Duration::from_secs(10)) {
        Ok(o) if o.success() => {}
        Ok(o) => return Some(format!("docker version: {}", o.describe_failure())),
        Err(e) => return Some(format!("docker version: {e:#}")),
    }
    if engine(&["image", "inspect", IMAGE], Duration::from_secs(10)).is_ok_and(|o| o.success()) {
        return None;
    }
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| std::path::Path::new(p).exists()) else {
        return Some(format!("{IMAGE} is missing and there is no busybox to build it from"));
    };
    // FROM scratch + a static busybox as /bin/busybox and /bin/sh (its applets, sleep included, are builtins).
    let ctx = std::env::temp_dir().join(format!("skt-image-{}", std::process::id()));
    let built = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(&ctx)?;
        std::fs::copy(busybox, ctx.join("busybox"))?;
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nENV PATH=/bin\n")?;
        let mut c = Command::new(crate::docker_bin());
        c.arg("-H").arg(format!("unix://{SOCKET}")).args(["build", "-q", "-t", IMAGE]).arg(&ctx).env("DOCKER_BUILDKIT", "0");
        run(c, Duration::from_secs(180))?.ok()?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&ctx);
    built.err().map(|e| format!("building {IMAGE}: {e:#}"))
}


/// IDs of the engine's containers of a skep service (by its `com.skep.service.id` label): running ones, or all.
pub fn service_containers(service_id: &str, all: bool) -> anyhow::Result<Vec<String>> {
    let filter = format!("label=com.skep.service.id={service_id}");
    let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &filter];
    if all {
        args.push("-a");
    }
    Ok(engine(&args, Duration::from_secs(20))?.ok()?.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}

/// Removes, on drop, whatever containers a failed run left in the engine for the service whose ID it holds.
#[derive(Default)]
pub struct Leftovers(pub Option<String>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(ids) = self.0.as_deref().and_then(|id| service_containers(id, true).ok()).filter(|ids| !ids.is_empty()) {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = engine(&args, Duration::from_secs(30));
        }
    }
}

/// A swarm of `managers` + `workers` hosts whose daemons run the `docker` engine, formed; `None` (with the reason
/// printed) when the test must be skipped: no root and `ip netns`, or no usable Docker engine.
pub fn docker_cluster(managers: usize, workers: usize) -> anyhow::Result<Option<crate::Cluster>> {
    if !crate::require_root_and_netns() {
        return Ok(None);
    }
    if let Some(why) = docker_unavailable() {
        eprintln!("skipped: the docker engine is unavailable ({why})");
        return Ok(None);
    }
    let mut c = crate::Cluster::new(managers + workers)?;
    c.set_engine(Some("docker"));
    c.form(managers, workers)?;
    Ok(Some(c))
}
