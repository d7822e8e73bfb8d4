//! The container image of skep (`deploy/docker/build.sh`, FROM scratch: no base image, no registry): built with the
//! machine's Docker engine, `skep --version` and `skep daemon --help` run in it, and a daemon started in it answers
//! `swarm init` and `node ls` through its socket on a mounted directory. The daemon's container has `--network none`
//! (its own empty network namespace, where it may make its ingress network without touching the machine's), a
//! temporary data root and socket directory; it is privileged, as docs/install.md says skep must be (an engine that
//! cannot give `--privileged`, as one running in a container without every capability, gives every capability it has
//! instead, unconfined). The real setup (`--network host --pid host --cgroupns host`) is not run here: it would act
//! on this machine's network.
//!
//! The image and the container are removed afterwards, also when the test fails. Skipped (with the reason) without
//! root or a usable Docker engine.

use anyhow::{ensure, Context as _, Result};
use skep_tests::engine::engine;
use skep_tests::json::str_at;
use skep_tests::process::run;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const BUILD: Duration = Duration::from_secs(300);
/// What the daemon's container is given: `--privileged` as docs/install.md says; an engine that itself runs without
/// some capability (in a container) cannot give `--privileged` ("unable to apply caps"), so then every capability it
/// has, without seccomp and AppArmor confinement.
const PRIVILEGE: [&[&str]; 2] = [
    &["--privileged"],
    &["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt",
      "apparmor=unconfined"],
];

/// Removes, on drop, the test's container and image and its temporary directory.
struct Cleanup {
    image: String,
    container: String,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = engine(&["rm", "-f", "-v", &self.container], T);
        let _ = engine(&["rmi", "-f", &self.image], T);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    // the daemon's files in the mounted data root belong to root, and so does the engine's socket
    if !Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0") {
        return Some("needs root".into());
    }
    if !std::path::Path::new(skep_tests::engine::SOCKET).exists() {
        return Some(format!("{} does not exist", skep_tests::engine::SOCKET));
    }
    match engine(&["version", "--format", "{{.Server.Version}}"], Duration::from_secs(10)) {
        Ok(o) if o.success() => None,
        Ok(o) => Some(format!("docker version: {}", o.describe_failure())),
        Err(e) => Some(format!("docker version: {e:#}")),
    }
}

/// The skep CLI against the socket in `run_dir`.
fn skep(run_dir: &std::path::Path, args: &[&str]) -> Result<String> {
    let mut c = Command::new(skep_tests::skep_bin()?);
    c.arg("-H").arg(format!("unix://{}", run_dir.join("skep.sock").display())).args(args).env_remove("SKEP_HOST");
    Ok(run(c, T)?.ok()?.to_owned())
}

#[test]
fn the_image_builds_from_scratch_and_a_daemon_in_it_forms_a_swarm_through_its_mounted_socket() -> Result<()> {
    // as every test of the docker engine: a machine without one skips (tests/run.sh does not install Docker)
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let bin = skep_tests::skep_bin()?;
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("skt-image-{pid}"));
    let guard = Cleanup { image: format!("skep-test-image:{pid}"), container: format!("skt-skep-{pid}"), dir };
    std::fs::create_dir_all(guard.dir.join("data"))?;
    std::fs::create_dir_all(guard.dir.join("run"))?;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker/build.sh");
    let mut c = Command::new(script);
    c.arg("--bin").arg(&bin).args(["--tag", &guard.image]);
    let tag = run(c, BUILD)?.ok()?.trim().to_owned();
    ensure!(tag == guard.image, "build.sh printed {tag}");
    let inspect = engine(&["image", "inspect", &guard.image], T)?.json()?;
    let entry = inspect[0]["Config"]["Entrypoint"].clone();
    ensure!(entry == serde_json::json!(["/usr/bin/skep"]), "entrypoint: {entry}");

    // the binary and its flags, with nothing but the image
    let v = engine(&["run", "--rm", "--network", "none", &guard.image, "--version"], T)?;
    let mut hc = Command::new(&bin);
    hc.arg("--version");
    let host_v = run(hc, T)?;
    ensure!(v.ok()?.trim() == host_v.ok()?.trim(), "skep --version in the image: {}", v.stdout);
    let help = engine(&["run", "--rm", "--network", "none", &guard.image, "daemon", "--help"], T)?;
    for flag in ["--data-root", "--tlsverify", "--metrics-addr"] {
        ensure!(help.ok()?.contains(flag), "daemon --help lacks {flag}");
    }
    for (tool, version) in [("ip", "-V"), ("nft", "--version"), ("nsenter", "--version")] {
        let o = engine(&["run", "--rm", "--network", "none", "--entrypoint", tool, &guard.image, version], T)?;
        ensure!(o.success(), "{tool} does not run in the image: {}", o.describe_failure());
    }

    // a daemon in the image: its own empty network namespace, a temporary data root and socket directory
    let data = format!("{}:/var/lib/skep", guard.dir.join("data").display());
    let sock = format!("{}:/run/skep", guard.dir.join("run").display());
    let daemon = ["daemon", "--data-root", "/var/lib/skep", "-H", "unix:///run/skep/skep.sock", "--engine", "process"];
    let started = (|| -> Result<()> {
        for privilege in PRIVILEGE {
            let mut args = vec!["run", "-d", "--name", &guard.container, "--network", "none", "-v", &data, "-v", &sock];
            args.extend(privilege);
            args.push(&guard.image);
            args.extend(daemon);
            let o = engine(&args, T)?;
            if o.success() {
                eprintln!("the daemon's container runs with {privilege:?}");
                return Ok(());
            }
            ensure!(o.stderr.contains("unable to apply caps"), "docker run: {}", o.describe_failure());
            eprintln!("this engine cannot give {privilege:?} ({}); trying the next", o.stderr.trim());
            let _ = engine(&["rm", "-f", &guard.container], T);
        }
        anyhow::bail!("the engine refused every privilege set")
    })();
    started?;
    // an address to advertise: a veth link inside the container's own namespace
    for step in ["link add skep0 type veth peer name skep1", "addr add 10.254.77.1/24 dev skep0", "link set skep0 up"] {
        let mut a = vec!["exec", guard.container.as_str(), "ip"];
        a.extend(step.split(' '));
        engine(&a, T)?.ok()?;
    }
    let run_dir = guard.dir.join("run");
    let info = skep_tests::wait_until("the daemon in the container to answer", T, || skep(&run_dir, &["info"]))
        .map_err(|e| {
            let logs = engine(&["logs", "--tail", "30", &guard.container], T).map(|o| o.stderr).unwrap_or_default();
            e.context(format!("container log:\n{logs}"))
        })?;
    ensure!(info.contains("Swarm: inactive"), "info before init: {info}");
    skep(&run_dir, &["swarm", "init", "--advertise-addr", "10.254.77.1"])?;
    let nodes = skep_tests::json::lines(&skep(&run_dir, &["node", "ls", "--format", "json"])?)?;
    ensure!(nodes.len() == 1, "node ls: {nodes:?}");
    ensure!(str_at(&nodes[0], "ManagerStatus") == Some("Leader"), "node ls: {nodes:?}");
    ensure!(str_at(&nodes[0], "Status") == Some("Ready"), "node ls: {nodes:?}");
    // the state is on the mounted data root, 0700
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(guard.dir.join("data"))?.permissions());
    ensure!(mode & 0o777 == 0o700, "data root mode {:o}", mode & 0o777);
    ensure!(std::fs::read_dir(guard.dir.join("data"))?.next().is_some(), "nothing written to the data root");
    let stop = engine(&["stop", "-t", "20", &guard.container], T)?;
    stop.ok().context("stopping the container (SIGTERM)")?;
    drop(guard);
    Ok(())
}
