//! The skep worker side of a node: the agent that keeps a session with the managers.
//!
//! Every node runs an agent, managers included: it heartbeats to the Raft leader (following `NotLeader` redirects),
//! fails over to another manager when its manager stops answering, and tells the node supervisor when the managers
//! want it to change role or have removed it; its engines run the tasks assigned to the node.
//!
//! # Layout
//! - [`join`]: asking to join a swarm (the joining node's side).
//! - [`agent`]: the session loop and the events it reports.
//! - [`tasks`]: runs the node's assignments through an engine and reports their states.
//! - [`network`]: the node's overlay networks, task sandboxes, VIPs, routing mesh and embedded DNS.
//! - [`engine`]: what runs tasks (`process`: supervised host processes in namespaces; `docker`: containers).
//! - [`images`]: OCI images for the embedded engine: pulls, the layer store, safe unpacking.
//! - [`secrets`]: the secrets and configs of the node's tasks: in memory, and as files on a tmpfs while a task runs.
//! - [`private_file`]: state files written atomically with mode 0600 and a directory fsync.
//! - [`logs`]: the node's store of its tasks' output (timestamped records, size-bounded segments).
//! - [`volumes`]: the node's local volumes (created on first use, outliving their tasks).
#![forbid(unsafe_code)]

pub mod agent;
pub mod engine;
pub mod images;
pub mod join;
pub mod logs;
pub mod network;
pub mod private_file;
pub mod secrets;
pub mod tasks;
pub mod volumes;
