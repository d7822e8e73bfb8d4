//! Reaching the leader: one place that knows the managers, remembers which one answered last, follows "not the
//! leader, try X" redirects, bounds every call and every round, and pauses between failed rounds.
//!
//! Every node talks to the leader the same way (heartbeats, assignments, status reports, certificate renewal, a
//! join, a leave, a Raft join, a forwarded write): try the manager that answered last, then the other known managers,
//! and go straight to the leader a manager names. What differs between callers is only how long they may wait and
//! whether a request may be sent twice; that is a [`Policy`].
//!
//! Only [`wire::Request`]/[`wire::Response`] go through here: this module is where the transport meets skep's own
//! messages ([`Endpoint::call`] stays generic).

use crate::{Endpoint, TransportError};
use skep_api::wire::{ErrorKind, Request, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Most targets tried in one round, redirects included: managers that disagree about the leader cannot make a call
/// spin, and a round over a large or stale list stays bounded.
pub const MAX_TARGETS_PER_ROUND: usize = 8;

/// How long and how often one call may try.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Longest wait for one manager's answer.
    pub call_timeout: Duration,
    /// Longest the whole call may take, rounds included. `None`: one round, however it ends.
    pub deadline: Option<Duration>,
    /// Pause after a round in which no manager answered.
    pub pause: Duration,
    /// Whether the request may be sent again after a failure that may have come after it was delivered (a time-out
    /// or a lost connection). Writes that must not apply twice say no: such a failure then ends the call with
    /// [`LeaderError::MaybeDelivered`].
    pub resend: bool,
}

impl Policy {
    /// One round over the known managers, each call bounded by `call_timeout`.
    pub fn one_round(call_timeout: Duration) -> Policy {
        Policy { call_timeout, deadline: None, pause: Duration::ZERO, resend: true }
    }

    /// Rounds until `deadline`, each call bounded by `call_timeout`, `pause` between rounds nobody answered.
    pub fn until(deadline: Duration, call_timeout: Duration, pause: Duration) -> Policy {
        Policy { call_timeout, deadline: Some(deadline), pause, resend: true }
    }
}

/// Why a call to the leader got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderError {
    /// No manager address is known.
    #[error("no managers known")]
    NoManagers,
    /// No manager answered (or every one said it could not serve) within the policy.
    #[error("no leader answered: {last}")]
    Unavailable {
        /// What the last attempt ran into.
        last: String,
    },
    /// A TLS handshake failed: the manager does not hold the CA this node trusts, or refused its certificate.
    /// Another manager of the same cluster would refuse it too, so this ends the call.
    #[error("{target}: {source}")]
    Tls {
        /// The manager.
        target: SocketAddr,
        /// The failure.
        #[source]
        source: TransportError,
    },
    /// The request may have reached the leader before the failure, and the policy forbids sending it again.
    #[error("{target}: {source} (the request may or may not have been applied)")]
    MaybeDelivered {
        /// The manager.
        target: SocketAddr,
        /// The failure.
        #[source]
        source: TransportError,
    },
}

/// What an answer tells the caller to do next.
enum Verdict {
    /// This is the answer.
    Answer,
    /// Not the leader: go to the one named, if any, else to the next manager.
    Redirect(Option<SocketAddr>),
    /// This manager cannot serve now (no leader yet, shutting down): try the next.
    TryAnother(String),
}

fn classify(r: &Response) -> Verdict {
    match r {
        Response::NotLeader { leader_addr } => Verdict::Redirect(leader_addr.as_deref().and_then(|a| a.parse().ok())),
        Response::Error(e) if e.kind == ErrorKind::Unavailable => Verdict::TryAnother(e.message.clone()),
        _ => Verdict::Answer,
    }
}

/// Whether a failed call certainly never reached the peer's handler.
fn undelivered(e: &TransportError) -> bool {
    matches!(e, TransportError::ConnectTimeout(_) | TransportError::Connect(_) | TransportError::Tls(_) | TransportError::Closed)
}

/// Calls the leader through the known managers. Cheap to clone; clones share the manager list and the memory of
/// who answered last.
#[derive(Clone)]
pub struct LeaderCaller {
    endpoint: Endpoint,
    server_name: Arc<str>,
    /// A client config of its own for every call (a joining node's, which pins the CA digest of its join token),
    /// over a fresh connection each time; `None`: the endpoint's, over its cached connections.
    client: Option<rustls::ClientConfig>,
    shared: Arc<Mutex<Known>>,
}

#[derive(Default)]
struct Known {
    managers: Vec<SocketAddr>,
    /// The manager that answered last: normally the leader.
    last: Option<SocketAddr>,
}

impl LeaderCaller {
    /// A caller over `endpoint`'s connections to managers whose certificates are valid for `server_name`.
    pub fn new(endpoint: Endpoint, server_name: &str, managers: Vec<SocketAddr>) -> LeaderCaller {
        LeaderCaller {
            endpoint,
            server_name: server_name.into(),
            client: None,
            shared: Arc::new(Mutex::new(Known { managers, last: None })),
        }
    }

    /// The same, but every call is made over a fresh connection with `client` (see [`Endpoint::call_with`]).
    pub fn with_client(mut self, client: rustls::ClientConfig) -> LeaderCaller {
        self.client = Some(client);
        self
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the known managers (e.g. from a heartbeat's answer, or the Raft membership).
    pub fn set_managers(&self, managers: Vec<SocketAddr>) {
        self.known().managers = managers;
    }

    /// The known managers.
    pub fn managers(&self) -> Vec<SocketAddr> {
        self.known().managers.clone()
    }

    /// Name the leader, when the caller learnt it elsewhere (e.g. from Raft): it is tried first.
    pub fn set_leader(&self, leader: Option<SocketAddr>) {
        self.known().last = leader;
    }

    /// The manager that answered last, normally the leader.
    pub fn leader(&self) -> Option<SocketAddr> {
        self.known().last
    }

    /// The targets of a round: the one that answered last, then the others in their order.
    fn round(&self) -> Vec<SocketAddr> {
        let k = self.known();
        let mut t: Vec<SocketAddr> = k.last.into_iter().collect();
        t.extend(k.managers.iter().filter(|m| Some(**m) != k.last));
        t
    }

    async fn call_one(&self, target: SocketAddr, req: &Request, timeout: Duration) -> Result<Response, TransportError> {
        match &self.client {
            Some(c) => {
                let call = self.endpoint.call_with::<Request, Response>(target, &self.server_name, c.clone(), req);
                tokio::time::timeout(timeout, call).await.unwrap_or(Err(TransportError::Timeout))
            }
            // the deadline goes into the call: a silent peer's cached connection is dropped (see `call_until`)
            None => self.endpoint.call_until::<Request, Response>(target, &self.server_name, req, Instant::now() + timeout).await,
        }
    }

    /// Send `req` to the leader and return its answer (any answer but "not the leader" and "unavailable", which
    /// move on to another manager). See [`Policy`] for how long it tries.
    pub async fn call(&self, req: &Request, policy: Policy) -> Result<Response, LeaderError> {
        let deadline = policy.deadline.map(|d| Instant::now() + d);
        let mut last = String::from("no manager tried");
        loop {
            let mut targets = self.round();
            if targets.is_empty() {
                return Err(LeaderError::NoManagers);
            }
            let mut i = 0;
            while i < targets.len() && i < MAX_TARGETS_PER_ROUND {
                let target = targets[i];
                i += 1;
                let timeout = match deadline {
                    Some(d) => policy.call_timeout.min(d.saturating_duration_since(Instant::now())),
                    None => policy.call_timeout,
                };
                if timeout.is_zero() {
                    break;
                }
                match self.call_one(target, req, timeout).await {
                    Ok(r) => match classify(&r) {
                        Verdict::Answer => {
                            self.known().last = Some(target);
                            return Ok(r);
                        }
                        Verdict::Redirect(leader) => {
                            last = format!("{target} is not the leader");
                            if let Some(l) = leader.filter(|l| *l != target) {
                                // go there next, once per round
                                if !targets[i..].contains(&l) {
                                    targets.insert(i, l);
                                }
                            }
                        }
                        Verdict::TryAnother(m) => last = format!("{target}: {m}"),
                    },
                    Err(e @ TransportError::Tls(_)) => return Err(LeaderError::Tls { target, source: e }),
                    Err(e) if !policy.resend && !undelivered(&e) => {
                        self.forget(target);
                        return Err(LeaderError::MaybeDelivered { target, source: e });
                    }
                    Err(e) => {
                        tracing::debug!("{target}: {e}");
                        self.forget(target);
                        last = format!("{target}: {e}");
                    }
                }
            }
            match deadline {
                Some(d) if Instant::now() + policy.pause < d => tokio::time::sleep(policy.pause).await,
                _ => return Err(LeaderError::Unavailable { last }),
            }
        }
    }

    /// A target failed: it is not to be tried first any more.
    fn forget(&self, target: SocketAddr) {
        let mut k = self.known();
        if k.last == Some(target) {
            k.last = None;
        }
    }
}
