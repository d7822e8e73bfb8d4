//! The allocator: subnets for networks, an address per task per network, a VIP per service per network, VXLAN IDs and
//! published ports.
//!
//! Every allocation is made inside the store's `apply`, so it is a pure function of the replicated state: two
//! concurrent creates are ordered by the Raft log and can never be handed the same address or port, and every manager
//! holds the same allocation table without extra coordination. Only choices that depend on one host (is a subnet
//! already routed on this machine?) are made by the proposer, and `apply` checks them again against the cluster.
//!
//! Addresses are handed out round-robin from a cursor rather than lowest-free first: a task that just stopped does
//! not give its address to the next task at once, so stale neighbour entries on other nodes cannot misdirect traffic.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Ports handed out for ingress publishing without a `PublishedPort` (Docker's range).
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;
/// The first VXLAN ID (Docker starts at 4096 + 1).
pub const FIRST_VNI: u32 = 4097;
/// The largest VXLAN ID.
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// The default address pool (`--default-addr-pool`).
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
/// The default subnet size (`--default-addr-pool-mask-length`).
pub const DEFAULT_SUBNET_SIZE: u8 = 24;

/// An IPv4 subnet (`10.0.1.0/24`); the base is kept masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subnet {
    /// First address, as a number.
    pub base: u32,
    /// Prefix length, 0..=32.
    pub len: u8,
}

/// Why a subnet or address text is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct BadCidr(pub String);

impl Subnet {
    /// The subnet mask.
    pub fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }
    /// Number of addresses (network and broadcast included).
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }
    /// The last address.
    pub fn last(self) -> u32 {
        self.base | !self.mask()
    }
    /// Is `ip` inside?
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.base
    }
    /// Do the two share any address?
    pub fn overlaps(self, other: Subnet) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }
    /// The conventional gateway: the first host address.
    pub fn first_host(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(u32::from(self.len < 31)))
    }
    /// `a.b.c.d/len` for an address of this subnet.
    pub fn cidr_of(self, ip: Ipv4Addr) -> String {
        format!("{ip}/{}", self.len)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.len)
    }
}

impl FromStr for Subnet {
    type Err = BadCidr;
    /// Parses `a.b.c.d/len`; host bits must be zero (as Docker requires for `--subnet`).
    fn from_str(s: &str) -> Result<Subnet, BadCidr> {
        let (ip, len) = parse_cidr(s)?;
        let net = Subnet { base: 0, len };
        let base = u32::from(ip) & net.mask();
        if base != u32::from(ip) {
            return Err(BadCidr(s.to_string()));
        }
        Ok(Subnet { base, len })
    }
}

/// Parses `a.b.c.d/len` into the address and the prefix length (host bits allowed).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), BadCidr> {
    skep_api::docker::parse_ipv4_cidr(s).ok_or_else(|| BadCidr(s.to_string()))
}

/// The addresses of one network: which are taken, and where the round-robin cursor is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrPool {
    /// The network's subnet.
    pub subnet: Subnet,
    /// Taken addresses (gateway included; network and broadcast addresses are never handed out).
    pub used: imbl::OrdSet<u32>,
    /// The last address handed out.
    pub cursor: u32,
}

impl AddrPool {
    /// A pool for `subnet` with `gateway` reserved.
    pub fn new(subnet: Subnet, gateway: Ipv4Addr) -> AddrPool {
        let mut p = AddrPool { subnet, used: imbl::OrdSet::new(), cursor: u32::from(gateway) };
        p.reserve(gateway);
        p
    }

    /// Usable host addresses (network and broadcast excluded for prefixes shorter than /31).
    fn host_range(&self) -> (u32, u32) {
        let s = self.subnet;
        if s.len >= 31 {
            (s.base, s.last())
        } else {
            (s.base + 1, s.last() - 1)
        }
    }

    /// Takes the next free address after the cursor (wrapping), or `None` when the subnet is full.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let (lo, hi) = self.host_range();
        let span = u64::from(hi - lo) + 1;
        if self.free() == 0 {
            return None;
        }
        let start = if self.cursor < lo || self.cursor >= hi { lo } else { self.cursor + 1 };
        // Walk forward over the taken run after the cursor; bounded by the subnet's size.
        let mut ip = start;
        for _ in 0..span {
            if !self.used.contains(&ip) {
                self.used.insert(ip);
                self.cursor = ip;
                return Some(Ipv4Addr::from(ip));
            }
            ip = if ip >= hi { lo } else { ip + 1 };
        }
        None
    }

    /// Marks `ip` taken; false if it already was or is outside the subnet.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(ip) && self.used.insert(u32::from(ip)).is_none()
    }

    /// Gives `ip` back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// Free host addresses left.
    pub fn free(&self) -> u64 {
        let (lo, hi) = self.host_range();
        let taken = self.used.range(lo..=hi).count() as u64;
        (u64::from(hi - lo) + 1).saturating_sub(taken)
    }
}

/// The first subnet of `size` inside one of `pools` that overlaps none of `taken`.
pub fn pick_subnet(pools: &[Subnet], size: u8, taken: &[Subnet]) -> Option<Subnet> {
    for pool in pools {
        if size < pool.len || size > 30 {
            continue;
        }
        let step = 1u64 << (32 - u32::from(size));
        let mut base = u64::from(pool.base);
        let end = u64::from(pool.last());
        // Skip over whole taken subnets rather than stepping through every candidate under them.
        while base + step - 1 <= end {
            let cand = Subnet { base: base as u32, len: size };
            match taken.iter().filter(|t| t.overlaps(cand)).map(|t| u64::from(t.last())).max() {
                None => return Some(cand),
                Some(last) => base = ((last + 1).div_ceil(step)) * step,
            }
        }
    }
    None
}

/// The lowest VXLAN ID from [`FIRST_VNI`] that is not in `used`.
pub fn pick_vni(used: &BTreeSet<u32>) -> Option<u32> {
    (FIRST_VNI..=MAX_VNI).find(|v| !used.contains(v))
}

/// The lowest port of [`DYNAMIC_PORTS`] that is not in `used`.
pub fn pick_port(used: &BTreeSet<u32>) -> Option<u32> {
    DYNAMIC_PORTS.clone().find(|p| !used.contains(p))
}
