//! How the embedded servers answered their queries, counted for the daemon's `/metrics`. One [`QueryCounters`] per
//! daemon is shared by every task's server; a query adds one to an atomic when its answer is decided, nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a query was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueryResult {
    /// From skep's records: a service, `tasks.<service>` or task name in the task's scope (with its addresses, or
    /// none for another record type).
    Local,
    /// Forwarded, and the upstream resolver's answer relayed (any code but NXDOMAIN).
    Forwarded,
    /// Forwarded, and the upstream resolver said the name does not exist.
    NxDomain,
    /// Forwarded, and no upstream resolver answered: skep answered SERVFAIL.
    ServFail,
    /// Refused as malformed or unsupported (FORMERR, NOTIMP, BADVERS).
    Error,
}

impl QueryResult {
    /// Every result, in order.
    pub const ALL: [QueryResult; 5] =
        [QueryResult::Local, QueryResult::Forwarded, QueryResult::NxDomain, QueryResult::ServFail, QueryResult::Error];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryResult::Local => "local",
            QueryResult::Forwarded => "forwarded",
            QueryResult::NxDomain => "nxdomain",
            QueryResult::ServFail => "servfail",
            QueryResult::Error => "error",
        }
    }
}

/// Queries answered, by [`QueryResult`]. Cheap to clone (the counts are shared).
#[derive(Clone, Debug, Default)]
pub struct QueryCounters(Arc<[AtomicU64; QueryResult::ALL.len()]>);

impl QueryCounters {
    /// One more query answered so.
    pub fn count(&self, result: QueryResult) {
        self.0[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Queries answered so, since these counters were made.
    pub fn get(&self, result: QueryResult) -> u64 {
        self.0[result as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_result_has_its_own_count_shared_by_clones() {
        let c = QueryCounters::default();
        let shared = c.clone();
        shared.count(QueryResult::Local);
        shared.count(QueryResult::Local);
        c.count(QueryResult::NxDomain);
        let counts: Vec<(&str, u64)> = QueryResult::ALL.iter().map(|r| (r.as_str(), c.get(*r))).collect();
        assert_eq!(counts, [("local", 2), ("forwarded", 0), ("nxdomain", 1), ("servfail", 0), ("error", 0)]);
    }
}
