//! End-to-end tests over real QUIC on 127.0.0.1, with certificates made by rcgen.

mod leader;
mod support;

use std::{
    net::SocketAddr,
    sync::atomic::Ordering,
    time::Duration,
};

use tokio::time::{sleep, Instant};

use support::*;

use crate::{Endpoint, Reject, TransportConfig, TransportError};

fn dials(ep: &Endpoint) -> usize {
    ep.inner.dials.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_and_peer_certs() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());

    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let resp: Resp = client.call(server.addr, NAME, &Req::Echo("hi".into())).await.unwrap();
    assert_eq!(resp, Resp::Echo("hi".into()));

    let Resp::Whoami { certs, .. } = client.call(server.addr, NAME, &Req::Whoami).await.unwrap() else { panic!() };
    let certs = certs.expect("client presented a certificate");
    assert_eq!(certs, pki.client_chain.iter().map(|c| c.to_vec()).collect::<Vec<_>>());

    let anonymous = Endpoint::client(pki.client_tls(false), TransportConfig::default()).unwrap();
    let Resp::Whoami { certs, .. } = anonymous.call(server.addr, NAME, &Req::Whoami).await.unwrap() else { panic!() };
    assert_eq!(certs, None);

    // Both calls of each client used one connection.
    assert_eq!(dials(&client), 1);
    assert_eq!(dials(&anonymous), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_connection() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let addr = server.addr;
        calls.spawn(async move {
            let resp: Resp = client.call(addr, NAME, &Req::Echo(format!("m{i}"))).await.unwrap();
            assert_eq!(resp, Resp::Echo(format!("m{i}")));
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
    assert_eq!(dials(&client), 1);
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_is_rejected_and_server_keeps_serving() {
    let pki = Pki::new();
    let cfg = TransportConfig { rpc_timeout: Duration::from_millis(400), ..Default::default() };
    let server = Server::start(&pki, cfg);
    let raw = RawClient::connect(&pki, server.addr).await;

    // Junk: wrong version byte.
    assert_eq!(raw.exchange(b"this is not a frame", true).await, Err(quinn::ReadError::Reset(code(Reject::BadRequest))));
    // A header declaring 4 GiB: rejected on the header, without waiting for a body.
    let start = Instant::now();
    assert_eq!(
        raw.exchange(&[1, 0xff, 0xff, 0xff, 0xff], false).await,
        Err(quinn::ReadError::Reset(code(Reject::BadRequest)))
    );
    assert!(start.elapsed() < Duration::from_millis(350));
    // Half a header, then silence: the server gives up after its rpc_timeout.
    let start = Instant::now();
    assert_eq!(raw.exchange(&[1, 0], false).await, Err(quinn::ReadError::Reset(code(Reject::RequestTimeout))));
    assert!(start.elapsed() >= Duration::from_millis(350));
    // A well-formed frame of the wrong message type.
    let frame = crate::codec::encode(&vec![200u8; 3], 1024).unwrap();
    assert_eq!(raw.exchange(&frame, true).await, Err(quinn::ReadError::Reset(code(Reject::BadRequest))));
    // And a good request on the same connection still works.
    let good = crate::codec::encode(&Req::Echo("ok".into()), 1024).unwrap();
    let resp = raw.exchange(&good, true).await.unwrap();
    assert_eq!(crate::codec::decode::<Resp>(&resp, 1024).unwrap(), Resp::Echo("ok".into()));

    // Through the typed client: a rejection is a typed error, and the next call succeeds.
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let err = client.call::<_, Resp>(server.addr, NAME, &vec![200u8; 3]).await.unwrap_err();
    assert!(matches!(err, TransportError::Rejected(Reject::BadRequest)), "{err:?}");
    let resp: Resp = client.call(server.addr, NAME, &Req::Echo("still here".into())).await.unwrap();
    assert_eq!(resp, Resp::Echo("still here".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_fails_within_connect_timeout() {
    let pki = Pki::new();
    let addr = free_udp_port();
    let cfg = TransportConfig { connect_timeout: Duration::from_millis(500), ..Default::default() };
    let client = Endpoint::client(pki.client_tls(true), cfg).unwrap();
    let start = Instant::now();
    let err = client.call::<_, Resp>(addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1500), "took {:?}", start.elapsed());
    assert!(matches!(err, TransportError::ConnectTimeout(_) | TransportError::Connection(_)), "{err:?}");
    assert!(lock_conns_len(&client) == 0, "failed dials are not cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_on_same_port() {
    let pki = Pki::new();
    let first = Server::start(&pki, TransportConfig::default());
    let addr = first.addr;
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let _: Resp = client.call(addr, NAME, &Req::Whoami).await.unwrap();

    first.stop().await;
    let second = Server::start_at(&pki, TransportConfig::default(), addr).await;
    let resp: Resp = client.call(addr, NAME, &Req::Echo("again".into())).await.unwrap();
    assert_eq!(resp, Resp::Echo("again".into()));
    assert_eq!(dials(&client), 2, "the closed connection was replaced");
    assert_eq!(second.handler.calls.load(Ordering::SeqCst), 1);
}

/// The old server vanishes without closing (crash, network cut) and a new one answers on the same
/// address: the first call times out on the silent connection, which is then dropped, and the
/// next call redials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_connection_is_replaced() {
    let pki = Pki::new();
    let cfg = TransportConfig { rpc_timeout: Duration::from_millis(800), ..Default::default() };
    let first = Server::start(&pki, cfg.clone());
    let proxy = Proxy::start(free_udp_port(), first.addr).await;
    let client = Endpoint::client(pki.client_tls(true), cfg.clone()).unwrap();
    let _: Resp = client.call(proxy.addr, NAME, &Req::Whoami).await.unwrap();
    // let the first server's last packets (delayed ACKs) reach the client before the switch: read during the next
    // call, they would count as the peer being alive (a loaded machine reads them late), so that the connection
    // stayed and the call after it timed out too
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = Server::start(&pki, cfg);
    let proxy = proxy.redirect(second.addr).await;
    let err = client.call::<_, Resp>(proxy.addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout), "{err:?}");
    let resp: Resp = client.call(proxy.addr, NAME, &Req::Echo("new".into())).await.unwrap();
    assert_eq!(resp, Resp::Echo("new".into()));
    assert_eq!(dials(&client), 2);
    drop(first);
}

/// A peer that goes silent is given up after `silence_timeout`, long before the call's own deadline, while a peer that
/// acknowledges the request but takes longer than that to answer is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_fails_a_call_after_the_silence_timeout_and_a_slow_one_does_not() {
    let pki = Pki::new();
    let cfg = TransportConfig {
        rpc_timeout: Duration::from_secs(5),
        silence_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let server = Server::start(&pki, cfg.clone());
    let proxy = Proxy::start(free_udp_port(), server.addr).await;
    let client = Endpoint::client(pki.client_tls(true), cfg.clone()).unwrap();
    let resp: Resp = client.call(proxy.addr, NAME, &Req::Sleep(700)).await.unwrap();
    assert_eq!(resp, Resp::Slept);
    // the server's last packets reach the client first (see `silent_peer_connection_is_replaced`)
    tokio::time::sleep(Duration::from_millis(300)).await;
    // the proxy now forwards to nothing: the peer is silent
    let nowhere = Server::start(&pki, cfg);
    let nowhere_addr = nowhere.addr;
    nowhere.stop().await;
    let _proxy = proxy.redirect(nowhere_addr).await;
    let start = Instant::now();
    let err = client.call::<_, Resp>(_proxy.addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}

/// A caller that bounds each call by a timeout of its own at the call's deadline, as openraft bounds each
/// AppendEntries, still has a connection silent for `silence_timeout` closed, so that its next call redials: the
/// silence is judged before the deadline, across calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_before_a_callers_own_timeout_drops_the_call() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());
    let proxy = Proxy::start(free_udp_port(), server.addr).await;
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let _: Resp = client.call(proxy.addr, NAME, &Req::Whoami).await.unwrap();
    // the server's last packets reach the client first (see `silent_peer_connection_is_replaced`)
    sleep(Duration::from_millis(300)).await;
    let nowhere = Server::start(&pki, TransportConfig::default());
    let nowhere_addr = nowhere.addr;
    nowhere.stop().await;
    let proxy = proxy.redirect(nowhere_addr).await;
    // calls of 250 ms, each dropped by the caller at its deadline as openraft drops them, one after the other
    let bound = Duration::from_millis(250);
    let silent_from = Instant::now();
    let mut given_up_after = None;
    for _ in 0..12 {
        let call = client.call_until::<_, Resp>(proxy.addr, NAME, &Req::Whoami, Instant::now() + bound);
        match tokio::time::timeout(bound, call).await {
            Ok(Err(TransportError::Timeout)) => {
                given_up_after = Some(silent_from.elapsed());
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => {} // dropped by the caller's own timeout
        }
    }
    let after = given_up_after.expect("the silent connection was never given up");
    // not on the first silent call: a peer slow to acknowledge keeps its connection for a second of silence
    assert!(after >= Duration::from_secs(1), "given up after {after:?}");
    // the link is back: the next call redials rather than wait on the old connection
    let proxy = proxy.redirect(server.addr).await;
    let _: Resp = client.call(proxy.addr, NAME, &Req::Whoami).await.unwrap();
    assert_eq!(dials(&client), 2, "the silent connection was kept");
}

/// A client too busy to read its socket when the silence probe is due (its only thread blocked by other work) does not
/// take a live peer for a silent one: the call gets its answer and the connection is kept.
#[test]
fn a_busy_client_keeps_a_live_peer() {
    let pki = Pki::new();
    let cfg = TransportConfig { silence_timeout: Duration::from_millis(300), ..Default::default() };
    let client_tls = pki.client_tls(true);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_cfg = cfg.clone();
    // the server on a runtime of its own, so blocking the client's thread does not stop it
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let s = Server::start(&pki, server_cfg);
            addr_tx.send(s.addr).unwrap();
            let _ = stop_rx.await;
            s.stop().await;
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = Endpoint::client(client_tls, cfg).unwrap();
        let _: Resp = client.call(addr, NAME, &Req::Whoami).await.unwrap();
        // while the next call is in flight, other work holds the only thread well past the silence timeout
        let hog = tokio::spawn(async {
            sleep(Duration::from_millis(50)).await;
            std::thread::sleep(Duration::from_millis(900));
        });
        let resp: Resp = client.call(addr, NAME, &Req::Sleep(100)).await.unwrap();
        assert_eq!(resp, Resp::Slept);
        hog.await.unwrap();
        assert_eq!(dials(&client), 1, "the connection was dropped");
    });
    let _ = stop_tx.send(());
    server.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refusal_is_typed() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());

    // We refuse the server: its certificate is from a CA we don't trust.
    let client = Endpoint::client(other.client_tls(true), TransportConfig::default()).unwrap();
    let err = client.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Tls(_)), "{err:?}");

    // The server refuses us: our certificate is from another CA (we trust theirs).
    let client = Endpoint::client(other.client_tls_trusting(&pki), TransportConfig::default()).unwrap();
    let err = client.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Tls(_)), "{err:?}");

    // Wrong server name.
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let err = client.call::<_, Resp>(server.addr, "not-skep-node", &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Tls(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_tls_and_call_with_use_new_identity() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());
    let client = Endpoint::client(pki.client_tls(false), TransportConfig::default()).unwrap();
    let Resp::Whoami { certs, .. } = client.call(server.addr, NAME, &Req::Whoami).await.unwrap() else { panic!() };
    assert!(certs.is_none());

    // One-off config: fresh connection with a certificate, not cached.
    let Resp::Whoami { certs, .. } =
        client.call_with(server.addr, NAME, pki.client_tls(true), &Req::Whoami).await.unwrap()
    else {
        panic!()
    };
    assert!(certs.is_some());
    assert_eq!(dials(&client), 2);

    client.set_tls(None, pki.client_tls(true)).unwrap();
    let Resp::Whoami { certs, .. } = client.call(server.addr, NAME, &Req::Whoami).await.unwrap() else { panic!() };
    assert!(certs.is_some(), "cached connection dropped; new identity used");
    assert_eq!(dials(&client), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_extra_connections() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig { max_connections: 1, ..Default::default() });
    let first = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let _: Resp = first.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    let second = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let err = second.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Connection(_)), "{err:?}");
    // The admitted connection keeps working.
    let _: Resp = first.call(server.addr, NAME, &Req::Whoami).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_in_flight_finish() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let addr = server.addr;
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, Resp>(addr, NAME, &Req::Sleep(300)).await }
    });
    sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let _ = server.shutdown.send(());
    tokio::time::timeout(Duration::from_secs(3), server.task).await.expect("serve returned").unwrap();
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(slow.await.unwrap().unwrap(), Resp::Slept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_endpoint_reports_closed() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());
    let client = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let _: Resp = client.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    client.close();
    let err = client.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await.unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err:?}");
}

fn code(r: Reject) -> quinn::VarInt {
    quinn::VarInt::from_u32(r.code())
}

fn lock_conns_len(ep: &Endpoint) -> usize {
    crate::endpoint::lock(&ep.inner.conns).len()
}

fn free_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_certificate_get_small_frames_few_connections_and_a_short_life() {
    let pki = Pki::new();
    let cfg = TransportConfig {
        unauthenticated_per_source: 1,
        unauthenticated_lifetime: Duration::from_millis(300),
        ..Default::default()
    };
    let server = Server::start(&pki, cfg);
    let big = "x".repeat(100 * 1024);
    // a member sends large frames
    let member = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let r: Resp = member.call(server.addr, NAME, &Req::Echo(big.clone())).await.unwrap();
    assert_eq!(r, Resp::Echo(big.clone()));
    // a caller without a certificate: small frames only
    let anon = Endpoint::client(pki.client_tls(false), TransportConfig::default()).unwrap();
    let err = anon.call::<_, Resp>(server.addr, NAME, &Req::Echo(big)).await.unwrap_err();
    assert!(matches!(err, TransportError::Rejected(Reject::BadRequest)), "{err:?}");
    // a second one from the same address, while the first is connected: over the per-source cap
    let other = Endpoint::client(pki.client_tls(false), TransportConfig::default()).unwrap();
    let mut refused = false;
    for _ in 0..3 {
        let _: Resp = anon.call(server.addr, NAME, &Req::Echo("small".into())).await.unwrap_or(Resp::Slept);
        if other.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "a second unauthenticated connection from one source was served");
    // the first one's connection ends with its lifetime, which frees the source's slot
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if other.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the unauthenticated connection was never closed");
        sleep(Duration::from_millis(100)).await;
    }
    // the member's connection outlives that
    let _: Resp = member.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    assert_eq!(dials(&member), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_the_connections_of_callers_it_picks() {
    let pki = Pki::new();
    let server = Server::start(&pki, TransportConfig::default());
    let member = Endpoint::client(pki.client_tls(true), TransportConfig::default()).unwrap();
    let anon = Endpoint::client(pki.client_tls(false), TransportConfig::default()).unwrap();
    let _: Resp = member.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    let _: Resp = anon.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    // close the callers that presented a certificate: the member's connection ends, the other one stays
    assert_eq!(server.endpoint.close_callers(|p| p.certs.is_some(), "removed"), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    // the member's next calls find its connection closed and redial
    loop {
        let _ = member.call::<_, Resp>(server.addr, NAME, &Req::Whoami).await;
        if dials(&member) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the member's connection was not closed");
        sleep(Duration::from_millis(50)).await;
    }
    let _: Resp = member.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    // the other caller kept its connection
    let _: Resp = anon.call(server.addr, NAME, &Req::Whoami).await.unwrap();
    assert_eq!(dials(&anon), 1);
}
