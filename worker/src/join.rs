//! Asking to join a swarm: the joining node's side of `swarm join`.
//!
//! The node has no certificate yet, only a join token `SWMTKN-1-<CA digest>-<secret>`. It calls the managers it was
//! given over fresh connections whose verifier accepts only a manager certificate issued by the CA with that digest,
//! so the token's secret never goes to another cluster; it follows redirects to the leader (only the leader admits
//! nodes), and checks that the CA the leader returns is the one it presented.

use skep_api::wire::{self, ErrorKind, JoinReply, Request, Response};
use skep_pki::JoinToken;
use skep_transport::{Endpoint, LeaderCaller, LeaderError, Policy, TransportConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The managers refused the request (bad token secret, bad CSR, bad availability): retrying will not help.
    #[error("{0}")]
    Refused(String),
    /// A manager does not hold the CA named in the token.
    #[error("the manager at {target} does not hold the CA named in the join token ({reason})")]
    ForeignCa {
        /// The manager.
        target: SocketAddr,
        /// The TLS failure.
        reason: String,
    },
    /// The leader returned a CA other than the one its certificate chains to.
    #[error("the manager returned a CA other than the one it presented")]
    CaMismatch,
    /// No leader admitted the node in time.
    #[error("no manager admitted the node in time ({0})")]
    Timeout(String),
    /// The local side could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// How long one join call and the whole join may take.
#[derive(Clone, Copy, Debug)]
pub struct JoinTiming {
    /// The whole join, redirects and retries included.
    pub deadline: Duration,
    /// One call.
    pub call_timeout: Duration,
    /// Pause after a round in which no manager admitted the node.
    pub pause: Duration,
}

impl Default for JoinTiming {
    fn default() -> Self {
        JoinTiming { deadline: Duration::from_secs(20), call_timeout: Duration::from_secs(5), pause: Duration::from_millis(200) }
    }
}

/// Ask the managers at `seeds` to admit this node with `join` (whose `token` is `token`); returns the leader's
/// answer: node ID, role, certificate and the CA it chains to.
pub async fn join(
    token: &JoinToken,
    seeds: &[SocketAddr],
    join: wire::JoinRequest,
    transport: TransportConfig,
    timing: JoinTiming,
) -> Result<JoinReply, JoinError> {
    let (client, trust) = skep_pki::tls::join_client_config(&token.ca_digest).map_err(|e| JoinError::Setup(e.to_string()))?;
    let probe = Endpoint::client(client.clone(), transport).map_err(|e| JoinError::Setup(e.to_string()))?;
    let leader = LeaderCaller::new(probe.clone(), skep_pki::NODE_SAN, seeds.to_vec()).with_client(client);
    let policy = Policy::until(timing.deadline, timing.call_timeout, timing.pause);
    let answer = leader.call(&Request::Join(join), policy).await;
    probe.close();
    let reply = match answer {
        Ok(Response::Joined(j)) => j,
        Ok(Response::Error(e)) if matches!(e.kind, ErrorKind::Unauthorized | ErrorKind::InvalidArgument) => {
            return Err(JoinError::Refused(e.message))
        }
        Ok(other) => return Err(JoinError::Timeout(format!("unexpected answer {other:?}"))),
        Err(LeaderError::Tls { target, source }) => return Err(JoinError::ForeignCa { target, reason: source.to_string() }),
        Err(e) => return Err(JoinError::Timeout(e.to_string())),
    };
    // fail closed: a reply is trusted only when the handshake recorded the CA the token names and the reply's CA is
    // that one (no recorded CA, e.g. a resumed session that skipped verification, is a mismatch too)
    match trust.ca_pem() {
        Some(ca) if pem_body(&ca) == pem_body(&reply.ca_pem) => Ok(reply),
        _ => Err(JoinError::CaMismatch),
    }
}

/// A PEM's base64 body, to compare two PEMs of one DER.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}
