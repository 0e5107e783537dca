//! `documents.embed`: the `documents_embed` job that passes every chunk
//! lacking an embedding of a model to the host's embedder callback
//! (`hydra_register_embedder`, spec §9) and stores the vectors it returns.
//!
//! Batches run one at a time in insertion order (document, then chunk
//! index). The embedder is called with no database lock held, so it may
//! call back into the library. Each batch's vectors are stored in one
//! short write transaction; a batch the embedder fails (an error, a wrong
//! count, a wrong or inconsistent dimension, an unusable number) counts
//! its chunks in `failed` and the job goes on. A JSON text reply (the C
//! ABI's callback) is stored while a second thread is still reading it
//! ([`store_streamed`]); a reply that turns out bad rolls that back and is
//! read whole, as before. Progress (steps = chunks, with an ETA) is
//! reported after a batch that completes 1% more or ends 250 ms after the
//! last report, live at once and in the ledger at most every 250 ms
//! (`Channel::Live`); cancellation is honoured between batches.

use super::documents::{bump_vectors_version, require_dimension, EmbeddingWriter};
use super::embed_reply::{for_each_vector, read_vectors};
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
                        Channel::Live,
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
            // A whole reply's vectors, checked, stored in one transaction.
            let store_whole = |vectors: Vec<Vec<f32>>| {
                checked(vectors, chunks.len())
                    .and_then(|vectors| store_batch(profile, model, &chunks, &vectors))
            };
            let stored = match &embedder {
                Embedder::Json(f) => f(&input())
                    .and_then(|reply| vectors_of(&reply))
                    .and_then(store_whole),
                Embedder::Text(f) => f(&input()).and_then(|reply| {
                    // The usual reply streams into the store as it is read;
                    // anything that does not (another shape, a bad vector,
                    // a failed store) is read and checked whole, so the
                    // batch counts exactly as it would without streaming.
                    store_streamed(profile, model, &chunks, &reply)
                        .or_else(|_| vectors_of_text(&reply).and_then(store_whole))
                }),
                Embedder::Vectors(f) => f(model, &texts).and_then(store_whole),
            };
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
        if vector.len() != dim || !usable(vector) {
            return Err(bad_reply());
        }
    }
    Ok(vectors)
}

/// One vector valid as an embedding: 1..4096 numbers, finite as f32, not
/// all zero.
fn usable(vector: &[f32]) -> bool {
    (1..=MAX_DIM).contains(&vector.len())
        && vector.iter().all(|x| x.is_finite())
        && !vector.iter().all(|&x| x == 0.0)
}

/// What the parser thread of [`store_streamed`] sends.
enum Streamed {
    Vector(Vec<f32>),
    /// The reply was read to its end; true when it is the one shape.
    Done(bool),
}

/// Stores the vectors of a JSON text reply while it is still being read:
/// a scoped thread reads the reply ([`for_each_vector`]) and sends each
/// vector through a channel; this thread, holding the writer (the
/// embedder has already returned), checks each vector as it arrives by
/// [`checked`]'s rules and stores it. The transaction commits only when
/// the reply is the one shape and holds exactly one valid vector per
/// chunk, all of one dimension; otherwise it rolls back and the answer is
/// an error, and the caller reads the reply the whole-reply way (so the
/// batch is accepted or refused exactly as without streaming). On success
/// the stored rows equal [`store_batch`]'s for the same reply: the same
/// scanner reads the same numbers.
fn store_streamed(
    profile: &Profile,
    model: &str,
    chunks: &[(i64, String)],
    reply: &[u8],
) -> Result<u64> {
    std::thread::scope(|scope| {
        // Room for the whole batch: the parser (the faster side) never
        // waits, and wakes the store only when it caught up with the parser
        // (a wake-up per vector cost more than the store itself). A reply
        // with more vectors than chunks is refused at the first extra one.
        let (send, receive) = crossbeam_channel::bounded::<Streamed>(chunks.len() + 2);
        // The sender lives in the parser: once it ends, by any path, the
        // receiver sees the channel closed rather than waiting forever.
        let parser = std::thread::Builder::new()
            .spawn_scoped(scope, move || {
                let well_formed =
                    for_each_vector(reply, |vector| send.send(Streamed::Vector(vector)).is_ok());
                let _ = send.send(Streamed::Done(well_formed));
            })
            .map_err(|_| Error::internal("no thread to read the embedder's reply"))?;
        let stored = profile.db().write(|tx| {
            let mut writer = EmbeddingWriter::new(tx)?;
            let mut count = 0;
            let mut stored = 0;
            let mut dim = 0;
            loop {
                match receive.recv() {
                    Ok(Streamed::Vector(vector)) => {
                        if count == chunks.len()
                            || (count > 0 && vector.len() != dim)
                            || !usable(&vector)
                        {
                            return Err(bad_reply());
                        }
                        if count == 0 {
                            dim = vector.len();
                            require_dimension(tx, model, dim, "vectors")?;
                        }
                        if writer.store(chunks[count].0, model, &vector)? {
                            stored += 1;
                        }
                        count += 1;
                    }
                    Ok(Streamed::Done(true)) if count == chunks.len() => break,
                    Ok(Streamed::Done(_)) | Err(_) => return Err(bad_reply()),
                }
            }
            if stored > 0 {
                bump_vectors_version(tx)?;
            }
            Ok(stored)
        });
        // A parser blocked on a full channel sees it closed and stops.
        drop(receive);
        let _ = parser.join();
        stored
    })
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
        let mut writer = EmbeddingWriter::new(tx)?;
        let mut stored = 0;
        for ((seq, _), vector) in chunks.iter().zip(vectors) {
            if writer.store(*seq, model, vector)? {
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
    use crate::profile::OpenOptions;

    /// A fresh profile holding one document of `n` chunks, and the chunks.
    fn profile_with_chunks(dir: &std::path::Path, n: usize) -> (Profile, Vec<(i64, String)>) {
        let profile = Profile::open(OpenOptions::new(dir)).unwrap();
        let chunks: Vec<Value> = (0..n).map(|c| json!({"text": format!("c{c}")})).collect();
        let request = json!({"url": "https://e.example/a", "text": "x", "chunks": chunks});
        crate::ops::call_json(&profile, "documents.upsert", request.to_string().as_bytes())
            .unwrap();
        let chunks = profile
            .db()
            .read(|c| {
                c.query_all(
                    "SELECT seq, text FROM document_chunks ORDER BY idx",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .unwrap();
        (profile, chunks)
    }

    type Rows = Vec<(i64, String, i64, Vec<u8>)>;

    fn stored_rows(profile: &Profile) -> Rows {
        profile
            .db()
            .read(|c| {
                c.query_all(
                    "SELECT chunk_seq, model, dim, vector FROM chunk_embeddings ORDER BY chunk_seq",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .unwrap()
    }

    /// The whole-reply path (the only one before streaming).
    fn store_whole(profile: &Profile, chunks: &[(i64, String)], reply: &[u8]) -> Result<u64> {
        vectors_of_text(reply)
            .and_then(|vectors| checked(vectors, chunks.len()))
            .and_then(|vectors| store_batch(profile, "m", chunks, &vectors))
    }

    /// Proptest's seeded generator: the replies are random but repeatable.
    type Gen = proptest::test_runner::TestRng;

    fn below(rng: &mut Gen, n: u64) -> u64 {
        proptest::prelude::Rng::next_u64(rng) % n
    }

    /// One number as hosts print them: an f32 in its shortest form, as an
    /// f64, a short decimal, with an exponent, zero, or rarely out of f32.
    fn number(rng: &mut Gen) -> String {
        let x = f32::from_bits(proptest::prelude::Rng::next_u32(rng) & 0x3fff_ffff | 0x3000_0000)
            * if below(rng, 2) == 0 { -1.0 } else { 1.0 };
        match below(rng, 12) {
            0..=3 => serde_json::to_string(&f64::from(x)).unwrap(),
            4..=6 => serde_json::to_string(&x).unwrap(),
            7 => format!("{}.{}", below(rng, 100), below(rng, 100_000)),
            8 => format!("{}e-{}", below(rng, 1000) + 1, below(rng, 30)),
            9 => format!("-{}E+{}", below(rng, 99) + 1, below(rng, 3)),
            10 => "0".to_owned(),
            _ => format!("{}", below(rng, 10_000_000_000_000_000_000)),
        }
    }

    /// A random reply to `count` texts: mostly the usual shape and right,
    /// sometimes spaced out, of another shape, or wrong in one place.
    fn random_reply(rng: &mut Gen, count: usize, dim: usize) -> String {
        let mut vectors: Vec<Vec<String>> = (0..count)
            .map(|_| (0..dim).map(|_| number(rng)).collect())
            .collect();
        let at = below(rng, count as u64) as usize;
        match below(rng, 14) {
            0 => vectors[at].push("1".to_owned()),
            1 => {
                vectors.pop();
            }
            2 => vectors.push(vectors[0].clone()),
            3 => vectors[at] = vec!["0".to_owned(); dim],
            4 => vectors[at][0] = "1e39".to_owned(),
            5 => vectors[at][0] = "01".to_owned(),
            _ => {}
        }
        let body = vectors
            .iter()
            .map(|v| format!("[{}]", v.join(",")))
            .collect::<Vec<_>>();
        match below(rng, 10) {
            0 => format!(" {{ \"vectors\" : [ {} ] }}\n", body.join(" ,\n ")),
            1 => format!("{{\"vectors\":[{}],\"model\":\"m\"}}", body.join(",")),
            2 => format!("{{\"vectors\":[{}]}} x", body.join(",")),
            _ => format!("{{\"vectors\":[{}]}}", body.join(",")),
        }
    }

    /// The streamed store accepts exactly what the whole-reply path
    /// accepts, stores byte-identical rows, and leaves nothing behind when
    /// it refuses; replies past the two-thread split size included.
    #[test]
    fn streamed_and_whole_reply_stores_agree() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Gen::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
        let (mut streamed_ok, mut refused) = (0, 0);
        for round in 0..40 {
            let count = [1, 2, 7, 64, 100][below(&mut rng, 5) as usize];
            // One dimension per round (a model keeps its first dimension).
            let dim = [1, 3, 17, 384][below(&mut rng, 4) as usize];
            let (streamed, chunks) =
                profile_with_chunks(&dir.path().join(format!("s{round}")), count);
            let (whole, same) = profile_with_chunks(&dir.path().join(format!("w{round}")), count);
            assert_eq!(chunks, same);
            for _ in 0..3 {
                let reply = random_reply(&mut rng, count, dim);
                let a = store_streamed(&streamed, "m", &chunks, reply.as_bytes());
                let b = store_whole(&whole, &chunks, reply.as_bytes());
                let fallback = a.as_ref().err().map(|_| {
                    // Refused by the stream: nothing of it stored, and the
                    // caller's whole-reply reading decides.
                    store_whole(&streamed, &chunks, reply.as_bytes())
                });
                match (&a, &b) {
                    (Ok(x), Ok(y)) => {
                        assert_eq!(x, y);
                        streamed_ok += 1;
                    }
                    (Err(_), _) => {
                        refused += 1;
                        assert_eq!(
                            fallback.unwrap().ok(),
                            b.as_ref().ok().copied(),
                            "{reply:.200}"
                        );
                    }
                    (Ok(_), Err(_)) => panic!("streamed what the whole path refuses: {reply:.200}"),
                }
                assert_eq!(stored_rows(&streamed), stored_rows(&whole), "{reply:.200}");
            }
            streamed.close(Default::default()).unwrap();
            whole.close(Default::default()).unwrap();
        }
        assert!(streamed_ok > 40 && refused > 10, "{streamed_ok} {refused}");
    }

    /// A reply refused partway rolls back what the stream stored before.
    #[test]
    fn a_stream_refused_partway_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (profile, chunks) = profile_with_chunks(dir.path(), 64);
        let good: Vec<String> = (0..64).map(|i| format!("[1,{i},0.5]")).collect();
        let mut bad_number = good.clone();
        bad_number[40] = "[1,-,0.5]".to_owned();
        let mut bad_dim = good.clone();
        bad_dim[10] = "[1,2]".to_owned();
        let replies = [
            format!("{{\"vectors\":[{}]}}", bad_number.join(",")),
            format!("{{\"vectors\":[{}]}}", bad_dim.join(",")),
            format!("{{\"vectors\":[{}]}}", good[..63].join(",")),
            format!("{{\"vectors\":[{},[1,1,1]]}}", good.join(",")),
            format!("{{\"vectors\":[{}]}}]", good.join(",")),
        ];
        for reply in &replies {
            assert!(store_streamed(&profile, "m", &chunks, reply.as_bytes()).is_err());
            assert!(stored_rows(&profile).is_empty(), "{reply:.100}");
        }
        let reply = format!("{{\"vectors\":[{}]}}", good.join(","));
        assert_eq!(
            store_streamed(&profile, "m", &chunks, reply.as_bytes()).unwrap(),
            64
        );
        assert_eq!(stored_rows(&profile).len(), 64);
    }

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
