//! Repository tooling (`spec/OPERATIONS.md` §7): the part of the library
//! that lets an AI agent read, patch and check a user's source tree, so the
//! most defensive code of the crate.
//!
//! - [`registry`]: registered repos, their permissions and budgets, and the
//!   change ledger;
//! - [`paths`]: the one path rule and the symlink-safe directory walk;
//! - [`patch`]: propose / apply (checks, measured budgets, preconditions);
//! - [`journal`]: the all-or-nothing apply engine and its crash recovery;
//! - [`checks`]: the sandboxed runner of a repo's check command;
//! - [`status`]: `git status` of a repo's tree.

pub mod checks;
pub mod journal;
pub mod patch;
pub mod paths;
pub mod registry;
pub mod status;
