//! Delay, jitter and loss between managers (`Cluster::delay_link`: a relay in the test process behind a TUN device
//! in the sending host, see `skep_tests::delay`) while clients read and write through every manager: 50 ± 20 ms and
//! 10 % loss on every manager link, the same from the leader to the followers only, one follower 200 ms away, and the
//! leader 200 ms away from both followers.
//!
//! First the relay itself, between two bare hosts: a UDP echo answered about twice the mean later with no loss asked,
//! about the mean later with one direction delayed and lossy, and directly again once the guard is gone, which leaves
//! no rule or device behind.
//!
//! Each cluster case asserts what `skep_tests::registers` settles (a write through every manager acknowledged within
//! [`RECOVER_BOUND`] of the heal, one leader named by all, a linearizable history with final reads through every
//! manager, so no acknowledged write lost), and prints how many writes were acknowledged while the links were delayed
//! and how long writes took then against before.

use anyhow::{Context as _, Result};
use skep_tests::delay::{Delay, DelayedLink, Direction};
use skep_tests::registers::{managers, Registers, BEFORE};
use skep_tests::Cluster;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound on a write through a manager being acknowledged after the delay was taken away.
const RECOVER_BOUND: Duration = Duration::from_secs(30);
/// How long each cluster case keeps its links delayed.
const HOLD: Duration = Duration::from_secs(10);
const ALL: [usize; 3] = [0, 1, 2];
/// The echo's port on the second host (any port: the relay is told which).
const ECHO_PORT: u16 = 7007;

/// `n` datagrams from host 0 to the echo on host 1, one every 10 ms; the round trip of each one answered (in the order
/// sent, `None` when no answer came within a second of the last send).
fn echo_round_trips(c: &Cluster, n: u32) -> Result<Vec<Option<Duration>>> {
    let (from, to) = (c.host(0), c.host(1));
    let peer = format!("{}:{ECHO_PORT}", to.ip);
    let ip = from.ip.clone();
    let sock = skep_tests::netns::in_netns(from.ns.name(), || Ok(UdpSocket::bind((ip.as_str(), 0))?))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let sent: Mutex<Vec<Instant>> = Mutex::new(Vec::new());
    let mut rtt = vec![None; n as usize];
    std::thread::scope(|s| -> Result<()> {
        let sender = s.spawn(|| -> Result<()> {
            for seq in 0..n {
                sent.lock().unwrap().push(Instant::now());
                let mut msg = [0u8; 100];
                msg[..4].copy_from_slice(&seq.to_be_bytes());
                sock.send_to(&msg, &peer)?;
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        });
        let mut last_sent = None;
        let mut buf = [0u8; 200];
        loop {
            if let Some(t) = last_sent {
                if Instant::now() > t + Duration::from_secs(1) {
                    break;
                }
            } else if sender.is_finished() {
                last_sent = Some(Instant::now());
            }
            let Ok(len) = sock.recv(&mut buf) else { continue };
            let seq = u32::from_be_bytes(buf[..4].try_into()?) as usize;
            let at = sent.lock().unwrap().get(seq).copied();
            if let (true, Some(at)) = (len == 100, at) {
                rtt[seq].get_or_insert(at.elapsed());
            }
        }
        sender.join().map_err(|_| anyhow::anyhow!("the sender panicked"))?
    })?;
    Ok(rtt)
}

/// `(median, lost)` of a run of [`echo_round_trips`], printed under `what`.
fn summarize(what: &str, rtt: &[Option<Duration>]) -> (Duration, usize) {
    let mut answered: Vec<Duration> = rtt.iter().flatten().copied().collect();
    answered.sort();
    let lost = rtt.len() - answered.len();
    let median = answered.get(answered.len() / 2).copied().unwrap_or(Duration::MAX);
    eprintln!(
        "{what}: {} of {} answered, round trip min {:?} median {median:?} max {:?}",
        answered.len(),
        rtt.len(),
        answered.first(),
        answered.last()
    );
    (median, lost)
}

/// An echo server on host 1, port [`ECHO_PORT`], until `stop`.
fn echo_server<'s>(c: &Cluster, stop: &'s AtomicBool) -> Result<impl FnOnce() + Send + 's> {
    let to = c.host(1);
    let ip = to.ip.clone();
    let sock = skep_tests::netns::in_netns(to.ns.name(), || Ok(UdpSocket::bind((ip.as_str(), ECHO_PORT))?))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    })
}

/// Rules at the relay's priorities and TUN devices of the relay, in host `i`'s namespace (none once it is undone).
fn leftovers(c: &Cluster, i: usize) -> Result<Vec<String>> {
    let ns = &c.host(i).ns;
    let rules = ns.ip(&["rule", "show"])?;
    let links = ns.ip(&["-o", "link", "show"])?;
    let rules = rules.lines().filter(|l| l.starts_with("100:") || l.starts_with("101:"));
    let devices = links.lines().filter(|l| l.contains(": skd"));
    Ok(rules.chain(devices).map(str::to_owned).collect())
}

#[test]
fn the_relay_delays_and_drops_datagrams_as_asked_and_leaves_nothing_behind() -> Result<()> {
    if !skep_tests::require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    let stop = AtomicBool::new(false);
    let serve = echo_server(&c, &stop)?;
    std::thread::scope(|s| -> Result<()> {
        s.spawn(serve);
        let result = (|| -> Result<()> {
            let (direct, lost) = summarize("direct", &echo_round_trips(&c, 50)?);
            assert_eq!(lost, 0, "datagrams lost between two hosts on one bridge");

            // 50 ± 20 ms each way, no loss: nothing lost, nothing back before 2 × 30 ms
            let both = Delay::both_ways(Duration::from_millis(50), Duration::from_millis(20));
            let link = c.delay_udp_port(0, 1, ECHO_PORT, both)?;
            let rtt = echo_round_trips(&c, 200)?;
            eprintln!("{:?}", link.stats());
            drop(link);
            let (median, lost) = summarize("50 ± 20 ms both ways", &rtt);
            assert_eq!(lost, 0, "datagrams lost with no loss asked");
            let fastest = rtt.iter().flatten().min().context("no answer")?;
            assert!(*fastest >= Duration::from_millis(60), "an answer after {fastest:?}, before twice the least delay");
            assert!(median < Duration::from_millis(400), "median round trip {median:?}, for 2 × 50 ms asked");

            // the first host's datagrams only, 50 ± 20 ms and 10 % loss: about 20 of 200 lost
            let one_way = both.with_loss(10).one_way(Direction::AToB);
            let link = c.delay_udp_port(0, 1, ECHO_PORT, one_way)?;
            let rtt = echo_round_trips(&c, 200)?;
            drop(link);
            let (median, lost) = summarize("50 ± 20 ms and 10 % loss one way", &rtt);
            assert!((5..=50).contains(&lost), "{lost} of 200 lost at 10 % loss");
            let fastest = rtt.iter().flatten().min().context("no answer")?;
            assert!(*fastest >= Duration::from_millis(30), "an answer after {fastest:?}, before the least delay");
            assert!(median < Duration::from_millis(300), "median round trip {median:?}, for 50 ms asked");

            // gone: no rule, no device, and the echo is as direct as at the start
            for i in 0..2 {
                let left = leftovers(&c, i)?;
                assert!(left.is_empty(), "left in {}: {left:?}", c.host(i).name);
            }
            let (after, lost) = summarize("after", &echo_round_trips(&c, 50)?);
            assert_eq!(lost, 0);
            assert!(after < Duration::from_millis(25), "median round trip {after:?} after the delay, {direct:?} before");
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    c.pass();
    Ok(())
}

/// Count, median and 99th percentile of sorted `took`, as text.
fn latencies(took: &[Duration]) -> String {
    let at = |p: usize| took.get((took.len().saturating_sub(1) * p).div_ceil(100)).copied().unwrap_or_default();
    format!("{} (median {:?}, p99 {:?})", took.len(), at(50), at(99))
}

/// What the writes invoked in `from..to` did, through `i` or through all managers (`None`): the acknowledged ones and
/// those refused as out of sequence (another client's write to the node came first: an answer, and no effect).
fn writes(h: &Registers, i: Option<usize>, from: Duration, to: Duration) -> String {
    let (acked, refused) = h.write_latencies(i, from, to);
    format!("{} acknowledged, {} refused as out of sequence", latencies(&acked), latencies(&refused))
}

/// Delays links with `delay_links` for [`HOLD`] under clients on every manager, prints what the writes did meanwhile
/// against before, and settles.
fn delayed<'c>(
    c: &'c Cluster,
    h: &Registers,
    delay_links: impl FnOnce() -> Result<Vec<DelayedLink<'c>>>,
) -> Result<()> {
    let (from, to) = h.during(c, &ALL, HOLD, delay_links)?;
    eprintln!("writes before the delay: {}", writes(h, None, Duration::ZERO, from.min(BEFORE)));
    eprintln!("writes while delayed: {}", writes(h, None, from, to));
    for i in ALL {
        eprintln!("  through {}: {}", c.host(i).name, writes(h, Some(i), from, to));
    }
    h.settle(c, &ALL, to, RECOVER_BOUND)
}

#[test]
fn fifty_ms_of_jitter_and_ten_percent_loss_between_all_managers_loses_no_write() -> Result<()> {
    managers(3, |c, h, _| {
        let delay = Delay::both_ways(Duration::from_millis(50), Duration::from_millis(20)).with_loss(10);
        delayed(c, h, || [(0, 1), (1, 2), (0, 2)].into_iter().map(|(a, b)| c.delay_link(a, b, delay)).collect())
    })
}

#[test]
fn the_leaders_datagrams_delayed_and_lost_on_the_way_to_the_followers_lose_no_write() -> Result<()> {
    managers(3, |c, h, leader| {
        let delay = Delay::both_ways(Duration::from_millis(50), Duration::from_millis(20)).with_loss(10);
        let followers = ALL.into_iter().filter(|&i| i != leader);
        delayed(c, h, || followers.map(|f| c.delay_link(leader, f, delay.one_way(Direction::AToB))).collect())
    })
}

#[test]
fn a_follower_200_ms_away_from_the_others_loses_no_write() -> Result<()> {
    managers(3, |c, h, leader| {
        let far = (leader + 1) % 3;
        let delay = Delay::both_ways(Duration::from_millis(200), Duration::ZERO);
        let others = ALL.into_iter().filter(|&i| i != far);
        delayed(c, h, || others.map(|o| c.delay_link(far, o, delay)).collect())
    })
}

/// The leader 200 ms from both followers: no AppendEntries answer comes back within openraft's 250 ms bound, so nothing
/// commits while it lasts and nobody campaigns either, since the followers keep hearing the leader (docs/design/
/// faults.md, finding 4). Asserted is what every case asserts, after the heal; the writes meanwhile are printed.
#[test]
fn the_leader_200_ms_from_both_followers_loses_no_write() -> Result<()> {
    managers(3, |c, h, leader| {
        let delay = Delay::both_ways(Duration::from_millis(200), Duration::ZERO);
        let followers = ALL.into_iter().filter(|&i| i != leader);
        delayed(c, h, || followers.map(|f| c.delay_link(leader, f, delay)).collect())
    })
}
