//! Membership changes while a manager is down or cut off: a worker promoted and a manager joining while a follower
//! is killed, a follower demoted and a manager leaving while another is cut off, the leader demoted while a follower
//! is down, a follower back from down whose leader was promoted meanwhile (finding 7 of docs/design/faults.md), and
//! a down manager removed. Clients read and write registers through the managers all along
//! (`skep_tests::registers`).
//!
//! Asserted in every case: the change takes effect, or is refused with Docker's text where Docker refuses it (a
//! removal that would leave the other Raft members without a reachable quorum); writes go on being acknowledged
//! while the change runs whenever a quorum is up; after the fault is undone, a write through every manager is
//! acknowledged within [`RECOVER_BOUND`], all name one leader and the whole history is linearizable (no acknowledged
//! write lost); and every manager that is up agrees on the membership: `node ls` on each lists the same managers with
//! the same Manager Status (the up ones reachable, one of them leader, the others unreachable), and the Raft voters
//! each knows (`skep_raft_voter` in its `/metrics`) are exactly those managers.
//!
//! Each case prints `figures: …`: how long the change took to take effect and how many writes were acknowledged
//! while it ran.

use anyhow::{ensure, Context as _, Result};
use skep_tests::json::{find_by, str_at};
use skep_tests::registers::{Registers, BEFORE};
use skep_tests::faults::Link;
use skep_tests::{require_root_and_netns, wait_until, wait_until_every, Cluster, Role};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bound on a write through a manager being acknowledged after the fault was undone.
const RECOVER_BOUND: Duration = Duration::from_secs(30);
/// Bound on a membership change taking effect, and on every manager agreeing on it.
const CHANGE_BOUND: Duration = Duration::from_secs(30);
/// Clients go on this long after a change took effect.
const AFTER_CHANGE: Duration = Duration::from_secs(2);
/// Every daemon serves `/metrics` on this port of its host's address.
const METRICS_PORT: u16 = 9323;

/// `hosts` hosts whose daemons serve `/metrics`; `managers` managers and `workers` workers formed (the rest not
/// started).
fn cluster(hosts: usize, managers: usize, workers: usize) -> Result<Cluster> {
    let mut c = Cluster::new(hosts)?;
    for i in 0..hosts {
        let addr = format!("{}:{METRICS_PORT}", c.host(i).ip);
        c.set_daemon_extras(i, &["--metrics-addr", &addr], &[])?;
    }
    c.form(managers, workers)?;
    Ok(c)
}

/// A case's start: [`cluster`], an empty history over host 0's node labels, and the leader's host; `None` without
/// namespaces (the case is skipped).
fn start(hosts: usize, managers: usize, workers: usize) -> Result<Option<(Cluster, Registers, usize)>> {
    if !require_root_and_netns() {
        return Ok(None);
    }
    let mut c = cluster(hosts, managers, workers)?;
    let h = Registers::new(&c.node_id(0)?);
    let leader = leader_host(&mut c, 0)?;
    eprintln!("leader: {}", c.host(leader).name);
    Ok(Some((c, h, leader)))
}

/// A case's end: the settle through the managers that are up (see `skep_tests::registers`), they agree on the
/// membership (`managers`, see [`membership_agrees`]), then the test is marked passed.
fn end(mut c: Cluster, h: &Registers, up: &[usize], managers: &BTreeSet<String>) -> Result<()> {
    h.settle(&c, up, h.now(), RECOVER_BOUND)?;
    membership_agrees(&c, up, managers)?;
    c.pass();
    Ok(())
}

/// The host of the leader `node ls` on host `via` names.
fn leader_host(c: &mut Cluster, via: usize) -> Result<usize> {
    let id = c.leader_id(via)?;
    c.host_of(&id).context("the leader's host")
}

/// The node IDs of the Raft voters host `i`'s manager knows (`skep_raft_voter{node="…"}` in its `/metrics`).
fn voters(c: &Cluster, i: usize) -> Result<BTreeSet<String>> {
    let url = format!("http://{}:{METRICS_PORT}/metrics", c.host(i).ip);
    let out = c.host(i).ns.exec("curl", &["-sS", "-m", "5", &url], Duration::from_secs(10))?;
    let text = out.ok().with_context(|| format!("scraping {}", c.host(i).name))?;
    let voter = |l: &str| Some(l.strip_prefix("skep_raft_voter{node=\"")?.split_once('"')?.0.to_string());
    Ok(text.lines().filter_map(voter).collect())
}

/// Node IDs of hosts `hosts`.
fn ids(c: &Cluster, hosts: &[usize]) -> Result<BTreeSet<String>> {
    hosts.iter().map(|&i| c.node_id(i)).collect()
}

/// Waits until every host of `up` (all running managers) agrees on the membership: `node ls` on each lists exactly
/// `managers` as managers, those of `up` reachable and exactly one of them leader, the others unreachable, all hosts
/// the same listing; and the Raft voters each knows are `managers`. Returns how long that took.
fn membership_agrees(c: &Cluster, up: &[usize], managers: &BTreeSet<String>) -> Result<Duration> {
    let start = Instant::now();
    let up_ids = ids(c, up)?;
    wait_until("every manager to agree on the membership", CHANGE_BOUND, || -> Result<()> {
        let mut seen = Vec::new();
        for &i in up {
            let nodes = c.node_ls(i)?;
            let listed: Vec<(String, String)> = nodes
                .iter()
                .filter_map(|n| Some((str_at(n, "ID")?.to_string(), str_at(n, "ManagerStatus")?.to_string())))
                .filter(|(_, status)| !status.is_empty())
                .collect();
            let names: BTreeSet<String> = listed.iter().map(|(id, _)| id.clone()).collect();
            ensure!(&names == managers, "{} lists managers {names:?}, not {managers:?}", c.host(i).name);
            for (id, status) in &listed {
                let want: &[&str] = if up_ids.contains(id) { &["Reachable", "Leader"] } else { &["Unreachable"] };
                ensure!(want.contains(&status.as_str()), "{} lists {id} as {status}", c.host(i).name);
            }
            let leaders = listed.iter().filter(|(_, s)| s == "Leader").count();
            ensure!(leaders == 1, "{} lists {leaders} leaders: {listed:?}", c.host(i).name);
            let v = voters(c, i)?;
            ensure!(&v == managers, "{}'s raft voters are {v:?}, the managers {managers:?}", c.host(i).name);
            seen.push(listed);
        }
        ensure!(seen.windows(2).all(|w| w[0] == w[1]), "the managers' listings differ: {seen:?}");
        Ok(())
    })?;
    let took = start.elapsed();
    eprintln!("membership agreed on by {} managers ({} listed) after {took:?}", up.len(), managers.len());
    Ok(took)
}

/// Clients on `hosts` from [`BEFORE`] before `change` until [`AFTER_CHANGE`] after it returned. Returns what it
/// returned and the writes acknowledged through `hosts` that were invoked and answered while it ran.
fn while_writing<T>(
    c: &Cluster,
    h: &Registers,
    hosts: &[usize],
    change: impl FnOnce() -> Result<T>,
) -> Result<(T, usize)> {
    let stop = AtomicBool::new(false);
    let (r, from, to) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                h.clients(c, hosts, Duration::from_secs(1), "w");
            }
        });
        std::thread::sleep(BEFORE);
        let from = h.now();
        let r = change();
        let to = h.now();
        if r.is_ok() {
            std::thread::sleep(AFTER_CHANGE);
        }
        stop.store(true, Ordering::SeqCst);
        (r, from, to)
    });
    let writes = hosts.iter().map(|&i| h.acknowledged_writes_through(i, from, to).len()).sum();
    Ok((r?, writes))
}

/// Waits until `node ls` on host `via` lists node `id` as a reachable manager and its Raft counts it a voter.
fn becomes_voter(c: &Cluster, via: usize, id: &str) -> Result<()> {
    wait_until(&format!("{id} a reachable manager and a voter"), CHANGE_BOUND, || -> Result<()> {
        let status = manager_status(c, via, id)?;
        ensure!(status == "Reachable", "listed as {status:?}");
        ensure!(voters(c, via)?.contains(id), "not a voter yet");
        Ok(())
    })
}

/// `docker <args>` (a node update: promote, demote) through host `via`, again while it is refused as out of
/// sequence: the clients write the labels of host 0's node all along, so a read-modify-write of that node by the CLI
/// can meet a newer version, as it would in Docker.
fn node_update(c: &Cluster, via: usize, args: &[&str]) -> Result<skep_tests::Output> {
    for _ in 0..20 {
        let out = c.docker(via, args)?;
        if !out.stderr.contains("update out of sequence") {
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("`docker {}` refused as out of sequence 20 times", args.join(" "))
}

/// Prints one case's figures.
fn figures(case: &str, took: Duration, writes: usize) {
    eprintln!("figures: {case}: took effect after {:.2}s, {writes} writes acknowledged meanwhile", took.as_secs_f64());
}

/// The `ManagerStatus` `node ls` on host `via` shows for node `id` ("" for a worker).
fn manager_status(c: &Cluster, via: usize, id: &str) -> Result<String> {
    let nodes = c.node_ls(via)?;
    let n = find_by(&nodes, "ID", id).with_context(|| format!("{id} not listed"))?;
    Ok(str_at(n, "ManagerStatus").unwrap_or("").to_string())
}

/// A worker promoted while a follower is down becomes a voter, and the follower, restarted, catches up.
#[test]
fn a_worker_promoted_while_a_follower_is_down_becomes_a_voter() -> Result<()> {
    let Some((mut c, h, leader)) = start(4, 3, 1)? else { return Ok(()) };
    let (down, other, worker) = ((leader + 1) % 3, (leader + 2) % 3, 3);
    let wid = c.node_id(worker)?;
    c.kill(down)?;
    let name = |i: usize| c.host(i).name.clone();
    eprintln!("killed follower {}; promoting {} ({wid}) through {}", name(down), name(worker), name(other));
    let (took, writes) = while_writing(&c, &h, &[leader, other], || {
        let start = Instant::now();
        node_update(&c, other, &["node", "promote", &wid])?.ok()?;
        becomes_voter(&c, leader, &wid)?;
        Ok(start.elapsed())
    })?;
    figures("promotion with a follower down", took, writes);
    ensure!(writes > 0, "no write acknowledged while the worker was promoted with 2 of 3 managers up");
    c.start(down)?;
    let all = [0, 1, 2, 3];
    let managers = ids(&c, &all)?;
    end(c, &h, &all, &managers)
}

#[test]
fn a_manager_joins_while_a_follower_is_down() -> Result<()> {
    let Some((mut c, h, leader)) = start(4, 3, 0)? else { return Ok(()) };
    c.start(3)?;
    let (down, other, joiner) = ((leader + 1) % 3, (leader + 2) % 3, 3);
    let managers_before = ids(&c, &[0, 1, 2])?;
    let token = c.join_token(leader, Role::Manager)?;
    c.kill(down)?;
    let name = |i: usize| c.host(i).name.clone();
    eprintln!("killed follower {}; {} joins as a manager through {}", name(down), name(joiner), name(other));
    let (took, writes) = while_writing(&c, &h, &[leader, other], || {
        let start = Instant::now();
        c.join(joiner, other, &token)?.ok()?;
        let jid = c.node_id(joiner)?;
        becomes_voter(&c, leader, &jid)?;
        Ok(start.elapsed())
    })?;
    figures("manager join with a follower down", took, writes);
    ensure!(writes > 0, "no write acknowledged while a manager joined with 2 of 3 managers up");
    // four managers, three up: a quorum, with clients through the new one too
    let up = [leader, other, joiner];
    h.settle(&c, &up, h.now(), RECOVER_BOUND)?;
    let mut managers = managers_before;
    managers.insert(c.node_id(joiner)?);
    membership_agrees(&c, &up, &managers)?;
    c.start(down)?;
    end(c, &h, &[0, 1, 2, 3], &managers)
}

#[test]
fn demoting_a_follower_while_the_other_is_cut_off_is_refused_as_a_loss_of_quorum() -> Result<()> {
    let Some((c, h, leader)) = start(3, 3, 0)? else { return Ok(()) };
    let (cut, demoted) = ((leader + 1) % 3, (leader + 2) % 3);
    let (cid, did) = (c.node_id(cut)?, c.node_id(demoted)?);
    let all = [0, 1, 2];
    eprintln!("cutting {} off; demoting {} through {}", c.host(cut).name, c.host(demoted).name, c.host(leader).name);
    let (_, writes) = while_writing(&c, &h, &all, || {
        c.isolate_from(cut, &all)?;
        // long enough for the leader's Raft to miss the cut-off follower's answers (1.5 s), and in most runs before
        // the nodes' heartbeats mark it down (3 s without one): the leader's Raft view has to refuse it then
        std::thread::sleep(Duration::from_millis(1600));
        let msg = node_update(&c, leader, &["node", "demote", &did])?.refused()?;
        let status = manager_status(&c, leader, &cid)?;
        eprintln!("demotion refused: {}", msg.trim());
        eprintln!("the cut-off follower is listed as {status:?} right after the refusal");
        // which check refused: the leader's Raft view logs its refusal, the API's check by the nodes' heartbeats not
        let by_raft = c.log_contains(leader, "not removing a voter");
        let by = if by_raft { "the leader's Raft view" } else { "the nodes' heartbeats (the API's check)" };
        eprintln!("refused by {by}");
        ensure!(msg.contains("would result in a loss of quorum"), "refused for another reason: {msg}");
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    })?;
    c.heal_links()?;
    let healed = h.now();
    eprintln!("figures: demotion with a follower cut off: refused, {writes} writes acknowledged meanwhile");
    ensure!(writes > 0, "no write acknowledged through the two connected managers after the refused demotion");
    ensure!(!manager_status(&c, leader, &did)?.is_empty(), "the refused demotion changed the role");
    h.settle(&c, &all, healed, RECOVER_BOUND)?;
    membership_agrees(&c, &all, &ids(&c, &all)?)?;
    // healed, the same demotion is what Docker allows: done, and the voters follow
    let start = Instant::now();
    let demote = || node_update(&c, leader, &["node", "demote", &did])?.ok().map(drop);
    wait_until("the demotion accepted after the heal", CHANGE_BOUND, demote)?;
    let rest = [leader, cut];
    let managers = ids(&c, &rest)?;
    membership_agrees(&c, &rest, &managers)?;
    figures("demotion after the heal", start.elapsed(), 0);
    end(c, &h, &rest, &managers)
}

#[test]
fn a_manager_leaving_while_another_is_cut_off_needs_force_and_is_cleaned_up_after_the_heal() -> Result<()> {
    let Some((c, h, leader)) = start(3, 3, 0)? else { return Ok(()) };
    let (cut, leaving) = ((leader + 1) % 3, (leader + 2) % 3);
    let lid = c.node_id(leaving)?;
    let all = [0, 1, 2];
    eprintln!("cutting {} off; {} leaves the swarm", c.host(cut).name, c.host(leaving).name);
    let mut left_at = Duration::ZERO;
    let (_, writes) = while_writing(&c, &h, &[leader, cut], || {
        c.isolate_from(cut, &all)?;
        std::thread::sleep(Duration::from_secs(2));
        // as Docker: a manager leaves only with --force, and is told what it costs
        let msg = c.docker(leaving, &["swarm", "leave"])?.refused()?;
        eprintln!("leave without --force refused: {}", msg.trim());
        ensure!(msg.contains("participating as a manager") && msg.contains("--force"), "{msg}");
        c.docker(leaving, &["swarm", "leave", "--force"])?.ok()?;
        left_at = h.now();
        // the leader alone of three voters (one cut off, one gone) commits nothing
        std::thread::sleep(Duration::from_secs(5));
        Ok(())
    })?;
    c.heal_links()?;
    let healed = h.now();
    let without_quorum = h.acknowledged_writes_through(leader, left_at + Duration::from_secs(1), healed);
    let after = without_quorum.len();
    eprintln!("figures: forced leave, a follower cut off: {writes} writes acknowledged while it ran, {after} after");
    ensure!(without_quorum.is_empty(), "writes acknowledged by one manager of three: {without_quorum:?}");
    h.settle(&c, &[leader, cut], healed, RECOVER_BOUND)?;
    // as Docker leaves it: still a member, listed unreachable, until demoted and removed
    let everyone: BTreeSet<String> = ids(&c, &[leader, cut])?.into_iter().chain([lid.clone()]).collect();
    membership_agrees(&c, &[leader, cut], &everyone)?;
    let start = Instant::now();
    let demote = || node_update(&c, leader, &["node", "demote", &lid])?.ok().map(drop);
    wait_until("the node that left demoted", CHANGE_BOUND, demote)?;
    let rest = [leader, cut];
    membership_agrees(&c, &rest, &ids(&c, &rest)?)?;
    wait_until("the node that left removed", CHANGE_BOUND, || c.docker(leader, &["node", "rm", &lid])?.ok().map(drop))?;
    c.wait_nodes(leader, CHANGE_BOUND, "two nodes left", |n| n.len() == 2)?;
    figures("demotion and removal of the manager that left", start.elapsed(), 0);
    let managers = ids(&c, &rest)?;
    end(c, &h, &rest, &managers)
}

#[test]
fn the_leader_demoted_while_a_follower_is_down_hands_over_and_the_down_one_is_removed() -> Result<()> {
    let Some((mut c, h, leader)) = start(4, 4, 0)? else { return Ok(()) };
    let (down, o1, o2) = ((leader + 1) % 4, (leader + 2) % 4, (leader + 3) % 4);
    let (lid, did) = (c.node_id(leader)?, c.node_id(down)?);
    c.kill(down)?;
    eprintln!("killed {}; demoting the leader {} through {}", c.host(down).name, c.host(leader).name, c.host(o1).name);
    // clients only through the managers that stay: the demoted one's API refuses everything once it is a worker,
    // and hundreds of writes of unknown outcome would make the linearizability check search for hours
    let (took, writes) = while_writing(&c, &h, &[o1, o2], || {
        let start = Instant::now();
        node_update(&c, o1, &["node", "demote", &lid])?.ok()?;
        wait_until("another leader, the old one a worker and out of the voters", CHANGE_BOUND, || -> Result<()> {
            ensure!(manager_status(&c, o1, &lid)?.is_empty(), "still a manager");
            let new = c.leader_id(o1)?;
            ensure!(new != lid, "still the leader");
            ensure!(!voters(&c, o1)?.contains(&lid), "still a voter");
            Ok(())
        })?;
        Ok(start.elapsed())
    })?;
    figures("leader demotion with a follower down", took, writes);
    ensure!(writes > 0, "no write acknowledged while the leader was demoted with 3 of 4 managers up");
    // the down manager: removed only once demoted (Docker's rule), which its absence does not prevent
    let msg = c.docker(o1, &["node", "rm", &did])?.refused()?;
    ensure!(msg.contains("must be demoted to worker before removal"), "{msg}");
    let start = Instant::now();
    node_update(&c, o1, &["node", "demote", &did])?.ok()?;
    let rest = [o1, o2];
    membership_agrees(&c, &rest, &ids(&c, &rest)?)?;
    wait_until("the down manager removed", CHANGE_BOUND, || c.docker(o1, &["node", "rm", &did])?.ok().map(drop))?;
    c.wait_nodes(o1, CHANGE_BOUND, "three nodes left", |n| n.len() == 3 && find_by(n, "ID", &did).is_none())?;
    figures("demotion and removal of the down manager", start.elapsed(), 0);
    let managers = ids(&c, &rest)?;
    end(c, &h, &rest, &managers)
}

/// Finding 7 forced (docs/design/faults.md): a follower is down while a worker is promoted, and the promoted worker
/// then leads. The leader is demoted and, once it hands over, cut off from the other follower: of the four
/// voters, the cut-off follower can reach only the promoted worker (two of four, no majority) and the down one
/// cannot campaign, so the promoted worker is the only one that can win the election after the hand-over. Restarted,
/// the down follower knows a membership without the new leader; it has to take that leader's entries and serve
/// writes (before the fix it refused them and campaigned for ever).
#[test]
fn a_follower_back_from_down_follows_a_leader_promoted_while_it_was_down() -> Result<()> {
    let Some((mut c, h, leader)) = start(4, 3, 1)? else { return Ok(()) };
    let (down, other, worker) = ((leader + 1) % 3, (leader + 2) % 3, 3);
    let (lid, wid) = (c.node_id(leader)?, c.node_id(worker)?);
    let name = |i: usize| c.host(i).name.clone();
    let (n_down, n_other, n_worker, n_leader) = (name(down), name(other), name(worker), name(leader));
    c.kill(down)?;
    eprintln!("killed follower {n_down}; promoting {n_worker} ({wid}) through {n_other}");
    node_update(&c, other, &["node", "promote", &wid])?.ok()?;
    becomes_voter(&c, leader, &wid)?;
    eprintln!("demoting the leader {n_leader} through {n_worker}, then cutting {n_leader} off from {n_other}");
    // clients through the promoted worker only: writes through the cut-off follower would end unknown for seconds
    let (took, writes) = while_writing(&c, &h, &[worker], || {
        let start = Instant::now();
        node_update(&c, worker, &["node", "demote", &lid])?.ok()?;
        // once the leader has begun to hand over (cut off before, it could not confirm its leadership to act on its
        // demotion, and nobody could be elected: seen once under load), and before anyone can be elected: the
        // hand-over waits out the followers' leases, over a second
        wait_until_every("the leader handing over", CHANGE_BOUND, Duration::from_millis(20), || -> Result<()> {
            ensure!(c.log_contains(leader, "handing leadership over"), "not yet");
            Ok(())
        })?;
        c.cut_link(leader, other, Link::Cut)?;
        wait_until("the promoted worker leading, the old leader out of the voters", CHANGE_BOUND, || -> Result<()> {
            let now = c.leader_id(worker)?;
            ensure!(now == wid, "{now} leads");
            ensure!(!voters(&c, worker)?.contains(&lid), "the old leader is still a voter");
            Ok(())
        })?;
        Ok(start.elapsed())
    })?;
    figures("the promoted worker leading after the leader's demotion", took, writes);
    ensure!(writes > 0, "no write acknowledged through the promoted worker while it took over");
    c.heal_links()?;
    eprintln!("{n_worker} leads; restarting {n_down}, whose membership does not list it");
    c.start(down)?;
    let up = [down, other, worker];
    let managers = ids(&c, &up)?;
    h.settle(&c, &up, h.now(), RECOVER_BOUND)?;
    membership_agrees(&c, &up, &managers)?;
    let now = c.leader_id(down)?;
    ensure!(now == wid, "{now} took over from the promoted worker before {n_down} caught up: the case did not test it");
    end(c, &h, &up, &managers)
}
