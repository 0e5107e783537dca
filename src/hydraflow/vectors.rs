//! An in-memory copy of the stored embeddings of one model and dimension,
//! normalised to unit length and laid out contiguously, so `memory.search`
//! scores 100,000 vectors in a few milliseconds instead of re-reading and
//! decoding 150 MB of SQLite pages on every call.
//!
//! Correctness does not depend on who wrote: every transaction that changes
//! `memory_embeddings` replaces `memory_vectors_version.token` (triggers in
//! the migration), and a copy is used only while the database still holds
//! the token it was read with. Copies are keyed by database file, model and
//! dimension, and the least recently used are dropped beyond
//! [`MAX_CACHED_BYTES`].

use crate::db::ConnExt;
use crate::error::Result;
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use rusqlite::Connection;
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
    /// The dimension.
    pub dim: usize,
}

impl VectorSet {
    /// Vector `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    fn bytes(&self) -> usize {
        self.data.len() * 4 + self.seqs.len() * 8
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
    let mut set = VectorSet {
        seqs: Vec::with_capacity(count),
        data: Vec::with_capacity(count * dim),
        dim,
    };
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
        set.seqs.push(row.get(0)?);
        let start = set.data.len();
        set.data.extend(
            blob.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        normalise(&mut set.data[start..]);
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
    fn normalise_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalise(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
