//! Clients that read and write registers through the API of several managers while a test injects faults, and the
//! record of what they saw, checked by [`crate::linearizability`].
//!
//! The registers are the labels of one node. A write is Docker's read-modify-write: `GET /nodes/{id}` for the
//! version, then `POST /nodes/{id}/update?version=`. Refused as out of sequence, it took no effect and is not
//! recorded; answered 503 or not at all, it may or may not have taken effect and is recorded without a return. A read
//! records one operation per key. Every fault test (t29, t40–t44) drives these clients and ends with
//! [`Registers::verdict`]: the history must be linearizable, which also proves no acknowledged write was lost once the
//! test adds final reads through every manager after the fault healed.

use crate::invariants::ServiceWatch;
use crate::linearizability::{check, Model, Operation, Register, RegisterOp, RegisterOut, Verdict};
use crate::Cluster;
use anyhow::Context as _;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Registers (label keys).
pub const KEYS: [&str; 3] = ["k0", "k1", "k2"];
/// Operations per client and phase, at most (a phase also ends with its time).
pub const MAX_OPS: usize = 400;
/// [`Registers::during`]: clients write this long before the fault.
pub const BEFORE: Duration = Duration::from_secs(2);
/// [`Registers::during`]: clients go on this long after the heal.
pub const AFTER: Duration = Duration::from_secs(5);
/// [`managers`]: each client's pause after each operation, about 20 operations a second and client, so that its
/// [`MAX_OPS`] last from before a 15 s fault to after its heal. Unpaced, a client on a quick manager used them up in
/// about 5 s, and the first write after a heal was the settle's, seconds later (docs/design/faults.md, finding 5).
pub const PACE: Duration = Duration::from_millis(40);

/// One recorded operation: `(key, op)` in, the register's answer out.
pub type Op = Operation<(String, RegisterOp), RegisterOut>;

/// `(version, node)` read through host `i`.
fn read_node(c: &Cluster, i: usize, node: &str) -> anyhow::Result<(u64, Value)> {
    let v = c.api(i, "GET", &format!("/nodes/{node}"), None)?.json()?;
    Ok((v["Version"]["Index"].as_u64().context("no version")?, v))
}

/// A history under construction: the node whose labels are the registers, the clock, the operations.
#[derive(Debug)]
pub struct Registers {
    /// The node whose labels are the registers.
    node: String,
    /// Time zero of the history.
    t0: Instant,
    /// The operations recorded so far.
    ops: Mutex<Vec<Op>>,
    /// Writes refused as out of sequence, `(client, call, return)`: not in the history (they took no effect), but an
    /// answer, counted by [`Registers::write_latencies`].
    refused: Mutex<Vec<(usize, Duration, Duration)>>,
    /// Pause of each client after each operation, in microseconds (0 unless [`Registers::pace`] set it).
    pace_us: AtomicU64,
}

impl Registers {
    /// An empty history over the labels of node `node`.
    pub fn new(node: &str) -> Registers {
        let (ops, refused, pace_us) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()), AtomicU64::new(0));
        Registers { node: node.to_owned(), t0: Instant::now(), ops, refused, pace_us }
    }

    /// Makes each client pause `pause` after each operation from now on. Unpaced, a client on a quick manager uses its
    /// [`MAX_OPS`] within a few seconds and stops; paced, the clients spread them over a long fault.
    pub fn pace(&self, pause: Duration) {
        self.pace_us.store(pause.as_micros() as u64, Ordering::Relaxed);
    }

    /// Writes `value` to `key` through host `i` and records it. `Some(true)`: acknowledged; `Some(false)`: refused as
    /// out of sequence (no effect, not recorded); `None`: unknown outcome, or the version could not be read (nothing
    /// sent, not recorded).
    pub fn write(&self, c: &Cluster, i: usize, key: &str, value: &str) -> Option<bool> {
        let call = self.t0.elapsed();
        let node = &self.node;
        // a write whose read of the version failed sent nothing: no operation to record (recording it as one of
        // unknown outcome would only make the check longer: a manager refusing every request at once, as one whose
        // disk is full does, made t57's histories too long to check in time)
        let Ok((version, v)) = read_node(c, i, node) else { return None };
        let answer = (|| -> anyhow::Result<Option<bool>> {
            let mut spec = v["Spec"].clone();
            spec["Labels"][key] = Value::String(value.to_owned());
            let r = c.api(i, "POST", &format!("/nodes/{node}/update?version={version}"), Some(&spec.to_string()))?;
            Ok(match r.status {
                200 => Some(true),
                // refused against a newer version: it took no effect
                _ if r.body.contains("out of sequence") => Some(false),
                _ => None,
            })
        })()
        .unwrap_or(None);
        let (ret, output) = match answer {
            Some(true) => (Some(self.t0.elapsed()), Some(RegisterOut::Written)),
            Some(false) => {
                self.refused.lock().unwrap().push((i, call, self.t0.elapsed()));
                return Some(false);
            }
            // 503, a timeout, a lost connection: it may or may not have taken effect
            None => (None, None),
        };
        let input = (key.to_owned(), RegisterOp::Write(value.to_owned()));
        self.ops.lock().unwrap().push(Operation { client: i, call, ret, input, output });
        answer
    }

    /// Reads every key through host `i` and records the values; a failed read tells nothing and is not recorded.
    /// Returns whether it answered.
    pub fn read(&self, c: &Cluster, i: usize) -> bool {
        let call = self.t0.elapsed();
        let Ok((_, v)) = read_node(c, i, &self.node) else { return false };
        let ret = self.t0.elapsed();
        let mut ops = self.ops.lock().unwrap();
        for key in KEYS {
            let seen = v["Spec"]["Labels"][key].as_str().map(str::to_string);
            let output = Some(RegisterOut::Value(seen));
            ops.push(Operation { client: i, call, ret: Some(ret), input: (key.to_string(), RegisterOp::Read), output });
        }
        true
    }

    /// One client's loop on host `i` until `deadline` or [`MAX_OPS`] operations: alternating writes of unique values
    /// (tagged `tag`) and reads of every key.
    pub fn client(&self, c: &Cluster, i: usize, deadline: Instant, tag: &str) {
        for j in 0..MAX_OPS {
            if Instant::now() >= deadline {
                return;
            }
            if j % 2 == 0 {
                let key = KEYS[(j / 2 + i) % KEYS.len()];
                self.write(c, i, key, &format!("{tag}-c{i}-{j}"));
            } else {
                self.read(c, i);
            }
            std::thread::sleep(Duration::from_micros(self.pace_us.load(Ordering::Relaxed)));
        }
    }

    /// Clients on `hosts`, all at once, until `for_` passes or each made [`MAX_OPS`] operations.
    pub fn clients(&self, c: &Cluster, hosts: &[usize], for_: Duration, tag: &str) {
        let deadline = Instant::now() + for_;
        std::thread::scope(|s| {
            for &i in hosts {
                s.spawn(move || self.client(c, i, deadline, tag));
            }
        });
    }

    /// Clients on `hosts` for [`BEFORE`] + `hold` + [`AFTER`]; `fault` runs after [`BEFORE`], and `hold` after it
    /// returned, what it returned is dropped (a guard such as a [`crate::delay::DelayedLink`] undoes its fault then)
    /// and every link heals ([`Cluster::heal_links`]). Returns the fault's window `(from, to)` in the history's time:
    /// from when `fault` returned to just before the heal.
    pub fn during<G>(
        &self,
        c: &Cluster,
        hosts: &[usize],
        hold: Duration,
        fault: impl FnOnce() -> anyhow::Result<G>,
    ) -> anyhow::Result<(Duration, Duration)> {
        std::thread::scope(|s| {
            s.spawn(|| self.clients(c, hosts, BEFORE + hold + AFTER, "w"));
            std::thread::sleep(BEFORE);
            let fault = fault();
            let from = self.now();
            if fault.is_ok() {
                std::thread::sleep(hold);
            }
            let to = self.now();
            // the guard, if any, undoes its fault here
            let fault = fault.map(drop);
            let healed = c.heal_links();
            fault?;
            healed?;
            Ok((from, to))
        })
    }

    /// Writes through host `i` until one is acknowledged, for at most `bound`; returns how long it took. The
    /// attempts are recorded like every other write.
    pub fn write_recovers(&self, c: &Cluster, i: usize, bound: Duration, tag: &str) -> anyhow::Result<Duration> {
        let start = Instant::now();
        for n in 0.. {
            if self.write(c, i, KEYS[n % KEYS.len()], &format!("{tag}-recover-c{i}-{n}")) == Some(true) {
                return Ok(start.elapsed());
            }
            anyhow::ensure!(
                start.elapsed() < bound,
                "no write through {} acknowledged within {bound:?} after the fault healed ({} tries)",
                c.host(i).name,
                n + 1
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        unreachable!("the loop returns or fails")
    }

    /// What every fault test checks once its fault is undone: a write through each of `hosts` is acknowledged within
    /// `bound`; they all name one and the same leader; no term has two committed leaders in the daemons' logs
    /// ([`Cluster::terms_with_two_leaders`]; env `SKEP_TEST_ONE_LEADER_PER_TERM=0` only reports them); a read through each
    /// (recorded, so the check sees that no acknowledged write was lost); and the whole history is linearizable.
    ///
    /// `healed` is when the fault ended, in the history's time ([`Registers::now`]); the printed recovery times count
    /// from it.
    pub fn settle(&self, c: &Cluster, hosts: &[usize], healed: Duration, bound: Duration) -> anyhow::Result<()> {
        for &i in hosts {
            self.write_recovers(c, i, bound, "settle")?;
            let first = self.first_acknowledged_through(i, healed).map(|(call, ret)| (call - healed, ret - healed));
            eprintln!("first write through {} invoked and acknowledged after the heal: {first:?}", c.host(i).name);
        }
        crate::wait_until("every manager to name the same single leader", bound, || -> anyhow::Result<String> {
            let leaders: Vec<String> = hosts.iter().map(|&i| c.leader_id(i)).collect::<anyhow::Result<_>>()?;
            anyhow::ensure!(leaders.windows(2).all(|w| w[0] == w[1]), "leaders seen: {leaders:?}");
            Ok(leaders[0].clone())
        })
        .map(|leader| eprintln!("leader after the fault: {leader}"))?;
        let (two, terms) = c.terms_with_two_leaders();
        eprintln!("daemon logs name committed leaders in {terms} terms");
        if !two.is_empty() {
            // the vote gate grants one vote per term (docs/design/faults.md, finding 3)
            let msg = format!("terms with more than one committed leader (term, raft ids): {two:?}");
            anyhow::ensure!(std::env::var("SKEP_TEST_ONE_LEADER_PER_TERM").as_deref() == Ok("0"), "{msg}");
            eprintln!("NOTE: {msg}");
        }
        for &i in hosts {
            crate::wait_until(&format!("a read through {}", c.host(i).name), bound, || {
                self.read(c, i).then_some(()).ok_or("no answer")
            })?;
        }
        self.assert_linearizable();
        Ok(())
    }

    /// `(call, return)` of the first write through host `i` invoked at or after `from` and acknowledged.
    pub fn first_acknowledged_through(&self, i: usize, from: Duration) -> Option<(Duration, Duration)> {
        let ops = self.ops.lock().unwrap();
        let acked = ops.iter().filter(|o| o.client == i && o.call >= from && matches!(o.output, Some(RegisterOut::Written)));
        acked.filter_map(|o| Some((o.call, o.ret?))).min()
    }

    /// Operations through host `i` invoked at or after `from` and returned by `to` (since the history's start) that
    /// were acknowledged writes.
    pub fn acknowledged_writes_through(&self, i: usize, from: Duration, to: Duration) -> Vec<String> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.client == i && o.call >= from && o.ret.is_some_and(|r| r <= to))
            .filter_map(|o| match (&o.input.1, &o.output) {
                (RegisterOp::Write(v), Some(RegisterOut::Written)) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    /// How long the writes through host `i` (any host: `None`) invoked at or after `from` and answered by `to` took,
    /// shortest first: `(acknowledged, refused as out of sequence)`.
    pub fn write_latencies(&self, i: Option<usize>, from: Duration, to: Duration) -> (Vec<Duration>, Vec<Duration>) {
        let within = |client: usize, call: Duration, ret: Duration| {
            i.is_none_or(|i| i == client) && call >= from && ret <= to
        };
        let ops = self.ops.lock().unwrap();
        let acked = ops.iter().filter(|o| matches!(o.output, Some(RegisterOut::Written)));
        let mut acked: Vec<Duration> =
            acked.filter_map(|o| o.ret.filter(|&r| within(o.client, o.call, r)).map(|r| r - o.call)).collect();
        let refused = self.refused.lock().unwrap();
        let mut refused: Vec<Duration> =
            refused.iter().filter(|&&(c, call, ret)| within(c, call, ret)).map(|&(_, call, ret)| ret - call).collect();
        acked.sort();
        refused.sort();
        (acked, refused)
    }

    /// Time since the history's start (to mark fault windows).
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Checks the history; prints its size. The verdict and the history's summary.
    pub fn verdict(&self) -> (Verdict, String) {
        let h = self.ops.lock().unwrap();
        let writes = h.iter().filter(|o| matches!(o.input.1, RegisterOp::Write(_))).count();
        let acked = h.iter().filter(|o| matches!(o.output, Some(RegisterOut::Written))).count();
        let unknown = h.iter().filter(|o| o.ret.is_none()).count();
        let summary =
            format!("{} operations ({writes} writes, {acked} acknowledged, {unknown} with an unknown outcome)", h.len());
        eprintln!("history: {summary}");
        let slowest = h.iter().filter(|o| o.output.is_some()).filter_map(|o| Some((o.ret? - o.call, o.call, o.client))).max();
        if let Some((took, call, i)) = slowest {
            eprintln!("slowest answered operation: {took:?}, invoked at {call:?} through host {}", i + 1);
        }
        (check(&ByKey(&Register::default()), &h, |(k, _)| k.clone()), summary)
    }

    /// Asserts the history is linearizable (panics with its summary otherwise).
    pub fn assert_linearizable(&self) {
        let (verdict, summary) = self.verdict();
        assert_eq!(verdict, Verdict::Linearizable, "the history of {summary} is not linearizable");
    }
}

/// Forms `n` managers and one worker, starts the watched service on the worker (the managers drained,
/// [`crate::invariants`]), runs `case` with the cluster, an empty history over node 0's labels (its clients paced by
/// [`PACE`]) and the leader's host while the worker's task programs are counted, checks the service's invariants, and
/// marks the test passed when all of it is `Ok`. The managers are hosts `0..n`, the worker host `n`. Skips (returns
/// `Ok`) without namespaces.
pub fn managers(n: usize, case: impl FnOnce(&Cluster, &Registers, usize) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if !crate::require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(n + 1)?;
    c.form(n, 1)?;
    let hosts: Vec<usize> = (0..n).collect();
    let watch = ServiceWatch::start(&c, &hosts, n)?;
    let h = Registers::new(&c.node_id(0)?);
    h.pace(PACE);
    let leader = c.leader_id(0)?;
    let leader = c.host_of(&leader).context("the leader's host")?;
    eprintln!("leader before the fault: {} ({})", c.host(leader).name, c.node_id(leader)?);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| watch.sample_until(&c, &stop));
        // the sampler stops however the case ends, a panic included
        let _stop = StopOnDrop(&stop);
        case(&c, &h, leader)
    })?;
    watch.check(&c)?;
    c.pass();
    Ok(())
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The register model over `(key, op)` inputs (the key only partitions the history).
struct ByKey<'a>(&'a Register);

impl Model for ByKey<'_> {
    type State = Option<String>;
    type Input = (String, RegisterOp);
    type Output = Option<RegisterOut>;
    fn init(&self) -> Self::State {
        self.0.init()
    }
    fn step(&self, s: &Self::State, input: &Self::Input, output: &Self::Output) -> Option<Self::State> {
        self.0.step(s, &input.1, output)
    }
}
