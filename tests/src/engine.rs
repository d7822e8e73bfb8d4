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

