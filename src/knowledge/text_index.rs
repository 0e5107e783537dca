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
//! tie order and length in tokens. Each term keeps its postings `(slot,
//! tf)` ascending by slot in blocks of [`BLOCK`]: full blocks are
//! bit-packed (slot deltas and `tf - 1`, each at the block's own width) and
//! carry the block's last slot, largest `tf` and smallest chunk length, so
//! a search can bound the BM25 score of every chunk in a block without
//! decoding it and skip blocks that cannot reach its top k (block-max
//! pruning, see `documents.search`); the newest postings wait in a varint
//! tail until a block is full. BM25's totals (chunks, tokens) and each
//! term's live document frequency are kept as sums.
//!
//! Coverage: every chunk with `seq <= watermark` is in the index; a search
//! scans the rest exactly (normally none; see [`ChunkTextIndex::hold_at`]).
//! Deletes go through [`ChunkRemoval`]: inside the deleting transaction it
//! stops catch-ups, reads the words of the chunks about to go, marks their
//! slots dead (a dead slot is never returned or scored, and leaves the
//! totals and every term's frequency at once), forgets the terms left with
//! no live chunk, and lowers the watermark to the largest `seq` that stays
//! (SQLite may reuse the others). The dead postings themselves are dropped
//! later, off the writer: a search rewrites a term whose postings are a
//! quarter dead, and a catch-up renumbers the slots once most are dead.
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
use std::hash::{BuildHasherDefault, Hasher};

/// Rows a catch-up reads per snapshot (and applies under the lock at once).
const CATCH_UP_ROWS: usize = 5_000;

/// Postings per packed block.
pub const BLOCK: usize = 128;

/// One chunk to index: `seq`, `document_seq`, `idx`, the document's title
/// and the chunk's text.
pub type ChunkRow = (i64, i64, i64, Option<String>, String);

/// The index; every method takes `&self` (one internal lock).
#[derive(Default)]
pub struct ChunkTextIndex {
    state: Mutex<State>,
}

/// A small multiplicative hasher for the term table (terms are short and
/// local; SipHash's flood resistance buys nothing here).
#[derive(Default, Clone, Copy)]
struct TermHasher(u64);

impl Hasher for TermHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type TermMap = HashMap<Box<str>, u32, BuildHasherDefault<TermHasher>>;

#[derive(Default)]
struct State {
    terms: TermMap,
    postings: Vec<Postings>,
    /// Per slot: chunk `seq` (non-decreasing: see [`State::slot_of`]), tie
    /// order, length in tokens (`DEAD`: removed).
    slot_seq: Vec<i64>,
    /// Tie order of every slot, as runs (see [`OrderRun`]).
    runs: Vec<OrderRun>,
    slot_len: Vec<u32>,
    dead_slots: usize,
    /// Live chunks and their total length in tokens.
    units: u64,
    total_len: u64,
    /// Every chunk with `seq <= watermark` is indexed.
    watermark: i64,
    epoch: u64,
    /// Removals between their start and their end (deletes overlap: each
    /// begins before it waits for the writer): no catch-up applies while
    /// any is in progress.
    removals: u32,
    /// Tests and benchmarks: never index beyond this `seq`.
    hold_at: Option<i64>,
}

/// Consecutive slots of one document with consecutive chunk indexes (the
/// chunks of one upsert): slot `first_slot + k` is chunk `idx + k` of
/// document `doc`. A few runs per document instead of 12 bytes per chunk.
#[derive(Debug, Clone, Copy)]
struct OrderRun {
    first_slot: u32,
    idx: u32,
    doc: i64,
}

/// Appends slot `slot` (the next one) with tie order `order` to `runs`.
fn push_order(runs: &mut Vec<OrderRun>, slot: u32, order: (i64, i64)) {
    // A chunk index is below 8,000,000 (the text's bound), so it fits.
    let idx = u32::try_from(order.1).unwrap_or(u32::MAX);
    let extends = runs
        .last()
        .is_some_and(|r| r.doc == order.0 && r.idx.checked_add(slot - r.first_slot) == Some(idx));
    if !extends {
        runs.push(OrderRun {
            first_slot: slot,
            idx,
            doc: order.0,
        });
    }
}

/// The tie order `(document_seq, idx)` of `slot`.
fn order_in(runs: &[OrderRun], slot: u32) -> (i64, i64) {
    let r = &runs[runs.partition_point(|r| r.first_slot <= slot) - 1];
    (r.doc, i64::from(r.idx) + i64::from(slot - r.first_slot))
}

/// The length of a removed chunk's slot.
pub const DEAD: u32 = u32::MAX;

/// What a full block records about itself (its bytes start where the
/// previous block's end: see [`block_bytes`]).
#[derive(Debug, Clone, Copy)]
struct BlockMeta {
    /// Its last slot.
    last: u32,
    /// Its largest tf (`u16::MAX`: that or more) and smallest chunk length
    /// (clamped down to `u16::MAX`): together they bound its scores.
    max_tf: u16,
    min_len: u16,
}

/// One term's postings, `(slot, tf)` ascending by slot.
#[derive(Default)]
struct Postings {
    blocks: Vec<BlockMeta>,
    /// Full blocks: per block, the bit widths of `delta - 1` and of `tf -
    /// 1`, then the packed `delta - 1`, then the packed `tf - 1` (a
    /// block's first delta is from the previous block's last slot, or
    /// from -1).
    data: Vec<u8>,
    /// The newest postings (fewer than [`BLOCK`]): `(delta << 1 | tf > 1)`
    /// varints, followed by `tf` when it is above 1.
    tail: Vec<u8>,
    tail_count: u32,
    tail_max_tf: u32,
    tail_min_len: u32,
    /// The last slot pushed.
    last: u32,
    /// Postings stored (live and dead) and postings of live chunks (the
    /// term's document frequency).
    count: u32,
    live: u32,
}

/// The size of the packed block starting at `data[at]`.
fn block_bytes(data: &[u8], at: usize) -> usize {
    2 + (BLOCK / 8) * (usize::from(data[at]) + usize::from(data[at + 1]))
}

fn width(v: u32) -> u8 {
    (32 - v.leading_zeros()) as u8
}

fn pack(out: &mut Vec<u8>, values: impl Iterator<Item = u32>, width: u8) {
    if width == 0 {
        return;
    }
    let mut acc = 0u64;
    let mut bits = 0u32;
    for v in values {
        acc |= u64::from(v) << bits;
        bits += u32::from(width);
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
}

fn unpack(
    bytes: &[u8],
    pos: &mut usize,
    count: usize,
    width: u8,
    mut each: impl FnMut(usize, u32),
) {
    if width == 0 {
        (0..count).for_each(|i| each(i, 0));
        return;
    }
    let mask = (1u64 << width) - 1;
    let mut acc = 0u64;
    let mut bits = 0u32;
    for i in 0..count {
        while bits < u32::from(width) {
            acc |= u64::from(bytes[*pos]) << bits;
            *pos += 1;
            bits += 8;
        }
        each(i, (acc & mask) as u32);
        acc >>= width;
        bits -= u32::from(width);
    }
}

impl Postings {
    fn push(&mut self, slot: u32, tf: u32, len: u32) {
        let delta = if self.count == 0 {
            slot
        } else {
            slot - self.last
        };
        let flagged = (u64::from(delta) << 1) | u64::from(tf > 1);
        put_varint(&mut self.tail, flagged);
        if tf > 1 {
            put_varint(&mut self.tail, u64::from(tf));
        }
        if self.tail_count == 0 {
            self.tail_max_tf = tf;
            self.tail_min_len = len;
        } else {
            self.tail_max_tf = self.tail_max_tf.max(tf);
            self.tail_min_len = self.tail_min_len.min(len);
        }
        self.tail_count += 1;
        self.last = slot;
        self.count += 1;
        self.live += 1;
        if self.tail_count as usize == BLOCK {
            self.seal();
        }
    }

    /// The slot before the first posting of packed block `b` (-1, i.e.
    /// `u32::MAX` wrapping, before the first).
    fn block_base(&self, b: usize) -> u32 {
        if b == 0 {
            u32::MAX
        } else {
            self.blocks[b - 1].last
        }
    }

    /// The base of the tail's first delta.
    fn tail_base(&self) -> u32 {
        self.blocks.last().map_or(0, |m| m.last)
    }

    /// Packs the full tail into a block.
    fn seal(&mut self) {
        let mut items = Vec::with_capacity(BLOCK);
        self.decode_tail(&mut items);
        let mut prev = self.block_base(self.blocks.len());
        let deltas: Vec<u32> = items
            .iter()
            .map(|&(slot, _)| {
                let d = slot.wrapping_sub(prev) - 1;
                prev = slot;
                d
            })
            .collect();
        let dw = deltas.iter().map(|&d| width(d)).max().unwrap_or(0);
        let tw = items
            .iter()
            .map(|&(_, tf)| width(tf - 1))
            .max()
            .unwrap_or(0);
        self.data.push(dw);
        self.data.push(tw);
        pack(&mut self.data, deltas.into_iter(), dw);
        pack(&mut self.data, items.iter().map(|p| p.1 - 1), tw);
        self.blocks.push(BlockMeta {
            last: self.last,
            max_tf: self.tail_max_tf.min(u32::from(u16::MAX)) as u16,
            min_len: self.tail_min_len.min(u32::from(u16::MAX)) as u16,
        });
        self.tail.clear();
        self.tail_count = 0;
    }

    /// The postings of block `b` whose bytes start at `data[at]` (the
    /// tail for `b == blocks.len()`).
    fn decode_block(&self, b: usize, at: usize, out: &mut Vec<(u32, u32)>) {
        if b == self.blocks.len() {
            return self.decode_tail(out);
        }
        out.clear();
        let (dw, tw) = (self.data[at], self.data[at + 1]);
        let mut pos = at + 2;
        let mut slot = self.block_base(b);
        unpack(&self.data, &mut pos, BLOCK, dw, |_, d| {
            slot = slot.wrapping_add(d + 1);
            out.push((slot, 0));
        });
        unpack(&self.data, &mut pos, BLOCK, tw, |i, t| out[i].1 = t + 1);
    }

    fn decode_tail(&self, out: &mut Vec<(u32, u32)>) {
        out.clear();
        let mut pos = 0;
        let mut slot = self.tail_base();
        while pos < self.tail.len() {
            let flagged = get_varint(&self.tail, &mut pos);
            slot += (flagged >> 1) as u32;
            let tf = if flagged & 1 == 1 {
                get_varint(&self.tail, &mut pos) as u32
            } else {
                1
            };
            out.push((slot, tf));
        }
    }

    /// Blocks including a non-empty tail.
    fn block_count(&self) -> usize {
        self.blocks.len() + usize::from(self.tail_count > 0)
    }

    /// `(last slot, largest tf, smallest length)` of block `b`.
    fn block_summary(&self, b: usize) -> (u32, u32, u32) {
        match self.blocks.get(b) {
            Some(m) => (
                m.last,
                if m.max_tf == u16::MAX {
                    u32::MAX
                } else {
                    u32::from(m.max_tf)
                },
                u32::from(m.min_len),
            ),
            None => (self.last, self.tail_max_tf, self.tail_min_len),
        }
    }

    /// Every posting, in order.
    fn decode_all(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::with_capacity(self.count as usize);
        let mut block = Vec::with_capacity(BLOCK);
        let mut at = 0;
        for b in 0..self.block_count() {
            self.decode_block(b, at, &mut block);
            out.extend_from_slice(&block);
            if b < self.blocks.len() {
                at += block_bytes(&self.data, at);
            }
        }
        out
    }

    fn bytes(&self) -> usize {
        self.data.len() + self.tail.len() + self.blocks.len() * std::mem::size_of::<BlockMeta>()
    }

    fn shrink(&mut self) {
        self.data.shrink_to_fit();
        self.blocks.shrink_to_fit();
        self.tail.shrink_to_fit();
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

/// A reader over one term's postings that moves forward only, decoding a
/// block only when asked for a posting in it.
pub struct Cursor<'a> {
    postings: Option<&'a Postings>,
    block: usize,
    /// Where the current block's bytes start.
    at: usize,
    blocks: usize,
    buf: Vec<(u32, u32)>,
    decoded: bool,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(postings: Option<&'a Postings>) -> Cursor<'a> {
        Cursor {
            postings,
            block: 0,
            at: 0,
            blocks: postings.map_or(0, Postings::block_count),
            buf: Vec::with_capacity(BLOCK),
            decoded: false,
            pos: 0,
        }
    }

    /// Past the last posting.
    pub fn exhausted(&self) -> bool {
        self.block >= self.blocks
    }

    /// `(last slot, largest tf, smallest length)` of every block, in order.
    pub fn summaries(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        (0..self.blocks).map(|b| match self.postings {
            Some(p) => p.block_summary(b),
            None => (0, 0, 0),
        })
    }

    /// `(last slot, largest tf, smallest length)` of the current block
    /// (call only when not exhausted).
    pub fn block(&self) -> (u32, u32, u32) {
        match self.postings {
            Some(p) => p.block_summary(self.block),
            None => (0, 0, 0),
        }
    }

    /// Moves to the first block whose last slot is at least `target`,
    /// without decoding anything.
    pub fn skip_blocks_to(&mut self, target: u32) {
        while !self.exhausted() && self.block().0 < target {
            if let Some(p) = self.postings {
                if self.block < p.blocks.len() {
                    self.at += block_bytes(&p.data, self.at);
                }
            }
            self.block += 1;
            self.decoded = false;
        }
    }

    /// Moves to the first posting with slot at least `target` and returns
    /// it, or `None` when there is none.
    pub fn seek(&mut self, target: u32) -> Option<(u32, u32)> {
        self.skip_blocks_to(target);
        if self.exhausted() {
            return None;
        }
        if !self.decoded {
            if let Some(p) = self.postings {
                p.decode_block(self.block, self.at, &mut self.buf);
            }
            self.decoded = true;
            self.pos = 0;
        }
        while self.buf[self.pos].0 < target {
            self.pos += 1; // the block's last slot is >= target
        }
        Some(self.buf[self.pos])
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
    ids: Vec<Option<u32>>,
    state: &'a State,
}

impl View<'_> {
    /// `(seq, (document_seq, idx), length in tokens)` of the chunk in
    /// `slot`; the length is [`DEAD`] for a removed chunk (never an
    /// answer).
    pub fn chunk(&self, slot: u32) -> (i64, (i64, i64), u32) {
        let s = slot as usize;
        (
            self.state.slot_seq[s],
            order_in(&self.state.runs, slot),
            self.state.slot_len[s],
        )
    }

    /// `(document_seq, idx)` of the chunk in `slot`.
    pub fn order(&self, slot: u32) -> (i64, i64) {
        order_in(&self.state.runs, slot)
    }

    /// The chunk `seq` in `slot`.
    pub fn seq(&self, slot: u32) -> i64 {
        self.state.slot_seq[slot as usize]
    }

    /// The length of the chunk in `slot` ([`DEAD`] once removed).
    pub fn len(&self, slot: u32) -> u32 {
        self.state.slot_len[slot as usize]
    }

    /// Live indexed chunks holding query term `i`.
    pub fn df(&self, i: usize) -> u64 {
        self.ids[i].map_or(0, |id| u64::from(self.state.postings[id as usize].live))
    }

    /// A cursor over the postings of query term `i` (live and dead).
    pub fn cursor(&self, i: usize) -> Cursor<'_> {
        Cursor::new(self.ids[i].map(|id| &self.state.postings[id as usize]))
    }
}

/// Figures for benchmarks and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Live chunks, terms and postings (a term's postings of live chunks).
    pub chunks: u64,
    pub terms: usize,
    pub postings: u64,
    /// Bytes of every posting kept (dead ones until they are dropped).
    pub posting_bytes: usize,
    /// Removed chunks whose slots are not yet reclaimed.
    pub dead_slots: usize,
    pub watermark: i64,
}

impl ChunkTextIndex {
    /// Where the next catch-up read starts, or `None` while a removal is in
    /// progress or a hold stops indexing.
    pub fn catch_up_from(&self) -> Option<CatchUp> {
        let s = self.state.lock();
        CatchUp::next(s.removals > 0, s.epoch, s.watermark, s.hold_at)
    }

    /// Adds the chunks a catch-up read found: every chunk with `from.after
    /// < seq <= covered_to` of one snapshot, ascending. Returns false (and
    /// adds nothing) when a removal or another catch-up came first.
    pub fn apply(&self, from: CatchUp, rows: Vec<ChunkRow>, covered_to: i64) -> bool {
        let mut s = self.state.lock();
        if s.removals > 0 || s.epoch != from.epoch || s.watermark != from.after {
            return false;
        }
        let mut tf: HashMap<u32, u32, BuildHasherDefault<TermHasher>> = HashMap::default();
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
    /// the watermark is still `watermark`. A term whose postings are
    /// mostly dead is rewritten first.
    pub fn with_postings<R>(
        &self,
        terms: &[String],
        watermark: i64,
        rank: impl FnOnce(&View<'_>) -> R,
    ) -> Option<R> {
        let mut s = self.state.lock();
        if s.watermark != watermark {
            return None;
        }
        let ids: Vec<Option<u32>> = terms
            .iter()
            .map(|t| s.terms.get(t.as_str()).copied())
            .collect();
        for &id in ids.iter().flatten() {
            s.compact_term(id, false);
        }
        Some(rank(&View {
            units: s.units,
            total_len: s.total_len,
            ids,
            state: &s,
        }))
    }

    /// Sizes and coverage.
    pub fn stats(&self) -> Stats {
        let s = self.state.lock();
        Stats {
            chunks: s.units,
            terms: s.terms.len(),
            postings: s.postings.iter().map(|p| u64::from(p.live)).sum(),
            posting_bytes: s.postings.iter().map(Postings::bytes).sum(),
            dead_slots: s.dead_slots,
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

    /// Tests: drops every dead posting and reclaims dead slots now (what
    /// searches and catch-ups otherwise do when enough is dead).
    #[doc(hidden)]
    pub fn compact_now(&self) {
        let mut s = self.state.lock();
        if s.removals == 0 {
            s.renumber();
        }
    }

    /// Reclaims dead slots when most slots are dead (outside removals).
    fn compact_if_sparse(&self) -> bool {
        let mut s = self.state.lock();
        if s.removals > 0 || s.dead_slots < 1024 || s.dead_slots * 2 < s.slot_len.len() {
            return false;
        }
        s.renumber();
        true
    }

    fn begin_removal(&self) {
        let mut s = self.state.lock();
        s.removals += 1;
        s.epoch += 1;
    }

    fn end_removal(&self, confirmed: bool) {
        let mut s = self.state.lock();
        if !confirmed {
            s.clear();
        }
        s.removals = s.removals.saturating_sub(1);
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
        tf: &mut HashMap<u32, u32, BuildHasherDefault<TermHasher>>,
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
        // Slots stay sorted by seq: a seq SQLite reused after a removal is
        // above every live slot, so only dead slots can hold a seq as high;
        // they take the value just below (see `slot_of`).
        let mut i = self.slot_seq.len();
        while i > 0 && self.slot_seq[i - 1] >= seq {
            debug_assert_eq!(self.slot_len[i - 1], DEAD);
            self.slot_seq[i - 1] = seq - 1;
            i -= 1;
        }
        let slot = self.slot_seq.len() as u32;
        self.slot_seq.push(seq);
        push_order(&mut self.runs, slot, order);
        self.slot_len.push(len);
        self.units += 1;
        self.total_len += u64::from(len);
        for (&id, &n) in tf.iter() {
            self.postings[id as usize].push(slot, n, len);
        }
    }

    /// The live slot of chunk `seq`, if indexed: slots are sorted by seq,
    /// and a dead slot may share its value with the live one after it.
    fn slot_of(&self, seq: i64) -> Option<u32> {
        let mut i = self.slot_seq.partition_point(|&s| s < seq);
        while i < self.slot_seq.len() && self.slot_seq[i] == seq {
            if self.slot_len[i] != DEAD {
                return Some(i as u32);
            }
            i += 1;
        }
        None
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

    /// Removes the chunks `seq` whose distinct term ids (title + text) are
    /// given: their slots die, each term's live count drops, and a term
    /// left with no live chunk is forgotten at once.
    fn remove(&mut self, removed: &[(i64, Vec<u32>)]) {
        let mut emptied = Vec::new();
        for (seq, ids) in removed {
            let Some(slot) = self.slot_of(*seq) else {
                continue;
            };
            let len = &mut self.slot_len[slot as usize];
            self.units -= 1;
            self.total_len -= u64::from(*len);
            *len = DEAD;
            self.dead_slots += 1;
            for &id in ids {
                let p = &mut self.postings[id as usize];
                p.live -= 1;
                if p.live == 0 {
                    emptied.push(id);
                }
            }
        }
        if self.units == 0 {
            self.clear();
            return;
        }
        if !emptied.is_empty() {
            // No word of a deleted page only stays in the term table.
            for &id in &emptied {
                self.postings[id as usize] = Postings::default();
            }
            let postings = &self.postings;
            self.terms.retain(|_, id| postings[*id as usize].live > 0);
        }
    }

    /// Rewrites term `id` without its dead postings when at least a
    /// quarter of them are dead (or always, with `force`).
    fn compact_term(&mut self, id: u32, force: bool) {
        let p = &self.postings[id as usize];
        let dead = p.count - p.live;
        if dead == 0 || (!force && (dead < 64 || dead * 4 < p.count)) {
            return;
        }
        let old = std::mem::take(&mut self.postings[id as usize]);
        let mut kept = Postings::default();
        for (slot, tf) in old.decode_all() {
            let len = self.slot_len[slot as usize];
            if len != DEAD {
                kept.push(slot, tf, len);
            }
        }
        kept.shrink();
        self.postings[id as usize] = kept;
    }

    /// Drops every dead slot and posting: slots are renumbered densely and
    /// the term table is rebuilt without forgotten terms.
    fn renumber(&mut self) {
        if self.dead_slots == 0 {
            return;
        }
        let mut new_slot = vec![DEAD; self.slot_len.len()];
        let mut next = 0u32;
        for (slot, &len) in self.slot_len.iter().enumerate() {
            if len != DEAD {
                new_slot[slot] = next;
                next += 1;
            }
        }
        fn keep<T>(v: &mut Vec<T>, new_slot: &[u32]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                new_slot[i - 1] != DEAD
            });
            v.shrink_to_fit();
        }
        let mut runs = Vec::new();
        for (old, &slot) in new_slot.iter().enumerate() {
            if slot != DEAD {
                push_order(&mut runs, slot, order_in(&self.runs, old as u32));
            }
        }
        runs.shrink_to_fit();
        self.runs = runs;
        keep(&mut self.slot_seq, &new_slot);
        let lens: Vec<u32> = self
            .slot_len
            .iter()
            .copied()
            .filter(|&l| l != DEAD)
            .collect();
        let mut terms = TermMap::default();
        let mut postings = Vec::new();
        for (term, id) in std::mem::take(&mut self.terms) {
            let old = std::mem::take(&mut self.postings[id as usize]);
            let mut kept = Postings::default();
            for (slot, tf) in old.decode_all() {
                let slot = new_slot[slot as usize];
                if slot != DEAD {
                    kept.push(slot, tf, lens[slot as usize]);
                }
            }
            if kept.count > 0 {
                kept.shrink();
                terms.insert(term, postings.len() as u32);
                postings.push(kept);
            }
        }
        self.terms = terms;
        self.postings = postings;
        self.slot_len = lens;
        self.dead_slots = 0;
        // The dropped slots' seqs are gone; the kept ones stay sorted.
    }

    /// Releases the slack of a finished build.
    fn shrink(&mut self) {
        self.postings.iter_mut().for_each(Postings::shrink);
        self.postings.shrink_to_fit();
        self.terms.shrink_to_fit();
    }

    fn clear(&mut self) {
        let (epoch, removals, hold_at) = (self.epoch + 1, self.removals, self.hold_at);
        *self = State {
            epoch,
            removals,
            hold_at,
            ..State::default()
        };
    }
}

/// Rows added by one catch-up above which the build's slack is released.
const RELEASE_AFTER_ROWS: usize = 20_000;

/// Brings the index up to date before a search (call outside the search's
/// read transaction, so the rows it reads are never older than the index).
pub(crate) fn catch_up(profile: &Profile) -> Result<()> {
    let index = profile.chunk_text_index();
    let mut released = index.compact_if_sparse();
    let mut added = 0usize;
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
        added += rows.len();
        // Covers up to the last chunk read, never to `until` (which may be
        // i64::MAX): a chunk inserted later must stay above the watermark.
        let covered_to = rows.last().map_or(from.after, |r: &ChunkRow| r.0);
        if !index.apply(from, rows, covered_to) || complete {
            break;
        }
    }
    if added >= RELEASE_AFTER_ROWS {
        index.state.lock().shrink();
        released = true;
    }
    if released {
        // The build's grown-and-freed buffers go back to the system.
        crate::sys::release_free_memory();
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
    /// before they are deleted. Cheap: their slots are marked dead and
    /// their terms' counts lowered; no posting is rewritten here.
    pub(crate) fn remove_documents(
        &self,
        conn: &Connection,
        condition: &str,
        values: &[rusqlite::types::Value],
    ) -> Result<()> {
        self.begin();
        let watermark = self.index.watermark();
        let mut removed: Vec<(i64, Vec<u32>)> = Vec::new();
        if watermark > 0 {
            // Term ids are stable while the removal is in progress: no
            // catch-up adds terms and nothing else forgets them.
            conn.for_each_row(
                &format!(
                    "SELECT c.seq, d.title, c.text FROM documents d
                     JOIN document_chunks c ON c.document_seq = d.seq
                     WHERE ({condition}) AND c.seq <= {watermark}"
                ),
                params_from_iter(values.iter()),
                |r| {
                    let mut ids = Vec::new();
                    let s = self.index.state.lock();
                    let mut add = |t: &str| {
                        if let Some(&id) = s.terms.get(t) {
                            ids.push(id);
                        }
                    };
                    if let Some(title) = r.get_ref(1)?.as_str_or_null()? {
                        text::for_each_token(title, &mut add);
                    }
                    text::for_each_token(r.get_ref(2)?.as_str()?, &mut add);
                    drop(s);
                    ids.sort_unstable();
                    ids.dedup();
                    Ok((r.get(0)?, ids))
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

    fn postings(items: &[(u32, u32)]) -> Postings {
        let mut p = Postings::default();
        for &(slot, tf) in items {
            p.push(slot, tf, 10);
        }
        p
    }

    #[test]
    fn postings_round_trip_through_blocks_and_tail() {
        // Large gaps and counts, across several packed blocks and a tail.
        let mut items = vec![(0, 1), (1, 3), (200, 1), (70_000, 500), (70_001, 1)];
        let mut x = 12_345u32;
        let mut slot = 70_001u32;
        for _ in 0..(3 * BLOCK + 17) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            slot += 1 + (x >> 16) % 3_000;
            items.push((slot, 1 + (x >> 8) % 40));
        }
        items.push((u32::MAX - 1, 70_000));
        let p = postings(&items);
        assert_eq!(p.blocks.len(), items.len() / BLOCK);
        assert_eq!(p.decode_all(), items);
        // tf 1 at a gap of 1 is one byte in the tail.
        let mut q = Postings::default();
        q.push(5, 1, 1);
        let before = q.tail.len();
        q.push(6, 1, 1);
        assert_eq!(q.tail.len() - before, 1);
    }

    #[test]
    fn cursors_seek_and_bound_every_block() {
        let items: Vec<(u32, u32)> = (0..1_000u32).map(|i| (i * 3, 1 + i % 7)).collect();
        let p = postings(&items);
        let mut c = Cursor::new(Some(&p));
        assert_eq!(c.seek(0), Some((0, 1)));
        assert_eq!(c.seek(4), Some((6, 3)));
        assert_eq!(c.seek(2_000), Some((2_001, 1 + 667 % 7)));
        c.skip_blocks_to(2_990);
        assert_eq!(c.seek(2_990), Some((2_991, 1 + 997 % 7)));
        assert_eq!(c.seek(2_998), None);
        assert!(c.exhausted());
        let c = Cursor::new(Some(&p));
        let mut start = 0;
        for (last, max_tf, min_len) in c.summaries() {
            let inside: Vec<_> = items
                .iter()
                .filter(|p| p.0 >= start && p.0 <= last)
                .collect();
            assert!(!inside.is_empty());
            assert_eq!(max_tf, inside.iter().map(|p| p.1).max().unwrap());
            assert_eq!(min_len, 10);
            start = last + 1;
        }
        assert!(Cursor::new(None).exhausted());
    }

    fn live_slots(index: &ChunkTextIndex, term: &str) -> Vec<i64> {
        let w = index.watermark();
        index
            .with_postings(&[term.into()], w, |v| {
                let mut c = v.cursor(0);
                let mut out = Vec::new();
                let mut at = 0;
                while let Some((slot, _)) = c.seek(at) {
                    if v.len(slot) != DEAD {
                        out.push(v.chunk(slot).0);
                    }
                    at = slot + 1;
                }
                out
            })
            .unwrap()
    }

    #[test]
    fn removal_forgets_terms_and_totals_and_compaction_drops_dead_postings() {
        let index = ChunkTextIndex::default();
        let from = index.catch_up_from().unwrap();
        let rows = vec![
            (1, 1, 0, Some("Title".to_owned()), "secret words".to_owned()),
            (2, 2, 0, None, "plain words".to_owned()),
            (3, 3, 0, None, "more words".to_owned()),
        ];
        assert!(index.apply(from, rows, 3));
        assert_eq!(index.stats().chunks, 3);
        let mut s = index.state.lock();
        let ids =
            |s: &State, words: &[&str]| -> Vec<u32> { words.iter().map(|w| s.terms[*w]).collect() };
        let gone = ids(&s, &["title", "secret", "words"]);
        s.remove(&[(1, gone)]);
        assert!(!s.terms.contains_key("secret"));
        assert!(!s.terms.contains_key("title"));
        assert_eq!((s.units, s.total_len), (2, 4));
        assert_eq!(s.postings[s.terms["words"] as usize].live, 2);
        drop(s);
        assert_eq!(live_slots(&index, "words"), [2, 3]);
        assert_eq!(index.stats().dead_slots, 1);
        index.compact_now();
        let stats = index.stats();
        assert_eq!((stats.dead_slots, stats.chunks, stats.postings), (0, 2, 4));
        assert_eq!(live_slots(&index, "words"), [2, 3]);
        assert_eq!(live_slots(&index, "more"), [3]);
    }

    #[test]
    fn a_reused_seq_finds_its_own_slot() {
        let index = ChunkTextIndex::default();
        let from = index.catch_up_from().unwrap();
        let rows = (1..=4)
            .map(|seq| (seq, seq, 0, None, format!("w{seq} common")))
            .collect();
        assert!(index.apply(from, rows, 4));
        let mut s = index.state.lock();
        let common = s.terms["common"];
        let (w3, w4) = (s.terms["w3"], s.terms["w4"]);
        s.remove(&[(3, vec![w3, common]), (4, vec![w4, common])]);
        s.watermark = 2;
        drop(s);
        // SQLite hands out seq 3 and 4 again.
        let from = index.catch_up_from().unwrap();
        let rows = vec![
            (3, 9, 0, None, "again common".to_owned()),
            (4, 9, 1, None, "again".to_owned()),
        ];
        assert!(index.apply(from, rows, 4));
        let s = index.state.lock();
        assert_eq!(s.slot_of(3), Some(4));
        assert_eq!(s.slot_of(4), Some(5));
        assert_eq!(s.slot_of(2), Some(1));
        drop(s);
        assert_eq!(live_slots(&index, "common"), [1, 2, 3]);
        assert_eq!(live_slots(&index, "again"), [3, 4]);
    }
}
