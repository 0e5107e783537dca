//! `documents.search`: BM25 over chunk text and title, exact cosine over
//! chunk embeddings, or both fused by reciprocal rank (spec §10).
//!
//! Ordering is total and the same everywhere: a higher score first, then
//! (hybrid only) the better vector rank, then the better text rank, then
//! insertion order (the older document, then the lower chunk index).
//!
//! Text relevance: a chunk's words are its document's title plus its own
//! text (see [`crate::search::text`]); `idf` counts chunks over the whole
//! store (filters narrow the results, not the statistics, as in FTS5).
//! The ranking reads the postings of the in-memory index
//! ([`super::text_index`]) and scans exactly the chunks it does not cover
//! yet: the same scores as a scan of every chunk, with nothing on disk but
//! the chunks themselves.

use super::documents::{host_condition, require_dimension, Source};
use super::text_index;
use crate::browser::urls::HostMatch;
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::search::text;
use crate::search::vectors::{self, EmbeddingInput, VectorSearch, VectorSource};
use crate::types::Bounded;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// `match`: whether every query term must occur, or any.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    #[default]
    All,
    Any,
}

/// Request of `documents.search`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub embedding: Option<EmbeddingInput>,
    #[serde(default, rename = "match")]
    pub match_: Match,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub limit: Bounded<10, 100>,
}

/// The document of a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HitDocument {
    pub id: String,
    pub url: String,
    pub host: Option<String>,
    pub title: Option<String>,
}

/// The chunk of a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HitChunk {
    pub index: i64,
    pub text: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// One result: a chunk with its document and ranks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SearchItem {
    pub document: HitDocument,
    pub chunk: HitChunk,
    pub score: f64,
    pub text_rank: Option<u64>,
    pub vector_rank: Option<u64>,
}

/// Response of `documents.search`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SearchResponse {
    pub items: Vec<SearchItem>,
}

/// The RRF constant of the contract.
pub const RRF_K: f64 = 60.0;

/// The depth each list is taken to in a hybrid search.
pub fn hybrid_depth(limit: usize) -> usize {
    50.max(5 * limit)
}

/// Where chunk embeddings live, for the shared vector engine. Ties follow
/// insertion order: document, then chunk index.
pub(crate) const CHUNK_VECTORS: VectorSource = VectorSource {
    name: "chunk_embeddings",
    token_sql: "SELECT token FROM chunk_vectors_version WHERE id = 1",
    scan_sql: "SELECT e.chunk_seq, e.vector FROM chunk_embeddings e
               JOIN document_chunks c ON c.seq = e.chunk_seq
               WHERE e.model = ?1 AND e.dim = ?2 ORDER BY c.document_seq, c.idx",
    fetch_sql: "SELECT vector FROM chunk_embeddings WHERE chunk_seq = ?1 AND model = ?2",
};

/// `documents.search`.
pub fn search(profile: &Profile, req: SearchRequest) -> Result<SearchResponse> {
    if req.query.is_none() && req.embedding.is_none() {
        return Err(Error::invalid(
            "query",
            "give a query, an embedding, or both",
        ));
    }
    let terms = match &req.query {
        Some(q) => {
            let terms = text::query_terms(q);
            if terms.is_empty() {
                return Err(Error::invalid("query", "must contain at least one word"));
            }
            Some(terms)
        }
        None => None,
    };
    let items = run(profile, &req, terms.as_deref())?;
    Ok(SearchResponse { items })
}

/// Runs a search whose request is already checked (`terms` are the query's
/// words, if it has a query). Also used by `chat`'s `retrieve`.
pub(crate) fn run(
    profile: &Profile,
    req: &SearchRequest,
    terms: Option<&[String]>,
) -> Result<Vec<SearchItem>> {
    let vector = req
        .embedding
        .as_ref()
        .map(|e| e.to_f32("embedding").map(|v| (e.model.as_str(), v)))
        .transpose()?;
    let filter = Filter::new(req)?;
    let limit = req.limit.get();
    if terms.is_some() {
        // Before the read transaction: the index never gets ahead of it.
        text_index::catch_up(profile)?;
    }
    profile.db().read(|conn| {
        let hybrid = terms.is_some() && vector.is_some();
        let depth = if hybrid { hybrid_depth(limit) } else { limit };
        let text_list = match terms {
            Some(terms) => Some(text_ranked(
                profile, conn, terms, req.match_, &filter, depth,
            )?),
            None => None,
        };
        let vector_list = match &vector {
            Some((model, v)) => Some(vector_ranked(profile, conn, model, v, &filter, depth)?),
            None => None,
        };
        let fused = fuse(text_list, vector_list, limit);
        load_items(conn, fused)
    })
}

/// `chat`'s `retrieve`: a `documents.search` run for the turn.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrieve {
    /// Defaults to the user's message.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub embedding: Option<EmbeddingInput>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub limit: Bounded<5, 20>,
}

/// The chunks `retrieve` describes for a turn whose user message is
/// `message`: its query (or the message) matched with `any`, hybrid when
/// an embedding is given too. A query without any word searches by the
/// embedding alone, or finds nothing.
pub fn retrieve(profile: &Profile, r: &Retrieve, message: &str) -> Result<Vec<SearchItem>> {
    // Fields are named within `retrieve` by `chat` (`Error::within`).
    if let Some(e) = &r.embedding {
        e.to_f32("embedding")?;
    }
    let terms = text::query_terms(r.query.as_deref().unwrap_or(message));
    let terms = (!terms.is_empty()).then_some(terms);
    if terms.is_none() && r.embedding.is_none() {
        return Ok(Vec::new());
    }
    let req = SearchRequest {
        query: r.query.clone().or_else(|| Some(message.to_owned())),
        embedding: r.embedding.clone(),
        match_: Match::Any,
        host: r.host.clone(),
        include_subdomains: r.include_subdomains,
        source: None,
        limit: Bounded::new("retrieve.limit", r.limit.get() as u32)?,
    };
    run(profile, &req, terms.as_deref())
}

/// The filters of a search, checked in Rust against each chunk's document.
struct Filter {
    host: Option<HostMatch>,
    source: Option<Source>,
    /// SQL over `documents d` with its values, for the vector pre-filter.
    sql: (String, Vec<rusqlite::types::Value>),
}

impl Filter {
    fn new(req: &SearchRequest) -> Result<Filter> {
        let host = req
            .host
            .as_deref()
            .map(|h| HostMatch::new(h, req.include_subdomains.unwrap_or(true)))
            .transpose()?;
        let (mut sql, mut values) = host_condition(req.host.as_deref(), req.include_subdomains, 1)?;
        if let Some(s) = req.source {
            values.push(s.as_str().to_owned().into());
            sql = format!("{sql} AND d.source = ?{}", values.len());
        }
        Ok(Filter {
            host,
            source: req.source,
            sql: (sql, values),
        })
    }

    fn is_empty(&self) -> bool {
        self.host.is_none() && self.source.is_none()
    }

    /// The documents the filter admits, or `None` without a filter.
    fn admitted_documents(&self, conn: &Connection) -> Result<Option<HashSet<i64>>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut admitted = HashSet::new();
        conn.for_each_row(
            "SELECT seq, rev_host, source FROM documents",
            [],
            |r| {
                Ok(self
                    .admits(r.get_ref(1)?.as_str_or_null()?, r.get_ref(2)?.as_str()?)
                    .then_some(r.get::<_, i64>(0)?))
            },
            |seq| {
                admitted.extend(seq);
                Ok(())
            },
        )?;
        Ok(Some(admitted))
    }

    fn admits(&self, rev_host: Option<&str>, source: &str) -> bool {
        let host_ok = match &self.host {
            None => true,
            Some(h) => rev_host.is_some_and(|r| h.matches_rev(r)),
        };
        host_ok && self.source.is_none_or(|s| s.as_str() == source)
    }
}

/// A ranked chunk: its `seq`, tie order `(document_seq, idx)` and score.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    chunk_seq: i64,
    order: (i64, i64),
    score: f64,
}

/// A matching chunk before scoring: `(chunk_seq, order, tf per term,
/// length in tokens)`.
type TextHit = (i64, (i64, i64), Vec<u32>, u32);

/// What an exact scan of the chunks the index does not cover found: the
/// statistics BM25 needs and the admitted matching chunks.
struct Scanned {
    df: Vec<u64>,
    units: u64,
    total_len: u64,
    hits: Vec<TextHit>,
}

/// The best `depth` chunks by BM25, best first, ties in insertion order:
/// the index's postings for the chunks up to its watermark, an exact scan
/// for the rest (normally none), statistics over both.
fn text_ranked(
    profile: &Profile,
    conn: &Connection,
    terms: &[String],
    match_: Match,
    filter: &Filter,
    depth: usize,
) -> Result<Vec<Ranked>> {
    let index = profile.chunk_text_index();
    let admitted = filter.admitted_documents(conn)?;
    loop {
        let watermark = index.watermark();
        let scanned = scan_uncovered(conn, terms, match_, filter, watermark)?;
        let ranked = index.with_postings(terms, watermark, |view| {
            rank_text(view, scanned, terms.len(), match_, admitted.as_ref(), depth)
        });
        // A catch-up moved the watermark meanwhile: read the tail again.
        if let Some(ranked) = ranked {
            return Ok(ranked);
        }
    }
}

/// A relative margin on every bound before it is compared with the
/// current k-th score: bounds and partial sums are computed in another
/// order than the exact score, so they may differ from it in the last
/// bits; 1e-9 is far above that rounding and far below any real gap.
const BOUND_MARGIN: f64 = 1.0 + 1e-9;

/// Whether a chunk whose score is at most `bound` is certainly worse than
/// the current k-th (`theta`): strictly below, since an equal score may
/// still win on insertion order.
fn below(bound: f64, theta: f64) -> bool {
    bound * BOUND_MARGIN < theta
}

/// BM25 over the index's postings and the exact scan's hits, with
/// statistics over both: the best `depth`, best first.
///
/// Exact top k with pruning (MaxScore with block-max bounds): each term's
/// score in a chunk is at most its BM25 at the block's largest tf and
/// smallest length (BM25 grows with tf and falls with length), and at
/// most its largest such bound over all blocks (`ub`). Once `depth`
/// chunks are held, with `theta` the worst of them:
/// - `any`: the terms with the smallest `ub` whose sum stays below
///   `theta` cannot make a chunk enter alone, so only the other
///   ("essential") terms' postings propose chunks; the others are looked
///   up for a proposed chunk only while its score could still reach
///   `theta`;
/// - a run of slots where the sum of the current blocks' bounds (plus
///   the non-essential `ub`) is below `theta` is skipped without decoding;
/// - `all`: a chunk must be in every term's postings (leapfrog), and the
///   same block skipping applies.
///
/// A chunk is never dropped unless its score is certainly below `theta`,
/// and every chunk kept is scored by the same formula in the same order
/// as the exact scan, so the result is the exact top k with its ties.
fn rank_text(
    view: &text_index::View<'_>,
    scanned: Scanned,
    term_count: usize,
    match_: Match,
    admitted: Option<&HashSet<i64>>,
    depth: usize,
) -> Vec<Ranked> {
    let units = view.units + scanned.units;
    let total_len = view.total_len + scanned.total_len;
    let avg_len = if units > 0 {
        total_len as f64 / units as f64
    } else {
        0.0
    };
    let idf: Vec<f64> = (0..term_count)
        .zip(&scanned.df)
        .map(|(i, &df)| text::idf(units, view.df(i) + df))
        .collect();
    let score = |tf: &[u32], len: u32| -> f64 {
        tf.iter()
            .zip(&idf)
            .filter(|(&n, _)| n > 0)
            .map(|(&n, &idf)| text::term_score(idf, n, len, avg_len))
            .sum()
    };
    let bound = |i: usize, max_tf: u32, min_len: u32| -> f64 {
        if max_tf == 0 {
            0.0
        } else {
            text::term_score(idf[i], max_tf, min_len, avg_len)
        }
    };
    let mut best = TopK::new(depth);
    for (chunk_seq, order, tf, len) in scanned.hits {
        best.offer(Ranked {
            chunk_seq,
            order,
            score: score(&tf, len),
        });
    }
    if depth == 0 {
        return best.into_sorted();
    }
    let all = match_ == Match::All;
    let mut cursors: Vec<text_index::Cursor<'_>> =
        (0..term_count).map(|i| view.cursor(i)).collect();
    if all && cursors.iter().any(|c| c.exhausted()) {
        return best.into_sorted();
    }
    let ub: Vec<f64> = cursors
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.summaries()
                .map(|(_, tf, len)| bound(i, tf, len))
                .fold(0.0, f64::max)
        })
        .collect();
    // Terms by ascending `ub`; `prefix[j]`: the sum of the first j.
    let mut by_ub: Vec<usize> = (0..term_count).collect();
    by_ub.sort_by(|&a, &b| ub[a].total_cmp(&ub[b]));
    let mut prefix = vec![0.0; term_count + 1];
    for j in 0..term_count {
        prefix[j + 1] = prefix[j] + ub[by_ub[j]];
    }
    let mut tf = vec![0u32; term_count];
    let mut frontier = 0u32;
    loop {
        let theta = best.theta();
        // `any`: the first `cut` terms by `ub` are non-essential.
        let mut cut = 0;
        if !all {
            while cut < term_count && below(prefix[cut + 1], theta) {
                cut += 1;
            }
        }
        let essential = &by_ub[cut..];
        // The run of slots [frontier, run_end] lies within the current
        // block of every essential cursor.
        let mut run_end = u32::MAX;
        let mut run_bound = prefix[cut];
        let mut live = 0;
        for &i in essential {
            let c = &mut cursors[i];
            c.skip_blocks_to(frontier);
            if c.exhausted() {
                continue;
            }
            let (last, max_tf, min_len) = c.block();
            run_end = run_end.min(last);
            run_bound += bound(i, max_tf, min_len);
            live += 1;
        }
        if live == 0 || (all && live < term_count) {
            break;
        }
        if below(run_bound, theta) {
            match run_end.checked_add(1) {
                Some(next) => {
                    frontier = next;
                    continue;
                }
                None => break,
            }
        }
        // The next candidate: the smallest essential posting (`any`), or
        // a slot every term holds (`all`: else move to the largest).
        let mut slots = essential
            .iter()
            .map(|&i| cursors[i].seek(frontier).map(|p| p.0));
        let candidate = if all {
            let mut low = u32::MAX;
            let mut high = 0;
            for slot in slots {
                let Some(slot) = slot else {
                    return best.into_sorted();
                };
                low = low.min(slot);
                high = high.max(slot);
            }
            if low != high {
                frontier = high;
                continue;
            }
            high
        } else {
            match slots.by_ref().flatten().min() {
                Some(slot) => slot,
                None => break,
            }
        };
        if candidate > run_end {
            // Past the run whose bounds were checked: check the next one.
            frontier = candidate;
            continue;
        }
        let last = candidate == u32::MAX;
        frontier = candidate.saturating_add(1);
        let len = view.len(candidate);
        if len == text_index::DEAD
            || admitted.is_some_and(|a| !a.contains(&view.order(candidate).0))
        {
            if last {
                break;
            }
            continue;
        }
        tf.iter_mut().for_each(|n| *n = 0);
        let mut known = 0.0;
        for &i in essential {
            if let Some((slot, n)) = cursors[i].seek(candidate) {
                if slot == candidate {
                    tf[i] = n;
                    known += text::term_score(idf[i], n, len, avg_len);
                }
            }
        }
        // Non-essential terms, largest bound first, while the chunk could
        // still reach theta.
        let mut reachable = true;
        for j in (0..cut).rev() {
            if below(known + prefix[j + 1], theta) {
                reachable = false;
                break;
            }
            let i = by_ub[j];
            if let Some((slot, n)) = cursors[i].seek(candidate) {
                if slot == candidate {
                    tf[i] = n;
                    known += text::term_score(idf[i], n, len, avg_len);
                }
            }
        }
        if reachable {
            let score = score(&tf, len);
            // Below theta it cannot enter; the tie order is looked up only
            // for a chunk that may.
            if score >= theta {
                best.offer(Ranked {
                    chunk_seq: view.seq(candidate),
                    order: view.order(candidate),
                    score,
                });
            }
        }
        if last {
            break;
        }
    }
    best.into_sorted()
}

/// Reads and tokenizes every chunk with `seq > after` (all of them when
/// the index is empty). By `seq`, a range of the primary key: ordering by
/// `(document_seq, idx)` made SQLite walk that whole index (every chunk)
/// on each search, even with nothing above the watermark; the order does
/// not matter here (sums, and a top-k heap with a total order).
fn scan_uncovered(
    conn: &Connection,
    terms: &[String],
    match_: Match,
    filter: &Filter,
    after: i64,
) -> Result<Scanned> {
    let index: HashMap<&str, usize> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut out = Scanned {
        df: vec![0u64; terms.len()],
        units: 0,
        total_len: 0,
        hits: Vec::new(),
    };
    let mut title_doc = i64::MIN;
    let mut title_tf = vec![0u32; terms.len()];
    let mut title_len = 0u32;
    let mut tf = vec![0u32; terms.len()];
    conn.for_each_row(
        "SELECT c.seq, c.document_seq, c.idx, c.text, d.title, d.rev_host, d.source
         FROM document_chunks c JOIN documents d ON d.seq = c.document_seq
         WHERE c.seq > ?1 ORDER BY c.seq",
        [after],
        |r| {
            let doc: i64 = r.get(1)?;
            if doc != title_doc {
                title_doc = doc;
                title_tf.iter_mut().for_each(|x| *x = 0);
                title_len = 0;
                if let Some(title) = r.get_ref(4)?.as_str_or_null()? {
                    text::for_each_token(title, |t| {
                        title_len += 1;
                        if let Some(&i) = index.get(t) {
                            title_tf[i] += 1;
                        }
                    });
                }
            }
            tf.copy_from_slice(&title_tf);
            let mut len = title_len;
            text::for_each_token(r.get_ref(3)?.as_str()?, |t| {
                len += 1;
                if let Some(&i) = index.get(t) {
                    tf[i] += 1;
                }
            });
            out.units += 1;
            out.total_len += len as u64;
            let mut present = 0;
            for (i, &n) in tf.iter().enumerate() {
                if n > 0 {
                    out.df[i] += 1;
                    present += 1;
                }
            }
            let matched = match match_ {
                Match::All => present == terms.len(),
                Match::Any => present > 0,
            };
            if matched && filter.admits(r.get_ref(5)?.as_str_or_null()?, r.get_ref(6)?.as_str()?) {
                out.hits
                    .push((r.get(0)?, (doc, r.get(2)?), tf.clone(), len));
            }
            Ok(())
        },
        |()| Ok(()),
    )?;
    Ok(out)
}

/// The best `k` ranked chunks seen (a bounded heap whose top is the worst
/// kept): a higher score first, then insertion order.
struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<WorstFirst>,
}

struct WorstFirst(Ranked);

impl Ord for WorstFirst {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.order.cmp(&other.0.order))
    }
}

impl PartialOrd for WorstFirst {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for WorstFirst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for WorstFirst {}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    /// The score a chunk must reach to enter (the worst kept once `k` are
    /// held), or minus infinity.
    fn theta(&self) -> f64 {
        if self.heap.len() < self.k {
            f64::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f64::NEG_INFINITY, |w| w.0.score)
        }
    }

    fn offer(&mut self, r: Ranked) {
        if self.heap.len() < self.k {
            self.heap.push(WorstFirst(r));
        } else if self.heap.peek().is_some_and(|worst| WorstFirst(r) < *worst) {
            self.heap.pop();
            self.heap.push(WorstFirst(r));
        }
    }

    /// Best first.
    fn into_sorted(self) -> Vec<Ranked> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| w.0)
            .collect()
    }
}

/// The best `depth` chunks by cosine with `vector` among those embedded
/// with `model`, best first, ties in insertion order.
fn vector_ranked(
    profile: &Profile,
    conn: &Connection,
    model: &str,
    vector: &[f32],
    filter: &Filter,
    depth: usize,
) -> Result<Vec<Ranked>> {
    require_dimension(conn, model, vector.len(), "embedding.vector")?;
    let allowed: Option<HashSet<i64>> = if filter.is_empty() {
        None
    } else {
        let (sql, values) = &filter.sql;
        Some(
            conn.query_all(
                &format!(
                    "SELECT c.seq FROM document_chunks c JOIN documents d ON d.seq = c.document_seq
                     WHERE {sql}"
                ),
                params_from_iter(values.iter()),
                |r| r.get(0),
            )?
            .into_iter()
            .collect(),
        )
    };
    let admits = |key: i64| allowed.as_ref().is_none_or(|a| a.contains(&key));
    let found = vectors::top_k(
        conn,
        profile.db().path(),
        &VectorSearch {
            source: &CHUNK_VECTORS,
            model,
            query: vector,
            allowed: allowed.as_ref().map(|_| &admits as &dyn Fn(i64) -> bool),
            k: depth,
            min_score: f64::NEG_INFINITY,
        },
    )?;
    let mut out = Vec::with_capacity(found.len());
    for (chunk_seq, score) in found {
        // A chunk another thread added to the in-memory codes after this
        // read began is not in this snapshot: it was not committed before
        // the search, so it is not an answer.
        let Some(order) = conn.query_opt(
            "SELECT document_seq, idx FROM document_chunks WHERE seq = ?1",
            [chunk_seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        else {
            continue;
        };
        out.push(Ranked {
            chunk_seq,
            order,
            score,
        });
    }
    Ok(out)
}

/// A fused result before its texts are loaded.
#[derive(Debug, Clone, Copy)]
struct Fused {
    chunk_seq: i64,
    score: f64,
    text_rank: Option<u64>,
    vector_rank: Option<u64>,
}

/// One ranking alone: its first `limit` with their own scores, and the
/// (text, vector) ranks `ranks` gives each position.
fn alone(
    list: &[Ranked],
    limit: usize,
    ranks: impl Fn(usize) -> (Option<u64>, Option<u64>),
) -> Vec<Fused> {
    let fused = |(i, r): (usize, &Ranked)| {
        let (text_rank, vector_rank) = ranks(i);
        Fused {
            chunk_seq: r.chunk_seq,
            score: r.score,
            text_rank,
            vector_rank,
        }
    };
    list.iter().take(limit).enumerate().map(fused).collect()
}

/// One list alone keeps its order and scores; both are fused by
/// reciprocal rank (`1 / (60 + rank)` summed over the lists holding a
/// chunk), ties by vector rank, then text rank (absent ranks last), then
/// insertion order.
fn fuse(text: Option<Vec<Ranked>>, vector: Option<Vec<Ranked>>, limit: usize) -> Vec<Fused> {
    let rank = |i: usize| i as u64 + 1;
    match (text, vector) {
        (Some(list), None) => alone(&list, limit, |i| (Some(rank(i)), None)),
        (None, Some(list)) => alone(&list, limit, |i| (None, Some(rank(i)))),
        (Some(text), Some(vector)) => {
            let mut all: HashMap<i64, (Fused, (i64, i64))> = HashMap::new();
            for (list, is_text) in [(&text, true), (&vector, false)] {
                for (i, r) in list.iter().enumerate() {
                    let entry = all.entry(r.chunk_seq).or_insert((
                        Fused {
                            chunk_seq: r.chunk_seq,
                            score: 0.0,
                            text_rank: None,
                            vector_rank: None,
                        },
                        r.order,
                    ));
                    if is_text {
                        entry.0.text_rank = Some(rank(i));
                    } else {
                        entry.0.vector_rank = Some(rank(i));
                    }
                }
            }
            let mut fused: Vec<(Fused, (i64, i64))> = all
                .into_values()
                .map(|(mut f, order)| {
                    f.score = rrf_score(f.text_rank, f.vector_rank);
                    (f, order)
                })
                .collect();
            fused.sort_by(|(a, ao), (b, bo)| {
                b.score
                    .total_cmp(&a.score)
                    .then(
                        a.vector_rank
                            .unwrap_or(u64::MAX)
                            .cmp(&b.vector_rank.unwrap_or(u64::MAX)),
                    )
                    .then(
                        a.text_rank
                            .unwrap_or(u64::MAX)
                            .cmp(&b.text_rank.unwrap_or(u64::MAX)),
                    )
                    .then(ao.cmp(bo))
            });
            fused.into_iter().take(limit).map(|(f, _)| f).collect()
        }
        (None, None) => Vec::new(),
    }
}

/// The fusion score of a chunk with these ranks: the text term is added
/// first, then the vector term (the order fixes the f64 rounding).
pub fn rrf_score(text_rank: Option<u64>, vector_rank: Option<u64>) -> f64 {
    let term = |r: Option<u64>| r.map_or(0.0, |r| 1.0 / (RRF_K + r as f64));
    term(text_rank) + term(vector_rank)
}

/// The items of the fused list, in order. A chunk an index took in after
/// this read began (another thread's catch-up) is not in this snapshot and
/// is left out: it was not committed before the search started.
fn load_items(conn: &Connection, fused: Vec<Fused>) -> Result<Vec<SearchItem>> {
    fused
        .into_iter()
        .filter_map(|f| {
            conn.query_opt(
                "SELECT d.id, d.url, d.host, d.title, c.idx, c.text, c.start, c.end
                 FROM document_chunks c JOIN documents d ON d.seq = c.document_seq
                 WHERE c.seq = ?1",
                [f.chunk_seq],
                |r| {
                    Ok(SearchItem {
                        document: HitDocument {
                            id: r.get(0)?,
                            url: r.get(1)?,
                            host: r.get(2)?,
                            title: r.get(3)?,
                        },
                        chunk: HitChunk {
                            index: r.get(4)?,
                            text: r.get(5)?,
                            start: r.get(6)?,
                            end: r.get(7)?,
                        },
                        score: f.score,
                        text_rank: f.text_rank,
                        vector_rank: f.vector_rank,
                    })
                },
            )
            .transpose()
        })
        .collect()
}
