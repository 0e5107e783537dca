//! `documents.embed` with an embedder that replies JSON text (the C ABI's
//! embedder callback, what C, Python and Node hosts use): the usual reply
//! is stored while it is still being read, and a reply that turns out bad
//! partway (a bad number, a wrong count, a wrong dimension, an unusable
//! vector, trailing garbage) stores nothing of its batch and counts the
//! whole batch in `failed`, while the job goes on. A reply of another shape
//! that JSON still accepts is stored as before. Guards against a streamed
//! store that commits half a batch or accepts what the whole-reply reading
//! refuses.

mod common;
use common::TestProfile;
use hydra_core::db::ConnExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const BATCH: usize = 64;
const DIM: usize = 24;

/// One document of `n` chunks.
fn store(t: &TestProfile, n: usize) {
    let chunks: Vec<Value> = (0..n).map(|c| json!({"text": format!("c{c}")})).collect();
    t.ok(
        "documents.upsert",
        json!({"url": "https://e.example/a", "text": "x", "chunks": chunks}),
    );
}

/// The vector of the text `c{n}`, written as Python prints an f32 as f64.
fn vector_text(n: usize) -> String {
    let numbers: Vec<String> = (0..DIM)
        .map(|i| {
            let x = ((n * DIM + i) as f32 / 7.0 - 3.0) * if i % 3 == 0 { -1e-3 } else { 1.0 };
            serde_json::to_string(&f64::from(x)).unwrap()
        })
        .collect();
    format!("[{}]", numbers.join(", "))
}

fn index_of(text: &str) -> usize {
    text[1..].parse().unwrap()
}

/// The good reply to `texts`: one vector per text.
fn good_vectors(texts: &[Value]) -> Vec<String> {
    texts
        .iter()
        .map(|t| vector_text(index_of(t.as_str().unwrap())))
        .collect()
}

/// Turns the good vectors of a batch into the reply under test.
type Mangle = fn(Vec<String>) -> Vec<u8>;

fn reply_of(vectors: &[String]) -> Vec<u8> {
    format!("{{\"vectors\":[{}]}}", vectors.join(",")).into_bytes()
}

/// Every stored embedding: (chunk text, dim, vector bytes), by chunk.
fn stored(t: &TestProfile) -> Vec<(String, i64, Vec<u8>)> {
    t.profile
        .db()
        .read(|c| {
            c.query_all(
                "SELECT c.text, e.dim, e.vector FROM chunk_embeddings e
                 JOIN document_chunks c ON c.seq = e.chunk_seq ORDER BY c.idx",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .unwrap()
}

/// Runs the embed job over 3 batches of 64 where the second batch's reply
/// is `bad(good vectors of that batch)`; returns the job's outcome.
fn run_with_second_reply(t: &TestProfile, bad: Mangle) -> Value {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    t.profile
        .set_embedder_text(Some(Arc::new(move |input: &Value| {
            let texts = input["texts"].as_array().unwrap();
            let vectors = good_vectors(texts);
            let mut calls = counter.lock().unwrap();
            *calls += 1;
            Ok(if *calls == 2 {
                bad(vectors)
            } else {
                reply_of(&vectors)
            })
        })));
    t.ok(
        "documents.embed",
        json!({"model": "m", "batch": BATCH, "wait": true}),
    )
}

fn assert_second_batch_failed(t: &TestProfile, out: &Value, case: &str) {
    assert_eq!(out["embedded"], 2 * BATCH, "{case}");
    assert_eq!(out["failed"], BATCH, "{case}");
    let texts: Vec<usize> = stored(t)
        .iter()
        .map(|(text, _, _)| index_of(text))
        .collect();
    let expected: Vec<usize> = (0..BATCH).chain(2 * BATCH..3 * BATCH).collect();
    assert_eq!(
        texts, expected,
        "{case}: nothing of the bad batch is stored"
    );
}

#[test]
fn a_reply_bad_partway_stores_nothing_of_its_batch() {
    let cases: [(&str, Mangle); 11] = [
        ("bad number at vector 40", |mut v| {
            v[40] = v[40].replacen(", ", ", 1.2.3, ", 1);
            reply_of(&v)
        }),
        ("string at vector 40", |mut v| {
            v[40] = v[40].replacen(", ", ", \"1\", ", 1);
            reply_of(&v)
        }),
        ("one vector short", |mut v| {
            v.pop();
            reply_of(&v)
        }),
        ("one vector too many", |mut v| {
            v.push(v[0].clone());
            reply_of(&v)
        }),
        ("wrong dimension at vector 10", |mut v| {
            v[10] = v[10].replacen("[", "[1.5, ", 1);
            reply_of(&v)
        }),
        ("all zero at vector 30", |mut v| {
            v[30] = format!("[{}]", vec!["0"; DIM].join(","));
            reply_of(&v)
        }),
        ("past f32 at vector 50", |mut v| {
            let rest = v[50][v[50].find(", ").unwrap() + 2..].to_owned();
            v[50] = format!("[1e39, {rest}");
            reply_of(&v)
        }),
        ("trailing garbage after the last vector", |v| {
            let mut reply = reply_of(&v);
            reply.extend_from_slice(b" x");
            reply
        }),
        ("a second closing brace", |v| {
            let mut reply = reply_of(&v);
            reply.push(b'}');
            reply
        }),
        ("unclosed", |v| {
            let mut reply = reply_of(&v);
            reply.truncate(reply.len() - 1);
            reply
        }),
        ("an error object", |_| {
            br#"{"error":{"code":"timeout","message":"slow"}}"#.to_vec()
        }),
    ];
    for (case, bad) in cases {
        let t = TestProfile::new();
        store(&t, 3 * BATCH);
        let out = run_with_second_reply(&t, bad);
        assert_second_batch_failed(&t, &out, case);
        // The job went on and can fill the gap later.
        let again = t.ok(
            "documents.embed",
            json!({"model": "m", "batch": BATCH, "wait": true}),
        );
        assert_eq!(
            (again["embedded"].clone(), again["failed"].clone()),
            (json!(BATCH), json!(0)),
            "{case}"
        );
    }
}

/// A batch whose first vector has another dimension than the model's
/// stored vectors fails, and the stored ones are untouched.
#[test]
fn a_reply_of_another_dimension_than_the_model_fails() {
    let t = TestProfile::new();
    store(&t, 3 * BATCH);
    let out = run_with_second_reply(&t, |v| {
        let v: Vec<String> = v.iter().map(|x| x.replacen("[", "[2.5, ", 1)).collect();
        reply_of(&v)
    });
    assert_second_batch_failed(&t, &out, "another dimension");
}

/// What JSON accepts beyond the usual shape (another key, whitespace
/// anywhere, escapes) is still read, and stored byte for byte as the usual
/// reply with the same numbers (f32 values: whichever reader reads them
/// gives the same f32).
#[test]
fn other_shapes_and_the_usual_one_store_the_same_bytes() {
    let shapes: [Mangle; 4] = [
        |v| reply_of(&v),
        |v| format!("{{\"vectors\":[{}],\"model\":\"m\"}}", v.join(",")).into_bytes(),
        |v| format!("\n {{ \"vectors\" :\t[ {} ] }} \n", v.join(" ,\r\n")).into_bytes(),
        |v| format!("{{\"vect\\u006frs\":[{}]}}", v.join(",")).into_bytes(),
    ];
    let mut results = Vec::new();
    for (i, shape) in shapes.into_iter().enumerate() {
        let t = TestProfile::new();
        store(&t, 3 * BATCH);
        let out = run_with_second_reply(&t, shape);
        assert_eq!(out["embedded"], 3 * BATCH, "shape {i}");
        assert_eq!(out["failed"], 0, "shape {i}");
        results.push(stored(&t));
    }
    assert_eq!(results[0].len(), 3 * BATCH);
    assert!(results[0].iter().all(|(_, dim, _)| *dim == DIM as i64));
    for other in &results[1..] {
        assert!(*other == results[0]);
    }
}
