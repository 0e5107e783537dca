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
//! Layers, lowest first (a module uses only its own layer and those below
//! it, with no import circle; `tests/layering.rs` reads this list and checks
//! it):
//!
//! - base: `error`, `types`
//! - storage: `db`, `fsutil`, `sys`
//! - core: `profile`, `privacy`
//! - services: `search`, `jobs`, `meta`, `overview`
//! - domains: `browser`, `knowledge`, `hydraflow`, `repo`, `bundle`
//! - registry: `ops`
//! - faces: `ffi`
//!
//! (The faces also include this crate root and the `hydra` CLI.) The core
//! never imports a service or a domain: what the profile must do for them
//! at open and close (recovery steps, folders whose temp files a killed
//! write left, per-profile state such as the jobs runtime and the text
//! indexes) they declare as a `profile::Domain`, and the registry hands the
//! list to the profile. One module writes each table the others share: the
//! jobs ledger only through `jobs`, the tabs only through `browser::tabs`.

#![deny(unsafe_code)]

/// Declares modules that are internal: private, except with the `testing`
/// feature (enabled only for the crate's own tests and benches, through
/// its dev-dependency on itself), where they are public but hidden from the
/// docs so tests and benches can reach the database and other internals.
/// Release builds never expose them.
macro_rules! internal_modules {
    ($($(#[$attr:meta])* $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        mod $name;
    )*};
}

// The typed API: the profile's methods (declared by the registry), their
// request and response types by family, and the error.
pub mod browser;
pub mod bundle;
pub mod error;
pub mod hydraflow;
pub mod jobs;
pub mod knowledge;
pub mod meta;
pub mod ops;
pub mod overview;
pub mod repo;
pub mod types;

internal_modules! {
    db;
    fsutil;
    privacy;
    profile;
    search;
}

// The C ABI (its `hydra_*` symbols are exported whatever the module's
// visibility); declared outside the macro so cbindgen sees it.
#[allow(unsafe_code)]
mod ffi;
#[allow(unsafe_code)]
mod sys;

/// The C entry points as Rust functions, for the crate's own tests (see
/// `internal_modules!`).
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing {
    pub mod ffi {
        pub use crate::ffi::*;
    }
}

pub use db::{PendingErasure, Synchronous};
pub use error::{Error, ErrorCode, PublicError, Result};
pub use privacy::Purged;
pub use profile::{CloseOptions, Closed, OpenOptions, Profile};
