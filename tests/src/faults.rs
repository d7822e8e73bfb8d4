//! Faults a test injects into a running cluster besides killing daemons and unplugging hosts: a daemon frozen with
//! `SIGSTOP` (a long GC pause, a VM stall, a swapped-out process), and links between two hosts cut or made lossy with
//! nftables rules inside the hosts' own namespaces (`tc netem` is not available in every kernel these tests run on;
//! nftables' `numgen random` gives loss, not delay: delay is [`crate::delay`], a relay in the test process).
//!
//! Every fault is undone when the test fails too: a [`Paused`] guard sends `SIGCONT` when dropped (and the cluster's
//! drop kills the daemon anyway), and the nftables table lives in the host's namespace, which the cluster deletes.

use crate::process::signal_group;
use crate::Cluster;
use anyhow::Context as _;
use std::time::Duration;

/// The nftables table the harness adds its rules to, in each host namespace that gets a fault.
pub const NFT_TABLE: &str = "skep_faults";
/// Time limit of one `nft` command.
const NFT_TIMEOUT: Duration = Duration::from_secs(15);

/// A daemon frozen by `SIGSTOP` (its whole process group); `SIGCONT` when [`Paused::resume`]d or dropped.
#[derive(Debug)]
pub struct Paused {
    /// Host name, for messages.
    name: String,
    /// The daemon's process group.
    pgid: u32,
    /// Set once resumed.
    resumed: bool,
}

impl Paused {
    /// Sends `SIGCONT`; idempotent.
    pub fn resume(&mut self) {
        if !self.resumed {
            signal_group(self.pgid, libc::SIGCONT);
            self.resumed = true;
            eprintln!("harness: resumed daemon {} (SIGCONT to group {})", self.name, self.pgid);
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.resume();
    }
}

/// How a cut link behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Every packet between the two hosts is dropped.
    Cut,
    /// One packet in `n` is dropped at random, each way (`numgen random mod n < 1`).
    Lossy(u32),
}

impl Cluster {
    /// Freezes host `i`'s daemon with `SIGSTOP` to its process group until the returned guard is resumed or dropped.
    pub fn pause(&self, i: usize) -> anyhow::Result<Paused> {
        let name = self.host(i).name.clone();
        let pgid = self.daemon(i).and_then(|d| d.pid()).with_context(|| format!("{name} has no running daemon"))?;
        signal_group(pgid, libc::SIGSTOP);
        eprintln!("harness: paused daemon {name} (SIGSTOP to group {pgid})");
        Ok(Paused { name, pgid, resumed: false })
    }

    /// Runs `nft <args>` in host `i`'s namespace (bounded); an error with nft's message when it fails.
    fn nft(&self, i: usize, args: &[&str]) -> anyhow::Result<()> {
        let h = self.host(i);
        h.ns.exec("nft", args, NFT_TIMEOUT)?.ok().with_context(|| format!("nft {} in {}", args.join(" "), h.name))?;
        Ok(())
    }

    /// Adds rules in both hosts' namespaces that drop the traffic between hosts `a` and `b` (all of it, or at random
    /// for [`Link::Lossy`]); other links stay as they are. Undone by [`Cluster::heal_links`].
    pub fn cut_link(&self, a: usize, b: usize, how: Link) -> anyhow::Result<()> {
        anyhow::ensure!(a != b, "a link joins two hosts, not {} with itself", self.host(a).name);
        for (here, there) in [(a, b), (b, a)] {
            self.nft(here, &["add", "table", "inet", NFT_TABLE])?;
            for (chain, hook, dir) in [("input", "input", "saddr"), ("output", "output", "daddr")] {
                let spec = format!("{{ type filter hook {hook} priority 0 ; policy accept ; }}");
                self.nft(here, &["add", "chain", "inet", NFT_TABLE, chain, &spec])?;
                let ip = &self.host(there).ip;
                let rule = match how {
                    Link::Cut => format!("ip {dir} {ip} drop"),
                    Link::Lossy(n) => format!("ip {dir} {ip} numgen random mod {n} < 1 drop"),
                };
                let rule: Vec<&str> = rule.split(' ').collect();
                let mut args = vec!["add", "rule", "inet", NFT_TABLE, chain];
                args.extend(rule);
                self.nft(here, &args)?;
            }
        }
        Ok(())
    }

    /// Drops the packets host `from` sends to host `to` (in `to`'s namespace, on input), not the other way: an
    /// asymmetric cut. Undone by [`Cluster::heal_links`].
    pub fn cut_one_way(&self, from: usize, to: usize) -> anyhow::Result<()> {
        anyhow::ensure!(from != to, "a link joins two hosts, not {} with itself", self.host(from).name);
        self.nft(to, &["add", "table", "inet", NFT_TABLE])?;
        self.nft(to, &["add", "chain", "inet", NFT_TABLE, "input", "{ type filter hook input priority 0 ; policy accept ; }"])?;
        let ip = self.host(from).ip.clone();
        self.nft(to, &["add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", &ip, "drop"])
    }

    /// Cuts host `i` off from each of `others` (the switch and the other links stay up).
    pub fn isolate_from(&self, i: usize, others: &[usize]) -> anyhow::Result<()> {
        others.iter().filter(|&&o| o != i).try_for_each(|&o| self.cut_link(i, o, Link::Cut))
    }

    /// Removes every rule [`Cluster::cut_link`] added, on every host.
    pub fn heal_links(&self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            // absent when this host never got a rule
            let _ = self.host(i).ns.exec("nft", &["delete", "table", "inet", NFT_TABLE], NFT_TIMEOUT)?;
        }
        Ok(())
    }
}

/// The committed leader votes `(term, raft node id)` named in a daemon log: openraft logs `vote is changing from … to
/// T<term>-N<node>:committed` at `info` on every manager that learns of a leader. Lines of other shapes are
/// skipped, so a log at a level that hides them yields nothing.
pub fn committed_votes(log: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.contains("vote is changing from")) {
        // the message is the line's uncoloured tail (colours, when on, wrap only the time, level and target)
        let Some(rest) = line.trim_end().rsplit(" to T").next() else { continue };
        let Some(vote) = rest.strip_suffix(":committed") else { continue };
        let Some((term, node)) = vote.split_once("-N") else { continue };
        if let (Ok(t), Ok(n)) = (term.parse(), node.trim().parse()) {
            out.push((t, n));
        }
    }
    out
}

impl Cluster {
    /// Terms in which the daemons' logs (every start of every host) name more than one committed leader, with the
    /// leaders; and how many terms the logs name at all (0: not observable, e.g. a log level above `info`).
    ///
    /// openraft 0.9 without its `single-term-leader` feature identifies a leader by `(term, node)` and so allows two
    /// leaders in one term by design; Raft's "one leader per term" is checked here as what the logs show.
    pub fn terms_with_two_leaders(&self) -> (Vec<(u64, Vec<u64>)>, usize) {
        let mut per: std::collections::BTreeMap<u64, std::collections::BTreeSet<u64>> = Default::default();
        for d in (0..self.len()).filter_map(|i| self.daemon(i)) {
            let log = std::fs::read(d.log_path()).unwrap_or_default();
            for (t, n) in committed_votes(&String::from_utf8_lossy(&log)) {
                per.entry(t).or_default().insert(n);
            }
        }
        let terms = per.len();
        let two = per.into_iter().filter(|(_, l)| l.len() > 1).map(|(t, l)| (t, l.into_iter().collect())).collect();
        (two, terms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_votes_are_read_from_openraft_lines_with_or_without_colours() {
        let log = "2026-12-07T04:36:14.235397Z  INFO openraft::engine::handler::vote_handler: vote is changing from \
                   T17-N1:uncommitted to T17-N1:committed\n\
                   x vote is changing from T1-N1:committed to T2-N2:uncommitted\n\
                   \u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m vote is changing from T0-N0:uncommitted to T1-N3:committed\n\
                   unrelated T5-N5:committed\n";
        assert_eq!(committed_votes(log), vec![(17, 1), (1, 3)]);
    }
}
