//! A linearizability checker for histories recorded by tests: Wing and Gong's search with Lowe's memoisation, as
//! Porcupine does it (Athalye, github.com/anishathalye/porcupine, `checker.go`), written from the papers.
//!
//! A history is a list of operations, each with the time its client invoked it, the time it returned (or none: the
//! client gave up, and the operation may or may not have taken effect), its input and its output. It is linearizable
//! when there is a total order of the operations that respects real time (an operation that returned before another
//! was invoked comes first) and in which every output is what a sequential [`Model`] gives. Histories over several
//! independent keys are split by key first ([`check`]), which keeps the search small.
//!
//! The search walks the history's call and return events in time order, tries to linearize each call as early as
//! possible, and backtracks when it meets the return of an operation it has not linearized yet; a cache of (set of
//! linearized operations, state) pairs prunes the states it has already seen.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::Duration;

/// A sequential specification.
pub trait Model {
    /// The state (per key).
    type State: Clone + Eq + Hash;
    /// What an operation asks for.
    type Input;
    /// What it answered.
    type Output;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `input` in `state`, if the operation may have answered `output` there.
    fn step(&self, state: &Self::State, input: &Self::Input, output: &Self::Output) -> Option<Self::State>;
}

/// One operation of a history.
#[derive(Clone, Debug)]
pub struct Operation<I, O> {
    /// Which client made it (for reports only).
    pub client: usize,
    /// When it was invoked (since the history's start).
    pub call: Duration,
    /// When it returned; `None` when the client gave up on it (it may or may not have taken effect).
    pub ret: Option<Duration>,
    /// What it asked for.
    pub input: I,
    /// What it answered; `None` with `ret == None`.
    pub output: Option<O>,
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A valid order exists.
    Linearizable,
    /// None does; the key whose operations admit no order.
    Violation {
        /// The key (as the partition function named it).
        key: String,
    },
}

/// A register: writes set the value, reads return the last value written (or the initial one). An unknown
/// outcome (a write that timed out) is allowed to have taken effect or not.
#[derive(Clone, Debug, Default)]
pub struct Register {
    /// The value before any write.
    pub initial: Option<String>,
}

/// A register operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// Set the value.
    Write(String),
    /// Read it.
    Read,
}

/// A register operation's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOut {
    /// A write was acknowledged.
    Written,
    /// A read saw this value (`None`: no value).
    Value(Option<String>),
}

impl Model for Register {
    type State = Option<String>;
    type Input = RegisterOp;
    type Output = Option<RegisterOut>;
    fn init(&self) -> Option<String> {
        self.initial.clone()
    }
    fn step(&self, state: &Option<String>, input: &RegisterOp, output: &Option<RegisterOut>) -> Option<Option<String>> {
        match (input, output) {
            (RegisterOp::Write(v), Some(RegisterOut::Written) | None) => Some(Some(v.clone())),
            (RegisterOp::Read, Some(RegisterOut::Value(seen))) => (seen == state).then(|| state.clone()),
            // a read that never returned tells nothing
            (RegisterOp::Read, None) => Some(state.clone()),
            _ => None,
        }
    }
}

/// Checks `history`, split into independent keys by `key`. The model's output type is `Option<O>`: `None` for an
/// operation that never returned.
pub fn check<M, O>(model: &M, history: &[Operation<M::Input, O>], key: impl Fn(&M::Input) -> String) -> Verdict
where
    M: Model<Output = Option<O>>,
    M::Input: Clone,
    O: Clone,
{
    let mut keys: Vec<String> = history.iter().map(|o| key(&o.input)).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let ops: Vec<&Operation<M::Input, O>> = history.iter().filter(|o| key(&o.input) == k).collect();
        if !check_one(model, &ops) {
            return Verdict::Violation { key: k };
        }
    }
    Verdict::Linearizable
}

/// One event of the doubly linked list the search walks.
#[derive(Clone, Copy, Debug)]
struct Event {
    /// The operation.
    op: usize,
    /// A call (or else a return).
    call: bool,
    /// For a call: the index of its return event.
    pair: usize,
    prev: usize,
    next: usize,
}

/// Index of the list's head sentinel.
const HEAD: usize = 0;

fn check_one<M, O>(model: &M, ops: &[&Operation<M::Input, O>]) -> bool
where
    M: Model<Output = Option<O>>,
    O: Clone,
{
    // events in time order; a return at the same instant as a call comes first (they did not overlap)
    let mut order: Vec<(Duration, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, o) in ops.iter().enumerate() {
        order.push((o.call, true, i));
        order.push((o.ret.unwrap_or(Duration::MAX), false, i));
    }
    order.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    // list: sentinel at 0, events at 1..
    let n = order.len();
    let mut ev: Vec<Event> = Vec::with_capacity(n + 1);
    ev.push(Event { op: usize::MAX, call: false, pair: 0, prev: 0, next: if n > 0 { 1 } else { 0 } });
    let mut ret_at = vec![0usize; ops.len()];
    for (k, (_, call, op)) in order.iter().enumerate() {
        let idx = k + 1;
        ev.push(Event { op: *op, call: *call, pair: 0, prev: idx - 1, next: if idx < n { idx + 1 } else { 0 } });
        if !*call {
            ret_at[*op] = idx;
        }
    }
    for e in ev.iter_mut().skip(1) {
        if e.call {
            e.pair = ret_at[e.op];
        }
    }
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = ev[HEAD].next;
    let lift = |ev: &mut Vec<Event>, i: usize| {
        let (p, nx) = (ev[i].prev, ev[i].next);
        ev[p].next = nx;
        ev[nx].prev = p;
        let r = ev[i].pair;
        let (p, nx) = (ev[r].prev, ev[r].next);
        ev[p].next = nx;
        ev[nx].prev = p;
    };
    let unlift = |ev: &mut Vec<Event>, i: usize| {
        let r = ev[i].pair;
        let (p, nx) = (ev[r].prev, ev[r].next);
        ev[p].next = r;
        ev[nx].prev = r;
        let (p, nx) = (ev[i].prev, ev[i].next);
        ev[p].next = i;
        ev[nx].prev = i;
    };
    while ev[HEAD].next != HEAD {
        if entry == HEAD {
            // walked past the end with calls left: impossible, every call has a return after it
            return false;
        }
        let e = ev[entry];
        if e.call {
            let o = ops[e.op];
            let output = if o.ret.is_some() { o.output.clone() } else { None };
            if let Some(next) = model.step(&state, &o.input, &output) {
                let mut lin = linearized.clone();
                lin[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((lin.clone(), next.clone())) {
                    calls.push((entry, state));
                    state = next;
                    linearized = lin;
                    lift(&mut ev, entry);
                    entry = ev[HEAD].next;
                    continue;
                }
            }
            entry = ev[entry].next;
        } else {
            // the return of an operation not linearized yet: undo the last choice and try the next one
            let Some((top, prev_state)) = calls.pop() else { return false };
            state = prev_state;
            let op = ev[top].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut ev, top);
            entry = ev[top].next;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn w(client: usize, call: u64, ret: Option<u64>, v: &str) -> Operation<RegisterOp, RegisterOut> {
        Operation { client, call: ms(call), ret: ret.map(ms), input: RegisterOp::Write(v.into()), output: ret.map(|_| RegisterOut::Written) }
    }

    fn r(client: usize, call: u64, ret: u64, seen: Option<&str>) -> Operation<RegisterOp, RegisterOut> {
        Operation {
            client,
            call: ms(call),
            ret: Some(ms(ret)),
            input: RegisterOp::Read,
            output: Some(RegisterOut::Value(seen.map(str::to_string))),
        }
    }

    fn verdict(h: &[Operation<RegisterOp, RegisterOut>]) -> Verdict {
        check(&Register::default(), h, |_| "k".to_string())
    }

    #[test]
    fn sequential_and_overlapping_histories_that_have_an_order_pass() {
        assert_eq!(verdict(&[w(0, 0, Some(10), "a"), r(1, 20, 30, Some("a"))]), Verdict::Linearizable);
        // a read overlapping a write may see either value
        assert_eq!(verdict(&[w(0, 0, Some(100), "a"), r(1, 10, 20, None)]), Verdict::Linearizable);
        assert_eq!(verdict(&[w(0, 0, Some(100), "a"), r(1, 10, 20, Some("a"))]), Verdict::Linearizable);
        // two concurrent writes, reads afterwards agreeing on one order
        let h = [w(0, 0, Some(50), "a"), w(1, 10, Some(60), "b"), r(2, 70, 80, Some("a")), r(3, 90, 95, Some("a"))];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        assert_eq!(verdict(&[]), Verdict::Linearizable);
    }

    #[test]
    fn stale_reads_and_flip_flops_are_caught() {
        // a read after a completed write sees the old value
        assert_eq!(verdict(&[w(0, 0, Some(10), "a"), r(1, 20, 30, None)]), Verdict::Violation { key: "k".into() });
        // two reads after two concurrent writes disagree in an impossible way (b then a then b)
        let h = [
            w(0, 0, Some(50), "a"),
            w(1, 10, Some(60), "b"),
            r(2, 70, 80, Some("b")),
            r(3, 90, 95, Some("a")),
            r(4, 100, 110, Some("b")),
        ];
        assert!(matches!(verdict(&h), Verdict::Violation { .. }));
        // a value nobody wrote
        assert!(matches!(verdict(&[r(0, 0, 10, Some("z"))]), Verdict::Violation { .. }));
    }

    #[test]
    fn a_write_that_never_returned_may_or_may_not_have_taken_effect() {
        let took = [w(0, 0, None, "a"), r(1, 20, 30, Some("a")), r(1, 40, 50, Some("a"))];
        assert_eq!(verdict(&took), Verdict::Linearizable);
        let did_not = [w(0, 0, None, "a"), r(1, 20, 30, None)];
        assert_eq!(verdict(&did_not), Verdict::Linearizable);
        // but once seen it cannot be unseen
        let flip = [w(0, 0, None, "a"), r(1, 20, 30, Some("a")), r(1, 40, 50, None)];
        assert!(matches!(verdict(&flip), Verdict::Violation { .. }));
    }

    #[test]
    fn keys_are_checked_apart_and_a_violation_names_its_key() {
        let key = |o: &RegisterOp| match o {
            RegisterOp::Write(v) => v.split('=').next().unwrap_or("").to_string(),
            RegisterOp::Read => String::new(),
        };
        let h = [w(0, 0, Some(10), "x=1"), w(1, 0, Some(10), "y=1")];
        assert_eq!(check(&Register::default(), &h, key), Verdict::Linearizable);
    }

    #[test]
    fn a_long_concurrent_history_is_checked() {
        // 800 operations from 4 clients, writes overlapping in pairs: linearizable (the pair's first write is
        // ordered last, and the reads after the pair see it); the cache keeps the search from exploring every order
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..200u64 {
            let v = format!("v{i}");
            h.push(w((i % 4) as usize, t, Some(t + 5), &v));
            h.push(w(((i + 1) % 4) as usize, t + 1, Some(t + 4), &format!("{v}b")));
            // the two writes overlap: either may be last; a read afterwards sees one of them
            h.push(r(((i + 2) % 4) as usize, t + 6, t + 7, Some(&v)));
            h.push(r(((i + 3) % 4) as usize, t + 8, t + 9, Some(&v)));
            t += 10;
        }
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }
}
