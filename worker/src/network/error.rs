//! Errors of the networking agent: what went wrong while giving a task its sandbox, or while starting the agent.
//! Each variant names the step; the data plane's own error (which kernel request failed) is its source.

use skep_overlay::{netns, network};
use std::path::PathBuf;

/// What the networking agent can fail at. The callers act on the step: a task whose sandbox cannot be made is
/// rejected with this text, a node whose data plane cannot start runs without networking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The overlay data plane could not start (no netlink, not root …): the node runs only tasks without networks.
    #[error("overlay data plane: {0}")]
    DataPlane(#[source] network::Error),
    /// The task's sandbox namespace could not be made.
    #[error("network sandbox: {0}")]
    Sandbox(#[source] network::Error),
    /// The namespace of a task that runs in its own (a container) could not be opened through its PID.
    #[error("network namespace of pid {pid}: {source}")]
    TaskNamespace {
        /// The task's main process.
        pid: i64,
        /// Why.
        #[source]
        source: netns::Error,
    },
    /// The managers sent an attachment without a VXLAN ID or an address: nothing to plumb.
    #[error("network {network}: no VXLAN ID or address allocated")]
    NotAllocated {
        /// The network's name.
        network: String,
    },
    /// The network has no subnet to set up its bridge with.
    #[error("network {network} has no subnet")]
    NoSubnet {
        /// The network's name.
        network: String,
    },
    /// The network could not be synced into the kernel.
    #[error("network {network}: {source}")]
    Network {
        /// The network's name.
        network: String,
        /// Why.
        #[source]
        source: network::Error,
    },
    /// The sandbox could not be attached to a network.
    #[error("attaching to network {network}: {source}")]
    Attach {
        /// The network's name.
        network: String,
        /// Why.
        #[source]
        source: network::Error,
    },
    /// Every gateway address pair of this node is taken (host-mode published ports).
    #[error("no gateway address left on this node")]
    NoGatewayAddress,
    /// The gateway link between the node and the sandbox (host-mode published ports) could not be made.
    #[error("gateway link: {0}")]
    Gateway(#[source] network::Error),
    /// The task's resolv.conf could not be written.
    #[error("{}: {source}", path.display())]
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_step_as_a_rejected_task_shows_them() {
        let invalid = || network::Error::Invalid("VNI 0".into());
        let cases = [
            (NetError::NotAllocated { network: "web".into() }, "network web: no VXLAN ID or address allocated"),
            (NetError::NoSubnet { network: "web".into() }, "network web has no subnet"),
            (NetError::Network { network: "web".into(), source: invalid() }, "network web: invalid VNI 0"),
            (NetError::Attach { network: "web".into(), source: invalid() }, "attaching to network web: invalid VNI 0"),
            (NetError::Sandbox(invalid()), "network sandbox: invalid VNI 0"),
            (NetError::Gateway(invalid()), "gateway link: invalid VNI 0"),
            (NetError::NoGatewayAddress, "no gateway address left on this node"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
        let e = NetError::ResolvConf { path: "/x/t.resolv.conf".into(), source: std::io::ErrorKind::NotFound.into() };
        assert!(e.to_string().starts_with("/x/t.resolv.conf: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
