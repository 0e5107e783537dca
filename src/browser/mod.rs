//! Browser state: tabs, visits and history (with its in-memory text index
//! and privacy purges), bookmarks, and history imports from other browsers.

pub mod bookmarks;
pub mod history;
pub mod history_index;
pub mod import;
pub mod tabs;
pub mod urls;
pub mod visits;

use crate::db::Db;
use crate::error::Result;
use crate::profile::{Extension, OpenOptions, Profile};
use crate::search::substring::SubstringIndex;
use std::path::Path;

/// The browser's entry in the registry's domain list (see
/// [`crate::profile::Domain`]).
pub(crate) const DOMAIN: crate::profile::Domain = crate::profile::Domain {
    name: "browser",
    recover: Some(recover_at_open),
    repair: Some(repair_at_open),
    state: Some(state),
    ..crate::profile::Domain::NONE
};

/// Import copies a crash left behind are removed (best effort).
fn recover_at_open(dir: &Path, _db: &Db) -> Result<()> {
    import::remove_copies_left_by_a_crash(dir);
    Ok(())
}

fn repair_at_open(db: &Db) -> Result<()> {
    db.write(|conn| {
        urls::repair_trailing_dot_hosts(conn)?;
        urls::repair_percent_encoded_hosts(conn)
    })
    .map(drop)
}

/// The in-memory text index of history: empty at open, nothing of it on disk.
fn state(_options: &OpenOptions) -> Extension {
    Box::<SubstringIndex>::default()
}

impl Profile {
    /// The in-memory text index of history (see [`history_index`]).
    pub fn history_text_index(&self) -> &SubstringIndex {
        self.extension()
    }
}
