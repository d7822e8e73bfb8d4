//! The agent's session loop.
//!
//! A heartbeat is one RPC to the leader. The agent remembers which manager answered last and tries it first; on a
//! redirect it goes to the named leader; on a failure it tries the next known manager at once, so a dead leader costs
//! one failed call (bounded by the call timeout) plus the time the managers need to elect a new leader.

use skep_api::docker::{NodeDescription, Peer};
use skep_api::wire::{ErrorKind, Heartbeat, Request, Response};
use skep_transport::Endpoint;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the agent tells the node supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// The managers' answer to a heartbeat: what role the node should have, and its Raft ID (set while it is or is
    /// becoming a manager, cleared once a demotion has taken it out of the Raft membership).
    Desired {
        /// `manager` or `worker`.
        role: String,
        /// Raft ID.
        raft_id: Option<u64>,
    },
    /// The list of managers changed.
    Managers(Vec<Peer>),
    /// The managers say this node is no longer part of the swarm.
    Removed,
}

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's cluster address (`IP:port`), reported in heartbeats.
    pub addr: String,
    /// This node's description.
    pub description: NodeDescription,
    /// Managers known at start.
    pub managers: Vec<Peer>,
    /// Heartbeat period until a manager says otherwise.
    pub period: Duration,
}

/// Longest wait for one heartbeat reply; a manager that takes longer is treated as gone.
const CALL_TIMEOUT_MIN: Duration = Duration::from_millis(800);

/// Run the session until `stop` turns true or the node is removed.
pub async fn run(endpoint: Endpoint, cfg: AgentConfig, events: mpsc::Sender<AgentEvent>, mut stop: watch::Receiver<bool>) {
    let mut managers = cfg.managers.clone();
    let mut period = cfg.period;
    let mut preferred: Option<SocketAddr> = None;
    let mut send_description = true;
    let mut next = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        let candidates: Vec<SocketAddr> = preferred
            .into_iter()
            .chain(managers.iter().filter_map(|p| p.addr.parse().ok()))
            .collect();
        if candidates.is_empty() {
            tracing::warn!("no managers known");
        }
        let mut answered = false;
        let mut redirected = false;
        // try every candidate once per round, starting with the one that answered last
        for attempt in 0..candidates.len().clamp(1, 8) {
            let Some(&target) = candidates.get((next + attempt) % candidates.len().max(1)) else { break };
            let req = Request::Heartbeat(Heartbeat {
                description: send_description.then(|| cfg.description.clone()),
                addr: cfg.addr.clone(),
            });
            let timeout = period.max(CALL_TIMEOUT_MIN);
            let reply = match tokio::time::timeout(timeout, endpoint.call::<Request, Response>(target, skep_pki::NODE_SAN, &req)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::debug!("heartbeat to {target}: {e}");
                    if preferred == Some(target) {
                        preferred = None;
                    }
                    continue;
                }
                Err(_) => {
                    tracing::debug!("heartbeat to {target}: timed out");
                    if preferred == Some(target) {
                        preferred = None;
                    }
                    continue;
                }
            };
            match reply {
                Response::Heartbeat(r) => {
                    preferred = Some(target);
                    answered = true;
                    send_description = r.want_description;
                    period = Duration::from_millis(r.period_ms.clamp(100, 3_600_000));
                    if r.managers != managers && !r.managers.is_empty() {
                        managers = r.managers.clone();
                        let _ = events.send(AgentEvent::Managers(r.managers)).await;
                    }
                    let _ = events.send(AgentEvent::Desired { role: r.desired_role, raft_id: r.raft_id }).await;
                    break;
                }
                Response::NotLeader { leader_addr: Some(l) } if l.parse::<SocketAddr>().is_ok_and(|a| a != target) => {
                    // go straight to the leader in a new round
                    preferred = l.parse().ok();
                    redirected = true;
                    break;
                }
                Response::NotLeader { .. } => {}
                Response::Error(e) if e.kind == ErrorKind::Removed => {
                    tracing::warn!("the managers say this node was removed: {}", e.message);
                    let _ = events.send(AgentEvent::Removed).await;
                    return;
                }
                Response::Error(e) => tracing::debug!("heartbeat to {target}: {e}"),
                other => tracing::debug!("heartbeat to {target}: unexpected {other:?}"),
            }
        }
        if redirected {
            next = 0;
            // bounded: managers that disagree about the leader cannot make this spin
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // keep the manager that answered (it is first in the next round); rotate only after a failed round
        next = if answered { 0 } else { next.wrapping_add(1) };
        // after a failed round, try again soon (an election takes about a second)
        let wait = if answered { period } else { Duration::from_millis(200) };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}
