//! An in-memory copy of the stored embeddings of one model and dimension,
//! normalised to unit length and laid out contiguously, so `memory.search`
//! scores 100,000 vectors in a few milliseconds instead of re-reading and
//! decoding 150 MB of SQLite pages on every call.
//!
//! Each vector is kept twice: exactly (f32), and coarsely as 8-bit codes
//! with one scale per vector, a quarter of the memory a full scan streams
//! through (the scan is bound by memory bandwidth, not arithmetic). A
//! [`CoarseQuery`] bounds how far each coarse score can be from the exact
//! one, which lets the search rank exactly while reading the exact vectors
//! of only a few candidates (see `search.rs`).
//!
//! Correctness does not depend on who wrote: every transaction that changes
//! `memory_embeddings` replaces `memory_vectors_version.token` (triggers in
//! the migration), and a copy is used only while the database still holds
//! the token it was read with. Copies are keyed by database file, model and
//! dimension, and the least recently used are dropped beyond
//! [`MAX_CACHED_BYTES`].

use crate::db::ConnExt;
use crate::error::{Error, Result};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most vector data kept in memory across all profiles.
pub const MAX_CACHED_BYTES: usize = 1 << 30;

/// The unit-length vectors of one model and dimension, in `seq` order.
pub struct VectorSet {
    /// The memory `seq` of each vector, ascending.
    pub seqs: Vec<i64>,
    /// `seqs.len() * dim` numbers: vector `i` is `data[i*dim..(i+1)*dim]`.
    pub data: Vec<f32>,
    /// The same vectors as 8-bit codes, same layout: number `j` of vector
    /// `i` is about `codes[i*dim+j] * scales[i]`, within `scales[i] / 2`.
    pub codes: Vec<i8>,
    /// One scale per vector (its largest magnitude / 127).
    pub scales: Vec<f32>,
    /// The dimension.
    pub dim: usize,
}

impl VectorSet {
    /// Vector `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The codes of vector `i`.
    pub fn codes(&self, i: usize) -> &[i8] {
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    /// Builds a set from unit vectors (`data`, `dim` numbers each).
    pub fn new(seqs: Vec<i64>, data: Vec<f32>, dim: usize) -> VectorSet {
        let mut codes = Vec::with_capacity(data.len());
        let mut scales = Vec::with_capacity(seqs.len());
        for v in data.chunks_exact(dim) {
            let scale = quantise(v, &mut codes);
            scales.push(scale);
        }
        VectorSet {
            seqs,
            data,
            codes,
            scales,
            dim,
        }
    }

    fn bytes(&self) -> usize {
        self.data.len() * 5 + self.seqs.len() * 12
    }
}

type Key = (PathBuf, String, usize);

struct Entry {
    token: i64,
    set: Arc<VectorSet>,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
    clock: u64,
}

static CACHE: Lazy<Mutex<Cache>> = Lazy::new(Default::default);

/// The vectors of `model` and `dim` as `conn` sees them, from the cache
/// when it is current, else read (in one read transaction, so the token and
/// the rows are the same snapshot) and cached.
pub fn load(conn: &Connection, db: &Path, model: &str, dim: usize) -> Result<Arc<VectorSet>> {
    let key: Key = (db.to_owned(), model.to_owned(), dim);
    conn.execute_batch("BEGIN")?;
    let outcome = load_in_snapshot(conn, key);
    conn.execute_batch("COMMIT")?;
    outcome
}

fn load_in_snapshot(conn: &Connection, key: Key) -> Result<Arc<VectorSet>> {
    let token = conn.query_i64("SELECT token FROM memory_vectors_version WHERE id = 1", [])?;
    {
        let mut cache = CACHE.lock();
        cache.clock += 1;
        let clock = cache.clock;
        if let Some(entry) = cache.entries.get_mut(&key).filter(|e| e.token == token) {
            entry.last_used = clock;
            return Ok(entry.set.clone());
        }
    }
    let set = Arc::new(read_vectors(conn, &key.1, key.2)?);
    let mut cache = CACHE.lock();
    cache.clock += 1;
    let last_used = cache.clock;
    cache.entries.insert(
        key,
        Entry {
            token,
            set: set.clone(),
            last_used,
        },
    );
    evict(&mut cache);
    Ok(set)
}

/// Drops the least recently used copies until the total fits.
fn evict(cache: &mut Cache) {
    loop {
        let total: usize = cache.entries.values().map(|e| e.set.bytes()).sum();
        if total <= MAX_CACHED_BYTES || cache.entries.len() <= 1 {
            return;
        }
        let oldest = cache
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            cache.entries.remove(&key);
        }
    }
}

fn read_vectors(conn: &Connection, model: &str, dim: usize) -> Result<VectorSet> {
    let count = conn.query_i64(
        "SELECT count(*) FROM memory_embeddings WHERE model = ?1 AND dim = ?2",
        rusqlite::params![model, dim as i64],
    )? as usize;
    let mut seqs = Vec::with_capacity(count);
    let mut data = Vec::with_capacity(count * dim);
    let mut stmt = conn.prepare_cached(
        "SELECT memory_seq, vector FROM memory_embeddings
         WHERE model = ?1 AND dim = ?2 ORDER BY memory_seq",
    )?;
    let mut rows = stmt.query(rusqlite::params![model, dim as i64])?;
    while let Some(row) = rows.next()? {
        let blob = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        if blob.len() != dim * 4 {
            continue; // the schema's CHECK makes this unreachable
        }
        seqs.push(row.get(0)?);
        let start = data.len();
        data.extend(
            blob.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        normalise(&mut data[start..]);
    }
    Ok(VectorSet::new(seqs, data, dim))
}

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

    /// Bounds `(low, high)` of the exact score of vector `i` of `set`.
    pub fn bounds(&self, set: &VectorSet, i: usize) -> (f32, f32) {
        self.bounds_of(set.codes(i), set.scales[i])
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingInput {
    pub model: String,
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
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
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
    /// `keys.len() * dim` codes: number `j` of unit vector `i` is about
    /// `codes[i*dim+j] * scales[i]`, within `scales[i] / 2`.
    pub codes: Vec<i8>,
    pub scales: Vec<f32>,
    pub dim: usize,
}

impl CodeSet {
    fn codes(&self, i: usize) -> &[i8] {
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    fn bytes(&self) -> usize {
        self.codes.len() + self.keys.len() * 12
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
/// those are read from the database and scored with f32 arithmetic on the
/// normalised stored vector, as a full exact scan would.
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
    let considered: Vec<usize> = match allowed {
        None => (0..set.keys.len()).collect(),
        Some(allowed) => (0..set.keys.len())
            .filter(|&i| allowed(set.keys[i]))
            .collect(),
    };
    let coarse = CoarseQuery::new(&unit);
    let bounds: Vec<(f32, f32)> = considered
        .iter()
        .map(|&i| coarse.bounds_of(set.codes(i), set.scales[i]))
        .collect();
    let kth_low = if bounds.len() > k && k > 0 {
        let mut lows: Vec<f32> = bounds.iter().map(|b| b.0).collect();
        let (_, kth, _) = lows.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        *kth
    } else {
        f32::NEG_INFINITY
    };
    let floor = kth_low.max(min_score as f32 - f32::EPSILON);
    let mut best: Vec<(f32, usize)> = Vec::new();
    let mut stmt = conn.prepare_cached(source.fetch_sql)?;
    let mut vector = Vec::with_capacity(unit.len());
    for (&i, &(_, high)) in considered.iter().zip(&bounds) {
        if high < floor {
            continue;
        }
        let blob: Vec<u8> = stmt.query_row(rusqlite::params![set.keys[i], model], |r| r.get(0))?;
        vector.clear();
        vector.extend(
            blob.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        normalise(&mut vector);
        let score = dot(&vector, &unit);
        if (score as f64) >= min_score {
            best.push((score, i));
        }
    }
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    best.truncate(k);
    Ok(best
        .into_iter()
        .map(|(score, i)| (set.keys[i], (score as f64).clamp(-1.0, 1.0)))
        .collect())
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
    let mut set = CodeSet {
        keys: Vec::new(),
        codes: Vec::new(),
        scales: Vec::new(),
        dim,
    };
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
        set.keys.push(row.get(0)?);
        let scale = quantise(&unit, &mut set.codes);
        set.scales.push(scale);
    }
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
            let set = VectorSet::new(seqs, data, dim);
            for qi in 0..3 {
                let q = set.vector(qi).to_vec();
                let cq = CoarseQuery::new(&q);
                for i in 0..20 {
                    let exact = dot(set.vector(i), &q);
                    let (low, high) = cq.bounds(&set, i);
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

    #[test]
    fn normalise_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalise(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
