//! The warm start (issue 12: "within 20 ms of the host-program mode at p50"): a task of an image already in the
//! node's store beside the same program as a host program, both through the process engine's `prepare` + `start`.
//!
//! - **image**: a one-layer image (Debian's static busybox as `/bin/busybox`, Entrypoint `/bin/busybox`, Cmd
//!   `sleep 3600`) pushed to a local `docker-registry` and pulled once, untimed, by its digest-pinned reference (what
//!   a service's tasks carry). Each timed start finds it in the store (`refs/`, no registry call) and runs it in its
//!   own root: overlayfs over the layer, a tmpfs `/dev`, `/proc`, `/sys`, `/etc/hosts` and friends, `pivot_root`.
//! - **host**: `Image: /bin/busybox`, `Args: sleep 3600`, the host program opt-in, run in the host's root.
//!
//! Both get the same namespaces and no network, cgroup or mounts of their own; they alternate (and which goes first
//! alternates), the first rounds are dropped. Timed: `prepare` + `start` until `start` returns, which is when the
//! task's init reports the program exec'd (the moment the agent reports the task running); stop and removal are not
//! timed.

use super::{start_once, task, Error, Samples, WARMUP};
use skep_registry::build::{self, Entry, ImageSpec};
use skep_registry::manifest::RunConfig;
use skep_registry::testing::LocalRegistry;
use skep_registry::{Client, Credentials};
use skep_worker::engine::process::image::HostPrograms;
use skep_worker::engine::process::{Isolation, ProcessEngine};
use skep_worker::engine::Engine;
use skep_worker::images::ImageStore;
use std::path::Path;
use std::sync::Arc;

/// The host program, and what the image is made from.
const BUSYBOX: &str = "/bin/busybox";

/// The goal: the image's p50 at most this much above the host program's.
const GOAL_MS: f64 = 20.0;

/// Why the bench cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !super::skep_worker_is_root() {
        return Some("needs root (namespaces, overlayfs, pivot_root)".into());
    }
    if !Path::new(BUSYBOX).is_file() {
        return Some(format!("needs {BUSYBOX} (apt-get install busybox-static)"));
    }
    if !LocalRegistry::available() {
        return Some("needs Debian's docker-registry (apt-get install docker-registry)".into());
    }
    None
}

fn image() -> Result<ImageSpec, Error> {
    let layer = build::tar(&[
        Entry::Dir { path: "bin/".into(), mode: 0o755 },
        Entry::File { path: "bin/busybox".into(), mode: 0o755, data: std::fs::read(BUSYBOX)? },
        Entry::Symlink { path: "bin/sh".into(), target: "busybox".into() },
        Entry::Symlink { path: "bin/sleep".into(), target: "busybox".into() },
    ])?;
    let config = RunConfig {
        entrypoint: vec![BUSYBOX.into()],
        cmd: vec!["sleep".into(), "3600".into()],
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    };
    Ok(ImageSpec { layers: vec![layer], config, platform: None })
}

/// Runs the bench and prints its table; prints why instead when it cannot run here.
pub async fn run(runs: usize) -> Result<(), Error> {
    if let Some(why) = missing() {
        println!("## Warm start\n\nskipped: {why}");
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("skep-bench-warm-{}", std::process::id()));
    let result = bench(&dir, runs).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (image, host) = result?;
    println!("## Warm start: image in the store vs host program ({runs} runs each, alternating)\n");
    println!("| variant | runs | p50 ms | p90 ms | p99 ms | mean ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|");
    let rows = [("image in the store (overlayfs root, pivot_root)", &image), ("host program (/bin/busybox)", &host)];
    for (name, s) in rows {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.0.len(),
            s.at(0.5),
            s.at(0.9),
            s.at(0.99),
            s.mean(),
            s.at(1.0)
        );
    }
    let d50 = image.at(0.5) - host.at(0.5);
    println!(
        "\nimage − host: p50 {d50:+.2} ms (goal ≤ +{GOAL_MS:.0} ms: {}), p90 {:+.2} ms",
        if d50 <= GOAL_MS { "met" } else { "not met" },
        image.at(0.9) - host.at(0.9)
    );
    Ok(())
}

async fn bench(dir: &Path, runs: usize) -> Result<(Samples, Samples), Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let registry = LocalRegistry::start(&dir.join("registry"), &format!("127.0.0.1:{port}"), None, &[])?;
    let client = Client::new(vec![registry.addr.clone()]);
    let reference = format!("{}/bench/warm:1", registry.addr);
    let session = client.session(&reference, Credentials::default())?.for_push();
    let pushed = build::push_image(&session, &image()?, Some("1")).await?;
    let pinned = format!("{reference}@{}", pushed.digest);
    let store = Arc::new(ImageStore::new(dir.join("engine/images"), client));
    let engine = ProcessEngine::new(dir.join("engine"))
        .with_isolation(Isolation::Namespaces)
        .with_images(store.clone())
        .with_host_programs(HostPrograms::Paths);
    // the pull, untimed: from here on the image is in the store
    store.pull(&pinned, Credentials::default()).await?;
    check_root(&engine, &pinned).await?;
    let (mut image, mut host) = (Samples::default(), Samples::default());
    for i in 0..runs + WARMUP {
        for from_image in if i % 2 == 0 { [true, false] } else { [false, true] } {
            let t = if from_image {
                task("benchwarm", &pinned, &[])
            } else {
                let mut t = task("benchhost", BUSYBOX, &[]);
                t.spec.container_spec.as_mut().expect("set by task()").args = vec!["sleep".into(), "3600".into()];
                t
            };
            let took = start_once(&engine, &t, None, true).await?;
            if i >= WARMUP {
                if from_image { &mut image } else { &mut host }.0.push(took);
            }
        }
        if i % 10 == 0 {
            eprintln!("warm start: {i}/{}", runs + WARMUP);
        }
    }
    drop(registry);
    Ok((image, host))
}

/// Makes sure the image side runs in the image's root, not the host's: a task of it looks for a file only the host
/// has.
async fn check_root(engine: &ProcessEngine, image: &str) -> Result<(), Error> {
    let mut t = task("benchcheck", image, &[]);
    t.spec.container_spec.as_mut().expect("set by task()").args =
        ["sh", "-c", "test -e /usr/bin/apt-get && echo host-root || echo image-root"].map(String::from).to_vec();
    engine.prepare(&t).await?;
    let h = engine.start(&t).await?;
    let exit = engine.wait(&h).await;
    let out = String::from_utf8_lossy(&engine.logs(&t.id, 4096).await?).into_owned();
    engine.remove(&t.id).await?;
    exit?;
    if !out.contains("image-root") {
        return Err(format!("the image's task did not run in the image's root: {out:?}").into());
    }
    Ok(())
}
