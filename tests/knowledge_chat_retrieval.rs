//! `chat` with `retrieve` hands the model the chunks `documents.search`
//! finds (query defaulting to the user's message, matched with `any`;
//! hybrid with an embedding) and returns them in `context.documents`,
//! which is `[]` without `retrieve`. Guards against a model answering
//! without the pages the user asked about, or seeing other hosts' pages.

mod common;
use common::TestProfile;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[test]
fn the_model_receives_the_retrieved_chunks() {
    let t = TestProfile::new();
    t.ok("documents.upsert", json!({"url": "https://rust.example/", "title": "Ownership", "text": "Ownership moves values; borrowing lends them."}));
    t.ok("documents.upsert", json!({"url": "https://cook.example/", "title": "Bread", "text": "Knead the dough and let it rise."}));
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let inputs = seen.clone();
    t.profile.set_model(Some(Arc::new(move |input: &Value| {
        inputs.lock().unwrap().push(input.clone());
        Ok(json!({"content": "ok"}))
    })));
    let out = t.ok(
        "chat",
        json!({"message": "how does borrowing work?", "retrieve": {}}),
    );
    let docs = out["context"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["document"]["url"], "https://rust.example/");
    assert_eq!(docs[0]["text_rank"], 1);
    let model_docs = seen.lock().unwrap()[0]["context"]["documents"].clone();
    assert_eq!(model_docs, out["context"]["documents"]);

    // Explicit query, host filter, limit.
    let out = t.ok("chat", json!({"message": "hi", "retrieve": {"query": "dough ownership", "host": "cook.example", "limit": 20}}));
    let docs = out["context"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["document"]["host"], "cook.example");
    // Without retrieve: [] (always present).
    let out = t.ok("chat", json!({"message": "borrowing", "reply": "r"}));
    assert_eq!(out["context"]["documents"], json!([]));
    // A message without words finds nothing instead of failing.
    let out = t.ok(
        "chat",
        json!({"message": "?!", "reply": "r", "retrieve": {}}),
    );
    assert_eq!(out["context"]["documents"], json!([]));
    // Bad retrieve: refused, nothing written.
    let before = t.ok("overview", json!({}))["llm"]["messages"]["total"].clone();
    t.err(
        "chat",
        json!({"message": "x", "retrieve": {"limit": 21}}),
        "invalid_argument",
    );
    t.err(
        "chat",
        json!({"message": "x", "retrieve": {"lim": 2}}),
        "invalid_argument",
    );
    assert_eq!(
        t.ok("overview", json!({}))["llm"]["messages"]["total"],
        before
    );
}

#[test]
fn retrieve_with_an_embedding_is_hybrid() {
    let t = TestProfile::new();
    t.ok(
        "documents.upsert",
        json!({"url": "https://a.example/", "text": "x", "chunks": [
            {"text": "alpha words", "embedding": {"model": "m", "vector": [1.0, 0.0]}},
            {"text": "beta words", "embedding": {"model": "m", "vector": [0.0, 1.0]}}
        ]}),
    );
    let out = t.ok("chat", json!({"message": "beta", "reply": "r", "retrieve": {"embedding": {"model": "m", "vector": [0.0, 1.0]}}}));
    let docs = out["context"]["documents"].as_array().unwrap();
    assert_eq!(docs[0]["chunk"]["text"], "beta words");
    assert_eq!(docs[0]["text_rank"], 1);
    assert_eq!(docs[0]["vector_rank"], 1);
    assert_eq!(docs.len(), 2, "the vector list holds both chunks");
}

#[test]
fn a_bad_retrieve_names_the_field_inside_retrieve() {
    let t = TestProfile::new();
    t.ok(
        "documents.upsert",
        json!({"url": "https://a.example/", "text": "x", "chunks": [
            {"text": "alpha", "embedding": {"model": "m", "vector": [1.0, 0.0]}}
        ]}),
    );
    let e = t.err(
        "chat",
        json!({"message": "x", "reply": "r", "retrieve": {"embedding": {"model": "m", "vector": [1.0, 0.0, 0.0]}}}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "retrieve.embedding.vector");
    assert!(
        e.message.starts_with("retrieve.embedding.vector:"),
        "{}",
        e.message
    );
    assert_eq!(
        t.ok("overview", json!({}))["llm"]["messages"]["total"],
        0,
        "a refused chat stores nothing"
    );
}
