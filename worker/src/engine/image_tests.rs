//! The process engine running OCI images from a real registry (Debian's `docker-registry`; skipped with a note when
//! it is not installed, or without root): its own root from the layers (whiteouts and opaque directories applied),
//! the image config filling in the spec, and the task errors a pull can end in.

use super::process::image::HostPrograms;
use super::suite::Fixture;
use super::tests::test_init;
use super::*;
use crate::images::{ImageStore, UnpackLimits};
use skep_registry::build::{self, Entry, ImageSpec};
use skep_registry::manifest::RunConfig;
use skep_registry::testing::LocalRegistry;
use skep_registry::{Client, Credentials};
use skep_api::docker::health::Health;
use std::sync::Arc;
use std::time::Duration;

struct Lab {
    _dir: tempfile::TempDir,
    registry: LocalRegistry,
    engine: ProcessEngine,
    store_root: std::path::PathBuf,
}

async fn lab(user: Option<(&str, &str)>) -> Option<Lab> {
    if !nix::unistd::geteuid().is_root() || !LocalRegistry::available() || !std::path::Path::new("/bin/busybox").is_file() {
        assert!(std::env::var_os("SKEP_TESTS_REQUIRE_REGISTRY").is_none(), "needs root, docker-registry and busybox-static");
        eprintln!("skipped: needs root, docker-registry and busybox-static");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let registry = LocalRegistry::start(&dir.path().join("registry"), &format!("127.0.0.1:{port}"), user, &[]).unwrap();
    let client = Client::new(vec![registry.addr.clone()]);
    let store_root = dir.path().join("engine/images");
    let store = ImageStore::new(store_root.clone(), client).with_limits(UnpackLimits { max_bytes: 64 << 20, max_entries: 10_000 });
    let engine = ProcessEngine::new(dir.path().join("engine"))
        .with_init(test_init())
        .with_images(Arc::new(store))
        .with_host_programs(HostPrograms::Paths);
    if !engine.namespaced().await {
        eprintln!("skipped: namespaces unavailable");
        return None;
    }
    Some(Lab { _dir: dir, registry, engine, store_root })
}

/// A busybox image in two layers: the second whites out `/etc/gone` and makes `/var/keep` opaque.
fn busybox_image() -> ImageSpec {
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let base = build::tar(&[
        Entry::Dir { path: "bin/".into(), mode: 0o755 },
        Entry::File { path: "bin/busybox".into(), mode: 0o755, data: busybox },
        Entry::Symlink { path: "bin/sh".into(), target: "/bin/busybox".into() },
        Entry::Dir { path: "etc/".into(), mode: 0o755 },
        Entry::File { path: "etc/passwd".into(), mode: 0o644, data: "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1235:app:/home/app:/bin/sh\n".into() },
        Entry::File { path: "etc/group".into(), mode: 0o644, data: "root:x:0:\napp:x:1235:\n".into() },
        Entry::File { path: "etc/only-in-image".into(), mode: 0o644, data: "hello-image".into() },
        Entry::File { path: "etc/gone".into(), mode: 0o644, data: "x".into() },
        Entry::Dir { path: "tmp/".into(), mode: 0o1777 },
        Entry::Dir { path: "var/".into(), mode: 0o755 },
        Entry::Dir { path: "var/keep/".into(), mode: 0o755 },
        Entry::File { path: "var/keep/old".into(), mode: 0o644, data: "x".into() },
    ])
    .unwrap();
    let top = build::tar(&[
        Entry::Dir { path: "etc/".into(), mode: 0o755 },
        Entry::File { path: "etc/.wh.gone".into(), mode: 0o644, data: vec![] },
        Entry::Dir { path: "var/".into(), mode: 0o755 },
        Entry::Dir { path: "var/keep/".into(), mode: 0o755 },
        Entry::File { path: "var/keep/.wh..wh..opq".into(), mode: 0o644, data: vec![] },
        Entry::File { path: "var/keep/new".into(), mode: 0o644, data: "y".into() },
    ])
    .unwrap();
    ImageSpec {
        layers: vec![base, top],
        config: RunConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo from-cmd".into()],
            env: vec!["PATH=/bin".into(), "IMG=from-image".into()],
            working_dir: "/var".into(),
            user: "app".into(),
            ..Default::default()
        },
        platform: None,
    }
}

fn task(image: &str, args: &[&str]) -> Task {
    let mut t = Fixture { image: image.into(), prefix: "imgt".into() }.task("");
    let c = t.spec.container_spec.as_mut().unwrap();
    c.command.clear();
    c.args = args.iter().map(|s| s.to_string()).collect();
    t
}

async fn run(e: &ProcessEngine, t: &Task) -> (Exit, String) {
    e.prepare(t).await.unwrap();
    let h = e.start(t).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), e.wait(&h)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&e.logs(&t.id, 1 << 16).await.unwrap()).into_owned();
    e.remove(&t.id).await.unwrap();
    (exit, out)
}

#[tokio::test]
async fn an_image_runs_in_its_own_root_with_its_config() {
    let Some(lab) = lab(None).await else { return };
    let image = format!("{}/team/bb:1", lab.registry.addr);
    let s = Client::new(vec![lab.registry.addr.clone()]).session(&image, Credentials::default()).unwrap().for_push();
    build::push_image(&s, &busybox_image(), Some("1")).await.unwrap();

    let script = "echo img=$(cat /etc/only-in-image) gone=$(test -e /etc/gone && echo yes || echo no) \
                  keep=$(ls /var/keep | tr '\\n' ,) uid=$(id -u):$(id -g) pwd=$(pwd) env=$IMG \
                  host=$(test -e /usr/bin/apt-get && echo yes || echo no) dev=$(ls /dev | tr '\\n' ,); \
                  echo w > /tmp/written && echo wrote";
    let (exit, out) = run(&lab.engine, &task(&image, &[script])).await;
    assert!(exit.success(), "{exit:?}: {out}");
    for want in ["img=hello-image", "gone=no", "keep=new,", "uid=1234:1235", "pwd=/var", "env=from-image", "host=no", "null,", "wrote"] {
        assert!(out.contains(want), "{want} in {out}");
    }
    // the image's Cmd when the spec gives no Args
    let (exit, out) = run(&lab.engine, &task(&image, &[])).await;
    assert!(exit.success() && out.contains("from-cmd"), "{exit:?}: {out}");
    // the task's writes went to its own upper layer: the store's layers are untouched
    let layers = lab.store_root.join("layers");
    for l in std::fs::read_dir(&layers).unwrap().flatten() {
        assert!(!l.path().join("tmp/written").exists());
    }
    assert_eq!(lab.engine.images().unwrap().list().len(), 1);
}

/// The image's HEALTHCHECK runs in the task's root, as the image's user: it only passes there (a file only the image
/// has, no host file, the image's uid); a spec `Test` replaces the image's while the image still gives the interval
/// and retries; `NONE` disables it.
#[tokio::test]
async fn an_images_healthcheck_runs_in_its_root_and_the_spec_overrides_it() {
    let Some(lab) = lab(None).await else { return };
    let image = format!("{}/team/hc:1", lab.registry.addr);
    let s = Client::new(vec![lab.registry.addr.clone()]).session(&image, Credentials::default()).unwrap().for_push();
    let mut spec = busybox_image();
    spec.config.healthcheck = Some(serde_json::json!({
        "Test": ["CMD-SHELL", "test -e /etc/only-in-image && test ! -e /usr/bin/apt-get && test $(id -u) = 1234"],
        "Interval": 200_000_000i64, "Timeout": 5_000_000_000i64, "Retries": 2,
    }));
    build::push_image(&s, &spec, Some("1")).await.unwrap();
    let e = &lab.engine;
    let start = |id: &str, healthcheck: Option<serde_json::Value>| {
        let mut t = task(&image, &["exec sleep 60"]);
        t.id = format!("{}{id}", t.id);
        t.spec.container_spec.as_mut().unwrap().healthcheck = healthcheck;
        async move {
            e.prepare(&t).await.unwrap();
            let h = e.start(&t).await.unwrap();
            (t, h)
        }
    };
    let stop = |t: Task, h: Handle| async move {
        e.stop(&h, &t).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(30), e.wait(&h)).await;
        e.remove(&t.id).await.unwrap();
    };

    let (t, h) = start("a", None).await;
    super::suite::health_becomes(e, &h, &t, Health::Healthy).await;
    stop(t, h).await;

    let (t, h) = start("b", Some(serde_json::json!({"Test": ["CMD-SHELL", "exit 1"]}))).await;
    super::suite::health_becomes(e, &h, &t, Health::Unhealthy).await;
    stop(t, h).await;

    let (t, h) = start("c", Some(serde_json::json!({"Test": ["NONE"]}))).await;
    let (tx, _rx) = tokio::sync::watch::channel(Health::Starting);
    let watched = tokio::time::timeout(Duration::from_secs(10), e.watch_health(&h, &t, tx)).await;
    assert_eq!(watched, Ok(false), "NONE: no check");
    stop(t, h).await;
}

#[tokio::test]
async fn pull_failures_reject_the_task_with_the_registrys_error() {
    let Some(lab) = lab(Some(("alice", "s3cret"))).await else { return };
    let image = format!("{}/team/bb:1", lab.registry.addr);
    let alice = Credentials { username: "alice".into(), password: "s3cret".into(), ..Default::default() };
    let s = Client::new(vec![lab.registry.addr.clone()]).session(&image, alice.clone()).unwrap().for_push();
    let pushed = build::push_image(&s, &busybox_image(), Some("1")).await.unwrap();

    let e = &lab.engine;
    let err = e.prepare(&task(&image, &["true"])).await.unwrap_err();
    assert!(matches!(err, EngineError::Pull(_)) && err.to_string().contains("unauthorized"), "{err}");
    let mut with_creds = task(&image, &["echo ok"]);
    with_creds.spec.container_spec.as_mut().unwrap().pull_options =
        Some(skep_api::docker::PullOptions { registry_auth: alice.to_header() });
    let (exit, out) = run(e, &with_creds).await;
    assert!(exit.success() && out.contains("ok"), "{exit:?}: {out}");
    // a pinned digest that is not there
    let mut wrong = task(&format!("{}/team/bb:1@sha256:{}", lab.registry.addr, "0".repeat(64)), &["true"]);
    wrong.spec.container_spec.as_mut().unwrap().pull_options = with_creds.spec.container_spec.as_ref().unwrap().pull_options.clone();
    let err = e.prepare(&wrong).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    // the pinned digest runs from the store, with the registry down
    let mut pinned = with_creds.clone();
    pinned.id = format!("{}p", with_creds.id);
    pinned.spec.container_spec.as_mut().unwrap().image = format!("{image}@{}", pushed.digest);
    let (exit, _) = run(e, &pinned).await;
    assert!(exit.success());
    let mut lab = lab;
    lab.registry.stop();
    let mut again = pinned.clone();
    again.id = format!("{}q", pinned.id);
    let (exit, out) = run(&lab.engine, &again).await;
    assert!(exit.success(), "pinned and stored: no registry needed: {out}");
    let mut tagged = with_creds.clone();
    tagged.id = format!("{}t", with_creds.id);
    let err = lab.engine.prepare(&tagged).await.unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[tokio::test]
async fn hostile_layers_are_refused_and_nothing_lands_outside_the_store() {
    let Some(lab) = lab(None).await else { return };
    let client = Client::new(vec![lab.registry.addr.clone()]);
    let outside = lab.store_root.parent().unwrap().parent().unwrap().to_path_buf();
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("dotdot", vec![Entry::File { path: "../../../escaped".into(), mode: 0o644, data: b"x".to_vec() }]),
        ("symlink then write", vec![Entry::Symlink { path: "evil".into(), target: outside.display().to_string() }, Entry::File { path: "evil/escaped".into(), mode: 0o644, data: b"x".to_vec() }]),
        ("hardlink out", vec![Entry::Hardlink { path: "h".into(), target: "../../../../etc/passwd".into() }]),
        ("device", vec![Entry::CharDevice { path: "mem".into() }]),
        ("bomb", vec![Entry::File { path: "big".into(), mode: 0o644, data: vec![0; 65 << 20] }]),
    ];
    for (i, (what, entries)) in cases.into_iter().enumerate() {
        let image = format!("{}/hostile/{i}:1", lab.registry.addr);
        let s = client.session(&image, Credentials::default()).unwrap().for_push();
        let spec = ImageSpec { layers: vec![build::tar(&entries).unwrap()], config: RunConfig { cmd: vec!["x".into()], ..Default::default() }, platform: None };
        build::push_image(&s, &spec, Some("1")).await.unwrap();
        let err = lab.engine.prepare(&task(&image, &[])).await.unwrap_err();
        assert!(matches!(err, EngineError::Pull(_)) && err.to_string().contains("layer refused"), "{what}: {err}");
        assert!(!outside.join("escaped").exists(), "{what}");
        let layers: Vec<_> = std::fs::read_dir(lab.store_root.join("layers")).unwrap().flatten().collect();
        assert!(layers.is_empty(), "{what}: a refused layer is not kept");
        let tmp: Vec<_> = std::fs::read_dir(lab.store_root.join("tmp")).unwrap().flatten().collect();
        assert!(tmp.is_empty(), "{what}: nothing left in tmp: {tmp:?}");
    }
}

/// The docker engine pulls a missing image from the same registry (127.0.0.1 is an insecure registry for Docker by
/// default), with the task's credentials, and rejects the task with the registry's error without them. Skipped when
/// the machine's Docker engine does not answer.
#[tokio::test]
async fn the_docker_engine_pulls_missing_images_with_the_tasks_credentials() {
    let Some(lab) = lab(Some(("bob", "pw-9"))).await else { return };
    let e = match super::tests::docker_fixture().await {
        Ok(e) => e,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let image = format!("{}/team/dk:{:x}", lab.registry.addr, rand::random::<u32>());
    let bob = Credentials { username: "bob".into(), password: "pw-9".into(), ..Default::default() };
    let s = Client::new(vec![lab.registry.addr.clone()]).session(&image, bob.clone()).unwrap().for_push();
    let pushed = build::push_image(&s, &busybox_image(), image.rsplit_once(':').map(|(_, t)| t)).await.unwrap();
    let pinned = format!("{image}@{}", pushed.digest);

    let mut t = task(&pinned, &["echo pulled-by-docker"]);
    t.spec.container_spec.as_mut().unwrap().user = "0".into();
    let err = e.prepare(&t).await.unwrap_err();
    assert!(matches!(err, EngineError::Pull(_)), "without credentials: {err}");
    t.spec.container_spec.as_mut().unwrap().pull_options = Some(skep_api::docker::PullOptions { registry_auth: bob.to_header() });
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(60), e.wait(&h)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&e.logs(&t.id, 1 << 16).await.unwrap()).into_owned();
    e.remove(&t.id).await.unwrap();
    let _ = e.client().remove_image(&pinned, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
    assert!(exit.success() && out.contains("pulled-by-docker"), "{exit:?}: {out}");
}
