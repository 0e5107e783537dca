//! `documents.embed` runs the `documents_embed` job through the host's
//! embedder: batches in insertion order, progress after every batch
//! (steps = chunks), a failed batch counted in `failed` while the job goes
//! on, cancellation honoured between batches, callbacks that call back into
//! the library, and `no_handler` without an embedder. Guards against an
//! embed job that stalls, double-counts, deadlocks or ignores cancel.

mod common;
use common::TestProfile;
use hydra_core::error::{Error, ErrorCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

fn store(t: &TestProfile, docs: usize, chunks: usize) {
    for d in 0..docs {
        let chunks: Vec<Value> = (0..chunks)
            .map(|c| json!({"text": format!("d{d} c{c}")}))
            .collect();
        t.ok(
            "documents.upsert",
            json!({"url": format!("https://e.example/{d}"), "text": "x", "chunks": chunks}),
        );
    }
}

/// The texts of one embedder call and the job's progress it saw.
type EmbedCall = (Vec<String>, Value);

/// The model and texts of one call of a Rust vectors embedder.
type VectorsCall = (String, Vec<String>);

fn vector_for(text: &str) -> Vec<f64> {
    vec![1.0, text.len() as f64, 0.5]
}

#[test]
fn without_an_embedder_there_is_no_job() {
    let t = TestProfile::new();
    store(&t, 1, 2);
    t.err("documents.embed", json!({"model": "m"}), "no_handler");
    assert_eq!(t.ok("jobs.list", json!({}))["items"], json!([]));
    t.err(
        "documents.embed",
        json!({"model": "m", "batch": 0}),
        "invalid_argument",
    );
    t.err(
        "documents.embed",
        json!({"model": "m", "batch": 513}),
        "invalid_argument",
    );
    t.err("documents.embed", json!({}), "invalid_argument");
}

#[test]
fn batches_report_progress_count_failures_and_may_call_back() {
    let t = TestProfile::new();
    store(&t, 3, 3); // 9 chunks: batches of 4, 4, 1
    let calls: Arc<Mutex<Vec<EmbedCall>>> = Arc::default();
    let profile = t.profile.clone();
    let seen = calls.clone();
    t.profile.set_embedder(Some(Arc::new(move |input: &Value| {
        let texts: Vec<String> = serde_json::from_value(input["texts"].clone()).unwrap();
        assert_eq!(input["model"], "m");
        // Calling back into the library from the embedder works: read the
        // job's progress as the ledger has it now.
        let jobs =
            common::call(&profile, "jobs.list", json!({"type": ["documents_embed"]})).unwrap();
        let progress = jobs["items"][0]["progress"].clone();
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push((texts.clone(), progress));
            seen.len()
        };
        if n == 2 {
            return Err(Error::new(ErrorCode::Internal, "model crashed"));
        }
        let vectors: Vec<Vec<f64>> = texts.iter().map(|t| vector_for(t)).collect();
        Ok(json!({"vectors": vectors}))
    })));
    let out = t.ok(
        "documents.embed",
        json!({"model": "m", "batch": 4, "wait": true}),
    );
    assert_eq!(out["embedded"], 5);
    assert_eq!(out["failed"], 4);
    let calls = calls.lock().unwrap();
    let batches: Vec<Vec<String>> = calls.iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        batches,
        vec![
            vec!["d0 c0", "d0 c1", "d0 c2", "d1 c0"],
            vec!["d1 c1", "d1 c2", "d2 c0", "d2 c1"],
            vec!["d2 c2"],
        ]
    );
    for (i, done) in [0, 4, 8].iter().enumerate() {
        assert_eq!(calls[i].1["steps_total"], 9);
        assert_eq!(
            calls[i].1["steps_completed"], *done,
            "progress before batch {i}"
        );
    }
    let job = t.ok("jobs.get", json!({"id": out["job_id"]}))["job"].clone();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["type"], "documents_embed");
    assert_eq!(job["progress"]["steps_completed"], 9);
    assert_eq!(job["result"], json!({"embedded": 5, "failed": 4}));
    let overview = t.ok("overview", json!({}));
    assert_eq!(overview["knowledge"]["embedded_chunks"], 5);
    // The stored vectors are the embedder's: searching with one finds its chunk.
    let hits = t.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": vector_for("d0 c0")}, "limit": 1}),
    );
    assert!((hits["items"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(hits["items"][0]["chunk"]["text"], "d0 c0");
    drop(calls);
    // A second run embeds only what is missing (the failed batch).
    let again = t.ok(
        "documents.embed",
        json!({"model": "m", "batch": 4, "wait": true}),
    );
    assert_eq!(again["embedded"], 4);
    assert_eq!(again["failed"], 0);
    let third = t.ok("documents.embed", json!({"model": "m", "wait": true}));
    assert_eq!(
        (third["embedded"].clone(), third["failed"].clone()),
        (json!(0), json!(0))
    );
}

#[test]
fn wrong_count_or_dimension_fails_that_batch() {
    let t = TestProfile::new();
    store(&t, 1, 3);
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    t.profile.set_embedder(Some(Arc::new(move |input: &Value| {
        let n = input["texts"].as_array().unwrap().len();
        let mut c = counter.lock().unwrap();
        *c += 1;
        Ok(match *c {
            1 => json!({"vectors": [[1.0, 2.0]]}), // right count, dim 2
            2 => json!({"vectors": [[1.0, 2.0], [1.0, 1.0]]}), // too many
            _ => json!({"vectors": vec![vec![1.0, 2.0, 3.0]; n]}), // dim 3 != 2
        })
    })));
    let out = t.ok(
        "documents.embed",
        json!({"model": "m", "batch": 1, "wait": true}),
    );
    assert_eq!(
        out,
        json!({"job_id": out["job_id"], "embedded": 1, "failed": 2})
    );
}

#[test]
fn cancel_is_honoured_between_batches() {
    let t = TestProfile::new();
    store(&t, 1, 6);
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let entered_tx = Mutex::new(entered_tx);
    t.profile.set_embedder(Some(Arc::new(move |input: &Value| {
        entered_tx.lock().unwrap().send(()).unwrap();
        release_rx.lock().unwrap().recv().unwrap();
        let n = input["texts"].as_array().unwrap().len();
        Ok(json!({"vectors": vec![vec![1.0, 0.0]; n]}))
    })));
    let job_id = t.ok("documents.embed", json!({"model": "m", "batch": 2}))["job_id"].clone();
    entered_rx.recv().unwrap();
    t.ok("jobs.cancel", json!({"id": job_id}));
    release_tx.send(()).unwrap();
    let job = t.ok("jobs.wait", json!({"id": job_id, "timeout_ms": 10_000}))["job"].clone();
    assert_eq!(job["status"], "cancelled");
    // No further batch was passed to the embedder.
    assert!(entered_rx.try_recv().is_err());
    let embedded = t.ok("overview", json!({}))["knowledge"]["embedded_chunks"]
        .as_i64()
        .unwrap();
    assert!(
        embedded <= 2,
        "at most the batch in flight was stored, got {embedded}"
    );
}

#[test]
fn a_rust_embedder_of_f32_vectors_follows_the_same_rules() {
    let t = TestProfile::new();
    store(&t, 1, 4);
    let calls: Arc<Mutex<Vec<VectorsCall>>> = Arc::default();
    let seen = calls.clone();
    t.profile
        .set_embedder_vectors(Some(Arc::new(move |model: &str, texts: &[&str]| {
            let mut calls = seen.lock().unwrap();
            calls.push((
                model.to_owned(),
                texts.iter().map(|s| s.to_string()).collect(),
            ));
            Ok(match calls.len() {
                // A batch whose reply holds a NaN fails alone.
                2 => vec![vec![f32::NAN, 1.0, 1.0]; texts.len()],
                // A wrong count fails alone too.
                3 => vec![vec![1.0, 2.0, 3.0]; texts.len() + 1],
                _ => texts
                    .iter()
                    .map(|s| vec![1.0, s.len() as f32, 0.5])
                    .collect(),
            })
        })));
    let out = t.ok(
        "documents.embed",
        json!({"model": "m", "batch": 1, "wait": true}),
    );
    assert_eq!(
        out,
        json!({"job_id": out["job_id"], "embedded": 2, "failed": 2})
    );
    let calls = calls.lock().unwrap();
    let texts: Vec<&str> = calls.iter().map(|(_, t)| t[0].as_str()).collect();
    assert_eq!(texts, ["d0 c0", "d0 c1", "d0 c2", "d0 c3"]);
    assert!(calls.iter().all(|(model, _)| model == "m"));
    // The stored vectors are searchable like any other embedder's.
    let hits = t.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [1.0, 5.0, 0.5]}, "limit": 10}),
    );
    assert_eq!(hits["items"].as_array().unwrap().len(), 2);
}
