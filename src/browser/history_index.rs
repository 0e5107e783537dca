//! Feeds the in-memory history text index (`search::substring`) from the
//! `history` table, and keeps it right across deletes.
//!
//! Nothing here is on the write path: a visit costs what the bare table
//! costs. A search first reads the rows above the index's watermark (a few,
//! normally) and adds them; when there are many (after an open, or a large
//! import) it starts one background builder and covers the rest by an
//! exact scan (`id > watermark`) until the builder has caught up. A crash
//! loses nothing: the index is rebuilt from the table.
//!
//! Deletes call [`Removal`] inside their transaction: the index stops
//! accepting catch-ups, drops the deleted ids (zeroing texts no row uses
//! any more) and lowers its watermark when the top ids went (SQLite may
//! reuse them). Every answer is also re-checked against the row's own text
//! in SQL, so a stale entry can never produce a wrong row.

use crate::db::ConnExt;
use crate::error::Result;
use crate::profile::Profile;
use crate::search::substring::{CatchUp, Doc, SubstringIndex};
use rusqlite::Connection;

/// Rows a search adds itself before it hands the rest to the builder.
const SEARCH_CATCH_UP_ROWS: usize = 5_000;

/// Rows the background builder reads per snapshot.
const BUILDER_CHUNK_ROWS: usize = 50_000;

/// Brings the index up to date before a search on `conn`, or starts the
/// background builder when the uncovered tail is long.
pub(crate) fn catch_up_for_search(profile: &Profile, conn: &Connection) -> Result<()> {
    let index = profile.history_text_index();
    let Some(from) = index.catch_up_from() else {
        return Ok(());
    };
    let (docs, covered_to, complete) = read_chunk(conn, from, SEARCH_CATCH_UP_ROWS)?;
    if complete {
        index.apply(from, docs, covered_to);
    } else {
        start_builder(profile);
    }
    Ok(())
}

/// Reads up to `limit` rows above the watermark, ascending: the documents,
/// the id up to which they cover the snapshot, and whether that was all.
fn read_chunk(conn: &Connection, from: CatchUp, limit: usize) -> Result<(Vec<Doc>, i64, bool)> {
    let docs = conn.query_all(
        "SELECT id, visited_at, url, title FROM visits CROSS JOIN places USING (place_id)
         WHERE id > ?1 AND id <= ?2
         ORDER BY id LIMIT ?3",
        rusqlite::params![from.after, from.until, limit as i64],
        |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, vec![r.get(2)?, r.get(3)?])),
    )?;
    let covered_to = docs.last().map_or(from.after, |d| d.0);
    let complete = docs.len() < limit;
    Ok((docs, covered_to, complete))
}

/// Starts the background builder unless one runs. It holds only a weak
/// handle and stops when the profile closes or the index has caught up.
fn start_builder(profile: &Profile) {
    if !profile.history_text_index().claim_builder() {
        return;
    }
    let weak = profile.downgrade();
    let spawned = std::thread::Builder::new()
        .name("hydra-history-index".into())
        .spawn(move || loop {
            let Some(profile) = weak.upgrade() else {
                return;
            };
            let index = profile.history_text_index();
            let step = || -> Result<bool> {
                profile.ensure_open()?;
                let Some(from) = index.catch_up_from() else {
                    return Ok(true);
                };
                let (docs, covered_to, complete) = profile
                    .db()
                    .read(|conn| read_chunk(conn, from, BUILDER_CHUNK_ROWS))?;
                index.apply(from, docs, covered_to);
                Ok(complete)
            };
            match step() {
                Ok(false) => continue,
                // Done, closed, or a read failed: a later search restarts it.
                Ok(true) | Err(_) => {
                    index.builder_done();
                    return;
                }
            }
        });
    if spawned.is_err() {
        profile.history_text_index().builder_done();
    }
}

/// A delete of history rows in progress, opened inside the deleting
/// transaction (writer held). Dropped without [`Removal::confirm`] (the
/// transaction failed or panicked), it clears the index, since entries it
/// removed may still exist; the next search rebuilds.
pub(crate) struct Removal<'p> {
    index: &'p SubstringIndex,
    confirmed: bool,
}

impl<'p> Removal<'p> {
    pub(crate) fn begin(profile: &'p Profile) -> Removal<'p> {
        let index = profile.history_text_index();
        index.begin_removal();
        Removal {
            index,
            confirmed: false,
        }
    }

    /// Drops `ids` from the index; `conn` is the deleting transaction,
    /// after the delete (for the largest id left).
    pub(crate) fn remove(&self, conn: &Connection, ids: &mut [i64]) -> Result<()> {
        let max = conn.query_i64("SELECT coalesce(max(id), 0) FROM visits", [])?;
        self.index.remove(ids, max);
        Ok(())
    }

    /// Drops every entry (the whole table was deleted).
    pub(crate) fn remove_all(&self) {
        self.index.clear();
    }

    /// The deleting transaction committed.
    pub(crate) fn confirm(mut self) {
        self.confirmed = true;
    }
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        if !self.confirmed {
            self.index.clear();
        }
        self.index.end_removal();
    }
}
