//! An in-memory substring index: exact, case-insensitive "text contains
//! query" over a million short documents, with nothing on disk.
//!
//! Why in memory: an on-disk trigram FTS5 index cost every visit ~100
//! posting writes and every deleted row a page edit per trigram (with
//! `secure-delete`, ~4 ms a row at 1M visits). This index has no write-path,
//! crash or privacy cost: it is rebuilt from the table after an open,
//! catches up with new rows when searched, and a delete removes its entries
//! (and zeroes their text) before it returns.
//!
//! Shape: documents (history visits) repeat their texts (one url is visited
//! many times with the same title), so each distinct tuple of folded texts
//! is interned once as a *place* in one byte arena; per document only
//! `(id, place)` is kept, in id order. A search runs `memmem` over the arena
//! (a hit must lie inside one text, never across two), marks the matching
//! places, and gives up as soon as they hold more documents than the caller
//! wants (then walking the table newest first is cheaper than fetching by
//! id).
//!
//! Coverage: every document with `id <= watermark` is in the index. A
//! caller reads the rows above the watermark itself (see
//! [`SubstringIndex::catch_up_from`] and [`SubstringIndex::apply`]); a
//! removal bumps the epoch so that rows read from a snapshot older than the
//! removal are never applied.

use crate::db::text_match::fold_case;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// One document to index: its id, its sort key (e.g. visit time) and its
/// texts (e.g. url and title).
pub type Doc = (i64, i64, Vec<Option<String>>);

/// The index; every method takes `&self` (one internal lock).
#[derive(Default)]
pub struct SubstringIndex {
    state: Mutex<State>,
    /// One background builder at a time.
    building: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    /// Folded texts, back to back.
    arena: Vec<u8>,
    /// End offset in `arena` of each text (its start is the previous end).
    text_ends: Vec<u32>,
    /// The place each text belongs to.
    text_place: Vec<u32>,
    /// Live documents per place (0: dead, its text zeroed).
    place_docs: Vec<u32>,
    /// First text of each place.
    place_first_text: Vec<u32>,
    /// Hash of a place's folded texts -> place (a colliding place is simply
    /// stored twice).
    place_by_hash: HashMap<u64, u32>,
    /// Document ids, ascending, and their places.
    doc_ids: Vec<i64>,
    doc_keys: Vec<i64>,
    doc_places: Vec<u32>,
    /// Some document's key is below the key of a document with a smaller
    /// id (then id order is not key order; see
    /// [`SubstringIndex::newest_matches`]).
    keys_unsorted: bool,
    /// Every document with `id <= watermark` is indexed.
    watermark: i64,
    /// Bumped by every removal; a catch-up read under an older epoch is
    /// discarded.
    epoch: u64,
    /// Removals between their start and their end (deletes overlap: each
    /// begins before it waits for the writer): no catch-up applies while
    /// any is in progress.
    removals: u32,
    /// Bytes of dead places still in the arena (zeroed).
    dead_bytes: usize,
    /// Tests and benchmarks: never index beyond this id.
    hold_at: Option<i64>,
}

/// Where a catch-up read starts (keyed by history id), returned by
/// [`SubstringIndex::catch_up_from`].
pub use super::CatchUp;

/// The answer of [`SubstringIndex::search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Exactly the indexed documents whose texts contain the query, as
    /// `(key, id)` in id order; documents with `id > watermark` are not
    /// covered.
    Found {
        hits: Vec<(i64, i64)>,
        watermark: i64,
    },
    /// More than the caller's limit of documents match.
    TooMany { watermark: i64 },
}

/// Figures for benchmarks and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub docs: usize,
    pub places: usize,
    pub arena_bytes: usize,
    pub watermark: i64,
}

impl SubstringIndex {
    /// True for the one caller that may start a background builder (until
    /// it calls [`SubstringIndex::builder_done`]).
    pub fn claim_builder(&self) -> bool {
        !self
            .building
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// The background builder has stopped.
    pub fn builder_done(&self) {
        self.building
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Where the next catch-up read starts, or `None` while a removal is in
    /// progress or a hold stops indexing.
    pub fn catch_up_from(&self) -> Option<CatchUp> {
        let s = self.state.lock();
        CatchUp::next(s.removals > 0, s.epoch, s.watermark, s.hold_at)
    }

    /// Adds the rows a catch-up read found: every row with `from.after < id
    /// <= covered_to` of one snapshot, ascending. Returns false (and adds
    /// nothing) when a removal happened since `from` was taken.
    pub fn apply(&self, from: CatchUp, docs: Vec<Doc>, covered_to: i64) -> bool {
        let mut s = self.state.lock();
        if s.removals > 0 || s.epoch != from.epoch {
            return false;
        }
        for (id, key, texts) in docs {
            if id > s.watermark {
                s.add(id, key, &texts);
            }
        }
        s.watermark = s.watermark.max(covered_to.min(from.until));
        true
    }

    /// Marks the start of a removal (call before the deleting transaction,
    /// before the rows go): catch-ups stop until every removal begun has
    /// called [`SubstringIndex::end_removal`] (two deletes may overlap: the
    /// second begins while the first still holds the writer).
    pub fn begin_removal(&self) {
        let mut s = self.state.lock();
        s.removals += 1;
        s.epoch += 1;
    }

    /// Removes the documents `ids` (any order) and lowers the watermark to
    /// `table_max_id` (the largest id left in the table, 0 if none) so that
    /// a reused id is read again. Their texts are zeroed when no document
    /// uses them any more.
    pub fn remove(&self, ids: &mut [i64], table_max_id: i64) {
        ids.sort_unstable();
        let mut s = self.state.lock();
        s.epoch += 1;
        s.remove_sorted(ids);
        s.watermark = s.watermark.min(table_max_id);
        s.compact_if_sparse();
    }

    /// Forgets everything (after `DELETE FROM` the whole table, or when a
    /// removal could not be confirmed); the next catch-up rebuilds.
    pub fn clear(&self) {
        let mut s = self.state.lock();
        let (epoch, removals, hold_at) = (s.epoch + 1, s.removals, s.hold_at);
        *s = State {
            epoch,
            removals,
            hold_at,
            ..State::default()
        };
    }

    /// Ends a removal started by [`SubstringIndex::begin_removal`] (after its
    /// commit or rollback; after a rollback call [`SubstringIndex::clear`]
    /// first, since removed entries may still exist).
    pub fn end_removal(&self) {
        let mut s = self.state.lock();
        s.removals = s.removals.saturating_sub(1);
        s.epoch += 1;
    }

    /// The indexed documents containing `folded_query` (folded with
    /// [`fold_case`]), or `TooMany` once more than `max_docs` match.
    pub fn search(&self, folded_query: &str, max_docs: usize) -> Lookup {
        let s = self.state.lock();
        let needle = folded_query.as_bytes();
        let mut matched = vec![false; s.place_docs.len()];
        let mut total = 0usize;
        if !needle.is_empty() {
            let finder = memchr::memmem::Finder::new(needle);
            let mut pos = 0usize;
            let mut text = 0usize;
            while let Some(offset) = finder.find(&s.arena[pos..]) {
                let start = pos + offset;
                text += s.text_ends[text..].partition_point(|&end| end as usize <= start);
                let end = s.text_ends[text] as usize;
                let place = s.text_place[text] as usize;
                if start + needle.len() <= end && !matched[place] && s.place_docs[place] > 0 {
                    matched[place] = true;
                    total += s.place_docs[place] as usize;
                    if total > max_docs {
                        return Lookup::TooMany {
                            watermark: s.watermark,
                        };
                    }
                }
                // The leftmost hit in this text either lies inside it (one
                // hit per text is enough) or runs past its end (then every
                // later start in it does too): go on at the next text.
                pos = end;
                text += 1;
                if text >= s.text_ends.len() {
                    break;
                }
            }
        }
        let mut hits = Vec::with_capacity(total);
        if total > 0 {
            for (i, place) in s.doc_places.iter().enumerate() {
                if matched[*place as usize] {
                    hits.push((s.doc_keys[i], s.doc_ids[i]));
                }
            }
        }
        Lookup::Found {
            hits,
            watermark: s.watermark,
        }
    }

    /// The newest `n` indexed documents whose texts contain the query,
    /// strictly before `before` in `(key, id)` order, newest first, as
    /// `(key, id)`: fewer than `n` only when no older match exists. For a
    /// common query, where [`SubstringIndex::search`] gives up: documents
    /// are walked newest first and each place is tested once, when first
    /// met, so the cost follows the documents walked, not the matches.
    /// At most `budget` documents are walked: when that many were tested
    /// without finding `n` matches (a rarer query, which
    /// [`SubstringIndex::search`] answers for less), the answer is
    /// [`Lookup::TooMany`]. `None` when keys do not ascend with ids
    /// (documents recorded out of order): then id order is not key order
    /// and the caller walks the table in key order instead.
    pub fn newest_matches(
        &self,
        folded_query: &str,
        before: (i64, i64),
        n: usize,
        budget: usize,
    ) -> Option<Lookup> {
        let s = self.state.lock();
        if s.keys_unsorted {
            return None;
        }
        let needle = folded_query.as_bytes();
        let finder = memchr::memmem::Finder::new(needle);
        // Per place: 0 not tested yet, 1 matches, 2 does not.
        let mut tested = vec![0u8; s.place_docs.len()];
        // Keys ascend with ids, so positions are in `(key, id)` order.
        let (mut end, mut above) = (0, s.doc_ids.len());
        while end < above {
            let mid = (end + above) / 2;
            if (s.doc_keys[mid], s.doc_ids[mid]) < before {
                end = mid + 1;
            } else {
                above = mid;
            }
        }
        let mut hits = Vec::with_capacity(n);
        for (walked, i) in (0..end).rev().enumerate() {
            if hits.len() >= n {
                break;
            }
            if walked >= budget {
                return Some(Lookup::TooMany {
                    watermark: s.watermark,
                });
            }
            let place = s.doc_places[i] as usize;
            if tested[place] == 0 {
                let found = s
                    .place_texts(place as u32)
                    .any(|t| finder.find(&s.arena[s.text_range(t)]).is_some());
                tested[place] = if found { 1 } else { 2 };
            }
            if tested[place] == 1 {
                hits.push((s.doc_keys[i], s.doc_ids[i]));
            }
        }
        Some(Lookup::Found {
            hits,
            watermark: s.watermark,
        })
    }

    /// Sizes and coverage.
    pub fn stats(&self) -> Stats {
        let s = self.state.lock();
        Stats {
            docs: s.doc_ids.len(),
            places: s.place_docs.iter().filter(|&&n| n > 0).count(),
            arena_bytes: s.arena.len(),
            watermark: s.watermark,
        }
    }

    /// Tests and benchmarks: stop indexing documents above `id` (`Some(0)`:
    /// index nothing) or, with `None`, resume. Searches stay exact: the
    /// caller scans what the index does not cover.
    /// Exists only in tests and with the `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn hold_at(&self, id: Option<i64>) {
        let mut s = self.state.lock();
        s.hold_at = id;
        if let Some(id) = id {
            if s.watermark > id {
                let above: Vec<i64> = s.doc_ids.iter().copied().filter(|&d| d > id).collect();
                s.epoch += 1;
                s.remove_sorted(&above);
                s.watermark = id;
            }
        }
    }
}

impl State {
    fn add(&mut self, id: i64, key: i64, texts: &[Option<String>]) {
        let folded: Vec<std::borrow::Cow<'_, str>> = texts
            .iter()
            .map(|t| fold_case(t.as_deref().unwrap_or("")))
            .collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        folded.hash(&mut hasher);
        let hash = hasher.finish();
        let place = match self.place_by_hash.get(&hash) {
            Some(&p) if self.place_docs[p as usize] > 0 && self.place_texts_equal(p, &folded) => p,
            _ => {
                let place = self.place_docs.len() as u32;
                self.place_first_text.push(self.text_ends.len() as u32);
                for text in &folded {
                    self.arena.extend_from_slice(text.as_bytes());
                    self.text_ends.push(self.arena.len() as u32);
                    self.text_place.push(place);
                }
                self.place_docs.push(0);
                self.place_by_hash.insert(hash, place);
                place
            }
        };
        self.place_docs[place as usize] += 1;
        if self.doc_keys.last().is_some_and(|&last| key < last) {
            self.keys_unsorted = true;
        }
        self.doc_ids.push(id);
        self.doc_keys.push(key);
        self.doc_places.push(place);
    }

    fn text_range(&self, text: usize) -> std::ops::Range<usize> {
        let start = if text == 0 {
            0
        } else {
            self.text_ends[text - 1] as usize
        };
        start..self.text_ends[text] as usize
    }

    fn place_texts(&self, place: u32) -> std::ops::Range<usize> {
        let first = self.place_first_text[place as usize] as usize;
        let mut last = first;
        while last < self.text_place.len() && self.text_place[last] == place {
            last += 1;
        }
        first..last
    }

    fn place_texts_equal(&self, place: u32, folded: &[std::borrow::Cow<'_, str>]) -> bool {
        let texts = self.place_texts(place);
        texts.len() == folded.len()
            && texts
                .zip(folded)
                .all(|(t, f)| &self.arena[self.text_range(t)] == f.as_bytes())
    }

    /// Removes the documents `ids` (ascending; absent ones are ignored).
    fn remove_sorted(&mut self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let mut keep_ids = Vec::with_capacity(self.doc_ids.len().saturating_sub(ids.len()));
        let mut keep_places = Vec::with_capacity(keep_ids.capacity());
        let mut keep_keys = Vec::with_capacity(keep_ids.capacity());
        let mut next = 0usize;
        for i in 0..self.doc_ids.len() {
            let id = self.doc_ids[i];
            while next < ids.len() && ids[next] < id {
                next += 1;
            }
            let place = self.doc_places[i];
            if next < ids.len() && ids[next] == id {
                self.release_place(place);
            } else {
                keep_ids.push(id);
                keep_keys.push(self.doc_keys[i]);
                keep_places.push(place);
            }
        }
        self.doc_ids = keep_ids;
        self.doc_keys = keep_keys;
        self.doc_places = keep_places;
    }

    /// One document of `place` is gone; a place left with none has its
    /// text zeroed (no deleted text stays in memory either).
    fn release_place(&mut self, place: u32) {
        let docs = &mut self.place_docs[place as usize];
        *docs -= 1;
        if *docs > 0 {
            return;
        }
        let texts = self.place_texts(place);
        let bytes = self.text_range(texts.start).start..self.text_range(texts.end - 1).end;
        let folded: Vec<std::borrow::Cow<'_, str>> = texts
            .clone()
            .map(|t| {
                String::from_utf8_lossy(&self.arena[self.text_range(t)])
                    .into_owned()
                    .into()
            })
            .collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        folded.hash(&mut hasher);
        let hash = hasher.finish();
        if self.place_by_hash.get(&hash) == Some(&place) {
            self.place_by_hash.remove(&hash);
        }
        self.dead_bytes += bytes.len();
        self.arena[bytes].fill(0);
    }

    /// Rebuilds the arena without dead places once they hold most of it.
    fn compact_if_sparse(&mut self) {
        if self.dead_bytes * 2 <= self.arena.len() {
            return;
        }
        let old = std::mem::take(self);
        *self = State {
            watermark: old.watermark,
            epoch: old.epoch,
            removals: old.removals,
            hold_at: old.hold_at,
            ..State::default()
        };
        for (i, (id, place)) in old.doc_ids.iter().zip(&old.doc_places).enumerate() {
            let texts: Vec<Option<String>> = old
                .place_texts(*place)
                .map(|t| Some(String::from_utf8_lossy(&old.arena[old.text_range(t)]).into_owned()))
                .collect();
            self.add(*id, old.doc_keys[i], &texts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: i64, url: &str, title: Option<&str>) -> Doc {
        (
            id,
            id * 10,
            vec![Some(url.to_owned()), title.map(str::to_owned)],
        )
    }

    fn index(docs: Vec<Doc>) -> SubstringIndex {
        let index = SubstringIndex::default();
        let from = index.catch_up_from().unwrap();
        let top = docs.last().map_or(0, |d| d.0);
        assert!(index.apply(from, docs, top));
        index
    }

    fn found(index: &SubstringIndex, q: &str) -> Vec<i64> {
        match index.search(&fold_case(q), usize::MAX) {
            Lookup::Found { hits, .. } => hits.into_iter().map(|(_, id)| id).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_newest_first_walk_gives_up_after_its_budget() {
        // Every 10th document matches "rare"; every document "page".
        let index = index(
            (1..=100)
                .map(|i| {
                    let title = if i % 10 == 0 { "rare page" } else { "page" };
                    doc(i, &format!("https://x.example/{i}"), Some(title))
                })
                .collect(),
        );
        let newest = |q: &str, n, budget| index.newest_matches(q, (i64::MAX, i64::MAX), n, budget);
        let ids = |lookup: Option<Lookup>| -> Vec<i64> {
            match lookup {
                Some(Lookup::Found { hits, .. }) => hits.into_iter().map(|(_, id)| id).collect(),
                other => panic!("{other:?}"),
            }
        };
        // Three matches lie within the newest 30 documents.
        assert_eq!(ids(newest("rare", 3, 30)), vec![100, 90, 80]);
        assert_eq!(
            newest("rare", 3, 20),
            Some(Lookup::TooMany { watermark: 100 })
        );
        // Fewer matches than asked: only a walk to the oldest document
        // may say so.
        assert_eq!(ids(newest("rare", 50, 100)).len(), 10);
        assert_eq!(
            newest("rare", 50, 99),
            Some(Lookup::TooMany { watermark: 100 })
        );
        assert_eq!(ids(newest("page", 5, 5)), vec![100, 99, 98, 97, 96]);
    }

    #[test]
    fn hits_lie_inside_one_text_and_fold_case() {
        let index = index(vec![
            doc(1, "https://ab.example/x", Some("Cdé")),
            doc(2, "https://ab.example/x", Some("Cdé")),
            doc(3, "https://zz.example/", None),
        ]);
        assert_eq!(found(&index, "ab.EX"), vec![1, 2]);
        assert_eq!(found(&index, "CDÉ"), vec![1, 2]);
        // "x" ends the url and "cd" starts the title: no hit across texts.
        assert_eq!(found(&index, "xcd"), Vec::<i64>::new());
        assert_eq!(found(&index, "example/"), vec![1, 2, 3]);
        assert_eq!(index.stats().places, 2);
        assert_eq!(index.search("example", 2), Lookup::TooMany { watermark: 3 });
    }

    #[test]
    fn removal_zeroes_dead_text_and_lowers_the_watermark() {
        let index = index(vec![
            doc(1, "https://keep.example/", None),
            doc(2, "https://secret.example/", Some("Secret")),
        ]);
        index.begin_removal();
        index.remove(&mut [2], 1);
        index.end_removal();
        assert_eq!(found(&index, "secret"), Vec::<i64>::new());
        assert_eq!(index.stats().watermark, 1);
        let s = index.state.lock();
        assert!(memchr::memmem::find(&s.arena, b"secret").is_none());
    }

    #[test]
    fn a_catch_up_older_than_a_removal_is_discarded() {
        let index = SubstringIndex::default();
        let from = index.catch_up_from().unwrap();
        index.begin_removal();
        assert!(index.catch_up_from().is_none());
        index.end_removal();
        assert!(!index.apply(from, vec![doc(1, "https://a.example/", None)], 1));
        assert_eq!(index.stats().docs, 0);
    }

    /// Two deletes overlap (the second begins while the first commits):
    /// no catch-up runs until both have ended, since a snapshot read
    /// before the second commits still holds the rows it removes.
    #[test]
    fn overlapping_removals_keep_catch_ups_off_until_both_end() {
        let index = SubstringIndex::default();
        index.begin_removal();
        index.begin_removal();
        index.end_removal();
        assert!(index.catch_up_from().is_none(), "the second removal runs");
        index.end_removal();
        assert!(index.catch_up_from().is_some());
    }

    #[test]
    fn hold_limits_coverage() {
        let index = index(vec![
            doc(1, "https://a.example/", None),
            doc(2, "https://a.example/", None),
        ]);
        index.hold_at(Some(1));
        assert_eq!(found(&index, "a.ex"), vec![1]);
        assert_eq!(index.stats().watermark, 1);
        assert!(index.catch_up_from().is_none());
    }
}
