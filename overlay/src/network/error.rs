//! Errors of the data plane. Every kernel refusal comes back as one of these, with the step that failed; nothing
//! here panics on what the kernel says.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::netns;

/// What can go wrong while programming the overlay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, opening or entering a namespace failed.
    #[error(transparent)]
    Netns(#[from] netns::Error),
    /// The kernel refused a netlink request; `op` says what we asked for.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// The request, in words (`add vxlan skvx4096`).
        op: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// The caller passed something that cannot be programmed (a bad prefix, VNI, name, MTU …).
    #[error("invalid {0}")]
    Invalid(String),
    /// The network has no namespace on this node: `sync_network` was not called for it (or it was removed).
    #[error("network with VNI {0} is not set up on this node")]
    UnknownNetwork(u32),
    /// No interface in the node's namespace holds the underlay address, so there is no MTU to derive from.
    #[error("no interface in the node's namespace holds the underlay address {0}")]
    UnderlayNotFound(Ipv4Addr),
    /// The sandbox already has an interface of that name that is not ours to replace (say a Docker container's
    /// `eth0`): pick another name.
    #[error("interface {ifname} already exists in {sandbox}")]
    InterfaceExists {
        /// The requested name.
        ifname: String,
        /// The sandbox's namespace path.
        sandbox: PathBuf,
    },
}

impl Error {
    /// The errno behind this error, if the kernel gave one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Netns(e) => e.raw_os_error(),
            Error::Netlink { source, .. } => super::nl::errno(source),
            _ => None,
        }
    }
}

/// Results of the data plane.
pub type Result<T> = std::result::Result<T, Error>;
