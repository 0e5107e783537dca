//! The one vector engine of the library: exact cosine top-k over stored
//! f32 embeddings (`memory.search`, `documents.search`).
//!
//! Scanning f32 vectors means reading and decoding every stored vector (307
//! MB for 200,000 x 384) on each search; keeping them in memory costs as
//! much RAM. Instead each vector is kept in memory only as 8-bit codes with
//! one scale (a quarter of the f32 size). A [`CoarseQuery`] bounds how far
//! each coarse score can be from the exact one, so [`top_k`] ranks exactly
//! while reading the f32 vectors of only the few candidates the codes cannot
//! rule out, from the database, in the caller's read transaction.
//!
//! Correctness does not depend on who wrote: each source names a token that
//! every change of its vectors replaces (triggers in the migrations), and
//! cached codes are used only while the database still holds the token they
//! were read with. Codes are keyed by database file, source, model and
//! dimension; the least recently used are dropped beyond [`MAX_CODE_BYTES`].

use crate::db::ConnExt;
use crate::error::{Error, Result};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Appends the 8-bit codes of `v` to `codes`; returns the scale
/// (largest magnitude / 127, so every code is in -127..=127).
fn quantise(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// A unit query prepared for coarse scoring.
pub struct CoarseQuery {
    codes: Vec<i8>,
    scale: f32,
    /// `e(i) = per_scale * scales[i] + fixed` bounds |coarse - exact|.
    per_scale: f32,
    fixed: f32,
}

impl CoarseQuery {
    /// Prepares the unit vector `q` (dimension `dim` of the set).
    ///
    /// With `v^ = s_v c_v` and `q^ = s_q c_q` (each number within half its
    /// scale), `q.v - q^.v^ = q.(v - v^) + (q - q^).v^`, so the error is at
    /// most `|q|_1 s_v / 2 + |v^|_1 s_q / 2`, and `|v^|_1 <= sqrt(dim) +
    /// dim s_v / 2` for a unit `v`. The integer sum is exact; `fixed` also
    /// covers f32 rounding of both the coarse and the exact score.
    pub fn new(q: &[f32]) -> CoarseQuery {
        let mut codes = Vec::with_capacity(q.len());
        let scale = quantise(q, &mut codes);
        let dim = q.len() as f32;
        let l1: f32 = q.iter().map(|x| x.abs()).sum();
        CoarseQuery {
            codes,
            scale,
            per_scale: l1 / 2.0 + dim * scale / 4.0,
            fixed: dim.sqrt() * scale / 2.0 + dim * 4.0 * f32::EPSILON + 1e-6,
        }
    }

    /// Bounds `(low, high)` of the exact score of the unit vector with
    /// `codes` and scale `s`.
    pub fn bounds_of(&self, codes: &[i8], s: f32) -> (f32, f32) {
        let approx = int_dot(codes, &self.codes) as f32 * s * self.scale;
        // Widened by a relative 1e-6 for the rounding of `approx` itself.
        let error = self.per_scale * s + self.fixed + approx.abs() * 1e-6;
        (approx - error, approx + error)
    }
}

/// The exact integer dot product of two code vectors (|sum| < 2^31 for
/// up to 4096 codes of magnitude 127).
fn int_dot(a: &[i8], b: &[i8]) -> i32 {
    let mut sums = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x as i32 * y as i32)
        .sum();
    for (x, y) in ca.zip(cb) {
        let (x, y): (&[i8; 16], &[i8; 16]) = match (x.try_into(), y.try_into()) {
            (Ok(x), Ok(y)) => (x, y),
            _ => unreachable!("chunks_exact(16) yields 16 codes"),
        };
        for i in 0..16 {
            sums[i] += (x[i] as i16 * y[i] as i16) as i32;
        }
    }
    sums.iter().sum::<i32>() + tail
}

/// An embedding in a request: `{model, vector}`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingInput {
    pub model: String,
    #[schemars(length(min = 1, max = MAX_DIM))]
    pub vector: Vec<f64>,
}

/// The largest embedding dimension accepted.
pub const MAX_DIM: usize = 4096;

impl EmbeddingInput {
    /// The vector as f32, validated: 1..4096 finite numbers (also finite as
    /// f32), not all zero (cosine similarity needs a direction); a
    /// non-empty model name. `field` names the request field.
    pub fn to_f32(&self, field: &str) -> Result<Vec<f32>> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid(
                format!("{field}.model"),
                "must not be empty",
            ));
        }
        let vector_field = format!("{field}.vector");
        if !(1..=MAX_DIM).contains(&self.vector.len()) {
            return Err(Error::invalid(vector_field, "must have 1..4096 numbers"));
        }
        let vector: Vec<f32> = self.vector.iter().map(|&x| x as f32).collect();
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                vector_field,
                "numbers must be finite f32 values",
            ));
        }
        if vector.iter().all(|&x| x == 0.0) {
            return Err(Error::invalid(vector_field, "must not be all zeros"));
        }
        Ok(vector)
    }
}

/// A vector as stored: little-endian f32.
pub(crate) fn vector_blob(vector: &[f32]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(vector.len() * 4);
    for x in vector {
        blob.extend_from_slice(&x.to_le_bytes());
    }
    blob
}

/// Where a family of embeddings lives: the SQL the engine runs, all
/// constants of the owning domain. Keys are the rows' integer keys (a
/// memory `seq`, a chunk `seq`); one key has at most one vector per model.
pub struct VectorSource {
    /// Names the source in the cache key.
    pub name: &'static str,
    /// One integer that changes whenever any vector of the source changes.
    pub token_sql: &'static str,
    /// `(key, vector)` of every vector with model `?1` and dimension `?2`,
    /// in the order that breaks score ties (first = preferred).
    pub scan_sql: &'static str,
    /// The vector of key `?1` and model `?2`.
    pub fetch_sql: &'static str,
}

/// The compact codes of every vector of one model and dimension of a
/// source, in tie order: 8-bit codes with one scale per (unit) vector.
/// The f32 vectors stay in the database; [`top_k`] rescores the few
/// candidates the codes cannot rule out from there.
pub struct CodeSet {
    /// The key of each vector, in tie order.
    pub keys: Vec<i64>,
    /// The codes in segments of [`SEGMENT_VECTORS`] vectors (`dim` codes
    /// each): number `j` of unit vector `i` is about `codes(i)[j] *
    /// scales[i]`, within `scales[i] / 2`. Fixed-size segments are
    /// allocated once at their final size, so loading never copies a
    /// growing buffer and leaves no freed high-water behind.
    segments: Vec<Box<[i8]>>,
    pub scales: Vec<f32>,
    pub dim: usize,
}

/// Vectors per code segment.
const SEGMENT_VECTORS: usize = 4096;

impl CodeSet {
    fn codes(&self, i: usize) -> &[i8] {
        let at = (i % SEGMENT_VECTORS) * self.dim;
        &self.segments[i / SEGMENT_VECTORS][at..at + self.dim]
    }

    fn bytes(&self) -> usize {
        self.keys.len() * (self.dim + 12)
    }
}

/// Builds a [`CodeSet`] one vector at a time.
struct CodeSetBuilder {
    set: CodeSet,
    open: Vec<i8>,
}

impl CodeSetBuilder {
    fn new(dim: usize) -> CodeSetBuilder {
        CodeSetBuilder {
            set: CodeSet {
                keys: Vec::new(),
                segments: Vec::new(),
                scales: Vec::new(),
                dim,
            },
            open: Vec::new(),
        }
    }

    fn push(&mut self, key: i64, unit: &[f32]) {
        if self.open.capacity() == 0 {
            self.open = Vec::with_capacity(SEGMENT_VECTORS * self.set.dim);
        }
        let scale = quantise(unit, &mut self.open);
        self.set.keys.push(key);
        self.set.scales.push(scale);
        if self.open.len() == SEGMENT_VECTORS * self.set.dim {
            self.set
                .segments
                .push(std::mem::take(&mut self.open).into_boxed_slice());
        }
    }

    fn finish(mut self) -> CodeSet {
        if !self.open.is_empty() {
            self.set.segments.push(self.open.into_boxed_slice());
        }
        self.set.keys.shrink_to_fit();
        self.set.scales.shrink_to_fit();
        self.set
    }
}

type CodeKey = (PathBuf, &'static str, String, usize);

struct CodeEntry {
    token: i64,
    set: Arc<CodeSet>,
    last_used: u64,
}

#[derive(Default)]
struct CodeCache {
    entries: HashMap<CodeKey, CodeEntry>,
    clock: u64,
}

static CODE_CACHE: Lazy<Mutex<CodeCache>> = Lazy::new(Default::default);

/// The most code bytes kept in memory across all profiles and sources
/// (200,000 vectors of 384 numbers take 79 MB).
pub const MAX_CODE_BYTES: usize = 256 << 20;

/// One exact vector search (see [`top_k`]).
#[derive(Clone, Copy)]
pub struct VectorSearch<'a> {
    pub source: &'a VectorSource,
    pub model: &'a str,
    pub query: &'a [f32],
    pub allowed: Option<&'a dyn Fn(i64) -> bool>,
    pub k: usize,
    pub min_score: f64,
}

/// The exact top `k` of `source`'s vectors of `model` by cosine similarity
/// with `query` (any non-zero vector of dimension `dim`), best first as
/// `(key, score)`; equal scores keep tie order. `allowed`, when given,
/// says which keys may be returned. Scores below `min_score` are dropped.
///
/// Must run inside a read transaction of `conn` (the codes and the rescored
/// vectors are then the same snapshot). Exact in two passes: the codes give
/// each vector bounds `low <= exact <= high`; with `floor` the k-th best
/// `low`, only vectors with `high >= floor` can be in the top k, and only
/// those are read from the database and scored exactly ([`cosine`], in
/// f64: the score of a vector with the query's own direction is 1).
pub fn top_k(conn: &Connection, db: &Path, search: &VectorSearch<'_>) -> Result<Vec<(i64, f64)>> {
    let VectorSearch {
        source,
        model,
        query,
        allowed,
        k,
        min_score,
    } = *search;
    let mut unit = query.to_vec();
    normalise(&mut unit);
    let set = load_codes(conn, db, source, model, unit.len())?;
    let coarse = CoarseQuery::new(&unit);
    // One pass: each admitted vector's upper bound (NaN: not admitted),
    // and the k largest lower bounds in a small heap (no per-vector
    // copies beyond one f32: this runs over every vector of the model).
    let mut highs: Vec<f32> = Vec::with_capacity(set.keys.len());
    let mut lows: std::collections::BinaryHeap<std::cmp::Reverse<TotalF32>> =
        std::collections::BinaryHeap::with_capacity(k + 1);
    let mut considered = 0usize;
    for i in 0..set.keys.len() {
        if allowed.is_some_and(|allowed| !allowed(set.keys[i])) {
            highs.push(f32::NAN);
            continue;
        }
        considered += 1;
        let (low, high) = coarse.bounds_of(set.codes(i), set.scales[i]);
        highs.push(high);
        if k > 0 {
            if lows.len() < k {
                lows.push(std::cmp::Reverse(TotalF32(low)));
            } else if lows.peek().is_some_and(|m| low > m.0 .0) {
                lows.pop();
                lows.push(std::cmp::Reverse(TotalF32(low)));
            }
        }
    }
    // The k-th best lower bound, when more than k vectors compete.
    let kth_low = if considered > k && k > 0 {
        lows.peek().map_or(f32::NEG_INFINITY, |m| m.0 .0)
    } else {
        f32::NEG_INFINITY
    };
    drop(lows);
    let floor = kth_low.max(min_score as f32 - f32::EPSILON);
    let mut best: Vec<(f64, usize)> = Vec::new();
    let mut stmt = conn.prepare_cached(source.fetch_sql)?;
    let mut vector = Vec::with_capacity(query.len());
    for (i, &high) in highs.iter().enumerate() {
        if high.is_nan() || high < floor {
            continue;
        }
        let blob: Vec<u8> = stmt.query_row(rusqlite::params![set.keys[i], model], |r| r.get(0))?;
        vector.clear();
        vector.extend(
            blob.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        let score = cosine(&vector, query);
        if score >= min_score {
            best.push((score, i));
        }
    }
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    best.truncate(k);
    Ok(best
        .into_iter()
        .map(|(score, i)| (set.keys[i], score))
        .collect())
}

/// The cosine similarity of two non-zero f32 vectors, computed in f64 (a
/// vector scores exactly 1 against itself or any positive multiple of it,
/// where f32 arithmetic gives 0.99999994). Every product of f32 values is
/// exact in f64 and the sums cannot overflow (4096 squares of at most
/// 3.4e38).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    (ab / (aa * bb).sqrt()).clamp(-1.0, 1.0)
}

/// The codes of `model`/`dim` as `conn`'s snapshot sees them: cached while
/// the source's token is unchanged, else read and cached.
fn load_codes(
    conn: &Connection,
    db: &Path,
    source: &VectorSource,
    model: &str,
    dim: usize,
) -> Result<Arc<CodeSet>> {
    let key: CodeKey = (db.to_owned(), source.name, model.to_owned(), dim);
    let token = conn.query_i64(source.token_sql, [])?;
    {
        let mut cache = CODE_CACHE.lock();
        cache.clock += 1;
        let clock = cache.clock;
        if let Some(entry) = cache.entries.get_mut(&key).filter(|e| e.token == token) {
            entry.last_used = clock;
            return Ok(entry.set.clone());
        }
    }
    let mut builder = CodeSetBuilder::new(dim);
    let mut stmt = conn.prepare_cached(source.scan_sql)?;
    let mut rows = stmt.query(rusqlite::params![model, dim as i64])?;
    let mut unit = Vec::with_capacity(dim);
    while let Some(row) = rows.next()? {
        let blob = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        if blob.len() != dim * 4 {
            continue; // the schemas' CHECK makes this unreachable
        }
        unit.clear();
        unit.extend(
            blob.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        normalise(&mut unit);
        builder.push(row.get(0)?, &unit);
    }
    let set = builder.finish();
    // The scan's grown-and-freed buffers go back to the system.
    crate::sys::release_free_memory();
    let set = Arc::new(set);
    let mut cache = CODE_CACHE.lock();
    cache.clock += 1;
    let last_used = cache.clock;
    cache.entries.insert(
        key,
        CodeEntry {
            token,
            set: set.clone(),
            last_used,
        },
    );
    loop {
        let total: usize = cache.entries.values().map(|e| e.set.bytes()).sum();
        if total <= MAX_CODE_BYTES || cache.entries.len() <= 1 {
            break;
        }
        let oldest = cache
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            cache.entries.remove(&oldest);
        }
    }
    Ok(set)
}

/// An f32 ordered by `total_cmp` (for a heap of bounds).
#[derive(Clone, Copy, PartialEq)]
struct TotalF32(f32);

impl Eq for TotalF32 {}

impl PartialOrd for TotalF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The dot product, with eight independent sums so the compiler keeps the
/// loop in SIMD registers.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        let (x, y): (&[f32; 8], &[f32; 8]) = match (x.try_into(), y.try_into()) {
            (Ok(x), Ok(y)) => (x, y),
            _ => unreachable!("chunks_exact(8) yields 8 numbers"),
        };
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `invalid_argument` (naming `field`) when `model` already has stored
/// vectors of another dimension than `dim`. `other_dimension` is the
/// caller's query over its own embeddings table, with `?1` the model and
/// `?2` the dimension, true when a row of another dimension exists (two
/// range seeks on a `(model, dim)` index, not a scan of the model).
pub(crate) fn require_dimension(
    conn: &Connection,
    other_dimension: &str,
    model: &str,
    dim: usize,
    field: &str,
) -> Result<()> {
    if conn.exists(other_dimension, rusqlite::params![model, dim as i64])? {
        return Err(Error::invalid(
            field,
            "dimension differs from the stored vectors of this model",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum_for_every_length() {
        for len in [1, 7, 8, 9, 384, 1000] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "len {len}");
        }
    }

    #[test]
    fn coarse_bounds_hold_the_exact_score() {
        let mut x = 12_345u32;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for dim in [1, 3, 16, 17, 384, 4096] {
            let mut seqs = Vec::new();
            let mut data = Vec::new();
            for i in 0..20 {
                let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
                if i == 0 {
                    v[0] = 50.0; // one dominant component
                }
                normalise(&mut v);
                seqs.push(i);
                data.extend(v);
            }
            let _ = seqs;
            let vector = |i: usize| &data[i * dim..(i + 1) * dim];
            let mut codes = Vec::new();
            let scales: Vec<f32> = (0..20).map(|i| quantise(vector(i), &mut codes)).collect();
            for qi in 0..3 {
                let q = vector(qi).to_vec();
                let cq = CoarseQuery::new(&q);
                for i in 0..20 {
                    let exact = dot(vector(i), &q);
                    let (low, high) = cq.bounds_of(&codes[i * dim..(i + 1) * dim], scales[i]);
                    assert!(
                        low <= exact && exact <= high,
                        "dim {dim} q {qi} v {i}: {low} {exact} {high}"
                    );
                    // Spread-out vectors get tight bounds (a spiky one only costs an
                    // exact rescore).
                    if i != 0 && qi != 0 && dim <= 384 {
                        assert!(high - low < 0.08, "dim {dim}: width {}", high - low);
                    }
                }
            }
        }
    }

    /// A source over a plain table `v (key, vector)`, keys in tie order.
    const TEST_SOURCE: VectorSource = VectorSource {
        name: "test_vectors",
        token_sql: "SELECT token FROM version",
        scan_sql: "SELECT key, vector FROM v WHERE ?1 = ?1 AND ?2 = ?2 ORDER BY key",
        fetch_sql: "SELECT vector FROM v WHERE key = ?1 AND ?2 = ?2",
    };

    fn database(vectors: &[Vec<f32>], keys: &[i64]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE v (key INTEGER PRIMARY KEY, vector BLOB);
             CREATE TABLE version (token INTEGER); INSERT INTO version VALUES (random());",
        )
        .unwrap();
        for (v, k) in vectors.iter().zip(keys) {
            conn.execute(
                "INSERT INTO v VALUES (?1, ?2)",
                rusqlite::params![k, vector_blob(v)],
            )
            .unwrap();
        }
        conn
    }

    fn search(
        conn: &Connection,
        db: &str,
        query: &[f32],
        allowed: Option<&[i64]>,
        k: usize,
        min_score: f64,
    ) -> Vec<(i64, f64)> {
        let admits = |key: i64| allowed.is_none_or(|a| a.contains(&key));
        top_k(
            conn,
            Path::new(db),
            &VectorSearch {
                source: &TEST_SOURCE,
                model: "m",
                query,
                allowed: allowed.map(|_| &admits as &dyn Fn(i64) -> bool),
                k,
                min_score,
            },
        )
        .unwrap()
    }

    #[test]
    fn top_k_is_best_first_with_ties_in_insertion_order() {
        let vs: Vec<Vec<f32>> = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]
            .iter()
            .map(|v| v.to_vec())
            .collect();
        let conn = database(&vs, &[1, 2, 3, 4]);
        let q = [2.0, 0.0];
        let keys = |hits: Vec<(i64, f64)>| hits.into_iter().map(|h| h.0).collect::<Vec<_>>();
        let db = "mem:ties";
        assert_eq!(
            keys(search(&conn, db, &q, None, 10, f64::NEG_INFINITY)),
            [1, 3, 2, 4]
        );
        assert_eq!(
            keys(search(&conn, db, &q, None, 2, f64::NEG_INFINITY)),
            [1, 3]
        );
        assert_eq!(keys(search(&conn, db, &q, None, 10, 0.5)), [1, 3]);
        assert_eq!(
            keys(search(
                &conn,
                db,
                &q,
                Some(&[2, 3, 9]),
                10,
                f64::NEG_INFINITY
            )),
            [3, 2]
        );
        assert!(search(&conn, db, &q, Some(&[]), 10, f64::NEG_INFINITY).is_empty());
        // A change of the token is seen: the codes are re-read.
        conn.execute_batch("DELETE FROM v WHERE key = 1; UPDATE version SET token = token + 1")
            .unwrap();
        assert_eq!(
            keys(search(&conn, db, &q, None, 10, f64::NEG_INFINITY)),
            [3, 2, 4]
        );
    }

    /// The brute-force reference: the engine's results equal a full exact
    /// scan (the cosine of every stored vector with the query).
    #[test]
    fn two_pass_ranking_equals_a_full_exact_scan() {
        let dim = 48;
        let n = 5_000;
        let mut x = 7u32;
        let mut data: Vec<Vec<f32>> = (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        (x >> 16) as f32 / 65_536.0 - 0.5
                    })
                    .collect()
            })
            .collect();
        // Near-duplicates of the query so the top scores differ by less
        // than the coarse error, and exact duplicates for ties.
        let query: Vec<f32> = data[0].clone();
        for (copy, i) in [10, 20, 30, 40].into_iter().enumerate() {
            let mut v = query.clone();
            v[copy] += 1e-4 * copy as f32;
            data[i] = v;
        }
        data[50] = query.clone();
        let keys: Vec<i64> = (0..n as i64).map(|i| i * 2).collect();
        let conn = database(&data, &keys);
        let exact = |allowed: Option<&[i64]>, k: usize, min: f64| {
            let mut all: Vec<(i64, f64)> = (0..n)
                .filter(|&i| allowed.is_none_or(|a| a.contains(&keys[i])))
                .map(|i| (keys[i], cosine(&data[i], &query)))
                .filter(|p| p.1 >= min)
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            all
        };
        let allowed: Vec<i64> = keys.iter().copied().filter(|s| s % 3 == 0).collect();
        let db = "mem:brute";
        for k in [1, 5, 20, 200] {
            assert_eq!(
                search(&conn, db, &query, None, k, f64::NEG_INFINITY),
                exact(None, k, f64::NEG_INFINITY)
            );
            assert_eq!(
                search(&conn, db, &query, Some(&allowed), k, f64::NEG_INFINITY),
                exact(Some(&allowed), k, f64::NEG_INFINITY)
            );
            assert_eq!(search(&conn, db, &query, None, k, 0.1), exact(None, k, 0.1));
        }
        // Index 10 got a zero offset: it and index 50 equal the query, so
        // keys 0, 20 and 100 score the same and keep insertion order.
        let top = search(&conn, db, &query, None, 10, f64::NEG_INFINITY);
        let copies: Vec<(i64, f64)> = top
            .iter()
            .copied()
            .filter(|(k, _)| [0, 20, 100].contains(k))
            .collect();
        assert_eq!(copies.len(), 3);
        assert!(copies.iter().all(|c| c.1 == 1.0), "{copies:?}");
        assert_eq!(
            copies.iter().map(|c| c.0).collect::<Vec<_>>(),
            [0, 20, 100],
            "exact ties keep insertion order"
        );
    }

    #[test]
    fn cosine_is_exact_for_equal_and_simple_directions() {
        assert_eq!(cosine(&[1.0, 2.0], &[2.0, 4.0]), 1.0);
        assert_eq!(cosine(&[3.0, 4.0], &[1.0, 0.0]), 0.6);
        assert_eq!(cosine(&[1.0, 0.0], &[-2.0, 0.0]), -1.0);
        assert_eq!(cosine(&[0.0, 1.0], &[5.0, 0.0]), 0.0);
        let big = [3.0e38f32; 4096];
        assert_eq!(cosine(&big, &big), 1.0, "no overflow at f32's largest values");
    }

    #[test]
    fn normalise_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalise(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
