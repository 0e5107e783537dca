//! The in-memory inverted index of chunk text (title + chunk words) that
//! `documents.search` ranks with, and what keeps it exact.
//!
//! Why in memory: nothing of it is on disk, so a privacy delete has no
//! index segment to scrub and a crash cannot corrupt it; it is rebuilt from
//! `document_chunks` by the first search after an open (the cost of one
//! exact scan) and caught up with new chunks by every later search.
//!
//! Shape: every indexed chunk gets a *slot* (ascending in the order chunks
//! are added, so in `seq` order) holding its `seq`, `(document_seq, idx)`
//! tie order and length in tokens. Each term keeps its postings as one byte
//! vector of `(slot delta, tf)` varints (a posting with `tf == 1`, the
//! common case, is one byte for a term seen in nearby chunks). BM25's
//! totals (chunks, tokens) are kept as sums.
//!
//! Coverage: every chunk with `seq <= watermark` is in the index; a search
//! scans the rest exactly (normally none; see [`ChunkTextIndex::hold_at`]).
//! Deletes go through [`ChunkRemoval`]: inside the deleting transaction it
//! stops catch-ups, reads the words of the chunks about to go, drops their
//! postings (a term left without any is forgotten) and lowers the
//! watermark to the largest `seq` that stays (SQLite may reuse the others).
//! Dropped without [`ChunkRemoval::confirm`] (the transaction failed), it
//! clears the index: removed entries may still exist; the next search
//! rebuilds. A removal bumps the epoch so that a catch-up read from a
//! snapshot older than the removal is never applied.

use crate::db::ConnExt;
use crate::error::Result;
use crate::profile::Profile;
use crate::search::text;
use parking_lot::Mutex;
use rusqlite::{params_from_iter, Connection};
use std::cell::Cell;
use std::collections::HashMap;

/// Rows a catch-up reads per snapshot (and applies under the lock at once).
const CATCH_UP_ROWS: usize = 5_000;

/// One chunk to index: `seq`, `document_seq`, `idx`, the document's title
/// and the chunk's text.
pub type ChunkRow = (i64, i64, i64, Option<String>, String);

/// The index; every method takes `&self` (one internal lock).
#[derive(Default)]
pub struct ChunkTextIndex {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    terms: HashMap<Box<str>, u32>,
    postings: Vec<Postings>,
    /// Per slot: chunk `seq`, tie order, length in tokens (`DEAD`: removed).
    slot_seq: Vec<i64>,
    slot_order: Vec<(i64, i64)>,
    slot_len: Vec<u32>,
    slot_of_seq: HashMap<i64, u32>,
    /// Live chunks and their total length in tokens.
    units: u64,
    total_len: u64,
    /// Every chunk with `seq <= watermark` is indexed.
    watermark: i64,
    epoch: u64,
    /// A removal is between its start and its commit: no catch-up applies.
    removing: bool,
    /// Tests and benchmarks: never index beyond this `seq`.
    hold_at: Option<i64>,
}

const DEAD: u32 = u32::MAX;

/// One term's postings, `(slot, tf)` ascending by slot, delta-varint coded.
#[derive(Default)]
struct Postings {
    bytes: Vec<u8>,
    last_slot: u32,
    count: u32,
}

impl Postings {
    fn push(&mut self, slot: u32, tf: u32) {
        let delta = if self.count == 0 {
            slot
        } else {
            slot - self.last_slot
        };
        let flagged = (u64::from(delta) << 1) | u64::from(tf > 1);
        put_varint(&mut self.bytes, flagged);
        if tf > 1 {
            put_varint(&mut self.bytes, u64::from(tf));
        }
        self.last_slot = slot;
        self.count += 1;
    }

    fn decode(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::with_capacity(self.count as usize);
        let mut pos = 0;
        let mut slot = 0u32;
        while pos < self.bytes.len() {
            let flagged = get_varint(&self.bytes, &mut pos);
            slot += (flagged >> 1) as u32;
            let tf = if flagged & 1 == 1 {
                get_varint(&self.bytes, &mut pos) as u32
            } else {
                1
            };
            out.push((slot, tf));
        }
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Where a catch-up read starts (keyed by chunk seq), from
/// [`ChunkTextIndex::catch_up_from`].
pub use crate::search::CatchUp;

/// What the index holds for a query's terms, seen under its lock.
pub struct View<'a> {
    /// Live indexed chunks and their total length in tokens.
    pub units: u64,
    pub total_len: u64,
    /// Per query term, `(slot, tf)` of each chunk holding it, by slot.
    pub postings: Vec<Vec<(u32, u32)>>,
    state: &'a State,
}

impl View<'_> {
    /// `(seq, (document_seq, idx), length in tokens)` of the chunk in `slot`.
    pub fn chunk(&self, slot: u32) -> (i64, (i64, i64), u32) {
        let s = slot as usize;
        (
            self.state.slot_seq[s],
            self.state.slot_order[s],
            self.state.slot_len[s],
        )
    }
}

/// Figures for benchmarks and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub chunks: u64,
    pub terms: usize,
    pub postings: u64,
    pub posting_bytes: usize,
    pub watermark: i64,
}

impl ChunkTextIndex {
    /// Where the next catch-up read starts, or `None` while a removal is in
    /// progress or a hold stops indexing.
    pub fn catch_up_from(&self) -> Option<CatchUp> {
        let s = self.state.lock();
        CatchUp::next(s.removing, s.epoch, s.watermark, s.hold_at)
    }

    /// Adds the chunks a catch-up read found: every chunk with `from.after
    /// < seq <= covered_to` of one snapshot, ascending. Returns false (and
    /// adds nothing) when a removal or another catch-up came first.
    pub fn apply(&self, from: CatchUp, rows: Vec<ChunkRow>, covered_to: i64) -> bool {
        let mut s = self.state.lock();
        if s.removing || s.epoch != from.epoch || s.watermark != from.after {
            return false;
        }
        let mut tf: HashMap<u32, u32> = HashMap::new();
        for (seq, doc, idx, title, chunk) in rows {
            s.add(seq, (doc, idx), title.as_deref(), &chunk, &mut tf);
        }
        s.watermark = covered_to.min(from.until);
        true
    }

    /// The current watermark.
    pub fn watermark(&self) -> i64 {
        self.state.lock().watermark
    }

    /// Runs `rank` over the postings of `terms` under the index's lock, if
    /// the watermark is still `watermark`.
    pub fn with_postings<R>(
        &self,
        terms: &[String],
        watermark: i64,
        rank: impl FnOnce(&View<'_>) -> R,
    ) -> Option<R> {
        let s = self.state.lock();
        if s.watermark != watermark {
            return None;
        }
        let postings = terms
            .iter()
            .map(|t| match s.terms.get(t.as_str()) {
                None => Vec::new(),
                Some(&id) => s.postings[id as usize].decode(),
            })
            .collect();
        Some(rank(&View {
            units: s.units,
            total_len: s.total_len,
            postings,
            state: &s,
        }))
    }

    /// Sizes and coverage.
    pub fn stats(&self) -> Stats {
        let s = self.state.lock();
        Stats {
            chunks: s.units,
            terms: s.terms.len(),
            postings: s.postings.iter().map(|p| u64::from(p.count)).sum(),
            posting_bytes: s.postings.iter().map(|p| p.bytes.len()).sum(),
            watermark: s.watermark,
        }
    }

    /// Tests and benchmarks: stop indexing chunks above `seq` (`Some(0)`:
    /// index nothing) or, with `None`, resume. Searches stay exact: they
    /// scan what the index does not cover.
    /// Exists only in tests and with the `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn hold_at(&self, seq: Option<i64>) {
        let mut s = self.state.lock();
        s.hold_at = seq;
        if let Some(seq) = seq {
            if s.watermark > seq {
                // Rebuilding below the hold is simplest and exact.
                let (epoch, hold_at) = (s.epoch + 1, s.hold_at);
                *s = State {
                    epoch,
                    hold_at,
                    ..State::default()
                };
            }
        }
    }

    fn begin_removal(&self) {
        let mut s = self.state.lock();
        s.removing = true;
        s.epoch += 1;
    }

    fn end_removal(&self, confirmed: bool) {
        let mut s = self.state.lock();
        if !confirmed {
            s.clear();
        }
        s.removing = false;
        s.epoch += 1;
    }
}

impl State {
    fn add(
        &mut self,
        seq: i64,
        order: (i64, i64),
        title: Option<&str>,
        chunk: &str,
        tf: &mut HashMap<u32, u32>,
    ) {
        tf.clear();
        let mut len = 0u32;
        for piece in title.into_iter().chain([chunk]) {
            text::for_each_token(piece, |t| {
                len += 1;
                let id = self.term_id(t);
                *tf.entry(id).or_insert(0) += 1;
            });
        }
        let slot = self.slot_seq.len() as u32;
        self.slot_seq.push(seq);
        self.slot_order.push(order);
        self.slot_len.push(len);
        self.slot_of_seq.insert(seq, slot);
        self.units += 1;
        self.total_len += u64::from(len);
        for (&id, &n) in tf.iter() {
            self.postings[id as usize].push(slot, n);
        }
    }

    fn term_id(&mut self, term: &str) -> u32 {
        if let Some(&id) = self.terms.get(term) {
            return id;
        }
        let id = self.postings.len() as u32;
        self.postings.push(Postings::default());
        self.terms.insert(term.into(), id);
        id
    }

    /// Removes the chunks `seqs` whose words are `words` (title + text of
    /// each): their postings go, and a term left with none is forgotten.
    fn remove(&mut self, removed: &[(i64, Vec<String>)]) {
        let mut touched: HashMap<u32, ()> = HashMap::new();
        let mut dead = vec![false; self.slot_seq.len()];
        for (seq, words) in removed {
            let Some(slot) = self.slot_of_seq.remove(seq) else {
                continue;
            };
            let len = &mut self.slot_len[slot as usize];
            if *len == DEAD {
                continue;
            }
            self.units -= 1;
            self.total_len -= u64::from(*len);
            *len = DEAD;
            self.slot_order[slot as usize] = (0, 0);
            dead[slot as usize] = true;
            for w in words {
                if let Some(&id) = self.terms.get(w.as_str()) {
                    touched.insert(id, ());
                }
            }
        }
        for id in touched.into_keys() {
            let old = std::mem::take(&mut self.postings[id as usize]);
            let mut kept = Postings::default();
            for (slot, tf) in old.decode() {
                if !dead[slot as usize] {
                    kept.push(slot, tf);
                }
            }
            self.postings[id as usize] = kept;
        }
        // Forget terms without postings (no word of a deleted page stays).
        let postings = &self.postings;
        self.terms.retain(|_, id| postings[*id as usize].count > 0);
    }

    fn clear(&mut self) {
        let (epoch, removing, hold_at) = (self.epoch + 1, self.removing, self.hold_at);
        *self = State {
            epoch,
            removing,
            hold_at,
            ..State::default()
        };
    }
}

/// Brings the index up to date before a search (call outside the search's
/// read transaction, so the rows it reads are never older than the index).
pub(crate) fn catch_up(profile: &Profile) -> Result<()> {
    let index = profile.chunk_text_index();
    while let Some(from) = index.catch_up_from() {
        let rows = profile.db().read(|conn| {
            conn.query_all(
                "SELECT c.seq, c.document_seq, c.idx, d.title, c.text
                 FROM document_chunks c JOIN documents d ON d.seq = c.document_seq
                 WHERE c.seq > ?1 AND c.seq <= ?2 ORDER BY c.seq LIMIT ?3",
                rusqlite::params![from.after, from.until, CATCH_UP_ROWS as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
        })?;
        let complete = rows.len() < CATCH_UP_ROWS;
        // Covers up to the last chunk read, never to `until` (which may be
        // i64::MAX): a chunk inserted later must stay above the watermark.
        let covered_to = rows.last().map_or(from.after, |r: &ChunkRow| r.0);
        if !index.apply(from, rows, covered_to) || complete {
            return Ok(());
        }
    }
    Ok(())
}

/// The chunk deletes of one write, kept exact in the index. Create it
/// before the write transaction, call [`ChunkRemoval::remove_documents`]
/// before each delete of chunks, and [`ChunkRemoval::confirm`] after the
/// commit.
pub(crate) struct ChunkRemoval<'p> {
    index: &'p ChunkTextIndex,
    begun: Cell<bool>,
    confirmed: bool,
}

impl<'p> ChunkRemoval<'p> {
    pub(crate) fn new(profile: &'p Profile) -> ChunkRemoval<'p> {
        ChunkRemoval {
            index: profile.chunk_text_index(),
            begun: Cell::new(false),
            confirmed: false,
        }
    }

    fn begin(&self) {
        if !self.begun.replace(true) {
            self.index.begin_removal();
        }
    }

    /// Drops from the index the chunks of the documents `documents d`
    /// matching `condition` (with `values`); call inside the transaction,
    /// before they are deleted.
    pub(crate) fn remove_documents(
        &self,
        conn: &Connection,
        condition: &str,
        values: &[rusqlite::types::Value],
    ) -> Result<()> {
        self.begin();
        let watermark = self.index.watermark();
        let mut removed: Vec<(i64, Vec<String>)> = Vec::new();
        if watermark > 0 {
            conn.for_each_row(
                &format!(
                    "SELECT c.seq, d.title, c.text FROM documents d
                     JOIN document_chunks c ON c.document_seq = d.seq
                     WHERE ({condition}) AND c.seq <= {watermark}"
                ),
                params_from_iter(values.iter()),
                |r| {
                    let mut words = Vec::new();
                    let mut add = |t: &str| {
                        if !words.iter().any(|w: &String| w == t) {
                            words.push(t.to_owned());
                        }
                    };
                    if let Some(title) = r.get_ref(1)?.as_str_or_null()? {
                        text::for_each_token(title, &mut add);
                    }
                    text::for_each_token(r.get_ref(2)?.as_str()?, &mut add);
                    Ok((r.get(0)?, words))
                },
                |row| {
                    removed.push(row);
                    Ok(())
                },
            )?;
        }
        let stays = conn.query_i64(
            &format!(
                "SELECT coalesce((SELECT seq FROM document_chunks WHERE document_seq NOT IN
                   (SELECT d.seq FROM documents d WHERE {condition}) ORDER BY seq DESC LIMIT 1), 0)"
            ),
            params_from_iter(values.iter()),
        )?;
        let mut s = self.index.state.lock();
        s.remove(&removed);
        s.watermark = s.watermark.min(stays);
        Ok(())
    }

    /// Forgets the whole index (a change it does not follow chunk by
    /// chunk, e.g. an import); the next search rebuilds it.
    pub(crate) fn remove_all(&self) {
        self.begin();
        self.index.state.lock().clear();
    }

    /// The deleting transaction committed.
    pub(crate) fn confirm(mut self) {
        self.confirmed = true;
    }
}

impl Drop for ChunkRemoval<'_> {
    fn drop(&mut self) {
        if self.begun.get() {
            self.index.end_removal(self.confirmed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_round_trip_with_large_gaps_and_counts() {
        let mut p = Postings::default();
        let items = [(0, 1), (1, 3), (200, 1), (70_000, 500), (70_001, 1)];
        for (slot, tf) in items {
            p.push(slot, tf);
        }
        assert_eq!(p.decode(), items);
        // tf 1 at a gap of 1 is one byte.
        let mut q = Postings::default();
        q.push(5, 1);
        let before = q.bytes.len();
        q.push(6, 1);
        assert_eq!(q.bytes.len() - before, 1);
    }

    #[test]
    fn removal_forgets_terms_and_totals() {
        let index = ChunkTextIndex::default();
        let from = index.catch_up_from().unwrap();
        let rows = vec![
            (1, 1, 0, Some("Title".to_owned()), "secret words".to_owned()),
            (2, 2, 0, None, "plain words".to_owned()),
        ];
        assert!(index.apply(from, rows, 2));
        assert_eq!(index.stats().chunks, 2);
        let mut s = index.state.lock();
        s.remove(&[(1, vec!["title".into(), "secret".into(), "words".into()])]);
        assert!(!s.terms.contains_key("secret"));
        assert!(!s.terms.contains_key("title"));
        assert_eq!((s.units, s.total_len), (1, 2));
        drop(s);
        let seqs = index
            .with_postings(&["words".into()], 2, |v| {
                v.postings[0]
                    .iter()
                    .map(|p| v.chunk(p.0).0)
                    .collect::<Vec<_>>()
            })
            .unwrap();
        assert_eq!(seqs, [2]);
    }
}
