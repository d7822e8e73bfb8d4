//! Images for the embedded engine: pulled from registries (`skep_registry`), unpacked once per layer into a
//! content-addressed store, stacked per task with overlayfs (design notes: `docs/design/images.md`).
//!
//! # Layout
//! - [`store`]: the store on disk, pulls, garbage collection.
//! - [`unpack`]: safe layer unpacking.
//! - [`remove`]: `docker image rm` and `prune` with Docker's rules.

pub mod remove;
pub mod store;
pub mod unpack;

pub use remove::{DeleteItem, ImageUser, PruneFilter, PruneReport, RemoveError};
pub use store::{ImageError, ImageRecord, ImageStore};
pub use unpack::UnpackLimits;
