//! The agent's session loop.
//!
//! A heartbeat is one RPC to the leader, through the node's [`LeaderCaller`]: the manager that answered last first, a
//! redirect straight to the named leader, on a failure the next known manager at once, so a dead leader costs one
//! failed call (bounded by the heartbeat period) plus the time the managers need to elect a new leader.

use skep_api::docker::{NodeDescription, NodeRole, Peer};
use skep_api::wire::{ErrorKind, Heartbeat, Request, Response};
use skep_transport::{LeaderCaller, Policy};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the agent tells the node supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// The managers' answer to a heartbeat: what role the node should have, and its Raft ID (set while it is or is
    /// becoming a manager, cleared once a demotion has taken it out of the Raft membership).
    Desired {
        /// What the store says the node is.
        role: NodeRole,
        /// Raft ID.
        raft_id: Option<u64>,
    },
    /// The list of managers changed.
    Managers(Vec<Peer>),
    /// The managers say this node is no longer part of the swarm.
    Removed,
}

/// Agent settings.
#[derive(Clone)]
pub struct AgentConfig {
    /// This node's cluster address (`IP:port`), reported in heartbeats.
    pub addr: String,
    /// This node's description; a change (a renewed certificate changes its `TLSInfo`) is sent with the next
    /// heartbeat, which goes at once.
    pub description: watch::Receiver<NodeDescription>,
    /// Managers known at start.
    pub managers: Vec<Peer>,
    /// Heartbeat period until a manager says otherwise.
    pub period: Duration,
    /// On a manager: whether its Raft has caught up and it can serve (see `Heartbeat::manager_ready`); `None` on a
    /// worker. Asked before every heartbeat.
    pub manager_ready: Option<ManagerReady>,
}

/// See [`AgentConfig::manager_ready`]. `None` from the function: no manager runs right now.
pub type ManagerReady = std::sync::Arc<dyn Fn() -> Option<bool> + Send + Sync>;

/// Longest wait for one heartbeat reply; a manager that takes longer is treated as gone.
const CALL_TIMEOUT_MIN: Duration = Duration::from_millis(800);

/// Run the session until `stop` turns true or the node is removed. `leader` reaches the leader through the known
/// managers; the agent keeps its list current from the heartbeats' answers.
pub async fn run(leader: LeaderCaller, cfg: AgentConfig, events: mpsc::Sender<AgentEvent>, mut stop: watch::Receiver<bool>) {
    let mut managers = cfg.managers.clone();
    let mut period = cfg.period;
    let mut send_description = true;
    let mut description = cfg.description.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        if description.has_changed().unwrap_or(false) {
            send_description = true;
        }
        let req = Request::Heartbeat(Heartbeat {
            description: send_description.then(|| description.borrow_and_update().clone()),
            addr: cfg.addr.clone(),
            manager_ready: cfg.manager_ready.as_ref().and_then(|f| f()),
        });
        // one round over the managers, each bounded by a heartbeat period: a dead leader costs one failed call
        let answered = match leader.call(&req, Policy::one_round(period.max(CALL_TIMEOUT_MIN))).await {
            Ok(Response::Heartbeat(r)) => {
                send_description = r.want_description;
                period = Duration::from_millis(r.period_ms.clamp(100, 3_600_000));
                if r.managers != managers && !r.managers.is_empty() {
                    managers = r.managers.clone();
                    leader.set_managers(managers.iter().filter_map(|p| p.addr.parse().ok()).collect());
                    let _ = events.send(AgentEvent::Managers(r.managers)).await;
                }
                let _ = events.send(AgentEvent::Desired { role: r.desired_role, raft_id: r.raft_id }).await;
                true
            }
            Ok(Response::Error(e)) if e.kind == ErrorKind::Removed => {
                tracing::warn!("the managers say this node was removed: {}", e.message);
                let _ = events.send(AgentEvent::Removed).await;
                return;
            }
            Ok(other) => {
                tracing::debug!("heartbeat: unexpected answer {other:?}");
                false
            }
            Err(e) => {
                tracing::debug!("heartbeat: {e}");
                false
            }
        };
        // after a failed round, try again soon (an election takes about a second)
        let wait = if answered { period } else { Duration::from_millis(200) };
        let changed = async {
            if description.changed().await.is_err() {
                // nobody updates the description: only the timer and `stop` wake us
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
            _ = changed => send_description = true,
        }
    }
}
