//! The client against a real registry (Debian's `docker-registry`, skipped with a note when it is not installed,
//! a failure when `SKEP_TESTS_REQUIRE_REGISTRY` is set): push, resolve, platform choice, verified blobs, auth and
//! the errors a task shows.

use skep_registry::build::{self, Entry, ImageSpec};
use skep_registry::manifest::{Platform, RunConfig};
use skep_registry::testing::LocalRegistry;
use skep_registry::{Client, Credentials, RegistryError};

fn registry(user: Option<(&str, &str)>) -> Option<(tempfile::TempDir, LocalRegistry)> {
    if !LocalRegistry::available() {
        assert!(std::env::var_os("SKEP_TESTS_REQUIRE_REGISTRY").is_none(), "docker-registry is not installed");
        eprintln!("skipped: docker-registry is not installed (apt-get install docker-registry)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = LocalRegistry::start(dir.path(), &format!("127.0.0.1:{port}"), user, &[]).unwrap();
    Some((dir, r))
}

fn layer(name: &str, data: &str) -> Vec<u8> {
    build::tar(&[Entry::Dir { path: "etc/".into(), mode: 0o755 }, Entry::File { path: format!("etc/{name}"), mode: 0o644, data: data.into() }]).unwrap()
}

#[tokio::test]
async fn an_index_resolves_to_its_digest_and_platforms_and_pulls_the_nodes_manifest() {
    let Some((_d, reg)) = registry(None) else { return };
    let client = Client::new(vec![reg.addr.clone()]);
    let image = format!("{}/team/app:1", reg.addr);
    let s = client.session(&image, Credentials::default()).unwrap().for_push();
    let here = Platform::this_node();
    let other = Platform { architecture: "s390x".into(), os: "linux".into(), variant: String::new() };
    let config = RunConfig { cmd: vec!["sh".into()], user: "1000".into(), ..Default::default() };
    let mine = build::push_image(&s, &ImageSpec { layers: vec![layer("a", "1"), layer("b", "2")], config: config.clone(), platform: Some(here.clone()) }, None).await.unwrap();
    let theirs = build::push_image(&s, &ImageSpec { layers: vec![layer("a", "3")], config: config.clone(), platform: Some(other.clone()) }, None).await.unwrap();
    let index = build::push_index(&s, &[mine.clone(), theirs], "1").await.unwrap();

    let s = client.session(&image, Credentials::default()).unwrap();
    let resolved = s.resolve().await.unwrap();
    assert_eq!(resolved.descriptor.digest, index.digest);
    assert_eq!(resolved.platforms, vec![here.clone(), other]);

    // pinned by the index's digest: the node's own manifest, its config and layers, each verified
    let pinned = client.session(&format!("{image}@{}", index.digest), Credentials::default()).unwrap();
    let img = pinned.image(&here).await.unwrap();
    assert_eq!(img.manifest_digest.as_str(), mine.digest);
    assert_eq!(img.config.config.cmd, vec!["sh"]);
    assert_eq!(img.config.rootfs.diff_ids.len(), 2);
    let mut gz = Vec::new();
    pinned.blob_to(&img.manifest.layers[1], 1 << 20, &mut gz).await.unwrap();
    assert_eq!(gz.len() as i64, img.manifest.layers[1].size);
    // a limit under the blob's size stops it before a byte is fetched
    let e = pinned.blob_to(&img.manifest.layers[1], 10, &mut Vec::new()).await.unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
    // a platform the index lacks
    let e = pinned.image(&Platform { architecture: "mips".into(), os: "linux".into(), variant: String::new() }).await.unwrap_err();
    assert!(e.to_string().contains("no matching manifest for linux/mips"), "{e}");
}

#[tokio::test]
async fn missing_images_and_digests_are_not_found() {
    let Some((_d, reg)) = registry(None) else { return };
    let client = Client::new(vec![reg.addr.clone()]);
    let s = client.session(&format!("{}/nothing:here", reg.addr), Credentials::default()).unwrap();
    let e = s.resolve().await.unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
    let wrong = format!("{}/nothing@sha256:{}", reg.addr, "0".repeat(64));
    let e = client.session(&wrong, Credentials::default()).unwrap().image(&Platform::this_node()).await.unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn basic_auth_needs_the_right_password() {
    let Some((_d, reg)) = registry(Some(("alice", "s3cret"))) else { return };
    let client = Client::new(vec![reg.addr.clone()]);
    let image = format!("{}/private/app:1", reg.addr);
    let alice = Credentials { username: "alice".into(), password: "s3cret".into(), ..Default::default() };
    let s = client.session(&image, alice.clone()).unwrap().for_push();
    build::push_image(&s, &ImageSpec { layers: vec![layer("a", "1")], ..Default::default() }, Some("1")).await.unwrap();
    assert!(client.session(&image, alice).unwrap().resolve().await.is_ok());
    let e = client.session(&image, Credentials::default()).unwrap().resolve().await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    let wrong = Credentials { username: "alice".into(), password: "nope".into(), ..Default::default() };
    let e = client.session(&image, wrong.clone()).unwrap().resolve().await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    // `docker login`'s check, with the addresses the CLI sends
    let alice = Credentials { username: "alice".into(), password: "s3cret".into(), ..Default::default() };
    assert_eq!(client.login(&reg.addr, alice.clone()).await.unwrap(), format!("http://{}/v2/", reg.addr));
    assert!(client.login(&format!("http://{}/v1/", reg.addr), alice).await.is_ok());
    let e = client.login(&reg.addr, wrong).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    let e = client.login("bad host!", Credentials::default()).await.unwrap_err();
    assert!(matches!(e, RegistryError::InvalidReference(_)), "{e}");
}

#[tokio::test]
async fn a_registry_that_is_down_is_unreachable_and_plain_http_needs_the_flag() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let image = format!("127.0.0.1:{port}/app:1");
    let e = Client::new(vec![format!("127.0.0.1:{port}")]).session(&image, Credentials::default()).unwrap().resolve().await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    let Some((_d, reg)) = registry(None) else { return };
    // not named insecure: HTTPS, which a plain HTTP registry cannot answer
    let e = Client::new(vec![]).session(&format!("{}/app:1", reg.addr), Credentials::default()).unwrap().resolve().await.unwrap_err();
    assert!(e.is_unreachable() && e.to_string().contains("TLS"), "{e}");
}

/// A server that answers every request with the same blob, whatever digest was asked for.
#[tokio::test]
async fn a_blob_with_the_wrong_content_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf).await;
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nevil!").await;
        }
    });
    let s = Client::new(vec![addr.clone()]).session(&format!("{addr}/app:1"), Credentials::default()).unwrap();
    let d = skep_registry::manifest::Descriptor { digest: skep_registry::Digest::of(b"good!").to_string(), size: 5, ..Default::default() };
    let e = s.blob_to(&d, 100, &mut Vec::new()).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
}
