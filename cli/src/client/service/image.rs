//! Image references as docker's client handles them for services: the tag added before a create or update
//! (`nginx` → `nginx:latest`), the digest pinning through `GET /distribution/{image}/json`
//! (`cli/command/service/trust.go` and `create.go`, github.com/docker/cli), and the digest stripped for display (`nginx:1.27@sha256:…` →
//! `nginx:1.27`).
//!
//! The parser follows `distribution/reference`'s grammar closely enough for these three uses. Strings that are not
//! references (a program path such as `/bin/sleep`, which skep's process engine accepts as the "image") are left
//! alone, as docker leaves them.

use super::super::ApiClient;
use serde::Deserialize;
use skep_api::docker::reference::{valid_digest, Reference};
use skep_api::docker::{Platform, TaskSpec};

/// docker's `imageWithTagString`: a reference without tag or digest gets `:latest`; anything else is unchanged.
pub fn with_default_tag(image: &str) -> String {
    match Reference::parse(image) {
        Some(mut r) if r.tag.is_none() && r.digest.is_none() => {
            r.tag = Some("latest".into());
            r.familiar()
        }
        _ => image.to_string(),
    }
}

/// The image as `service ls` and `service ps` show it: a tagged reference loses its digest.
pub fn display(image: &str) -> String {
    match Reference::parse(image) {
        Some(mut r) if r.tag.is_some() => {
            r.digest = None;
            r.familiar()
        }
        _ => image.to_string(),
    }
}

/// The body of `GET /distribution/{name}/json`, as far as the client reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DistributionInspect {
    descriptor: Descriptor,
    #[serde(deserialize_with = "skep_api::docker::null_default")]
    platforms: Vec<OciPlatform>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Descriptor {
    digest: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OciPlatform {
    architecture: String,
    os: String,
}

/// docker's warning when the registry could not be asked for the digest.
pub fn digest_warning(image: &str) -> String {
    format!(
        "image {image} could not be accessed on a registry to record\nits digest. Each node will access {image} \
         independently,\npossibly leading to different nodes running different\nversions of the image.\n"
    )
}

/// docker's `resolveContainerSpecImage`: `GET /distribution/{image}/json`; a valid digest pins the image and copies
/// the platforms into the placement. Returns the warning to print when the lookup failed (the service is created
/// anyway). Images that are not references (program paths) are not looked up.
pub async fn pin_digest(c: &ApiClient, task: &mut TaskSpec) -> Option<String> {
    let spec = task.container_spec.as_mut()?;
    let r = Reference::parse(&spec.image)?;
    let reply: DistributionInspect =
        match c.get(&format!("/distribution/{}/json", spec.image)).await {
            Ok(d) => d,
            Err(_) => return Some(digest_warning(&spec.image)),
        };
    if r.digest.is_none() && valid_digest(&reply.descriptor.digest) {
        let mut pinned = r;
        pinned.digest = Some(reply.descriptor.digest.clone());
        spec.image = pinned.familiar();
    }
    if !reply.platforms.is_empty() {
        let platforms = reply
            .platforms
            .iter()
            .map(|p| Platform {
                // docker blanks "arm": images say arm, nodes say armv7l
                architecture: if p.architecture.eq_ignore_ascii_case("arm") {
                    String::new()
                } else {
                    p.architecture.clone()
                },
                os: p.os.clone(),
            })
            .collect();
        task.placement
            .get_or_insert_with(Default::default)
            .platforms = platforms;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:8307ed1ed4ba1e0a8a7c51b8a4a6a3f8c47c1f8d2c1b5c0b6c2b1a0f8e3d2c1b";

    #[test]
    fn default_tag_like_docker() {
        assert_eq!(with_default_tag("nginx"), "nginx:latest");
        assert_eq!(with_default_tag("nginx:alpine"), "nginx:alpine");
        assert_eq!(with_default_tag("library/nginx"), "nginx:latest");
        assert_eq!(with_default_tag("docker.io/library/nginx"), "nginx:latest");
        assert_eq!(with_default_tag("foo/bar"), "foo/bar:latest");
        assert_eq!(
            with_default_tag("registry:5000/foo/bar"),
            "registry:5000/foo/bar:latest"
        );
        assert_eq!(with_default_tag("localhost/app"), "localhost/app:latest");
        let pinned = format!("nginx@{D}");
        assert_eq!(with_default_tag(&pinned), pinned);
        // not references: left alone
        assert_eq!(with_default_tag("/bin/sleep"), "/bin/sleep");
        assert_eq!(with_default_tag("Nginx"), "Nginx");
        assert_eq!(with_default_tag("./run.sh"), "./run.sh");
    }

    #[test]
    fn display_strips_the_digest_of_tagged_images() {
        assert_eq!(display(&format!("nginx:alpine@{D}")), "nginx:alpine");
        assert_eq!(
            display(&format!("registry:5000/a/b:1@{D}")),
            "registry:5000/a/b:1"
        );
        assert_eq!(display(&format!("nginx@{D}")), format!("nginx@{D}"));
        assert_eq!(display("busybox:latest"), "busybox:latest");
        assert_eq!(display("/bin/sleep"), "/bin/sleep");
    }
}
