//! `memory.search`: exact cosine similarity over stored embeddings, or
//! full-text relevance (FTS5 bm25) over memory key and value; both with the
//! scope / thread pre-filters. Returned memories get `last_accessed_at`.

use super::memory::{EmbeddingInput, Filters, Memory, Scope, COLUMNS, FROM};
use super::vectors::{self, VectorSet};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::profile::Profile;
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
/// insertion order.
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
        "SELECT 1 FROM memory_embeddings WHERE model = ?1 AND dim <> ?2",
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

/// Below this many numbers a scan stays on the caller's thread.
const PARALLEL_SCAN_MIN: usize = 1 << 20;

/// The best `k` vectors by dot product with the unit `query` (scores at
/// least `min_score`), best first, as `(seq, score)`; ties keep insertion
/// order. `allowed`, when given, is an ascending list of permitted `seq`s.
/// A large unfiltered scan is split across the machine's cores.
fn top_k(
    set: &VectorSet,
    query: &[f32],
    allowed: Option<&[i64]>,
    k: usize,
    min_score: f64,
) -> Vec<(i64, f64)> {
    let score = |i: usize| Candidate {
        score: vectors::dot(set.vector(i), query),
        seq: set.seqs[i],
    };
    let mut best = TopK::new(k, min_score);
    match allowed {
        None => {
            let n = set.seqs.len();
            let workers = std::thread::available_parallelism()
                .map_or(1, |p| p.get())
                .min(4);
            if workers < 2 || n * set.dim < PARALLEL_SCAN_MIN {
                (0..n).for_each(|i| best.offer(score(i)));
            } else {
                let chunk = n.div_ceil(workers);
                let partial: Vec<TopK> = std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..n)
                        .step_by(chunk)
                        .map(|start| {
                            scope.spawn(move || {
                                let mut part = TopK::new(k, min_score);
                                (start..(start + chunk).min(n)).for_each(|i| part.offer(score(i)));
                                part
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                        .collect()
                });
                for part in partial {
                    part.heap.into_iter().for_each(|c| best.offer(c));
                }
            }
        }
        Some(allowed) => {
            // Both lists are ascending: walk them together.
            let mut j = 0;
            for (i, seq) in set.seqs.iter().enumerate() {
                while j < allowed.len() && allowed[j] < *seq {
                    j += 1;
                }
                if j == allowed.len() {
                    break;
                }
                if allowed[j] == *seq {
                    best.offer(score(i));
                }
            }
        }
    }
    best.into_ranked()
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
        VectorSet {
            seqs: (1..=vectors.len() as i64).collect(),
            data,
            dim: 2,
        }
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
    fn parallel_scan_equals_the_plain_ranking() {
        let dim = 64;
        let n = PARALLEL_SCAN_MIN / dim + 1001;
        let mut data = Vec::with_capacity(n * dim);
        let mut x = 7u32;
        for _ in 0..n * dim {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push((x >> 16) as f32 / 65_536.0 - 0.5);
        }
        // Duplicate some vectors so ties cross chunk boundaries.
        let copy: Vec<f32> = data[..dim].to_vec();
        for i in [n / 2, n - 1] {
            data[i * dim..(i + 1) * dim].copy_from_slice(&copy);
        }
        let s = VectorSet {
            seqs: (0..n as i64).collect(),
            data,
            dim,
        };
        let q = s.vector(0).to_vec();
        let fast = top_k(&s, &q, None, 25, f64::NEG_INFINITY);
        let mut plain: Vec<(i64, f32)> = (0..n)
            .map(|i| (i as i64, vectors::dot(s.vector(i), &q)))
            .collect();
        plain.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let plain: Vec<i64> = plain[..25].iter().map(|p| p.0).collect();
        assert_eq!(fast.iter().map(|f| f.0).collect::<Vec<_>>(), plain);
        assert_eq!(&plain[..3], &[0, (n / 2) as i64, (n - 1) as i64]);
    }

    #[test]
    fn fts_query_quotes_every_term() {
        assert_eq!(fts_query("a  b").unwrap(), "\"a\" \"b\"");
        assert_eq!(fts_query("say \"hi\"").unwrap(), "\"say\" \"\"\"hi\"\"\"");
        assert!(fts_query(" \t ").is_err());
    }
}
