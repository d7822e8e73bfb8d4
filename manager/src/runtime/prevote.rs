//! Pre-vote (Ongaro's thesis, §9.6): before a manager raises its term to campaign, it asks the other voters whether
//! they would vote for it, and campaigns only when a majority would.
//!
//! openraft 0.9 has no pre-vote. Without it, a manager cut off from a live leader (a partition, a long pause)
//! campaigned again and again on its side, raising its term each time; when it came back, the leader saw the higher
//! term in a replication answer and stepped down, and the cluster paid an election for a manager that could not win
//! (docs/design/faults.md, finding 1). With it, the cut-off manager's term stays where it was: the others refuse its
//! pre-vote while they hear from their leader, and at the heal it simply follows that leader again.
//!
//! The vote gate: at most one vote per term. openraft 0.9 (built without its `single-term-leader` feature) orders
//! leader IDs by (term, node), so a voter that granted T-N4 grants T-N5 too, and two leaders in one term were seen
//! (docs/design/faults.md, finding 3). Every vote request passes [`Manager::serve_vote`] first, which refuses one for
//! a term this manager already voted in for another candidate; requests and this manager's own campaigns go through
//! one lock, and each reads the vote openraft holds after everything sent to it before, so no request slips in
//! between a check and the vote it guards. Entries and votes keep openraft's format.
//!
//! A voter grants a pre-vote when it is not the leader (or is a demoted leader handing over), has not heard from a
//! leader within the leader lease (a committed vote refreshed less than `election_max` ago: the same lease openraft
//! applies to real votes), and the candidate's last log ID is at least its own. The real vote that follows keeps all
//! of Raft's rules; a pre-vote changes nothing in the voter. openraft's own election timer is off
//! (`RaftTiming::config`): every election starts in [`super::election`] after a pre-vote, or at once for a lone
//! voter.

use super::Manager;
use crate::raft::network::reply;
use crate::raft::{decode, encode, LogId};
use futures::stream::{FuturesUnordered, StreamExt as _};
use openraft::storage::RaftLogStorage as _;
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{ServerState, Vote};
use serde::{Deserialize, Serialize};
use skep_api::wire::{ErrorKind, RaftKind, Request, Response, WireError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// What a candidate asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The term it would campaign in.
    pub term: u64,
    /// Its Raft ID.
    pub candidate: u64,
    /// Its last log ID.
    pub last_log_id: Option<LogId<u64>>,
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteResponse {
    /// Whether the voter would vote for it now.
    pub granted: bool,
}

/// What a voter knows when it answers a pre-vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoterView {
    /// It is the leader (and not handing leadership over after its demotion).
    pub leader: bool,
    /// Its vote is committed (a leader was elected with it).
    pub committed: bool,
    /// Since its vote was last changed or refreshed by the leader (`None`: not since it started).
    pub since_refresh: Option<Duration>,
    /// Its last log ID.
    pub last_log_id: Option<LogId<u64>>,
}

/// Whether a voter in state `me` grants `req`, with leader lease `lease`.
pub fn grants(req: &PreVoteRequest, me: &VoterView, lease: Duration) -> bool {
    if me.leader {
        return false;
    }
    if me.committed && me.since_refresh.is_some_and(|d| d < lease) {
        return false;
    }
    req.last_log_id >= me.last_log_id
}

/// Whether a vote request for `req` must be refused because this manager voted for another candidate in its term.
pub fn voted_for_another(mine: &Vote<u64>, req: &Vote<u64>) -> bool {
    let (m, r) = (mine.leader_id(), req.leader_id());
    m.get_term() == r.get_term() && m.voted_for().is_some() && m.voted_for() != r.voted_for()
}

impl Manager {
    /// Answer a vote request (`Request::Raft` of kind [`RaftKind::Vote`]): refused if this manager voted for another
    /// candidate in that term, else openraft's answer. Under the vote gate.
    pub(super) async fn serve_vote(&self, payload: &[u8]) -> Response {
        let req: VoteRequest<u64> = match decode(payload) {
            Ok(r) => r,
            Err(e) => {
                return Response::Error(WireError::new(ErrorKind::InvalidArgument, format!("bad raft message: {e}")))
            }
        };
        let _gate = self.inner.vote_gate.lock().await;
        let Ok(mine) = self.inner.raft.with_raft_state(|st| *st.vote_ref()).await else {
            return Response::Error(WireError::new(ErrorKind::Unavailable, "raft is shut down"));
        };
        type Answer = Result<VoteResponse<u64>, openraft::error::RaftError<u64>>;
        let answer: Answer = if voted_for_another(&mine, &req.vote) {
            tracing::info!(candidate = %req.vote, mine = %mine, "vote refused: already voted in this term");
            Ok(VoteResponse { vote: mine, vote_granted: false, last_log_id: self.last_log_id().await })
        } else {
            self.inner.raft.vote(req).await
        };
        reply(&answer)
    }

    /// Start an election (this manager votes for itself in the next term) under the vote gate, and wait until
    /// openraft has taken it, so that a vote request served next sees the new vote. `false`: Raft has stopped.
    pub(super) async fn campaign(&self) -> bool {
        let _gate = self.inner.vote_gate.lock().await;
        self.inner.raft.trigger().elect().await.is_ok() && self.inner.raft.with_raft_state(|_| ()).await.is_ok()
    }

    /// This manager's last log ID (from the log store; entries appended and not yet flushed included).
    async fn last_log_id(&self) -> Option<LogId<u64>> {
        let mut log = self.inner.log.clone();
        log.get_log_state().await.ok().and_then(|s| s.last_log_id)
    }

    /// Answer a pre-vote (`Request::Raft` of kind [`RaftKind::PreVote`]).
    pub(super) async fn serve_pre_vote(&self, payload: &[u8]) -> Response {
        let req: PreVoteRequest = match decode(payload) {
            Ok(r) => r,
            Err(e) => return Response::Error(WireError::new(ErrorKind::InvalidArgument, format!("bad pre-vote: {e}"))),
        };
        let state = self.inner.raft.with_raft_state(|st| {
            let v = st.vote_ref();
            (st.server_state == ServerState::Leader, v.is_committed(), st.vote_last_modified())
        });
        let Ok((leader, committed, utime)) = state.await else {
            return Response::Error(WireError::new(ErrorKind::Unavailable, "raft is shut down"));
        };
        // a demoted leader handing over wants a successor elected: neither its leadership nor its lease counts
        let handing_over = self.handing_over();
        let (leader, committed) = (leader && !handing_over, committed && !handing_over);
        let since_refresh = utime.map(|u| u.elapsed());
        let me = VoterView { leader, committed, since_refresh, last_log_id: self.last_log_id().await };
        let granted = grants(&req, &me, self.inner.cfg.timing.election_max);
        tracing::debug!(candidate = req.candidate, term = req.term, granted, ?me, "pre-vote");
        reply(&PreVoteResponse { granted })
    }

    /// Ask every other voter for a pre-vote, each within `within`; true once a majority of the voters (this one
    /// included) would vote for this manager. A voter that does not answer, or an older manager that does not know
    /// pre-votes, counts as a refusal.
    pub(super) async fn pre_vote(&self, within: Duration) -> bool {
        let me = self.inner.cfg.raft_id;
        let (term, peers, voters) = {
            let m = self.inner.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let voters: Vec<u64> = membership.voter_ids().collect();
            let peers: Vec<SocketAddr> = voters
                .iter()
                .filter(|&&id| id != me)
                .filter_map(|id| membership.get_node(id).and_then(|n| n.addr.parse().ok()))
                .collect();
            (m.current_term + 1, peers, voters.len())
        };
        let need = voters / 2 + 1;
        let mut granted = usize::from(true); // this manager's own
        if granted >= need {
            return true;
        }
        let req = PreVoteRequest { term, candidate: me, last_log_id: self.last_log_id().await };
        let Ok(payload) = encode(&req) else { return false };
        let req = Request::Raft { kind: RaftKind::PreVote, payload };
        let deadline = Instant::now() + within;
        let mut calls: FuturesUnordered<_> = peers
            .into_iter()
            .map(|addr| {
                let endpoint = self.inner.endpoint.clone();
                let req = req.clone();
                async move {
                    match endpoint.call_until::<Request, Response>(addr, skep_pki::NODE_SAN, &req, deadline).await {
                        Ok(Response::Raft { payload }) => decode::<PreVoteResponse>(&payload).is_ok_and(|r| r.granted),
                        _ => false,
                    }
                }
            })
            .collect();
        while let Some(yes) = calls.next().await {
            granted += usize::from(yes);
            if granted >= need {
                return true;
            }
        }
        tracing::debug!(term, granted, need, "pre-vote lost: not campaigning");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId<u64>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn req(last: Option<LogId<u64>>) -> PreVoteRequest {
        PreVoteRequest { term: 5, candidate: 2, last_log_id: last }
    }

    const LEASE: Duration = Duration::from_millis(500);

    #[test]
    fn a_voter_that_hears_from_its_leader_refuses_and_one_that_lost_it_grants() {
        let heard = VoterView {
            leader: false,
            committed: true,
            since_refresh: Some(Duration::from_millis(100)),
            last_log_id: log(4, 10),
        };
        assert!(!grants(&req(log(4, 10)), &heard, LEASE));
        let lost = VoterView { since_refresh: Some(Duration::from_millis(600)), ..heard };
        assert!(grants(&req(log(4, 10)), &lost, LEASE));
        // a vote granted to a candidate, not yet committed: no lease to respect
        let granted = VoterView { committed: false, since_refresh: Some(Duration::from_millis(10)), ..heard };
        assert!(grants(&req(log(4, 10)), &granted, LEASE));
        // restarted, not refreshed since: no lease known
        let restarted = VoterView { since_refresh: None, ..heard };
        assert!(grants(&req(log(4, 10)), &restarted, LEASE));
    }

    #[test]
    fn the_leader_refuses_and_a_shorter_log_is_refused() {
        let leader = VoterView { leader: true, committed: true, since_refresh: None, last_log_id: log(4, 10) };
        assert!(!grants(&req(log(9, 99)), &leader, LEASE));
        let follower = VoterView { leader: false, committed: false, since_refresh: None, last_log_id: log(4, 10) };
        assert!(!grants(&req(log(4, 9)), &follower, LEASE));
        assert!(!grants(&req(log(3, 20)), &follower, LEASE));
        assert!(!grants(&req(None), &follower, LEASE));
        assert!(grants(&req(log(5, 1)), &follower, LEASE));
    }

    #[test]
    fn a_second_candidate_of_a_term_is_refused_and_a_later_term_or_the_same_candidate_is_not() {
        use openraft::Vote;
        let mine = Vote::new(22, 4);
        assert!(voted_for_another(&mine, &Vote::new(22, 5)));
        assert!(voted_for_another(&Vote::new_committed(22, 4), &Vote::new(22, 5)));
        assert!(!voted_for_another(&mine, &Vote::new(22, 4)), "the same candidate asking again");
        assert!(!voted_for_another(&mine, &Vote::new(23, 5)), "a later term");
        assert!(!voted_for_another(&mine, &Vote::new(21, 5)), "an earlier term: openraft refuses it");
    }

    #[test]
    fn a_pre_vote_round_trips_through_the_wire_encoding() {
        let r = req(log(4, 10));
        assert_eq!(decode::<PreVoteRequest>(&encode(&r).unwrap()).unwrap(), r);
        let a = PreVoteResponse { granted: true };
        assert_eq!(decode::<PreVoteResponse>(&encode(&a).unwrap()).unwrap(), a);
    }
}
