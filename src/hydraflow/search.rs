//! `memory.search`: exact cosine similarity over stored embeddings, or
//! full-text relevance (FTS5 bm25) over memory key and value; both with the
//! scope / thread pre-filters. Returned memories get `last_accessed_at`.

use super::memory::{EmbeddingInput, Filters, Memory, Scope, COLUMNS, FROM};
use super::require_filter_thread;
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::search::vectors::{self, VectorSearch, VectorSource};
use crate::types::{now_ms, Bounded, Id};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// `memory.search`: exactly one of `query` and `embedding`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: Option<String>,
    pub embedding: Option<EmbeddingInput>,
    pub scope: Option<Scope>,
    pub scope_ref: Option<String>,
    /// Only memories tied to this thread (the thread must exist: `not_found`).
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub limit: Bounded<20, 200>,
    pub min_score: Option<f64>,
}

/// One result: the memory and its score (higher is better).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SearchHit {
    pub memory: Memory,
    pub score: f64,
}

/// `{items}`, best first.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SearchResponse {
    pub items: Vec<SearchHit>,
}

/// `memory.search`. With `embedding`: the score is the cosine similarity
/// (-1..1) against memories of the same model and dimension; a model stored
/// with another dimension is `invalid_argument`. With `query`: every
/// whitespace-separated term must occur in key or value (FTS5, terms quoted
/// so no query syntax leaks through); the score is `-bm25`. Ties keep
/// insertion order. Ranking and loading run on a reader, in one snapshot,
/// outside the write lock; the only write is one short transaction that
/// sets `last_accessed_at`.
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
            let query = embedding.to_f32("embedding")?;
            // Codes and rescored vectors: one snapshot.
            profile.db().read(|conn| {
                require_filter_thread(conn, filters.thread_id)?;
                check_dimension(conn, &embedding.model, query.len())?;
                let allowed = allowed_seqs(conn, &filters)?;
                let admits = |seq: i64| {
                    allowed
                        .as_ref()
                        .is_none_or(|a| a.binary_search(&seq).is_ok())
                };
                let ranked = vectors::top_k(
                    conn,
                    profile.db().path(),
                    &VectorSearch {
                        source: &MEMORY_VECTORS,
                        model: &embedding.model,
                        query: &query,
                        allowed: allowed.as_ref().map(|_| &admits as &dyn Fn(i64) -> bool),
                        k: limit,
                        min_score,
                    },
                )?;
                load(conn, ranked)
            })?
        }
        (Some(text), None) => {
            let fts = fts_query(text)?;
            profile.db().read(|conn| {
                require_filter_thread(conn, filters.thread_id)?;
                let ranked = full_text(conn, &fts, &filters, limit, min_score)?;
                load(conn, ranked)
            })?
        }
    };
    let items = profile.db().write(|tx| touch(tx, ranked))?;
    Ok(SearchResponse { items })
}

/// `invalid_argument` when `model` is stored with another dimension.
fn check_dimension(conn: &Connection, model: &str, dim: usize) -> Result<()> {
    const OTHER_DIMENSION: &str =
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM memory_embeddings WHERE model = ?1 AND dim < ?2)
                     OR EXISTS (SELECT 1 FROM memory_embeddings WHERE model = ?1 AND dim > ?2)";
    crate::search::vectors::require_dimension(conn, OTHER_DIMENSION, model, dim, "embedding.vector")
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

/// Where memory embeddings live, for the shared vector engine. Ties follow
/// insertion order (`memory_seq`).
const MEMORY_VECTORS: VectorSource = VectorSource {
    name: "memory_embeddings",
    token_sql: "SELECT token FROM memory_vectors_version WHERE id = 1",
    scan_sql: "SELECT memory_seq, vector FROM memory_embeddings
               WHERE model = ?1 AND dim = ?2 ORDER BY memory_seq",
    fetch_sql: "SELECT vector FROM memory_embeddings WHERE memory_seq = ?1 AND model = ?2",
};

/// A caller's text as an FTS5 query: each term quoted (so operators and
/// syntax characters are plain text), all required. Terms are separated by
/// whitespace and by NUL: the tokenizer treats NUL as a separator when it
/// indexes a value, while the FTS5 query parser would stop reading at it,
/// so `"a\u0000b"` searches exactly what `"a b"` does.
fn fts_query(text: &str) -> Result<String> {
    let terms: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|term| !term.is_empty())
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

/// The ranked memories as the ranking's snapshot holds them (read in the
/// same read transaction: what is answered is what was scored and
/// filtered, never a version written since), in rank order.
fn load(conn: &Connection, ranked: Vec<(i64, f64)>) -> Result<Vec<(i64, SearchHit)>> {
    let mut hits = Vec::with_capacity(ranked.len());
    for (seq, score) in ranked {
        let memory = conn.query_row(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE m.seq = ?1"),
            [seq],
            Memory::from_row,
        )?;
        hits.push((seq, SearchHit { memory, score }));
    }
    Ok(hits)
}

/// Sets `last_accessed_at` of the memories found (those still stored: one
/// deleted since the search read it is answered as it was found).
fn touch(conn: &Connection, hits: Vec<(i64, SearchHit)>) -> Result<Vec<SearchHit>> {
    let now = now_ms();
    let mut touched = Vec::with_capacity(hits.len());
    for (seq, mut hit) in hits {
        if conn.run(
            "UPDATE memories SET last_accessed_at = ?2 WHERE seq = ?1",
            params![seq, now],
        )? == 1
        {
            hit.memory.last_accessed_at = Some(now);
        }
        touched.push(hit);
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_every_term() {
        assert_eq!(fts_query("a  b").unwrap(), "\"a\" \"b\"");
        assert_eq!(fts_query("say \"hi\"").unwrap(), "\"say\" \"\"\"hi\"\"\"");
        assert!(fts_query(" \t ").is_err());
    }
}
