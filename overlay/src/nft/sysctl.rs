//! Writing `/proc/sys` inside a network namespace.
//!
//! `/proc/sys/net/*` shows the namespace of the thread that opens it, so the write happens on a short-lived
//! thread of its own that first joins the namespace with `setns(2)`. It never runs on a tokio worker: a pooled
//! thread left in a sandbox's namespace would create every later socket there.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use super::error::NftError;
use super::rules::check_ifname;

/// Sets `net.ipv4.ip_forward=1` in `ns` (`None`: the caller's namespace). The routing mesh forwards between the
/// node's interfaces, so the node namespace needs it; sandboxes do not.
pub async fn enable_ip_forward(ns: Option<&Path>) -> Result<(), NftError> {
    set_sysctl(ns, "net/ipv4/ip_forward", "1").await
}

/// Sets `net.ipv4.conf.<iface>.route_localnet=1` in `ns`, which lets the node's own connections to
/// `127.0.0.1:PUBLISHED_PORT` be DNATed out of `iface` (the host leg), as Docker does for its bridge.
pub async fn enable_route_localnet(ns: Option<&Path>, iface: &str) -> Result<(), NftError> {
    check_ifname(iface)?;
    set_sysctl(ns, &format!("net/ipv4/conf/{iface}/route_localnet"), "1").await
}

/// Writes `value` to `/proc/sys/<key>` in `ns`. `key` is slash-separated (`net/ipv4/ip_forward`), since the
/// dotted form is ambiguous for interface names with dots.
pub async fn set_sysctl(ns: Option<&Path>, key: &str, value: &str) -> Result<(), NftError> {
    let valid = !key.is_empty()
        && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && !key.contains('\0');
    if !valid {
        return Err(NftError::InvalidSysctlKey(key.to_owned()));
    }
    let file = Path::new("/proc/sys").join(key);
    let value = value.to_owned();
    let Some(ns) = ns else {
        return tokio::fs::write(&file, value).await.map_err(|source| NftError::Sysctl { path: file, source });
    };
    let ns = ns.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("skep-sysctl".into()).spawn(move || {
        let _ = tx.send(write_in_netns(&ns, &file, &value));
    });
    if let Err(source) = spawned {
        return Err(NftError::Spawn { program: "sysctl thread".into(), source });
    }
    rx.await.unwrap_or_else(|_| Err(NftError::Io(std::io::Error::other("sysctl thread ended without an answer"))))
}

/// Runs on its own thread, which ends right after, namespace and all.
fn write_in_netns(ns: &PathBuf, file: &PathBuf, value: &str) -> Result<(), NftError> {
    let netns_err = |source: std::io::Error| NftError::Netns { path: ns.clone(), source };
    let handle = std::fs::File::open(ns).map_err(netns_err)?;
    nix::sched::setns(handle, CloneFlags::CLONE_NEWNET).map_err(|e| netns_err(e.into()))?;
    std::fs::write(file, value).map_err(|source| NftError::Sysctl { path: file.clone(), source })
}
