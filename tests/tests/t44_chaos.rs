//! Chaos: random faults from the fault suite (t40–t43), one after another, on three managers while clients read and
//! write through every manager; at the end the faults are undone and `skep_tests::registers` checks what every fault
//! case checks (a write through every manager acknowledged within a bound, one leader, a linearizable history with
//! final reads, so no acknowledged write lost).
//!
//! Off unless asked for, since it runs for minutes: env `SKEP_CHAOS=short` (about a minute) or `SKEP_CHAOS=<minutes>`;
//! `SKEP_CHAOS_SEED=<u64>` replays a run (the seed is printed first, and each fault as it is applied). Without
//! `SKEP_CHAOS` the test prints how to run it and passes.

use anyhow::{Context as _, Result};
use skep_tests::delay::Delay;
use skep_tests::faults::Link;
use skep_tests::invariants::ServiceWatch;
use skep_tests::registers::Registers;
use skep_tests::rng::Rng;
use skep_tests::{require_root_and_netns, Cluster};
use std::time::{Duration, Instant};

/// Bound on a write through a manager being acknowledged after the last fault healed.
const RECOVER_BOUND: Duration = Duration::from_secs(45);
/// Clients run this long between two faults.
const CALM: Duration = Duration::from_secs(2);
/// Longest hold of one fault.
const MAX_HOLD_SECS: u64 = 15;
const ALL: [usize; 3] = [0, 1, 2];

/// One fault of a run, on a manager chosen by role.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `SIGSTOP`, then `SIGCONT`.
    Freeze,
    /// Cut off from both other managers.
    Isolate,
    /// Its link to one other manager cut and healed every second.
    Flap,
    /// 10 % loss on every link between managers.
    Loss,
    /// Its packets to one other manager dropped, not the other way.
    OneWay,
    /// `SIGKILL`, then started again on its data root.
    Kill,
    /// Its links to both other managers delayed 50 ± 20 ms each way, with 10 % loss (seeded from the run's generator).
    Delay,
}

const FAULTS: [Fault; 7] =
    [Fault::Freeze, Fault::Isolate, Fault::Flap, Fault::Loss, Fault::OneWay, Fault::Kill, Fault::Delay];

/// How long the run lasts, from `SKEP_CHAOS`; `None` when chaos is off.
fn duration() -> Result<Option<Duration>> {
    match std::env::var("SKEP_CHAOS") {
        Err(_) => Ok(None),
        Ok(v) if v == "short" => Ok(Some(Duration::from_secs(60))),
        Ok(v) => {
            let minutes: u64 = v.parse().with_context(|| format!("SKEP_CHAOS={v}: `short` or a number of minutes"))?;
            anyhow::ensure!((1..=24 * 60).contains(&minutes), "SKEP_CHAOS={minutes}: 1 to 1440 minutes");
            Ok(Some(Duration::from_secs(minutes * 60)))
        }
    }
}

/// Applies `fault` on host `at` for `hold` while clients run on `ALL` (on the survivors while a manager is killed).
/// `seed` seeds the delays and losses of [`Fault::Delay`].
fn apply(c: &mut Cluster, h: &Registers, fault: Fault, at: usize, hold: Duration, tag: &str, seed: u64) -> Result<()> {
    if let Fault::Kill = fault {
        c.kill(at)?;
        let survivors: Vec<usize> = ALL.iter().copied().filter(|&i| i != at).collect();
        h.clients(c, &survivors, hold, tag);
        return c.start(at);
    }
    let c = &*c;
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| h.clients(c, &ALL, hold, tag));
        let applied = match fault {
            Fault::Freeze => c.pause(at).map(|mut p| {
                std::thread::sleep(hold);
                p.resume();
            }),
            Fault::Isolate => c.isolate_from(at, &ALL).map(|()| std::thread::sleep(hold)),
            Fault::Flap => (|| {
                let end = Instant::now() + hold;
                while Instant::now() < end {
                    c.cut_link(at, (at + 1) % 3, Link::Cut)?;
                    std::thread::sleep(Duration::from_secs(1));
                    c.heal_links()?;
                    std::thread::sleep(Duration::from_secs(1));
                }
                Ok(())
            })(),
            Fault::Loss => [(0, 1), (1, 2), (0, 2)]
                .into_iter()
                .try_for_each(|(a, b)| c.cut_link(a, b, Link::Lossy(10)))
                .map(|()| std::thread::sleep(hold)),
            Fault::OneWay => c.cut_one_way(at, (at + 1) % 3).map(|()| std::thread::sleep(hold)),
            Fault::Delay => (|| {
                let delay = Delay::both_ways(Duration::from_millis(50), Duration::from_millis(20)).with_loss(10);
                // the guards undo the delays when this closure returns, before the heal below
                let _one = c.delay_link(at, (at + 1) % 3, delay.seeded(seed))?;
                let _two = c.delay_link(at, (at + 2) % 3, delay.seeded(seed.wrapping_add(1)))?;
                std::thread::sleep(hold);
                Ok(())
            })(),
            Fault::Kill => unreachable!("handled above"),
        };
        let healed = c.heal_links();
        applied?;
        healed
    })
}

#[test]
fn random_faults_for_minutes_keep_the_history_linearizable() -> Result<()> {
    let Some(run_for) = duration()? else {
        eprintln!("chaos is off: SKEP_CHAOS=short (about a minute) or SKEP_CHAOS=<minutes>, SKEP_CHAOS_SEED=<u64> to replay");
        return Ok(());
    };
    if !require_root_and_netns() {
        return Ok(());
    }
    let seed = match std::env::var("SKEP_CHAOS_SEED") {
        Ok(s) => s.parse().with_context(|| format!("SKEP_CHAOS_SEED={s}: a u64"))?,
        Err(_) => Rng::clock_seed(),
    };
    eprintln!("chaos: seed {seed} for {run_for:?} (replay with SKEP_CHAOS_SEED={seed})");
    let mut rng = Rng::new(seed);
    let mut c = Cluster::new(4)?;
    c.form(3, 1)?;
    // a service on the worker (host 4) that the faults on the managers must leave as it is
    let watch = ServiceWatch::start(&c, &ALL, 3)?;
    let h = Registers::new(&c.node_id(0)?);
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < run_for {
        round += 1;
        let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
        let on_leader = rng.below(2) == 0;
        let hold = Duration::from_secs(1 + rng.below(MAX_HOLD_SECS));
        let any = ALL.into_iter().find(|&i| c.is_running(i)).context("a running manager")?;
        let leader = c.leader_id(any).ok().and_then(|id| c.host_of(&id));
        let at = match (leader, on_leader) {
            (Some(l), true) => l,
            (Some(l), false) => (l + 1 + rng.below(2) as usize) % 3,
            (None, _) => rng.below(3) as usize,
        };
        eprintln!("chaos round {round}: {fault:?} on {} ({}) for {hold:?}", c.host(at).name, if Some(at) == leader { "leader" } else { "follower" });
        let delay_seed = rng.next_u64();
        watch.sample(&c);
        apply(&mut c, &h, fault, at, hold, &format!("r{round}"), delay_seed)?;
        watch.sample(&c);
        h.clients(&c, &ALL, CALM, &format!("r{round}-calm"));
        watch.sample(&c);
    }
    let healed = h.now();
    h.settle(&c, &ALL, healed, RECOVER_BOUND)?;
    watch.check(&c)?;
    eprintln!("chaos: seed {seed}, {round} faults, history linearizable");
    c.pass();
    Ok(())
}
