//! `memory.search`: exact cosine similarity over stored embeddings, or
//! full-text relevance (FTS5 bm25) over memory key and value; both with the
//! scope / thread pre-filters. Returned memories get `last_accessed_at`.

use super::memory::{EmbeddingInput, Filters, Memory, Scope, COLUMNS, FROM};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::search::vectors::{self, VectorSet};
use crate::types::{now_ms, Bounded, Id};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// `memory.search`: exactly one of `query` and `embedding`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: Option<String>,
    pub embedding: Option<EmbeddingInput>,
    pub scope: Option<Scope>,
    pub scope_ref: Option<String>,
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub limit: Bounded<20, 200>,
    pub min_score: Option<f64>,
}

/// One result: the memory and its score (higher is better).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    pub memory: Memory,
    pub score: f64,
}

/// `{items}`, best first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResponse {
    pub items: Vec<SearchHit>,
}

/// `memory.search`. With `embedding`: the score is the cosine similarity
/// (-1..1) against memories of the same model and dimension; a model stored
/// with another dimension is `invalid_argument`. With `query`: every
/// whitespace-separated term must occur in key or value (FTS5, terms quoted
/// so no query syntax leaks through); the score is `-bm25`. Ties keep
/// insertion order. Ranking runs on a reader, outside the write lock; the
/// only write is one short transaction that sets `last_accessed_at`.
pub fn search(profile: &Profile, req: SearchRequest) -> Result<SearchResponse> {
    if let Some(min) = req.min_score {
        if !min.is_finite() {
            return Err(Error::invalid("min_score", "must be a finite number"));
        }
    }
    let filters = Filters {
        scope: req.scope,
        scope_ref: req.scope_ref.as_deref(),
        thread_id: req.thread_id.as_ref().map(Id::as_str),
    };
    let limit = req.limit.get();
    let min_score = req.min_score.unwrap_or(f64::NEG_INFINITY);
    let ranked = match (&req.query, &req.embedding) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Error::invalid(
                "query",
                "give exactly one of query and embedding",
            ))
        }
        (None, Some(embedding)) => {
            let mut query = embedding.to_f32("embedding")?;
            vectors::normalise(&mut query);
            profile.db().read(|conn| {
                check_dimension(conn, &embedding.model, query.len())?;
                let set = vectors::load(conn, profile.db().path(), &embedding.model, query.len())?;
                let allowed = allowed_seqs(conn, &filters)?;
                Ok(top_k(&set, &query, allowed.as_deref(), limit, min_score))
            })?
        }
        (Some(text), None) => {
            let fts = fts_query(text)?;
            profile
                .db()
                .read(|conn| full_text(conn, &fts, &filters, limit, min_score))?
        }
    };
    let items = profile.db().write(|tx| touch_and_load(tx, ranked))?;
    Ok(SearchResponse { items })
}

/// `invalid_argument` when `model` is stored with another dimension.
fn check_dimension(conn: &Connection, model: &str, dim: usize) -> Result<()> {
    if conn.exists(
        // Two range seeks on the (model, dim) index, not a scan of the model.
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM memory_embeddings WHERE model = ?1 AND dim < ?2)
                     OR EXISTS (SELECT 1 FROM memory_embeddings WHERE model = ?1 AND dim > ?2)",
        params![model, dim as i64],
    )? {
        return Err(Error::invalid(
            "embedding.vector",
            "dimension differs from the stored vectors of this model",
        ));
    }
    Ok(())
}

/// The `seq`s (ascending) the filters allow, or `None` when unfiltered.
fn allowed_seqs(conn: &Connection, filters: &Filters<'_>) -> Result<Option<Vec<i64>>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let (scope, scope_ref, thread_id) = filters.values();
    let sql = format!(
        "SELECT m.seq FROM memories m WHERE {} ORDER BY m.seq",
        filters.condition(1)
    );
    Ok(Some(conn.query_all(
        &sql,
        params![scope, scope_ref, thread_id],
        |r| r.get(0),
    )?))
}

/// A candidate in the top-k heap, ordered so the heap's top is the worst.
#[derive(PartialEq)]
struct Candidate {
    score: f32,
    seq: i64,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" = worse: lower score, then later insertion.
        other
            .score
            .total_cmp(&self.score)
            .then(self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The best `k` candidates seen so far (scores at least `min_score`).
struct TopK {
    heap: BinaryHeap<Candidate>,
    k: usize,
    min_score: f64,
}

impl TopK {
    fn new(k: usize, min_score: f64) -> TopK {
        TopK {
            heap: BinaryHeap::with_capacity(k + 1),
            k,
            min_score,
        }
    }

    fn offer(&mut self, candidate: Candidate) {
        if (candidate.score as f64) < self.min_score {
            return;
        }
        if self.heap.len() == self.k {
            match self.heap.peek() {
                Some(worst) if candidate < *worst => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(candidate);
    }

    /// Best first, as `(seq, score)`.
    fn into_ranked(self) -> Vec<(i64, f64)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| (c.seq, (c.score as f64).clamp(-1.0, 1.0)))
            .collect()
    }
}

/// The best `k` vectors by dot product with the unit `query` (scores at
/// least `min_score`), best first, as `(seq, score)`; ties keep insertion
/// order. `allowed`, when given, is an ascending list of permitted `seq`s.
///
/// Exact in two passes. A coarse pass over the 8-bit codes gives each
/// vector bounds `low <= exact <= high`. With `floor` the k-th best `low`,
/// k vectors score at least `floor` exactly, so every vector of the true
/// top k has `high >= floor`; only those are scored exactly, with the same
/// f32 arithmetic as a full exact scan.
fn top_k(
    set: &VectorSet,
    query: &[f32],
    allowed: Option<&[i64]>,
    k: usize,
    min_score: f64,
) -> Vec<(i64, f64)> {
    let considered: Vec<usize> = match allowed {
        None => (0..set.seqs.len()).collect(),
        Some(allowed) => intersect(&set.seqs, allowed),
    };
    let coarse = vectors::CoarseQuery::new(query);
    let bounds: Vec<(f32, f32)> = considered.iter().map(|&i| coarse.bounds(set, i)).collect();
    let kth_low = if bounds.len() > k {
        let mut lows: Vec<f32> = bounds.iter().map(|b| b.0).collect();
        let (_, kth, _) = lows.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        *kth
    } else {
        f32::NEG_INFINITY
    };
    let floor = kth_low.max(min_score as f32 - f32::EPSILON);
    let mut best = TopK::new(k, min_score);
    for (&i, &(_, high)) in considered.iter().zip(&bounds) {
        if high >= floor {
            best.offer(Candidate {
                score: vectors::dot(set.vector(i), query),
                seq: set.seqs[i],
            });
        }
    }
    best.into_ranked()
}

/// The positions in `seqs` whose value is in `allowed` (both ascending).
fn intersect(seqs: &[i64], allowed: &[i64]) -> Vec<usize> {
    let mut out = Vec::with_capacity(allowed.len().min(seqs.len()));
    let mut j = 0;
    for (i, seq) in seqs.iter().enumerate() {
        while j < allowed.len() && allowed[j] < *seq {
            j += 1;
        }
        if j == allowed.len() {
            break;
        }
        if allowed[j] == *seq {
            out.push(i);
        }
    }
    out
}

/// A caller's text as an FTS5 query: each whitespace-separated term quoted
/// (so operators and syntax characters are plain text), all required.
fn fts_query(text: &str) -> Result<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() {
        return Err(Error::invalid("query", "must not be empty"));
    }
    Ok(terms.join(" "))
}

/// Full-text matches, best first, as `(seq, score)`.
fn full_text(
    conn: &Connection,
    fts: &str,
    filters: &Filters<'_>,
    limit: usize,
    min_score: f64,
) -> Result<Vec<(i64, f64)>> {
    let (scope, scope_ref, thread_id) = filters.values();
    let sql = format!(
        "SELECT m.seq, -bm25(memories_fts) AS score
         FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid
         WHERE memories_fts MATCH ?1 AND {} AND -bm25(memories_fts) >= ?5
         ORDER BY score DESC, m.seq ASC LIMIT ?6",
        filters.condition(2)
    );
    conn.query_all(
        &sql,
        params![fts, scope, scope_ref, thread_id, min_score, limit as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Loads the ranked memories, sets their `last_accessed_at` to now and
/// returns them in rank order (a memory deleted meanwhile is left out).
fn touch_and_load(conn: &Connection, ranked: Vec<(i64, f64)>) -> Result<Vec<SearchHit>> {
    let now = now_ms();
    let mut hits = Vec::with_capacity(ranked.len());
    for (seq, score) in ranked {
        conn.run(
            "UPDATE memories SET last_accessed_at = ?2 WHERE seq = ?1",
            params![seq, now],
        )?;
        if let Some(memory) = conn.query_opt(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE m.seq = ?1"),
            [seq],
            Memory::from_row,
        )? {
            hits.push(SearchHit { memory, score });
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(vectors: &[[f32; 2]]) -> VectorSet {
        let mut data = Vec::new();
        for v in vectors {
            let mut v = v.to_vec();
            vectors::normalise(&mut v);
            data.extend(v);
        }
        VectorSet::new((1..=vectors.len() as i64).collect(), data, 2)
    }

    #[test]
    fn top_k_is_best_first_with_ties_in_insertion_order() {
        let s = set(&[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]);
        let q = [1.0, 0.0];
        let seqs = |hits: Vec<(i64, f64)>| hits.into_iter().map(|h| h.0).collect::<Vec<_>>();
        assert_eq!(
            seqs(top_k(&s, &q, None, 10, f64::NEG_INFINITY)),
            [1, 3, 2, 4]
        );
        assert_eq!(seqs(top_k(&s, &q, None, 2, f64::NEG_INFINITY)), [1, 3]);
        assert_eq!(seqs(top_k(&s, &q, None, 10, 0.5)), [1, 3]);
        assert_eq!(
            seqs(top_k(&s, &q, Some(&[2, 3, 9]), 10, f64::NEG_INFINITY)),
            [3, 2]
        );
        assert!(top_k(&s, &q, Some(&[]), 10, f64::NEG_INFINITY).is_empty());
    }

    #[test]
    fn two_pass_ranking_equals_a_full_exact_scan() {
        let dim = 48;
        let n = 5_000;
        let mut x = 7u32;
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n * dim {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push((x >> 16) as f32 / 65_536.0 - 0.5);
        }
        for v in data.chunks_exact_mut(dim) {
            vectors::normalise(v);
        }
        // Near-duplicates of the query so the top scores differ by less
        // than the coarse error, and exact duplicates for ties.
        let query: Vec<f32> = data[..dim].to_vec();
        for (copy, i) in [10, 20, 30, 40].into_iter().enumerate() {
            let mut v = query.clone();
            v[copy] += 1e-4 * copy as f32;
            vectors::normalise(&mut v);
            data[i * dim..(i + 1) * dim].copy_from_slice(&v);
        }
        data[50 * dim..51 * dim].copy_from_slice(&query);
        let s = VectorSet::new((0..n as i64).map(|i| i * 2).collect(), data, dim);
        let exact = |allowed: Option<&[i64]>, k: usize, min: f64| {
            let mut all: Vec<(i64, f32)> = (0..n)
                .filter(|&i| allowed.is_none_or(|a| a.contains(&s.seqs[i])))
                .map(|i| (s.seqs[i], vectors::dot(s.vector(i), &query)))
                .filter(|p| p.1 as f64 >= min)
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            all.into_iter()
                .map(|(seq, score)| (seq, (score as f64).clamp(-1.0, 1.0)))
                .collect::<Vec<_>>()
        };
        let allowed: Vec<i64> = (0..n as i64)
            .map(|i| i * 2)
            .filter(|s| s % 3 == 0)
            .collect();
        for k in [1, 5, 20, 200] {
            assert_eq!(
                top_k(&s, &query, None, k, f64::NEG_INFINITY),
                exact(None, k, f64::NEG_INFINITY)
            );
            assert_eq!(
                top_k(&s, &query, Some(&allowed), k, f64::NEG_INFINITY),
                exact(Some(&allowed), k, f64::NEG_INFINITY)
            );
            assert_eq!(top_k(&s, &query, None, k, 0.1), exact(None, k, 0.1));
        }
        let top = top_k(&s, &query, None, 3, f64::NEG_INFINITY);
        // Index 10 got a zero offset: it and index 50 equal the query.
        assert_eq!(
            (top[0].0, top[1].0, top[2].0),
            (0, 20, 100),
            "exact ties keep insertion order"
        );
    }

    #[test]
    fn fts_query_quotes_every_term() {
        assert_eq!(fts_query("a  b").unwrap(), "\"a\" \"b\"");
        assert_eq!(fts_query("say \"hi\"").unwrap(), "\"say\" \"\"\"hi\"\"\"");
        assert!(fts_query(" \t ").is_err());
    }
}
