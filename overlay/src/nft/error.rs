//! Errors of the nftables module.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::rules::Proto;

/// Why rendering, applying or removing rules, or setting a sysctl, failed.
///
/// The first group is caller-actionable (the input was wrong and nothing was changed); the rest say that the
/// kernel could not be changed, and the previous rules are still in place (nft commits all or nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// Two rules for the same VIP.
    #[error("VIP {0} is listed twice")]
    DuplicateVip(Ipv4Addr),
    /// Two published ports with the same protocol and port.
    #[error("{proto} port {port} is listed twice")]
    DuplicatePort {
        /// Protocol of the duplicated port.
        proto: Proto,
        /// The duplicated port.
        port: u16,
    },
    /// Port 0 is neither publishable nor a valid target.
    #[error("{proto} port 0 cannot be published or targeted")]
    ZeroPort {
        /// Protocol of the offending entry.
        proto: Proto,
    },
    /// An interface name nft would misparse or Linux would refuse (1 to 15 of `A-Za-z0-9-_.`).
    #[error("invalid interface name {0:?}")]
    InvalidInterface(String),
    /// A sysctl key that is not a plain relative path under /proc/sys.
    #[error("invalid sysctl key {0:?}")]
    InvalidSysctlKey(String),
    /// The network namespace file does not exist or could not be entered.
    #[error("cannot enter network namespace {path}")]
    Netns {
        /// The namespace file (e.g. `/run/netns/NAME`, `/proc/PID/ns/net`).
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// `nft` (or `nsenter`) could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Talking to the nft process failed.
    #[error("I/O with nft")]
    Io(#[source] io::Error),
    /// nft did not finish in time; it was killed and nothing was committed by this call.
    #[error("nft did not finish within {0:?}")]
    Timeout(Duration),
    /// nft ran and refused (or `nsenter` failed); `stderr` is nft's message, truncated to
    /// [`NFT_MAX_OUTPUT`](super::NFT_MAX_OUTPUT) bytes.
    #[error("nft failed ({status}): {stderr}")]
    Failed {
        /// nft's exit status.
        status: ExitStatus,
        /// nft's standard error.
        stderr: String,
    },
    /// nft's output was larger than [`NFT_MAX_OUTPUT`](super::NFT_MAX_OUTPUT).
    #[error("nft printed more than {0} bytes")]
    OutputTooLarge(usize),
    /// Writing the sysctl file failed.
    #[error("cannot write {path}")]
    Sysctl {
        /// The file under /proc/sys.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}
