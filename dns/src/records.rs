//! The names skep answers itself: an immutable table per overlay network, rebuilt by the daemon on every store change.
//!
//! The daemon builds a [`Records`] with [`RecordsBuilder`] from its live copy of the cluster store and publishes it
//! through a `tokio::sync::watch` channel; every query reads the table current at that moment (see
//! [`crate::serve`]). A table is never changed in place, so a query sees one consistent version.
//!
//! Names are stored under a *key*: the name's labels in DNS wire order (a length byte, then the label), ASCII
//! lowercased, without the root label. That makes a lookup case-insensitive and indifferent to a trailing dot, and
//! lets the server look a query up straight from the labels of the parsed question, with no string built per query
//! ([`Records::lookup_labels`]).

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The longest name in wire form (RFC 1035 §2.3.4), root label included: a key is at most this long.
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Name → addresses, per overlay network. Cheap to read from many tasks at once; built once per store change.
///
/// What a task may see is *scoped*: [`Records::lookup`] takes the IDs of the networks the asking task is attached to,
/// and a name known only on another network is not found (the server then forwards it upstream like any other name).
#[derive(Debug, Default, Clone)]
pub struct Records {
    /// Network ID → that network's names. Two levels rather than one map keyed by (network, name) so that a lookup
    /// borrows both parts and allocates nothing.
    networks: HashMap<Box<str>, NetworkRecords>,
}

#[derive(Debug, Default, Clone)]
struct NetworkRecords {
    /// Name key (see the module doc) → addresses, in the order they were added (the server rotates them per query).
    /// An empty list is kept: the name is still ours (answered NOERROR with no records, never forwarded).
    names: HashMap<Box<[u8]>, Box<[Ipv4Addr]>>,
}

impl Records {
    /// A table with no names: every query is forwarded upstream.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The addresses of `name` as seen from a task attached to the networks `scope`, or `None` when no network in
    /// `scope` knows the name. Case-insensitive; a trailing dot is allowed. When several networks of the scope know
    /// the name, the first one in `scope` order answers (as Docker's embedded DNS does: it tries the container's
    /// networks in turn). `Some(&[])` means the name is ours but has no address now (a dnsrr service with no running
    /// task): answered with no records, not forwarded.
    pub fn lookup<S: AsRef<str>>(&self, scope: &[S], name: &str) -> Option<&[Ipv4Addr]> {
        let mut buf = [0u8; MAX_NAME_LEN];
        let len = encode_key(name, &mut buf)?;
        self.lookup_key(scope, &buf[..len])
    }

    /// [`Records::lookup`] for a name given as its labels (as a parsed DNS question has them), without the root
    /// label. This is the server's per-query path: it builds the key on the stack.
    pub fn lookup_labels<'a, S, L>(&self, scope: &[S], labels: L) -> Option<&[Ipv4Addr]>
    where
        S: AsRef<str>,
        L: IntoIterator<Item = &'a [u8]>,
    {
        let mut buf = [0u8; MAX_NAME_LEN];
        let mut len = 0;
        for label in labels {
            if label.is_empty() || label.len() > MAX_LABEL_LEN || len + 1 + label.len() > buf.len() {
                return None;
            }
            buf[len] = label.len() as u8;
            for (dst, src) in buf[len + 1..len + 1 + label.len()].iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            len += 1 + label.len();
        }
        if len == 0 {
            return None;
        }
        self.lookup_key(scope, &buf[..len])
    }

    fn lookup_key<S: AsRef<str>>(&self, scope: &[S], key: &[u8]) -> Option<&[Ipv4Addr]> {
        scope
            .iter()
            .filter_map(|network| self.networks.get(network.as_ref()))
            .find_map(|records| records.names.get(key))
            .map(|addrs| &addrs[..])
    }

    /// How many names the table holds, over all networks (a name on two networks counts twice).
    pub fn len(&self) -> usize {
        self.networks.values().map(|n| n.names.len()).sum()
    }

    /// True when no network has a name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds a [`Records`] table. Names that are not valid DNS names (an empty label, a label over 63 bytes, a name over
/// 255 bytes) are skipped with a warning: the API validates service names before they reach the store, so this only
/// guards the table. Adding the same name twice on one network merges the address lists (duplicates dropped).
#[derive(Debug, Default)]
pub struct RecordsBuilder {
    records: Records,
}

impl RecordsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A service attached to `network`: its name and each of its aliases (the network attachment's aliases) answer
    /// `addrs` (the service's VIP on that network, or in dnsrr mode its tasks' addresses).
    pub fn service(mut self, network: &str, name: &str, aliases: &[&str], addrs: &[Ipv4Addr]) -> Self {
        self.add(network, name, addrs);
        for alias in aliases {
            self.add(network, alias, addrs);
        }
        self
    }

    /// `tasks.<service_name>` on `network` answers the addresses of the service's tasks (always the tasks, whatever the
    /// endpoint mode).
    pub fn tasks(mut self, network: &str, service_name: &str, addrs: &[Ipv4Addr]) -> Self {
        self.add(network, &format!("tasks.{service_name}"), addrs);
        self
    }

    /// One task's own name on `network` (Docker answers the full task name `<service>.<slot>.<task id>`) answers its
    /// address there.
    pub fn task(mut self, network: &str, task_name: &str, addr: Ipv4Addr) -> Self {
        self.add(network, task_name, &[addr]);
        self
    }

    /// Adds `name` → `addrs` on `network` (the primitive the other methods use); `&mut` for building in a loop.
    pub fn add(&mut self, network: &str, name: &str, addrs: &[Ipv4Addr]) -> &mut Self {
        let mut buf = [0u8; MAX_NAME_LEN];
        let Some(len) = encode_key(name, &mut buf) else {
            tracing::warn!(network, name, "not a valid DNS name; left out of the DNS records");
            return self;
        };
        let names = &mut self.records.networks.entry(network.into()).or_default().names;
        match names.get_mut(&buf[..len]) {
            Some(existing) => {
                let mut merged = existing.to_vec();
                for addr in addrs {
                    if !merged.contains(addr) {
                        merged.push(*addr);
                    }
                }
                *existing = merged.into_boxed_slice();
            }
            None => {
                let mut unique = Vec::with_capacity(addrs.len());
                for addr in addrs {
                    if !unique.contains(addr) {
                        unique.push(*addr);
                    }
                }
                names.insert(buf[..len].into(), unique.into_boxed_slice());
            }
        }
        self
    }

    /// The finished table.
    pub fn build(self) -> Records {
        self.records
    }
}

/// Writes the key of `name` (see the module doc) into `buf`; returns its length, or `None` for an invalid name.
fn encode_key(name: &str, buf: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    let mut len = 0;
    for label in name.split('.') {
        let label = label.as_bytes();
        // the root label's byte is not stored, but still counts towards the 255
        if label.is_empty() || label.len() > MAX_LABEL_LEN || len + 1 + label.len() + 1 > MAX_NAME_LEN {
            return None;
        }
        buf[len] = label.len() as u8;
        for (dst, src) in buf[len + 1..len + 1 + label.len()].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        len += 1 + label.len();
    }
    Some(len)
}

#[cfg(test)]
mod tests;
