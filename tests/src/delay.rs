//! Delay, jitter and loss on the UDP traffic between two hosts, done by a relay in the test process: the kernel these
//! tests run on has no `tc netem`, and nftables can drop packets (`faults::Link::Lossy`) but not hold them.
//!
//! # How
//! One delayed *path* is one direction, from host A to host B, for the datagrams that leave from or go to one UDP
//! port (the swarm port: quinn serves and calls on one socket, so everything two managers send each other is
//! `A:2377 <-> B:2377`). In A's namespace:
//!
//! - a TUN device (`skd<n>`, opened by the test process on a thread that moved into A's namespace, so the device is
//!   A's) and a routing table `T` whose only route is `default dev skd<n> src <A>`;
//! - policy rules `to <B> ipproto udp dport <port> lookup T` and the same with `sport`: the kernel routes exactly
//!   those datagrams into the TUN device instead of out of `eth0`, after A's own netfilter output hooks (so a
//!   [`crate::faults::Link`] rule still applies) and with checksums complete (the device offers no offloads, so the
//!   kernel also splits quinn's GSO batches into single datagrams);
//! - a relay thread reads each IP packet from the device, drops it with the configured probability, and otherwise
//!   holds it for `mean ± jitter` (uniform, from a seeded [`Rng`]) in a bounded queue ordered by due time; when due, it
//!   sends the packet unchanged through a raw IPv4 socket (`IPPROTO_RAW`, header included) made in A's namespace
//!   with `SO_MARK` `M`; a rule `fwmark M lookup main`, ahead of the others, sends it out of `eth0` to B as if it had
//!   never been away.
//!
//! Addresses, ports and the packets themselves are unchanged and nothing is NATed, so the delay applies at once to
//! flows already under way, B sees the same peer address as before, and the reverse direction is untouched unless it
//! gets its own path (in B's namespace). The alternative of DNATing A's datagrams to a UDP relay socket was not
//! taken: the two QUIC connections between two managers share one 5-tuple, conntrack fixes a flow's NAT on its first
//! packet (so existing flows would not be redirected), and the relay's own socket would show B another source port.
//! Packets are reordered only where jitter gives a later one an earlier due time, as with netem.
//!
//! # Undone
//! [`DelayedLink`] is the guard: dropping it (also while a failed test unwinds) deletes the rules first, so traffic
//! flows directly again, then stops and joins the relay threads, which closes the TUN devices (a device that is not
//! persistent goes with its last descriptor, and table `T`'s route with it) and the raw sockets. Datagrams still
//! queued then are dropped, as taking netem away would. Everything also goes with the namespace.

use crate::cluster::SWARM_PORT;
use crate::netns::{in_netns, ip};
use crate::rng::Rng;
use crate::Cluster;
use anyhow::Context as _;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{ErrorKind, Read as _};
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest mean delay and longest jitter accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Datagrams one path holds at most; more are dropped (netem's default limit is 1000 packets).
pub const QUEUE_LIMIT: usize = 4096;
/// Largest IP packet read from the TUN device (its MTU is 1500; this bounds the buffer whatever it is).
const MAX_PACKET: usize = 65_535;
/// Packets read from the device per wake-up at most, so that due packets are not held up by a flood.
const READ_BATCH: usize = 256;
/// Longest wait of the relay thread before it looks at its stop flag again.
const TICK: Duration = Duration::from_millis(20);
/// Rule priorities in the source host: the relay's marked packets first, then the delayed datagrams.
const PREF_MARKED: &str = "100";
const PREF_DELAYED: &str = "101";
/// Env var that fixes the seed of every path (printed by each [`Cluster::delay_link`]).
pub const SEED_ENV: &str = "SKEP_DELAY_SEED";

/// Which way the datagrams between the two hosts of [`Cluster::delay_link`] `(a, b, …)` are delayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways, each drawn independently.
    Both,
    /// From `a` to `b` only.
    AToB,
    /// From `b` to `a` only.
    BToA,
}

/// What a delayed link does to each datagram, in each delayed direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Mean one-way delay added.
    pub mean: Duration,
    /// The delay is uniform in `mean - jitter ..= mean + jitter` (not below zero).
    pub jitter: Duration,
    /// Datagrams dropped at random, in percent (0–100).
    pub loss_percent: u32,
    /// Which way.
    pub direction: Direction,
    /// Seed of the draws; `None`: env [`SEED_ENV`], else the clock (printed either way, to replay a run).
    pub seed: Option<u64>,
}

impl Delay {
    /// `mean ± jitter` both ways, no loss.
    pub fn both_ways(mean: Duration, jitter: Duration) -> Delay {
        Delay { mean, jitter, loss_percent: 0, direction: Direction::Both, seed: None }
    }

    /// The same with `percent` loss.
    pub fn with_loss(self, percent: u32) -> Delay {
        Delay { loss_percent: percent, ..self }
    }

    /// The same in direction `direction`.
    pub fn one_way(self, direction: Direction) -> Delay {
        Delay { direction, ..self }
    }

    /// The same with its draws seeded by `seed`.
    pub fn seeded(self, seed: u64) -> Delay {
        Delay { seed: Some(seed), ..self }
    }

    fn check(&self) -> anyhow::Result<()> {
        let short = self.mean <= MAX_DELAY && self.jitter <= MAX_DELAY;
        anyhow::ensure!(short, "a delay and a jitter of at most {MAX_DELAY:?}, not {self:?}");
        anyhow::ensure!(self.loss_percent <= 100, "loss is a percentage, not {}", self.loss_percent);
        Ok(())
    }

    /// One draw: `None` when the datagram is lost, else how long it is held.
    fn draw(&self, rng: &mut Rng) -> Option<Duration> {
        if self.loss_percent > 0 && rng.below(100) < u64::from(self.loss_percent) {
            return None;
        }
        let (mean, jitter) = (self.mean.as_micros() as u64, self.jitter.as_micros() as u64);
        let held = (mean + rng.below(2 * jitter + 1)).saturating_sub(jitter);
        Some(Duration::from_micros(held))
    }
}

/// What one path did, so far.
#[derive(Debug, Default)]
pub struct PathStats {
    /// Sent on after their delay.
    pub forwarded: AtomicU64,
    /// Dropped as loss.
    pub lost: AtomicU64,
    /// Dropped because [`QUEUE_LIMIT`] datagrams were held already.
    pub overflowed: AtomicU64,
    /// Not IPv4: only the kernel's own IPv6 chatter on the new device (router solicitations, MLD) is routed into it.
    pub not_ipv4: AtomicU64,
    /// Not read from the device, or refused by the raw socket.
    pub failed: AtomicU64,
}

impl PathStats {
    fn line(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} forwarded, {} lost, {} over the queue limit, {} failed, {} not IPv4",
            get(&self.forwarded),
            get(&self.lost),
            get(&self.overflowed),
            get(&self.failed),
            get(&self.not_ipv4)
        )
    }
}

/// Delayed paths between two hosts; dropping it undoes them (see the module documentation). Borrows the cluster, so
/// it cannot outlive the namespaces it changed.
#[derive(Debug)]
pub struct DelayedLink<'c> {
    paths: Vec<Path>,
    _cluster: PhantomData<&'c Cluster>,
}

impl DelayedLink<'_> {
    /// `(path, what it did so far)` per delayed direction, e.g. `("h1→h2", "10 forwarded, …")`.
    pub fn stats(&self) -> Vec<(String, String)> {
        self.paths.iter().map(|p| (p.label.clone(), p.stats.line())).collect()
    }
}

/// One delayed direction, in the source host's namespace.
#[derive(Debug)]
struct Path {
    /// `h1→h2`, for messages.
    label: String,
    /// The source host's namespace, where the rules are.
    ns: String,
    /// Arguments of every `ip rule add` made, to delete them again.
    rules: Vec<Vec<String>>,
    /// Tells the relay thread to end.
    stop: Arc<AtomicBool>,
    /// The relay thread; it owns the TUN device and the raw socket.
    thread: Option<JoinHandle<()>>,
    /// Shared with the relay thread.
    stats: Arc<PathStats>,
}

/// Tells paths' device names, tables and marks apart (per test process; each namespace is a test's own).
static NEXT_PATH: AtomicU32 = AtomicU32::new(1);

impl Path {
    /// Delays what host `from` sends to host `to` on UDP port `port` as `delay` says, with the generator at `seed`.
    fn start(c: &Cluster, from: usize, to: usize, port: u16, delay: Delay, seed: u64) -> anyhow::Result<Path> {
        let (src, dst) = (c.host(from), c.host(to));
        let n = NEXT_PATH.fetch_add(1, Ordering::Relaxed);
        let dev = format!("skd{n}");
        let mark_value = 0x5ec0_0000 + n;
        let (table, mark) = ((0x5ec00 + n).to_string(), format!("{mark_value:#x}"));
        let stats = Arc::new(PathStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut path = Path {
            label: format!("{}→{}", src.name, dst.name),
            ns: src.ns.name().to_owned(),
            rules: Vec::new(),
            stop: stop.clone(),
            thread: None,
            stats: stats.clone(),
        };
        let (tun, raw) = in_netns(src.ns.name(), || Ok((open_tun(&dev)?, raw_socket(mark_value)?)))?;
        let mut rng = Rng::new(seed);
        path.thread = Some(std::thread::spawn(move || relay(&tun, &raw, delay, &mut rng, &stop, &stats)));
        src.ns.ip(&["link", "set", "dev", &dev, "up"])?;
        src.ns.ip(&["route", "add", "default", "dev", &dev, "src", &src.ip, "table", &table])?;
        let (port, to_ip) = (port.to_string(), dst.ip.as_str());
        let rules = [
            vec!["pref", PREF_MARKED, "fwmark", mark.as_str(), "lookup", "main"],
            vec!["pref", PREF_DELAYED, "to", to_ip, "ipproto", "udp", "dport", port.as_str(), "lookup", table.as_str()],
            vec!["pref", PREF_DELAYED, "to", to_ip, "ipproto", "udp", "sport", port.as_str(), "lookup", table.as_str()],
        ];
        for rule in rules {
            let mut args = vec!["rule", "add"];
            args.extend(&rule);
            src.ns.ip(&args)?;
            path.rules.push(rule.iter().map(|s| s.to_string()).collect());
        }
        Ok(path)
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        // the delayed rules first (added last), so that traffic goes straight out again before the device goes
        for rule in self.rules.drain(..).rev() {
            let mut args = vec!["-n", &self.ns, "rule", "del"];
            args.extend(rule.iter().map(String::as_str));
            if let Err(e) = ip(&args) {
                eprintln!("harness: could not delete rule `{}`: {e:#}", rule.join(" "));
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                eprintln!("harness: the relay thread of {} panicked", self.label);
            }
        }
        eprintln!("harness: delay {} undone: {}", self.label, self.stats.line());
    }
}

/// Opens a new TUN device `name` (IP packets, no packet information header) in this thread's namespace, non-blocking.
/// It is not persistent: it goes away with the descriptor.
fn open_tun(name: &str) -> anyhow::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun (a delayed link needs the tun driver)")?;
    anyhow::ensure!(name.len() < libc::IFNAMSIZ, "device name {name} is too long");
    // SAFETY: an all-zero ifreq is a valid value (an empty name, zero flags)
    #[allow(unsafe_code)]
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *to = from as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call; the descriptor is open
    #[allow(unsafe_code)]
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("TUNSETIFF {name}"));
    }
    Ok(file)
}

/// A raw IPv4 socket that sends whole IP packets (`IPPROTO_RAW` implies `IP_HDRINCL`), marked `mark`, in this thread's
/// namespace.
fn raw_socket(mark: u32) -> anyhow::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is owned right below
    #[allow(unsafe_code)]
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("a raw socket");
    }
    // SAFETY: `fd` is a new descriptor nobody else owns
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: SO_MARK reads one u32 that outlives the call
    #[allow(unsafe_code)]
    let set = unsafe {
        let value = &mark as *const u32 as *const libc::c_void;
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, value, len)
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error()).context("SO_MARK");
    }
    Ok(fd)
}

/// A datagram held until `due`; ordered by due time, then by arrival.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    due: Instant,
    seq: u64,
    packet: Vec<u8>,
}

/// The relay loop of one path, until `stop`: reads packets from `tun`, holds or drops them as `delay` draws, and sends
/// due ones through `raw`.
fn relay(tun: &File, raw: &OwnedFd, delay: Delay, rng: &mut Rng, stop: &AtomicBool, stats: &PathStats) {
    let mut queue: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut buf = vec![0u8; MAX_PACKET];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.peek().is_some_and(|Reverse(h)| h.due <= now) {
            let Some(Reverse(h)) = queue.pop() else { break };
            let counter = if send_raw(raw, &h.packet) { &stats.forwarded } else { &stats.failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let wait = queue.peek().map_or(TICK, |Reverse(h)| h.due.saturating_duration_since(now)).min(TICK);
        let mut pfd = libc::pollfd { fd: tun.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd that outlives the call
        #[allow(unsafe_code)]
        let ready = unsafe { libc::poll(&mut pfd, 1, wait.as_micros().div_ceil(1000) as libc::c_int) };
        if ready <= 0 {
            continue;
        }
        for _ in 0..READ_BATCH {
            let n = match (&*tun).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            if n < 20 || buf[0] >> 4 != 4 {
                stats.not_ipv4.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(held) = delay.draw(rng) else {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if queue.len() >= QUEUE_LIMIT {
                stats.overflowed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            seq += 1;
            queue.push(Reverse(Held { due: Instant::now() + held, seq, packet: buf[..n].to_vec() }));
        }
    }
}

/// Sends one whole IPv4 packet (at least a header long) through the raw socket, to the destination in its header;
/// whether it went.
fn send_raw(raw: &OwnedFd, packet: &[u8]) -> bool {
    let Some(&[a, b, c, d]) = packet.get(16..20) else { return false };
    let dst = Ipv4Addr::new(a, b, c, d);
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(dst).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the packet and the address outlive the call, and the lengths are theirs
    #[allow(unsafe_code)]
    let sent = unsafe {
        libc::sendto(
            raw.as_raw_fd(),
            packet.as_ptr() as *const libc::c_void,
            packet.len(),
            0,
            &to as *const libc::sockaddr_in as *const libc::sockaddr,
            len,
        )
    };
    sent == packet.len() as isize
}

impl Cluster {
    /// Delays the swarm-port datagrams between hosts `a` and `b` as `delay` says until the returned guard is dropped.
    /// The seed of the delays and losses is printed ([`Delay::seed`]).
    pub fn delay_link(&self, a: usize, b: usize, delay: Delay) -> anyhow::Result<DelayedLink<'_>> {
        self.delay_udp_port(a, b, SWARM_PORT, delay)
    }

    /// [`Cluster::delay_link`] for the datagrams to or from UDP port `port` (on either side).
    pub fn delay_udp_port(&self, a: usize, b: usize, port: u16, delay: Delay) -> anyhow::Result<DelayedLink<'_>> {
        anyhow::ensure!(a != b, "a link joins two hosts, not {} with itself", self.host(a).name);
        delay.check()?;
        let seed = match (delay.seed, std::env::var(SEED_ENV)) {
            (Some(seed), _) => seed,
            (None, Ok(s)) => s.parse().with_context(|| format!("{SEED_ENV}={s}: a u64"))?,
            (None, Err(_)) => Rng::clock_seed(),
        };
        let ways: &[(usize, usize)] = match delay.direction {
            Direction::Both => &[(a, b), (b, a)],
            Direction::AToB => &[(a, b)],
            Direction::BToA => &[(b, a)],
        };
        let mut link = DelayedLink { paths: Vec::new(), _cluster: PhantomData };
        for &(from, to) in ways {
            // each path its own sequence, all replayed by one seed
            let path_seed = seed ^ ((from as u64) << 40 | (to as u64) << 20 | u64::from(port));
            link.paths.push(Path::start(self, from, to, port, delay, path_seed)?);
        }
        let (from, to) = (&self.host(a).name, &self.host(b).name);
        eprintln!(
            "harness: delay {from}–{to} {:?}: {:?} ± {:?}, {} % loss, port {port}, seed {seed} ({SEED_ENV} replays)",
            delay.direction, delay.mean, delay.jitter, delay.loss_percent
        );
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_within_mean_and_jitter_and_lose_about_the_share_asked() {
        let d = Delay::both_ways(Duration::from_millis(50), Duration::from_millis(20)).with_loss(10);
        let mut rng = Rng::new(3);
        let draws: Vec<Option<Duration>> = (0..10_000).map(|_| d.draw(&mut rng)).collect();
        let lost = draws.iter().filter(|x| x.is_none()).count();
        assert!((700..1300).contains(&lost), "{lost} of 10000 lost at 10 %");
        let held: Vec<Duration> = draws.into_iter().flatten().collect();
        assert!(held.iter().all(|h| (Duration::from_millis(30)..=Duration::from_millis(70)).contains(h)));
        // no jitter, no loss: exactly the mean; jitter above the mean: never negative
        let exact = Delay::both_ways(Duration::from_millis(5), Duration::ZERO);
        assert_eq!(exact.draw(&mut rng), Some(Duration::from_millis(5)));
        let wide = Delay::both_ways(Duration::from_millis(1), Duration::from_millis(10));
        assert!((0..100).all(|_| wide.draw(&mut rng).is_some_and(|h| h <= Duration::from_millis(11))));
    }

    #[test]
    fn bad_delays_are_refused() {
        let d = Delay::both_ways(Duration::from_millis(5), Duration::ZERO);
        assert!(d.with_loss(101).check().is_err());
        assert!(Delay::both_ways(Duration::from_secs(11), Duration::ZERO).check().is_err());
        assert!(d.with_loss(100).check().is_ok());
    }
}
