//! Every path that stores chunk embeddings makes the next vector search see
//! them even when an earlier search cached the model's vector codes
//! (`documents.upsert`, the `documents_embed` job, `bundle.import`), and
//! every delete path makes it forget them. Guards the explicit version
//! bump that replaced the per-row trigger (migration 0013): a path that
//! stored vectors without it would leave searches on stale codes.

mod common;
use common::TestProfile;
use serde_json::{json, Value};
use std::sync::Arc;

fn search(t: &TestProfile, vector: &[f64]) -> Vec<String> {
    let out = t.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": vector}, "limit": 10}),
    );
    out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["chunk"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn upsert(t: &TestProfile, url: &str, text: &str, vector: Option<&[f64]>) {
    let mut chunk = json!({"text": text});
    if let Some(v) = vector {
        chunk["embedding"] = json!({"model": "m", "vector": v});
    }
    t.ok(
        "documents.upsert",
        json!({"url": url, "text": text, "chunks": [chunk]}),
    );
}

#[test]
fn searches_after_each_write_path_see_the_new_vectors() {
    let t = TestProfile::new();
    upsert(&t, "https://a.example/", "a", Some(&[1.0, 0.0, 0.0]));
    assert_eq!(search(&t, &[1.0, 0.0, 0.0]), ["a"]);

    // documents.upsert with an embedding.
    upsert(&t, "https://b.example/", "b", Some(&[0.0, 1.0, 0.0]));
    assert_eq!(search(&t, &[0.0, 1.0, 0.0]), ["b", "a"]);
    // Re-upsert replaces the vector (old chunk deleted, new one stored).
    upsert(&t, "https://b.example/", "b2", Some(&[0.0, 0.0, 1.0]));
    assert_eq!(search(&t, &[0.0, 0.0, 1.0]), ["b2", "a"]);

    // The embed job.
    upsert(&t, "https://c.example/", "c", None);
    assert_eq!(search(&t, &[1.0, 1.0, 0.0]).len(), 2);
    t.profile.set_embedder(Some(Arc::new(|input: &Value| {
        let n = input["texts"].as_array().unwrap().len();
        Ok(json!({"vectors": vec![vec![1.0, 1.0, 0.0]; n]}))
    })));
    let out = t.ok("documents.embed", json!({"model": "m", "wait": true}));
    assert_eq!(out["embedded"], 1);
    assert_eq!(search(&t, &[1.0, 1.0, 0.0]), ["c", "a", "b2"]);

    // bundle.import into a profile whose codes are cached.
    let other = TestProfile::new();
    upsert(&other, "https://d.example/", "d", Some(&[-1.0, 0.0, 0.0]));
    let export = other.ok(
        "bundle.export",
        json!({"components": ["documents"], "wait": true}),
    );
    t.ok(
        "bundle.import",
        json!({"path": export["path"], "wait": true}),
    );
    assert_eq!(search(&t, &[-1.0, 0.0, 0.0])[0], "d");
    assert_eq!(search(&t, &[-1.0, 0.0, 0.0]).len(), 4);

    // Deletes: documents.delete, then privacy.forget_site.
    t.ok("documents.delete", json!({"url": "https://d.example/"}));
    assert_eq!(search(&t, &[-1.0, 0.0, 0.0]).len(), 3);
    t.ok("privacy.forget_site", json!({"host": "c.example"}));
    assert_eq!(search(&t, &[1.0, 1.0, 0.0]), ["a", "b2"]);
}
