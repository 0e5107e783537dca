//! The documents store follows section 10 of the contract field by field:
//! upsert semantics (`changed: false` writes nothing, re-upserts replace
//! chunks and embeddings, metadata-only changes keep chunks), the chunk
//! rules seen through `documents.get`, lists, deletes by every filter, and
//! the privacy rule (no byte of a deleted page in any profile file) for
//! `documents.delete` and `privacy.forget_site`, with lookalike hosts
//! surviving. Guards against a store that loses, duplicates or leaks pages.

mod common;
use common::{any_file_contains, TestProfile};
use serde_json::{json, Value};

fn upsert(t: &TestProfile, req: Value) -> Value {
    t.ok("documents.upsert", req)
}

fn page_text(words: usize, seed: &str) -> String {
    (0..words)
        .map(|i| {
            if i % 37 == 36 {
                format!("{seed}{i}.\n\n")
            } else if i % 11 == 10 {
                format!("{seed}{i}. ")
            } else {
                format!("{seed}{i} ")
            }
        })
        .collect()
}

#[test]
fn upsert_creates_then_unchanged_upsert_writes_nothing() {
    let t = TestProfile::ticking();
    let text = page_text(400, "w");
    let first = upsert(
        &t,
        json!({"url": "https://Example.com/a", "text": text, "title": "A page", "source": "crawl"}),
    );
    assert_eq!(first["created"], true);
    assert_eq!(first["changed"], true);
    let doc = &first["document"];
    assert_eq!(doc["host"], "example.com");
    assert_eq!(doc["source"], "crawl");
    assert_eq!(doc["text_chars"], text.chars().count());
    assert_eq!(doc["content_type"], Value::Null);
    assert_eq!(doc["fetched_at"], Value::Null);
    assert_eq!(doc["job_id"], Value::Null);
    assert_eq!(doc["metadata"], json!({}));
    assert_eq!(doc["embedded_chunks"], 0);
    assert_eq!(doc["id"].as_str().unwrap().len(), 32);
    use sha2::Digest;
    let sha = sha2::Sha256::digest(text.as_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(doc["content_sha256"], hex);
    assert!(doc["chunks"].as_i64().unwrap() >= 3);

    t.tick();
    let info_before = t.ok("profile.info", json!({}));
    let again = upsert(
        &t,
        json!({"url": "https://Example.com/a", "text": text, "title": "A page", "source": "crawl"}),
    );
    assert_eq!(again["created"], false);
    assert_eq!(again["changed"], false);
    assert_eq!(again["document"], *doc, "nothing changed, updated_at kept");
    let info_after = t.ok("profile.info", json!({}));
    assert_eq!(
        info_before["wal_bytes"], info_after["wal_bytes"],
        "nothing written"
    );

    // Only a metadata field differs: updated, chunks kept.
    let meta = upsert(
        &t,
        json!({"url": "https://Example.com/a", "text": text, "title": "A page", "source": "crawl", "metadata": {"k": 1}}),
    );
    assert_eq!(meta["changed"], true);
    assert_eq!(meta["document"]["metadata"], json!({"k": 1}));
    assert_eq!(meta["document"]["source"], "crawl");
    assert_eq!(meta["document"]["chunks"], doc["chunks"]);

    // An omitted `source` is the default "user" (documents.upsert is not one
    // of the upserts that keep omitted fields): a change, chunks kept.
    let user = upsert(
        &t,
        json!({"url": "https://Example.com/a", "text": text, "title": "A page", "metadata": {"k": 1}}),
    );
    assert_eq!(user["changed"], true);
    assert_eq!(user["document"]["source"], "user");
    assert_eq!(user["document"]["chunks"], doc["chunks"]);
    // Omitted metadata is {} again.
    let plain = upsert(
        &t,
        json!({"url": "https://Example.com/a", "text": text, "title": "A page"}),
    );
    assert_eq!(plain["changed"], true);
    assert_eq!(plain["document"]["metadata"], json!({}));
    let same = upsert(
        &t,
        json!({"url": "https://Example.com/a", "text": text, "title": "A page"}),
    );
    assert_eq!(same["changed"], false);
    assert_eq!(same["document"], plain["document"]);
    assert!(meta["document"]["updated_at"].as_i64() > doc["updated_at"].as_i64());
    let got = t.ok(
        "documents.get",
        json!({"id": doc["id"], "include_chunks": true}),
    );
    assert_eq!(got["document"]["chunks"], doc["chunks"]);
    assert_eq!(got["text"], text);
}

#[test]
fn chunks_cover_the_text_with_scalar_offsets() {
    let t = TestProfile::new();
    let text = format!(
        "{}\n\n{}",
        "日本語のテキスト😀 ".repeat(150),
        "ß".repeat(900)
    );
    let doc = upsert(
        &t,
        json!({"url": "https://x.example/", "text": text, "chunk_chars": 300}),
    );
    let got = t.ok(
        "documents.get",
        json!({"url": "https://x.example/", "include_chunks": true}),
    );
    let chars: Vec<char> = text.chars().collect();
    let chunks = got["chunks"].as_array().unwrap();
    assert_eq!(
        chunks.len() as i64,
        doc["document"]["chunks"].as_i64().unwrap()
    );
    let mut previous_end = 0;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["document_id"], doc["document"]["id"]);
        assert_eq!(c["embeddings"], json!([]));
        let (start, end) = (
            c["start"].as_u64().unwrap() as usize,
            c["end"].as_u64().unwrap() as usize,
        );
        assert!(start <= previous_end && end > previous_end && end - start <= 300);
        let expected: String = chars[start..end].iter().collect();
        assert_eq!(c["text"], expected);
        previous_end = end;
    }
    assert_eq!(previous_end, chars.len());
    // The paragraph break is a cut.
    let para = text.chars().position(|c| c == '\n').unwrap() + 2;
    assert!(chunks.iter().any(|c| c["end"] == para));
    // Without include_chunks: null.
    let plain = t.ok("documents.get", json!({"url": "https://x.example/"}));
    assert_eq!(plain["chunks"], Value::Null);
}

#[test]
fn re_upsert_replaces_chunks_and_their_embeddings() {
    let t = TestProfile::new();
    let first = upsert(
        &t,
        json!({"url": "https://e.example/", "text": "one two", "chunks": [
            {"text": "one", "embedding": {"model": "m", "vector": [1.0, 0.0]}},
            {"text": "two", "embedding": {"model": "m", "vector": [0.0, 1.0]}}
        ]}),
    );
    assert_eq!(first["document"]["chunks"], 2);
    assert_eq!(first["document"]["embedded_chunks"], 2);
    let got = t.ok(
        "documents.get",
        json!({"url": "https://e.example/", "include_chunks": true}),
    );
    assert_eq!(got["chunks"][0]["start"], Value::Null);
    assert_eq!(
        got["chunks"][1]["embeddings"],
        json!([{"model": "m", "dim": 2}])
    );
    // Caller chunks given again: always a change.
    let second = upsert(
        &t,
        json!({"url": "https://e.example/", "text": "one two", "chunks": [{"text": "solo"}]}),
    );
    assert_eq!(second["changed"], true);
    assert_eq!(second["document"]["id"], first["document"]["id"]);
    assert_eq!(second["document"]["chunks"], 1);
    assert_eq!(second["document"]["embedded_chunks"], 0);
    let hits = t.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [1.0, 0.0]}}),
    );
    assert_eq!(hits["items"], json!([]), "old embeddings are gone");
    // New text: the library cuts it.
    let third = upsert(
        &t,
        json!({"url": "https://e.example/", "text": "brand new text"}),
    );
    assert_eq!(third["changed"], true);
    let got = t.ok(
        "documents.get",
        json!({"url": "https://e.example/", "include_chunks": true}),
    );
    assert_eq!(got["chunks"][0]["text"], "brand new text");
    assert_eq!(got["chunks"][0]["start"], 0);
    // chunk_chars change alone is a change.
    let fourth = upsert(
        &t,
        json!({"url": "https://e.example/", "text": "brand new text", "chunk_chars": 500}),
    );
    assert_eq!(fourth["changed"], true);
    // Title change alone is a change.
    let fifth = upsert(
        &t,
        json!({"url": "https://e.example/", "text": "brand new text", "chunk_chars": 500, "title": "T"}),
    );
    assert_eq!(fifth["changed"], true);
    assert_eq!(fifth["document"]["title"], "T");
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let t = TestProfile::new();
    let cases = [
        (
            json!({"url": "not a url", "text": "x"}),
            "invalid_argument",
            "url",
        ),
        (
            json!({"url": "https://a.example/", "text": ""}),
            "invalid_argument",
            "text",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "chunk_chars": 199}),
            "invalid_argument",
            "chunk_chars",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "chunk_chars": 8001}),
            "invalid_argument",
            "chunk_chars",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "source": "web"}),
            "invalid_argument",
            "source",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "chunks": []}),
            "invalid_argument",
            "chunks",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "chunks": [{"text": ""}]}),
            "invalid_argument",
            "chunks[0].text",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "chunks": [{"text": "a", "embedding": {"model": "m", "vector": [0.0]}}]}),
            "invalid_argument",
            "chunks[0].embedding.vector",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "chunks": [{"text": "a", "embedding": {"model": "m", "vector": [1.0]}}, {"text": "b", "embedding": {"model": "m", "vector": [1.0, 2.0]}}]}),
            "invalid_argument",
            "chunks[1].embedding.vector",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "metadata": [1]}),
            "invalid_argument",
            "metadata",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "tilte": "t"}),
            "invalid_argument",
            "tilte",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "fetched_at": -1}),
            "invalid_argument",
            "fetched_at",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "job_id": "nope"}),
            "not_found",
            "job_id",
        ),
        (
            json!({"url": "https://a.example/", "text": "x", "thread_id": "nope"}),
            "not_found",
            "thread_id",
        ),
    ];
    for (req, code, field) in cases {
        let e = t.err("documents.upsert", req.clone(), code);
        if code == "invalid_argument" {
            assert_eq!(e.details["field"], field, "{req}");
        }
    }
    let long_chunk = "y".repeat(32_001);
    t.err(
        "documents.upsert",
        json!({"url": "https://a.example/", "text": "x", "chunks": [{"text": long_chunk}]}),
        "invalid_argument",
    );
    // Another dimension for a model stored with one.
    upsert(
        &t,
        json!({"url": "https://b.example/", "text": "b", "chunks": [{"text": "b", "embedding": {"model": "m", "vector": [1.0, 2.0]}}]}),
    );
    let e = t.err(
        "documents.upsert",
        json!({"url": "https://c.example/", "text": "c", "chunks": [{"text": "c", "embedding": {"model": "m", "vector": [1.0]}}]}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "chunks[0].embedding.vector");
    let list = t.ok("documents.list", json!({}));
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only b was stored"
    );
    // get/delete need exactly one address.
    t.err("documents.get", json!({}), "invalid_argument");
    t.err(
        "documents.get",
        json!({"id": "a", "url": "https://b.example/"}),
        "invalid_argument",
    );
    t.err("documents.get", json!({"id": "missing"}), "not_found");
    t.err("documents.delete", json!({}), "filter_required");
    t.err("documents.delete", json!({"all": false}), "filter_required");
    t.err(
        "documents.delete",
        json!({"id": "x", "all": true}),
        "invalid_argument",
    );
    t.err("documents.delete", json!({"id": "missing"}), "not_found");
    t.err("documents.search", json!({}), "invalid_argument");
    t.err(
        "documents.search",
        json!({"query": "x", "limit": 101}),
        "invalid_argument",
    );
    t.err(
        "documents.search",
        json!({"query": "x", "match": "All"}),
        "invalid_argument",
    );
}

#[test]
fn links_to_threads_and_jobs_must_exist_and_are_stored() {
    let t = TestProfile::new();
    let thread = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let doc = upsert(
        &t,
        json!({"url": "https://t.example/", "text": "x", "thread_id": thread, "content_type": "text/html", "fetched_at": 5}),
    );
    assert_eq!(doc["document"]["thread_id"], thread);
    assert_eq!(doc["document"]["content_type"], "text/html");
    assert_eq!(doc["document"]["fetched_at"], 5);
    // null clears a nullable field.
    let cleared = upsert(
        &t,
        json!({"url": "https://t.example/", "text": "x", "content_type": null}),
    );
    assert_eq!(cleared["changed"], true);
    assert_eq!(cleared["document"]["content_type"], Value::Null);
    t.ok("threads.delete", json!({"id": thread}));
    let got = t.ok("documents.get", json!({"url": "https://t.example/"}));
    assert_eq!(
        got["document"]["thread_id"],
        Value::Null,
        "deleting the thread detaches it"
    );
}

#[test]
fn list_pages_newest_updated_first_with_host_and_source_filters() {
    let t = TestProfile::new();
    let hosts = [
        "example.com",
        "a.example.com",
        "notexample.com",
        "example.org",
    ];
    for (i, h) in hosts.iter().enumerate() {
        for j in 0..3 {
            let source = if j == 0 { "crawl" } else { "user" };
            upsert(
                &t,
                json!({"url": format!("https://{h}/{j}"), "text": format!("t{i}{j}"), "source": source}),
            );
        }
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut req = json!({"limit": 5});
        if !cursor.is_null() {
            req["cursor"] = cursor.clone();
        }
        let page = t.ok("documents.list", req);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["url"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let mut expected: Vec<String> = hosts
        .iter()
        .flat_map(|h| (0..3).map(move |j| format!("https://{h}/{j}")))
        .collect();
    expected.reverse();
    assert_eq!(seen, expected);
    let sub = t.ok("documents.list", json!({"host": "EXAMPLE.com"}));
    assert_eq!(
        sub["items"].as_array().unwrap().len(),
        6,
        "example.com and a.example.com"
    );
    let exact = t.ok(
        "documents.list",
        json!({"host": "example.com", "include_subdomains": false}),
    );
    assert_eq!(exact["items"].as_array().unwrap().len(), 3);
    let crawl = t.ok("documents.list", json!({"source": "crawl"}));
    assert_eq!(crawl["items"].as_array().unwrap().len(), 4);
    let c = sub["next_cursor"].clone();
    assert!(c.is_null());
    let page = t.ok("documents.list", json!({"limit": 1}));
    t.err(
        "documents.list",
        json!({"limit": 1, "source": "crawl", "cursor": page["next_cursor"]}),
        "invalid_argument",
    );
}

const SECRET: &str = "Pangolin-Zebra-Confession-7719";

fn store_site(t: &TestProfile, host: &str, n: usize) {
    for i in 0..n {
        let chunks: Vec<Value> = (0..3)
            .map(|c| json!({"text": format!("{SECRET} {host} {i} {c} {}", "filler words ".repeat(20)), "embedding": {"model": "m", "vector": [1.0 + i as f64, c as f64, 0.5]}}))
            .collect();
        upsert(
            t,
            json!({"url": format!("https://{host}/p{i}"), "text": format!("{SECRET} {host} body {i}"), "title": format!("{SECRET} title"), "chunks": chunks}),
        );
    }
}

fn assert_secret_gone(t: &TestProfile) {
    if let Some(file) = any_file_contains(t.dir.path(), SECRET.as_bytes()) {
        panic!("deleted text found in {}", file.display());
    }
}

#[test]
fn delete_by_host_spares_lookalikes_and_leaves_no_trace() {
    let t = TestProfile::new();
    store_site(&t, "secret.example", 3);
    store_site(&t, "www.secret.example", 2);
    upsert(
        &t,
        json!({"url": "https://notsecret.example/", "text": "lookalike stays"}),
    );
    upsert(
        &t,
        json!({"url": "https://secret.example.org/", "text": "other tld stays"}),
    );
    let out = t.ok("documents.delete", json!({"host": "secret.example"}));
    assert_eq!(
        out,
        json!({"deleted": 5, "chunks_deleted": 15, "erased": true})
    );
    let left: Vec<String> = t.ok("documents.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["host"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["secret.example.org", "notsecret.example"]);
    assert_secret_gone(&t);
    t.close();
    assert_secret_gone(&t);
}

#[test]
fn delete_by_id_url_and_all_leave_no_trace() {
    let t = TestProfile::new();
    store_site(&t, "one.example", 2);
    let doc = t.ok("documents.get", json!({"url": "https://one.example/p0"}));
    let out = t.ok("documents.delete", json!({"id": doc["document"]["id"]}));
    assert_eq!(
        out,
        json!({"deleted": 1, "chunks_deleted": 3, "erased": true})
    );
    let out = t.ok("documents.delete", json!({"url": "https://one.example/p1"}));
    assert_eq!(out["deleted"], 1);
    assert_secret_gone(&t);
    store_site(&t, "two.example", 2);
    let out = t.ok("documents.delete", json!({"all": true}));
    assert_eq!(
        out,
        json!({"deleted": 2, "chunks_deleted": 6, "erased": true})
    );
    assert_secret_gone(&t);
    let overview = t.ok("overview", json!({}));
    assert_eq!(
        overview["knowledge"],
        json!({"documents": 0, "chunks": 0, "embedded_chunks": 0})
    );
}

#[test]
fn forget_site_removes_visits_documents_and_tabs_keeps_bookmarks() {
    let t = TestProfile::new();
    store_site(&t, "secret.example", 2);
    store_site(&t, "m.secret.example", 1);
    upsert(
        &t,
        json!({"url": "https://notsecret.example/", "text": "lookalike stays"}),
    );
    let secret_url = format!("https://secret.example/{SECRET}");
    t.ok(
        "visits.record",
        json!({"url": secret_url, "title": SECRET, "tab_id": "tab1", "visited_at": 10}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://m.secret.example/x", "visited_at": 11}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://notsecret.example/x", "visited_at": 12, "tab_id": "tab2"}),
    );
    t.ok(
        "bookmarks.add",
        json!({"url": "https://secret.example/bm", "title": "kept"}),
    );
    t.ok(
        "bookmarks.add",
        json!({"url": "https://notsecret.example/bm"}),
    );
    let out = t.ok("privacy.forget_site", json!({"host": "secret.example"}));
    assert_eq!(
        out,
        json!({"history_deleted": 2, "documents_deleted": 3, "chunks_deleted": 9, "tabs_cleared": 1, "bookmarks_kept": 1, "erased": true})
    );
    let tab = t.ok("tabs.get", json!({"id": "tab1"}));
    assert_eq!(tab["tab"]["current_url"], Value::Null);
    let tab2 = t.ok("tabs.get", json!({"id": "tab2"}));
    assert_eq!(tab2["tab"]["current_url"], "https://notsecret.example/x");
    let history = t.ok("history.list", json!({}));
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.ok("bookmarks.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        t.ok("documents.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_secret_gone(&t);
    // Exact host only.
    store_site(&t, "secret.example", 1);
    store_site(&t, "m.secret.example", 1);
    let out = t.ok(
        "privacy.forget_site",
        json!({"host": "secret.example", "include_subdomains": false}),
    );
    assert_eq!(out["documents_deleted"], 1);
    assert_eq!(
        t.ok("documents.list", json!({"host": "m.secret.example"}))["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.err("privacy.forget_site", json!({}), "invalid_argument");
    t.err(
        "privacy.forget_site",
        json!({"host": ""}),
        "invalid_argument",
    );
}

#[test]
fn overview_counts_the_store() {
    let t = TestProfile::new();
    upsert(
        &t,
        json!({"url": "https://a.example/", "text": "a", "chunks": [{"text": "a", "embedding": {"model": "m", "vector": [1.0]}}, {"text": "b"}]}),
    );
    upsert(&t, json!({"url": "https://b.example/", "text": "b"}));
    let overview = t.ok("overview", json!({}));
    assert_eq!(
        overview["knowledge"],
        json!({"documents": 2, "chunks": 3, "embedded_chunks": 1})
    );
}

/// Concurrent upserts of one url, and deletes beside them: each successful
/// upsert answers with the document it wrote (its own text's sha and
/// title), and a delete committed right after an upsert never turns that
/// upsert into an error.
#[test]
fn concurrent_upserts_answer_with_their_own_document() {
    use sha2::{Digest, Sha256};
    let t = TestProfile::new();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for writer in 0..4 {
            let (t, failures) = (&t, &failures);
            s.spawn(move || {
                for i in 0..60 {
                    let text = format!("writer {writer} version {i} of the shared page");
                    let title = format!("title {writer}.{i}");
                    let sha = format!("{:x}", Sha256::digest(text.as_bytes()));
                    let req =
                        json!({"url": "https://shared.example/p", "text": text, "title": title});
                    match t.call("documents.upsert", req) {
                        Ok(out) => {
                            let document = &out["document"];
                            if document["content_sha256"] != sha.as_str()
                                || document["title"] != title.as_str()
                            {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("writer {writer} call {i} answered {document}"));
                            }
                        }
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push(format!("writer {writer} call {i} failed: {e:?}")),
                    }
                }
            });
        }
        s.spawn(|| {
            for _ in 0..60 {
                // `not_found` when no upsert came since the last delete.
                let _ = t.call(
                    "documents.delete",
                    json!({"url": "https://shared.example/p"}),
                );
            }
        });
    });
    let failures = failures.into_inner().unwrap();
    common::assert_none(failures, "bad answers");
}
