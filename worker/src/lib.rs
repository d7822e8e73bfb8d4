//! The skep worker side of a node: the agent that keeps a session with the managers.
//!
//! Every node runs an agent, managers included: it heartbeats to the Raft leader (following `NotLeader` redirects),
//! fails over to another manager when its manager stops answering, and tells the node supervisor when the managers
//! want it to change role or have removed it; its engines run the tasks assigned to the node.
//!
//! # Layout
//! - [`agent`]: the session loop and the events it reports.
//! - [`tasks`]: runs the node's assignments through an engine and reports their states.
//! - [`network`]: the node's overlay networks, task sandboxes, VIPs, routing mesh and embedded DNS.
//! - [`engine`]: what runs tasks (`process`: supervised host processes in namespaces; `docker`: containers).
#![forbid(unsafe_code)]

pub mod agent;
pub mod engine;
pub mod network;
pub mod tasks;
