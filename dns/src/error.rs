//! The errors of this crate.

use std::io;
use std::path::PathBuf;

/// Why the DNS server could not start, or why the upstream resolvers could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`crate::serve`] was called outside a tokio runtime.
    #[error("the DNS server must be started from within a tokio runtime")]
    NoRuntime,
    /// A socket handed to [`crate::serve`] could not be made non-blocking or registered with the tokio runtime
    /// (`serve` must be called from within the runtime that will run the server).
    #[error("DNS {what} socket: {source}")]
    Socket {
        /// `"udp"` or `"tcp"`.
        what: &'static str,
        /// The error from the operating system or tokio.
        #[source]
        source: io::Error,
    },
    /// The resolver configuration (normally `/etc/resolv.conf`) could not be read.
    #[error("reading {}: {source}", path.display())]
    ResolvConf {
        /// The file that was read.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
}
