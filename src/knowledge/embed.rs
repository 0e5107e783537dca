//! `documents.embed`: the `documents_embed` job that passes every chunk
//! lacking an embedding of a model to the host's embedder callback
//! (`hydra_register_embedder`, spec §9) and stores the vectors it returns.
//!
//! Batches run one at a time in insertion order (document, then chunk
//! index). The embedder is called with no database lock held, so it may
//! call back into the library. Each batch's vectors are stored in one
//! short write transaction; a batch the embedder fails (an error, a wrong
//! count, a wrong or inconsistent dimension, an unusable number) counts
//! its chunks in `failed` and the job goes on. Progress (steps = chunks,
//! with an ETA) is reported after a batch that completes 1% more or ends
//! 250 ms after the last report; cancellation is honoured between batches.

use super::documents::{bump_vectors_version, require_dimension, store_embedding};
use super::embed_reply::read_vectors;
use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{Channel, JobContext, JobLinks, ProgressMeter};
use crate::profile::Profile;
use crate::search::vectors::MAX_DIM;
use crate::types::{Bounded, Embedder, Id};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The job type of `documents.embed`.
pub const JOB_TYPE: &str = "documents_embed";

/// Request of `documents.embed`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub model: String,
    #[serde(default)]
    pub batch: Bounded<32, 512>,
    #[serde(default)]
    pub wait: bool,
    #[serde(default)]
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub task_id: Option<Id>,
}

/// The result of a `documents_embed` job.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct EmbedOutcome {
    /// Chunks given an embedding.
    pub embedded: u64,
    /// Chunks of batches the embedder failed.
    pub failed: u64,
}

/// Response of `documents.embed`: `{job_id}`, plus the outcome when the
/// call waited.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct EmbedResponse {
    pub job_id: String,
    #[serde(flatten)]
    pub outcome: Option<EmbedOutcome>,
}

/// `documents.embed`: checks the request and that an embedder is
/// registered before any job exists, then queues the job.
pub fn embed(profile: &Profile, req: EmbedRequest) -> Result<EmbedResponse> {
    if req.model.trim().is_empty() {
        return Err(Error::invalid("model", "must not be empty"));
    }
    if profile.embedder().is_none() {
        return Err(no_embedder());
    }
    let links = JobLinks::of(&req.thread_id, &req.task_id);
    let (job_id, outcome) = profile
        .jobs()
        .submit_request(JOB_TYPE, &req, links, req.wait)?;
    Ok(EmbedResponse { job_id, outcome })
}

fn no_embedder() -> Error {
    Error::new(
        ErrorCode::NoHandler,
        "no embedder is registered (hydra_register_embedder)",
    )
}

/// The `documents_embed` job.
pub fn run_job(ctx: &JobContext) -> Result<Value> {
    let req: EmbedRequest = serde_json::from_value(ctx.payload().clone())
        .map_err(|_| Error::invalid("payload", "not a documents.embed request"))?;
    let mut meter: Option<ProgressMeter> = None;
    let outcome = embed_missing(
        ctx.profile(),
        &req.model,
        req.batch.get(),
        &mut |done, total| {
            if ctx.is_cancelled() {
                return Err(Error::new(ErrorCode::Cancelled, "the job was cancelled"));
            }
            match &mut meter {
                Some(meter) => meter.advance_to(done),
                None => {
                    meter = Some(ProgressMeter::start(
                        ctx,
                        "embedding",
                        total,
                        Channel::Direct,
                    )?);
                    Ok(())
                }
            }
        },
    )?;
    if let Some(meter) = meter {
        meter.finish(Channel::Direct)?;
    }
    serde_json::to_value(outcome).map_err(|_| Error::internal("result encoding failed"))
}

/// Embeds every chunk lacking `model`, `batch` at a time; `progress(done,
/// total)` runs before the first batch and after each one, and stops the
/// work when it fails.
pub fn embed_missing(
    profile: &Profile,
    model: &str,
    batch: usize,
    progress: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<EmbedOutcome> {
    let embedder = profile.embedder().ok_or_else(no_embedder)?;
    let pending: Vec<i64> = profile.db().read(|conn| {
        conn.query_all(
            "SELECT c.seq FROM document_chunks c
             WHERE NOT EXISTS (SELECT 1 FROM chunk_embeddings e
                               WHERE e.chunk_seq = c.seq AND e.model = ?1)
             ORDER BY c.document_seq, c.idx",
            [model],
            |r| r.get(0),
        )
    })?;
    let total = pending.len() as u64;
    let mut outcome = EmbedOutcome::default();
    let mut done = 0u64;
    progress(done, total)?;
    for seqs in pending.chunks(batch.max(1)) {
        // Chunks deleted since the listing are simply skipped; one read
        // per batch, in the listing's order.
        let chunks: Vec<(i64, String)> = profile.db().read(|conn| {
            let keys = std::rc::Rc::new(
                seqs.iter()
                    .map(|&s| rusqlite::types::Value::from(s))
                    .collect::<Vec<_>>(),
            );
            let mut found: HashMap<i64, String> = HashMap::with_capacity(seqs.len());
            conn.for_each_row(
                "SELECT seq, text FROM document_chunks WHERE seq IN rarray(?1)",
                [keys],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                |(seq, text)| {
                    found.insert(seq, text);
                    Ok(())
                },
            )?;
            Ok(seqs
                .iter()
                .filter_map(|seq| found.remove(seq).map(|text| (*seq, text)))
                .collect())
        })?;
        if !chunks.is_empty() {
            let texts: Vec<&str> = chunks.iter().map(|(_, t)| t.as_str()).collect();
            let input = || json!({"model": model, "texts": texts});
            let vectors = match &embedder {
                Embedder::Json(f) => f(&input()).and_then(|reply| vectors_of(&reply)),
                Embedder::Text(f) => f(&input()).and_then(|reply| vectors_of_text(&reply)),
                Embedder::Vectors(f) => f(model, &texts),
            };
            let stored = vectors
                .and_then(|vectors| checked(vectors, chunks.len()))
                .and_then(|vectors| store_batch(profile, model, &chunks, &vectors));
            match stored {
                Ok(n) => outcome.embedded += n,
                Err(_) => outcome.failed += chunks.len() as u64,
            }
        }
        done += seqs.len() as u64;
        progress(done, total)?;
    }
    Ok(outcome)
}

fn bad_reply() -> Error {
    Error::internal("the embedder's reply does not fit the batch")
}

/// The embedder's `{vectors}` as f32 vectors (checked by [`checked`]).
fn vectors_of(reply: &Value) -> Result<Vec<Vec<f32>>> {
    let vectors = reply
        .get("vectors")
        .and_then(Value::as_array)
        .ok_or_else(bad_reply)?;
    vectors
        .iter()
        .map(|v| {
            v.as_array()
                .ok_or_else(bad_reply)?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32).ok_or_else(bad_reply))
                .collect()
        })
        .collect()
}

/// [`vectors_of`] for a reply given as JSON text, read straight into f32
/// (no `Value` per number): the usual `{"vectors":[[..]]}` by
/// [`read_vectors`], any other reply by serde_json. A `{"error":{..}}`
/// reply is a failure, as `parse_host_reply` has it for the other
/// callbacks.
fn vectors_of_text(reply: &[u8]) -> Result<Vec<Vec<f32>>> {
    if let Some(vectors) = read_vectors(reply) {
        return Ok(vectors);
    }
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default)]
        error: Option<Value>,
        vectors: Vec<Vec<f32>>,
    }
    match serde_json::from_slice::<Reply>(reply) {
        Ok(reply) if !reply.error.as_ref().is_some_and(Value::is_object) => Ok(reply.vectors),
        _ => Err(bad_reply()),
    }
}

/// One vector per text, each valid as an embedding (`memory.upsert`'s
/// rules, EmbeddingInput::to_f32: 1..4096 numbers, finite as f32, not all
/// zero), all of one dimension.
fn checked(vectors: Vec<Vec<f32>>, count: usize) -> Result<Vec<Vec<f32>>> {
    if vectors.len() != count {
        return Err(bad_reply());
    }
    let dim = vectors.first().map_or(0, Vec::len);
    for vector in &vectors {
        if vector.len() != dim
            || !(1..=MAX_DIM).contains(&vector.len())
            || vector.iter().any(|x| !x.is_finite())
            || vector.iter().all(|&x| x == 0.0)
        {
            return Err(bad_reply());
        }
    }
    Ok(vectors)
}

/// Stores one batch in one transaction; returns how many chunks got a
/// vector (a chunk deleted meanwhile gets none).
fn store_batch(
    profile: &Profile,
    model: &str,
    chunks: &[(i64, String)],
    vectors: &[Vec<f32>],
) -> Result<u64> {
    profile.db().write(|tx| {
        if let Some(first) = vectors.first() {
            require_dimension(tx, model, first.len(), "vectors")?;
        }
        let mut stored = 0;
        for ((seq, _), vector) in chunks.iter().zip(vectors) {
            if store_embedding(tx, *seq, model, vector)? {
                stored += 1;
            }
        }
        if stored > 0 {
            bump_vectors_version(tx)?;
        }
        Ok(stored)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text path (C embedders) accepts and refuses what the `Value`
    /// path does, with the same numbers.
    #[test]
    fn text_and_value_replies_agree() {
        let replies = [
            r#"{"vectors":[[1,0.5,-2e-3],[3,4,5]]}"#,
            r#"{"vectors":[[1,0.5,-2e-3],[3,4,5]],"model":"x","error":"not an object"}"#,
            r#"{"vectors":[[1,0.5],[3,4,5]]}"#,
            r#"{"vectors":[[0,0],[3,4]]}"#,
            r#"{"vectors":[[1e39,1],[3,4]]}"#,
            r#"{"vectors":[[1,"2"],[3,4]]}"#,
            r#"{"vectors":[[1,null],[3,4]]}"#,
            r#"{"vectors":[[1,2]]}"#,
            r#"{"vectors":[[],[]]}"#,
            r#"{"error":{"code":"timeout","message":"slow"}}"#,
            r#"{"error":{"code":"timeout"},"vectors":[[1,2],[3,4]]}"#,
            r#"{"vectors":{}}"#,
            r#"[]"#,
        ];
        for reply in replies {
            let value: Value = serde_json::from_str(reply).unwrap();
            // `parse_host_reply` turns an error object into a failure
            // before the Value path sees it.
            let from_value = if value.get("error").is_some_and(Value::is_object) {
                None
            } else {
                vectors_of(&value).and_then(|v| checked(v, 2)).ok()
            };
            let from_text = vectors_of_text(reply.as_bytes())
                .and_then(|v| checked(v, 2))
                .ok();
            assert_eq!(from_text, from_value, "{reply}");
        }
        assert_eq!(
            vectors_of_text(br#"{"vectors":[[1,0.5,-2e-3],[3,4,5]]}"#).unwrap(),
            vec![vec![1.0, 0.5, -2e-3], vec![3.0, 4.0, 5.0]]
        );
    }
}
