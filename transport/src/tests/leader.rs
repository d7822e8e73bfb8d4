//! The leader caller against real endpoints whose handlers play managers: a leader, followers that redirect, a
//! manager without a leader, a dead address.

use super::support::*;
use crate::leader::{LeaderCaller, LeaderError, Policy};
use crate::{Endpoint, Handler, Peer, TransportConfig};
use skep_api::wire::{ErrorKind, Request, Response, WireError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a fake manager answers.
#[derive(Clone)]
enum Role {
    Leader,
    /// Redirects to the address it holds (None: "not the leader, leader unknown").
    Follower(Arc<Mutex<Option<SocketAddr>>>),
    Unavailable,
    Silent,
}

struct Manager {
    role: Role,
    calls: AtomicUsize,
}

impl Handler<Request, Response> for Manager {
    async fn handle(&self, _peer: Peer, _req: Request) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.role {
            Role::Leader => Response::Ok,
            Role::Follower(l) => Response::NotLeader { leader_addr: l.lock().unwrap().map(|a| a.to_string()) },
            Role::Unavailable => Response::Error(WireError::new(ErrorKind::Unavailable, "no leader yet")),
            Role::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Response::Ok
            }
        }
    }
}

struct Fake {
    addr: SocketAddr,
    manager: Arc<Manager>,
    _endpoint: Endpoint,
}

fn fake(pki: &Pki, role: Role) -> Fake {
    let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), pki.server_tls(), pki.client_tls(true), TransportConfig::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let manager = Arc::new(Manager { role, calls: AtomicUsize::new(0) });
    let (ep, h) = (endpoint.clone(), manager.clone());
    tokio::spawn(async move { ep.serve(h, std::future::pending()).await });
    Fake { addr, manager, _endpoint: endpoint }
}

fn caller(pki: &Pki, managers: Vec<SocketAddr>) -> LeaderCaller {
    let ep = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    LeaderCaller::new(ep, NAME, managers)
}

fn calls(f: &Fake) -> usize {
    f.manager.calls.load(Ordering::SeqCst)
}

/// An address nothing listens on.
fn dead() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[tokio::test]
async fn a_redirect_is_followed_and_the_leader_is_tried_first_next_time() {
    let pki = Pki::new();
    let leader = fake(&pki, Role::Leader);
    let follower = fake(&pki, Role::Follower(Arc::new(Mutex::new(Some(leader.addr)))));
    let c = caller(&pki, vec![follower.addr]);
    let r = c.call(&Request::Leave, Policy::one_round(Duration::from_secs(2))).await.unwrap();
    assert!(matches!(r, Response::Ok), "{r:?}");
    assert_eq!((calls(&follower), calls(&leader)), (1, 1));
    assert_eq!(c.leader(), Some(leader.addr));
    c.call(&Request::Leave, Policy::one_round(Duration::from_secs(2))).await.unwrap();
    assert_eq!((calls(&follower), calls(&leader)), (1, 2), "the leader is asked first once known");
}

#[tokio::test]
async fn dead_silent_and_leaderless_managers_are_skipped_within_one_round() {
    let pki = Pki::new();
    let silent = fake(&pki, Role::Silent);
    let leaderless = fake(&pki, Role::Unavailable);
    let leader = fake(&pki, Role::Leader);
    let c = caller(&pki, vec![dead(), silent.addr, leaderless.addr, leader.addr]);
    let r = c.call(&Request::Leave, Policy::one_round(Duration::from_millis(300))).await.unwrap();
    assert!(matches!(r, Response::Ok), "{r:?}");
    assert_eq!((calls(&silent), calls(&leaderless), calls(&leader)), (1, 1, 1));
}

#[tokio::test]
async fn managers_that_redirect_to_each_other_cannot_make_a_call_spin() {
    let pki = Pki::new();
    let (la, lb) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
    let a = fake(&pki, Role::Follower(la.clone()));
    let b = fake(&pki, Role::Follower(lb.clone()));
    *la.lock().unwrap() = Some(b.addr);
    *lb.lock().unwrap() = Some(a.addr);
    let c = caller(&pki, vec![a.addr]);
    let e = c.call(&Request::Leave, Policy::one_round(Duration::from_secs(1))).await.unwrap_err();
    assert!(matches!(e, LeaderError::Unavailable { .. }), "{e}");
    assert!(calls(&a) + calls(&b) <= crate::leader::MAX_TARGETS_PER_ROUND);
}

#[tokio::test]
async fn a_call_with_a_deadline_waits_for_a_leader_to_appear() {
    let pki = Pki::new();
    let slot = Arc::new(Mutex::new(None));
    let follower = fake(&pki, Role::Follower(slot.clone()));
    let c = caller(&pki, vec![follower.addr]);
    let leader = fake(&pki, Role::Leader);
    let named = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        *slot.lock().unwrap() = Some(leader.addr);
        leader
    });
    let policy = Policy::until(Duration::from_secs(5), Duration::from_secs(1), Duration::from_millis(50));
    assert!(matches!(c.call(&Request::Leave, policy).await.unwrap(), Response::Ok));
    let leader = named.await.unwrap();
    assert_eq!(c.leader(), Some(leader.addr));
    // and without a deadline, a round with no leader ends at once
    let nobody = caller(&pki, vec![fake(&pki, Role::Unavailable).addr]);
    assert!(matches!(nobody.call(&Request::Leave, Policy::one_round(Duration::from_secs(1))).await, Err(LeaderError::Unavailable { .. })));
    assert!(matches!(caller(&pki, vec![]).call(&Request::Leave, policy).await, Err(LeaderError::NoManagers)));
}

#[tokio::test]
async fn a_write_that_may_have_been_delivered_is_not_sent_again() {
    let pki = Pki::new();
    let silent = fake(&pki, Role::Silent);
    let leader = fake(&pki, Role::Leader);
    let c = caller(&pki, vec![silent.addr, leader.addr]);
    let policy = Policy { resend: false, ..Policy::one_round(Duration::from_millis(300)) };
    let e = c.call(&Request::Leave, policy).await.unwrap_err();
    assert!(matches!(e, LeaderError::MaybeDelivered { .. }), "{e}");
    assert_eq!(calls(&leader), 0);
    // a manager that certainly never got it (no handshake within the connect timeout) is passed over even so
    let cfg = TransportConfig { connect_timeout: Duration::from_millis(200), ..Default::default() };
    let c = LeaderCaller::new(Endpoint::client(pki.client_tls(true), cfg).unwrap(), NAME, vec![dead(), leader.addr]);
    let policy = Policy { resend: false, ..Policy::one_round(Duration::from_secs(1)) };
    assert!(matches!(c.call(&Request::Leave, policy).await.unwrap(), Response::Ok));
}

#[tokio::test]
async fn a_manager_of_another_ca_ends_the_call() {
    let pki = Pki::new();
    let other = Pki::new();
    let foreign = fake(&other, Role::Leader);
    let leader = fake(&pki, Role::Leader);
    let c = caller(&pki, vec![foreign.addr, leader.addr]);
    let e = c.call(&Request::Leave, Policy::one_round(Duration::from_secs(2))).await.unwrap_err();
    assert!(matches!(e, LeaderError::Tls { target, .. } if target == foreign.addr), "{e}");
}
