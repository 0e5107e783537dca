//! # hydra_core
//!
//! The whole local backend of a desktop AI browser: one profile directory per
//! user holding chat threads, tasks, memories, tabs, history, bookmarks,
//! registered repositories and a durable jobs ledger, in one SQLite database.
//!
//! The same operations are reachable three ways, all derived from one
//! registry ([`ops`]): this typed Rust API, the JSON dispatcher
//! [`ops::call_json`], and the C ABI declared in `include/hydra_core.h`
//! (`hydra_call`, one `hydra_<op>` per operation), which the Python (ctypes)
//! and Node (koffi) bindings load.
//!
//! ```
//! use hydra_core::{OpenOptions, Profile, CloseOptions};
//!
//! # fn main() -> hydra_core::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let profile = Profile::open(OpenOptions::new(dir.path()))?;
//!
//! // Typed call.
//! let version = profile.meta_version(Default::default())?;
//! assert_eq!(version.abi_version, hydra_core::meta::ABI_VERSION);
//!
//! // The same operation through the JSON dispatcher the C ABI uses.
//! let data = hydra_core::ops::call_json(&profile, "meta.version", b"{}")?;
//! assert!(data.contains("\"sqlite_version\""));
//!
//! profile.close(CloseOptions::default())?;
//! # Ok(())
//! # }
//! ```
//!
//! Layers (each uses only those below it): faces (`ffi`, the `hydra` CLI,
//! this API) -> registry ([`ops`]) -> domains -> services ([`meta`], [`jobs`]) -> core
//! ([`profile`]) -> storage ([`db`], [`fsutil`]) -> base ([`error`],
//! [`types`]).

pub mod browser;
pub mod bundle;
pub mod db;
pub mod error;
pub mod ffi;
pub mod fsutil;
pub mod hydraflow;
pub mod jobs;
pub mod knowledge;
pub mod meta;
pub mod ops;
pub mod overview;
pub mod privacy;
pub mod profile;
pub mod repo;
pub mod search;
pub(crate) mod sys;
pub mod types;

pub use error::{Error, ErrorCode, PublicError, Result};
pub use profile::{CloseOptions, OpenOptions, Profile};
