//! The skep worker side of a node: the agent that keeps a session with the managers.
//!
//! Every node runs an agent, managers included: it heartbeats to the Raft leader (following `NotLeader` redirects),
//! fails over to another manager when its manager stops answering, and tells the node supervisor when the managers
//! want it to change role or have removed it. Engines (running tasks) arrive with the services issue.
//!
//! # Layout
//! - [`agent`]: the session loop and the events it reports.
#![forbid(unsafe_code)]

pub mod agent;
