//! `/events` on this node: the events its manager derives from every store version it applies
//! (`skep_manager::events::diff`), kept in a bounded buffer (for `since`) and broadcast to the clients following them.
//! The buffer outlives role changes; a worker has no store and serves none.

use super::NodeHandle;
use skep_api::docker::Event;
use skep_manager::runtime::Manager;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Events kept for clients that ask for past ones (`since`).
const KEPT: usize = 4096;
/// Events a slow follower may lag behind before it misses some (it is told so by the stream ending).
const LAG: usize = 4096;

/// The node's events: the recent ones and the live feed.
pub(crate) struct EventHub {
    recent: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub { recent: Mutex::new(VecDeque::new()), live: broadcast::channel(LAG).0 }
    }
}

impl EventHub {
    fn publish(&self, events: Vec<Event>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back(e.clone());
            let _ = self.live.send(e);
        }
    }

    /// The recent events and a receiver of those that come after them (no gap, no duplicate: taken under the lock
    /// `publish` holds).
    pub(crate) fn follow(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        (recent.iter().cloned().collect(), self.live.subscribe())
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl NodeHandle {
    /// The recent events and the live feed (see [`EventHub::follow`]).
    pub fn follow_events(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        self.inner.events.follow()
    }

    /// Derive events from `m`'s store versions until it stops.
    pub(super) fn collect_events(&self, m: &Manager) {
        let node = self.clone();
        let mut versions = m.subscribe();
        let mut stopped = m.stopped();
        tokio::spawn(async move {
            let mut last = versions.borrow_and_update().clone();
            loop {
                tokio::select! {
                    r = versions.changed() => if r.is_err() { return },
                    _ = stopped.wait_for(|s| *s) => return,
                }
                let now = versions.borrow_and_update().clone();
                let events = skep_manager::events::diff(&last, &now, now_ns());
                if !events.is_empty() {
                    node.inner.events.publish(events);
                }
                last = now;
            }
        });
    }
}
