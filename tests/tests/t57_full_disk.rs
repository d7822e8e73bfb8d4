//! A manager whose disk fills while clients read and write through every manager: a follower, and the leader.
//!
//! Every manager's Raft directory (`<data-root>/swarm/raft`) is moved onto a 32 MiB tmpfs once the swarm is formed
//! (`swarm init` and `join` remove and make the `swarm` directory, so a mount point cannot be there before): the
//! daemon is stopped, the directory copied onto the tmpfs mounted in its place, the daemon started again. The rest
//! of the data root, the daemon's log included, stays on the machine's disk, so that the operator's message can be
//! read. After formation the test fills one manager's tmpfs with a file until `ENOSPC`, holds it full
//! for [`FULL`], and deletes the file. Asserted: the manager says in its log that its disk is full (the operator's
//! message, `raft::space::NO_SPACE`), answers its API clients 503 with that message, and acknowledges no write
//! through it from then until space returns; the two
//! others go on acknowledging writes meanwhile (when the leader is the full one, after electing another); once space
//! returns the same daemon, never restarted, serves writes again within [`RECOVER_BOUND`], and the settle holds
//! (writes through every manager, one leader, final reads, the history linearizable: nothing acknowledged was lost).
//! Then the daemon is restarted: its log and snapshot open cleanly (no corruption verdict) and it serves writes again.

use anyhow::{Context as _, Result};
use skep_tests::registers::{Registers, AFTER, BEFORE};
use skep_tests::{wait_until, Cluster};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the disk stays full.
const FULL: Duration = Duration::from_secs(10);

/// Bound on a write through a manager being acknowledged after space returned.
const RECOVER_BOUND: Duration = Duration::from_secs(30);

/// What the full manager logs (part of `skep_manager::raft::space::NO_SPACE`).
const SAYS_FULL: &str = "no space left on device for its Raft log";

/// A small tmpfs mounted at a directory, unmounted on drop (lazily: the daemons' mount namespaces may still hold
/// their copies, which go with them).
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path) -> Result<SmallDisk> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs"]).arg(dir);
        skep_tests::run(cmd, Duration::from_secs(10))?.ok()?;
        Ok(SmallDisk { dir: dir.to_owned() })
    }

    /// Stop host `i`'s daemon, move its Raft directory onto a new small disk, start it again.
    fn move_raft_of(c: &mut Cluster, i: usize) -> Result<SmallDisk> {
        c.stop(i)?;
        let raft = c.host(i).dir.join("swarm/raft");
        let orig = raft.with_extension("orig");
        std::fs::rename(&raft, &orig)?;
        let disk = SmallDisk::mount(&raft)?;
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(orig.join(".")).arg(&raft);
        skep_tests::run(cp, Duration::from_secs(30))?.ok()?;
        std::fs::remove_dir_all(&orig)?;
        c.start(i)?;
        Ok(disk)
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Write a file until the filesystem refuses more (1 MiB, then 4 KiB at a time); returns its size.
    fn fill(&self) -> Result<u64> {
        let mut f = std::fs::File::create(self.filler())?;
        let mut size = 0;
        for chunk in [1 << 20, 4096] {
            let buf = vec![0x5a_u8; chunk];
            loop {
                match f.write_all(&buf).and_then(|()| f.flush()) {
                    Ok(()) => size += chunk as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => return Err(e).context("filling the small disk"),
                }
            }
        }
        Ok(size)
    }

    fn free(&self) -> Result<()> {
        Ok(std::fs::remove_file(self.filler())?)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Which manager's disk fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Leader,
    Follower,
}

fn says_full(c: &Cluster, i: usize) -> bool {
    c.log_contains(i, SAYS_FULL)
}

fn fill_while_writing(victim: Victim) -> Result<()> {
    if !skep_tests::require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(3, 0)?;
    // declared after the cluster, so unmounted before the cluster's drop removes the data
    let disks: Vec<SmallDisk> = (0..3).map(|i| SmallDisk::move_raft_of(&mut c, i)).collect::<Result<_>>()?;
    wait_until("every manager to name the same leader again", RECOVER_BOUND, || -> Result<()> {
        let leaders: Vec<String> = (0..3).map(|i| c.leader_id(i)).collect::<Result<_>>()?;
        anyhow::ensure!(leaders.windows(2).all(|w| w[0] == w[1]), "leaders seen: {leaders:?}");
        Ok(())
    })?;
    let h = Registers::new(&c.node_id(0)?);
    let leader = c.host_of(&c.leader_id(0)?).context("the leader's host")?;
    let at = match victim {
        Victim::Leader => leader,
        Victim::Follower => (leader + 1) % 3,
    };
    let others: Vec<usize> = (0..3).filter(|&i| i != at).collect();
    let victim_id = c.node_id(at)?;
    let starts = c.daemon(at).map(|d| d.starts());
    eprintln!("leader before the fault: {}; filling the disk of {} ({victim:?})", c.host(leader).name, c.host(at).name);
    let (full_at, freed_at) = std::thread::scope(|s| -> Result<_> {
        s.spawn(|| h.clients(&c, &[0, 1, 2], BEFORE + FULL + Duration::from_secs(20) + AFTER, "w"));
        std::thread::sleep(BEFORE);
        let filled = disks[at].fill()?;
        eprintln!("filled {} with {filled} bytes", c.host(at).name);
        wait_until(&format!("{} to say its disk is full", c.host(at).name), Duration::from_secs(20), || {
            says_full(&c, at).then_some(()).ok_or("not yet")
        })?;
        let full_at = h.now();
        wait_until("a request through the full manager to be answered 503, saying why", FULL, || -> Result<()> {
            let r = c.api(at, "GET", "/nodes", None)?;
            anyhow::ensure!(r.status == 503 && r.body.contains("disk is full"), "{} {}", r.status, r.body);
            Ok(())
        })?;
        if victim == Victim::Leader {
            wait_until("another leader", Duration::from_secs(20), || -> Result<()> {
                let now = c.leader_id(others[0])?;
                anyhow::ensure!(now != victim_id, "still {now}");
                Ok(())
            })?;
            eprintln!("leader while the old one's disk is full: {}", c.leader_id(others[0])?);
        }
        std::thread::sleep(FULL);
        let freed_at = h.now();
        disks[at].free()?;
        Ok((full_at, freed_at))
    })?;
    let through_victim = h.acknowledged_writes_through(at, full_at, freed_at);
    assert!(through_victim.is_empty(), "writes acknowledged through the full manager: {through_victim:?}");
    let through_others: Vec<String> =
        others.iter().flat_map(|&i| h.acknowledged_writes_through(i, full_at, freed_at)).collect();
    eprintln!("{} writes acknowledged through the others while the disk was full", through_others.len());
    assert!(!through_others.is_empty(), "the two managers with room acknowledged nothing");
    h.settle(&c, &[0, 1, 2], freed_at, RECOVER_BOUND)?;
    assert_eq!(c.daemon(at).map(|d| d.starts()), starts, "the full manager's daemon was restarted");

    // restarted on what it wrote through all that: it opens and serves again
    c.restart(at)?;
    let took = h.write_recovers(&c, at, RECOVER_BOUND, "restarted")?;
    eprintln!("a write through {} acknowledged {took:?} after its restart", c.host(at).name);
    let log = c.daemon(at).map(|d| d.log_tail(400)).unwrap_or_default();
    assert!(!log.contains("corrupt"), "the restarted manager found its store corrupt:\n{log}");
    h.assert_linearizable();
    drop(disks);
    c.pass();
    Ok(())
}

#[test]
fn a_follower_whose_disk_fills_acknowledges_nothing_and_comes_back_by_itself_when_space_returns() -> Result<()> {
    fill_while_writing(Victim::Follower)
}

#[test]
fn a_leader_whose_disk_fills_is_replaced_and_comes_back_by_itself_when_space_returns() -> Result<()> {
    fill_while_writing(Victim::Leader)
}
