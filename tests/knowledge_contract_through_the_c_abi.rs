//! Section 10 (knowledge) and the embedder callback of section 9, checked
//! through the C ABI exactly as a shell calls it: JSON text in, envelope
//! out, `hydra_register_embedder` / `hydra_register_model` with C function
//! pointers and `user_data`. Field by field: every response field present
//! (null, never omitted), every refused request named by `details.field`
//! and changing nothing, ranks, scores and tie orders of
//! `documents.search`, and the `{model, texts}` -> `{vectors}` exchange of
//! a `documents_embed` job. Guards against a shell that reads a field the
//! library renamed or dropped, or gets another error than the contract
//! names.

mod common;

use hydra_core::testing::ffi::model::{hydra_register_embedder, hydra_register_model};
use hydra_core::testing::ffi::operations::{
    documents_get as hydra_documents_get, documents_upsert as hydra_documents_upsert,
};
use hydra_core::testing::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::ptr;

/// Takes ownership of a returned string, frees it, returns its JSON.
fn take(s: *mut c_char) -> Value {
    assert!(!s.is_null());
    // SAFETY: `s` is a NUL-terminated string returned by the library.
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_owned();
    // SAFETY: returned by the library, freed once.
    unsafe { hydra_string_free(s) };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn call_raw(handle: u64, op: &str, request: &[u8]) -> Value {
    let op = CString::new(op).unwrap();
    let request = CString::new(request).unwrap();
    // SAFETY: NUL-terminated strings alive across the call.
    take(unsafe { hydra_call(handle, op.as_ptr(), request.as_ptr()) })
}

fn call(handle: u64, op: &str, request: &Value) -> Value {
    call_raw(handle, op, request.to_string().as_bytes())
}

/// A profile opened through `hydra_open`, closed on drop.
struct Shell {
    handle: u64,
    dir: tempfile::TempDir,
}

impl Shell {
    fn open() -> Shell {
        let dir = tempfile::tempdir().unwrap();
        let options = CString::new(json!({ "profile_dir": dir.path() }).to_string()).unwrap();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: valid C string and out-pointer.
        let handle = unsafe { hydra_open(options.as_ptr(), &mut err) };
        assert_ne!(handle, 0, "open failed: {}", take(err));
        Shell { handle, dir }
    }

    fn ok(&self, op: &str, request: Value) -> Value {
        let envelope = call(self.handle, op, &request);
        assert_eq!(envelope["ok"], true, "{op} {request}: {envelope}");
        assert_eq!(
            keys(&envelope),
            ["data", "ok"],
            "a success envelope is exactly {{ok, data}}"
        );
        envelope["data"].clone()
    }

    /// Expects failure with `code`; returns the error object.
    fn err(&self, op: &str, request: Value, code: &str) -> Value {
        let envelope = call(self.handle, op, &request);
        assert_eq!(envelope["ok"], false, "{op} {request}: {envelope}");
        assert_eq!(
            envelope["error"]["code"], code,
            "{op} {request}: {envelope}"
        );
        assert!(envelope["error"]["message"].is_string(), "{envelope}");
        envelope["error"].clone()
    }

    /// Expects `invalid_argument` naming `field`.
    fn refused(&self, op: &str, request: Value, field: &str) {
        let e = self.err(op, request.clone(), "invalid_argument");
        assert_eq!(e["details"]["field"], field, "{op} {request}: {e}");
    }

    /// The knowledge counters, the jobs and the visits: what a refused call
    /// must leave as it found.
    fn state(&self) -> Value {
        let o = self.ok("overview", json!({}));
        json!([
            o["knowledge"],
            o["jobs"]["total"],
            o["browser"]["history"]["entries"]
        ])
    }

    fn upsert(&self, request: Value) -> Value {
        self.ok("documents.upsert", request)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // SAFETY: NULL options are allowed.
        take(unsafe { hydra_close(self.handle, ptr::null()) });
    }
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Asserts `v` holds every one of `names` (present, possibly null).
fn has_fields(v: &Value, names: &[&str]) {
    let present = keys(v);
    for name in names {
        assert!(
            present.iter().any(|k| k == name),
            "field `{name}` missing from {v}"
        );
    }
}

const DOCUMENT_FIELDS: [&str; 16] = [
    "id",
    "url",
    "host",
    "title",
    "source",
    "content_type",
    "text_chars",
    "content_sha256",
    "chunks",
    "embedded_chunks",
    "fetched_at",
    "created_at",
    "updated_at",
    "metadata",
    "job_id",
    "thread_id",
];

#[test]
fn documents_and_chunks_carry_every_field_of_the_contract() {
    let s = Shell::open();
    // The dedicated C function is the same operation.
    let request = CString::new(
        json!({"url": "https://a.example/x", "text": "Ünïcode 😀 text.\n\nSecond paragraph."})
            .to_string(),
    )
    .unwrap();
    // SAFETY: a NUL-terminated request alive across the call.
    let out = take(unsafe { hydra_documents_upsert(s.handle, request.as_ptr()) });
    assert_eq!(out["ok"], true, "{out}");
    let data = &out["data"];
    assert_eq!(keys(data), ["changed", "created", "document"]);
    let doc = &data["document"];
    has_fields(doc, &DOCUMENT_FIELDS);
    assert_eq!(doc["source"], "user", "default source");
    for absent in ["title", "content_type", "fetched_at", "job_id", "thread_id"] {
        assert_eq!(doc[absent], Value::Null, "{absent} is null, not omitted");
    }
    assert_eq!(doc["metadata"], json!({}));
    assert_eq!(doc["text_chars"], 34);
    assert!(doc["created_at"].is_u64() && doc["created_at"] == doc["updated_at"]);
    let sha = doc["content_sha256"].as_str().unwrap();
    assert!(
        sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let id = doc["id"].as_str().unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    let request = CString::new(json!({"id": id, "include_chunks": true}).to_string()).unwrap();
    // SAFETY: as above.
    let got = take(unsafe { hydra_documents_get(s.handle, request.as_ptr()) });
    let got = &got["data"];
    assert_eq!(keys(got), ["chunks", "document", "text"]);
    assert_eq!(got["document"], *doc);
    let chunk = &got["chunks"][0];
    has_fields(
        chunk,
        &["document_id", "index", "text", "start", "end", "embeddings"],
    );
    assert!(chunk.get("vector").is_none() && chunk["embeddings"] == json!([]));
    assert_eq!(
        (chunk["start"].clone(), chunk["end"].clone()),
        (json!(0), json!(34))
    );

    // Search items: exactly the contract's nested shapes, ranks null when
    // their list was not asked for.
    let hits = s.ok("documents.search", json!({"query": "second"}));
    assert_eq!(keys(&hits), ["items"]);
    let item = &hits["items"][0];
    has_fields(
        item,
        &["document", "chunk", "score", "text_rank", "vector_rank"],
    );
    has_fields(&item["document"], &["id", "url", "host", "title"]);
    has_fields(&item["chunk"], &["index", "text", "start", "end"]);
    assert_eq!(item["document"]["title"], Value::Null);
    assert_eq!(item["vector_rank"], Value::Null);
    assert_eq!(item["text_rank"], 1);
    assert!(item["score"].is_f64());

    let page = s.ok("documents.list", json!({}));
    assert_eq!(keys(&page), ["items", "next_cursor"]);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(page["items"][0], *doc, "list items are bare Documents");
}

#[test]
fn url_and_host_follow_the_rules_of_visits_record() {
    let s = Shell::open();
    for (url, host) in [
        ("https://WWW.Example.COM./a?q=1#f", json!("www.example.com")),
        ("https://bücher.example/", json!("xn--bcher-kva.example")),
        ("file:///tmp/page.html", Value::Null),
        ("file://localhost/tmp/page.html", Value::Null),
    ] {
        let doc = s.upsert(json!({"url": url, "text": "t"}));
        assert_eq!(doc["document"]["url"], url, "stored exactly as given");
        let visit = s.ok("visits.record", json!({"url": url, "visited_at": 1}));
        let history = s.ok("history.list", json!({"limit": 1}));
        assert_eq!(history["items"][0]["id"], visit["id"]);
        assert_eq!(doc["document"]["host"], host, "{url}");
        assert_eq!(
            history["items"][0]["host"], host,
            "{url}: same rule as a visit"
        );
    }
    // Host filters are normalized like stored hosts.
    for filter in ["EXAMPLE.com.", " example.com", "Example.Com"] {
        let page = s.ok("documents.list", json!({"host": filter}));
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{filter}");
    }
    let idn = s.ok("documents.list", json!({"host": "BÜCHER.example"}));
    assert_eq!(idn["items"][0]["host"], "xn--bcher-kva.example");
    let before = s.state();
    for url in ["not a url", "/relative/path", "https://", ""] {
        s.refused("documents.upsert", json!({"url": url, "text": "t"}), "url");
    }
    assert_eq!(s.state(), before);
}

#[test]
fn every_bad_request_names_its_field_and_changes_nothing() {
    let s = Shell::open();
    s.upsert(
        json!({"url": "https://kept.example/", "text": "kept", "chunks": [
            {"text": "kept", "embedding": {"model": "m", "vector": [1.0, 0.0]}}
        ]}),
    );
    let before = s.state();
    let u = |extra: Value| {
        let mut r = json!({"url": "https://a.example/", "text": "x"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let long_text = "a".repeat(8_000_001);
    let many_chunks: Vec<Value> = (0..10_001).map(|_| json!({"text": "c"})).collect();
    let upserts = [
        (json!({"text": "x"}), "url"),
        (json!({"url": "https://a.example/"}), "text"),
        (u(json!({"url": null})), "url"),
        (u(json!({"text": 5})), "text"),
        (u(json!({"text": long_text})), "text"),
        (u(json!({"title": 5})), "title"),
        (u(json!({"source": "Crawl"})), "source"),
        (u(json!({"source": null})), "source"),
        (u(json!({"content_type": 1})), "content_type"),
        (u(json!({"fetched_at": 1.5})), "fetched_at"),
        (u(json!({"fetched_at": "1"})), "fetched_at"),
        (u(json!({"metadata": "x"})), "metadata"),
        (u(json!({"metadata": null})), "metadata"),
        (u(json!({"job_id": "bad id"})), "job_id"),
        (u(json!({"thread_id": ""})), "thread_id"),
        (u(json!({"thread_id": "x".repeat(129)})), "thread_id"),
        (u(json!({"chunk_chars": 1000.5})), "chunk_chars"),
        (u(json!({"chunk_chars": "1000"})), "chunk_chars"),
        (u(json!({"chunk_chars": 0})), "chunk_chars"),
        (u(json!({"chunks": {}})), "chunks"),
        (u(json!({"chunks": many_chunks})), "chunks"),
        (
            u(json!({"chunks": [{"text": "a", "extra": 1}]})),
            "chunks[0].extra",
        ),
        (
            u(json!({"chunks": [{"text": "a"}, {"txt": "b"}]})),
            "chunks[1].txt",
        ),
        (
            u(json!({"chunks": [{"text": "a", "embedding": {"model": "m", "vector": []}}]})),
            "chunks[0].embedding.vector",
        ),
        (
            u(
                json!({"chunks": [{"text": "a", "embedding": {"model": "m2", "vector": vec![1.0; 4097]}}]}),
            ),
            "chunks[0].embedding.vector",
        ),
        (
            u(
                json!({"chunks": [{"text": "a", "embedding": {"model": "m", "vector": [0.0, 0.0]}}]}),
            ),
            "chunks[0].embedding.vector",
        ),
        (
            u(json!({"chunks": [{"text": "a", "embedding": {"model": "m", "vector": [1.0]}}]})),
            "chunks[0].embedding.vector",
        ),
        (
            u(json!({"chunks": [{"text": "a", "embedding": {"model": "", "vector": [1.0]}}]})),
            "chunks[0].embedding.model",
        ),
        (
            u(
                json!({"chunks": [{"text": "a", "embedding": {"model": "m", "vector": [1.0, 0.0], "dim": 2}}]}),
            ),
            "chunks[0].embedding.dim",
        ),
    ];
    for (request, field) in upserts {
        s.refused("documents.upsert", request, field);
    }
    // A bad chunk late in the list stores nothing of the earlier ones.
    s.refused(
        "documents.upsert",
        u(json!({"chunks": [{"text": "fine"}, {"text": "y".repeat(32_001)}]})),
        "chunks[1].text",
    );

    let id_cases = [
        ("documents.get", json!({"id": "bad id"}), "id"),
        ("documents.get", json!({"id": 5}), "id"),
        (
            "documents.get",
            json!({"url": "https://kept.example/", "include_chunks": "yes"}),
            "include_chunks",
        ),
        (
            "documents.get",
            json!({"url": "https://kept.example/", "text": true}),
            "text",
        ),
        ("documents.list", json!({"limit": 0}), "limit"),
        ("documents.list", json!({"limit": 501}), "limit"),
        ("documents.list", json!({"limit": 2.5}), "limit"),
        ("documents.list", json!({"cursor": "garbage"}), "cursor"),
        ("documents.list", json!({"host": ""}), "host"),
        ("documents.list", json!({"source": "web"}), "source"),
        (
            "documents.list",
            json!({"include_subdomains": "no"}),
            "include_subdomains",
        ),
        ("documents.list", json!({"order": "asc"}), "order"),
        ("documents.delete", json!({"id": "bad id"}), "id"),
        ("documents.delete", json!({"host": ""}), "host"),
        ("documents.delete", json!({"all": "yes"}), "all"),
        ("documents.delete", json!({"hots": "kept.example"}), "hots"),
        (
            "documents.search",
            json!({"query": "x", "limit": 0}),
            "limit",
        ),
        (
            "documents.search",
            json!({"query": "x", "limit": 101}),
            "limit",
        ),
        (
            "documents.search",
            json!({"query": "x", "match": "ANY"}),
            "match",
        ),
        (
            "documents.search",
            json!({"query": "x", "source": "web"}),
            "source",
        ),
        (
            "documents.search",
            json!({"query": "x", "host": ""}),
            "host",
        ),
        ("documents.search", json!({"query": 5}), "query"),
        (
            "documents.search",
            json!({"query": "x", "filter": {}}),
            "filter",
        ),
        (
            "documents.search",
            json!({"embedding": {"model": "m", "vector": [1.0, 0.0, 0.0]}}),
            "embedding.vector",
        ),
        (
            "documents.search",
            json!({"embedding": {"model": "m", "vector": [0.0, 0.0]}}),
            "embedding.vector",
        ),
        (
            "documents.search",
            json!({"embedding": {"model": "m"}}),
            "embedding.vector",
        ),
        ("privacy.forget_site", json!({}), "host"),
        ("privacy.forget_site", json!({"host": ""}), "host"),
        (
            "privacy.forget_site",
            json!({"host": "kept.example", "include_subdomains": 1}),
            "include_subdomains",
        ),
        (
            "privacy.forget_site",
            json!({"host": "kept.example", "all": true}),
            "all",
        ),
    ];
    for (op, request, field) in id_cases {
        s.refused(op, request, field);
    }
    // Two addresses, or none, for get; two selectors for delete.
    // The field named is the address that is missing or one too many.
    s.refused("documents.get", json!({}), "id");
    s.refused("documents.get", json!({"include_chunks": true}), "id");
    s.refused(
        "documents.get",
        json!({"id": "a", "url": "https://kept.example/"}),
        "url",
    );
    for (request, field) in [
        (
            json!({"url": "https://kept.example/", "host": "kept.example"}),
            "host",
        ),
        (json!({"host": "kept.example", "all": true}), "all"),
        (json!({"id": "a", "all": true}), "all"),
        (json!({"id": "a", "url": "https://kept.example/"}), "url"),
        (
            json!({"id": "a", "host": "kept.example", "include_subdomains": false}),
            "host",
        ),
    ] {
        s.refused("documents.delete", request, field);
    }
    s.err("documents.delete", json!({}), "filter_required");
    s.err(
        "documents.delete",
        json!({"include_subdomains": true}),
        "filter_required",
    );
    s.err("documents.search", json!({}), "invalid_argument");
    s.err(
        "documents.search",
        json!({"match": "any"}),
        "invalid_argument",
    );
    // Missing objects.
    s.err("documents.get", json!({"id": "missing"}), "not_found");
    s.err(
        "documents.get",
        json!({"url": "https://missing.example/"}),
        "not_found",
    );
    s.err("documents.delete", json!({"id": "missing"}), "not_found");
    s.err(
        "documents.delete",
        json!({"url": "https://missing.example/"}),
        "not_found",
    );
    for (field, value) in [("job_id", "missing"), ("thread_id", "missing")] {
        let mut r = u(json!({}));
        r[field] = json!(value);
        let e = s.err("documents.upsert", r, "not_found");
        assert_eq!(e["details"]["field"], field, "{e}");
    }
    // Bytes that are not UTF-8 or not JSON: refused, no crash.
    assert_eq!(
        call_raw(
            s.handle,
            "documents.upsert",
            b"{\"url\":\"https://a.example/\",\"text\":\"\xff\"}"
        )["error"]["code"],
        "invalid_argument"
    );
    assert_eq!(
        call_raw(s.handle, "documents.search", b"{\"query\":")["error"]["code"],
        "invalid_json"
    );
    assert_eq!(s.state(), before, "no refused call wrote anything");
    assert_eq!(
        s.ok("documents.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The bytes of every file of the profile directory.
fn profile_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        // The shared-memory index changes with every reader's marks; it
        // holds no data.
        .filter(|e| !e.file_name().to_string_lossy().ends_with("-shm"))
        .map(|e| (e.path().to_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn an_unchanged_upsert_writes_no_byte() {
    let s = Shell::open();
    let request = json!({
        "url": "https://same.example/p", "text": "Some text.\n\nMore text.",
        "title": "T", "source": "crawl", "content_type": "text/html", "fetched_at": 7,
        "metadata": {"b": 1, "a": {"y": 2, "x": 3}}, "chunk_chars": 300
    });
    let first = s.upsert(request.clone());
    assert_eq!(
        (first["created"].clone(), first["changed"].clone()),
        (json!(true), json!(true))
    );
    // Let the checkpointer settle, then compare every byte.
    s.ok("profile.maintenance", json!({"optimize": false}));
    let bytes = profile_bytes(s.dir.path());
    // The same document, its metadata keys in another order.
    let mut again = request.clone();
    again["metadata"] = json!({"a": {"x": 3, "y": 2}, "b": 1});
    let second = s.upsert(again);
    assert_eq!(second["created"], false);
    assert_eq!(second["changed"], false);
    assert_eq!(second["document"], first["document"], "updated_at kept");
    assert!(
        profile_bytes(s.dir.path()) == bytes,
        "an unchanged upsert wrote to the profile"
    );
    let mut other = request.clone();
    other.as_object_mut().unwrap().remove("chunk_chars");
    let recut = s.upsert(other);
    assert_eq!(recut["changed"], true, "the default 1000 differs from 300");
    assert!(recut["document"]["updated_at"].as_i64() > first["document"]["updated_at"].as_i64());
    // An explicit default equals the omitted one.
    let mut explicit = request.clone();
    explicit["chunk_chars"] = json!(1000);
    let same = s.upsert(explicit);
    assert_eq!(same["changed"], false);
    assert_eq!(same["document"], recut["document"]);
}

#[test]
fn search_ranks_scores_and_ties_follow_the_contract() {
    let s = Shell::open();
    // Two documents with identical chunks: equal scores, the older document
    // first, then the chunk index.
    for url in ["https://old.example/", "https://new.example/"] {
        s.upsert(json!({"url": url, "text": "x", "title": null, "chunks": [
            {"text": "Shared WORDS alpha", "embedding": {"model": "m", "vector": [1.0, 0.0]}},
            {"text": "shared words alpha", "embedding": {"model": "m", "vector": [1.0, 0.0]}},
            {"text": "unrelated beta", "embedding": {"model": "m", "vector": [0.6, 0.8]}}
        ]}));
    }
    // The older document is re-upserted: it stays the older one.
    s.upsert(
        json!({"url": "https://old.example/", "text": "x", "metadata": {"k": 1}, "chunks": [
            {"text": "Shared WORDS alpha", "embedding": {"model": "m", "vector": [1.0, 0.0]}},
            {"text": "shared words alpha", "embedding": {"model": "m", "vector": [1.0, 0.0]}},
            {"text": "unrelated beta", "embedding": {"model": "m", "vector": [0.6, 0.8]}}
        ]}),
    );
    let order = |items: &Value| -> Vec<(String, i64)> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["document"]["host"].as_str().unwrap().to_owned(),
                    i["chunk"]["index"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let text = s.ok("documents.search", json!({"query": "shared ALPHA"}))["items"].clone();
    assert_eq!(
        order(&text),
        [
            ("old.example".into(), 0),
            ("old.example".into(), 1),
            ("new.example".into(), 0),
            ("new.example".into(), 1)
        ]
    );
    let scores: Vec<f64> = text
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] == w[1]) && scores[0] > 0.0,
        "{scores:?}"
    );
    for (i, item) in text.as_array().unwrap().iter().enumerate() {
        assert_eq!(item["text_rank"], i as u64 + 1);
        assert_eq!(item["vector_rank"], Value::Null);
        assert_eq!(
            item["chunk"]["start"],
            Value::Null,
            "caller chunks have no offsets"
        );
    }
    // `all` requires every term; `any` one of them.
    let all = s.ok("documents.search", json!({"query": "shared beta"}));
    assert_eq!(all["items"], json!([]));
    let any = s.ok(
        "documents.search",
        json!({"query": "shared beta", "match": "any"}),
    );
    assert_eq!(any["items"].as_array().unwrap().len(), 6);
    // The title is searched too.
    s.upsert(
        json!({"url": "https://titled.example/", "title": "Gamma Title", "text": "body only"}),
    );
    let titled = s.ok("documents.search", json!({"query": "gamma body"}));
    assert_eq!(order(&titled["items"]), [("titled.example".into(), 0)]);

    // Embedding only: the cosine, ties by insertion order, text_rank null.
    let v = s.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [3.0, 4.0]}, "limit": 6}),
    )["items"]
        .clone();
    assert_eq!(
        order(&v),
        [
            ("old.example".into(), 2),
            ("new.example".into(), 2),
            ("old.example".into(), 0),
            ("old.example".into(), 1),
            ("new.example".into(), 0),
            ("new.example".into(), 1)
        ]
    );
    let expected_scores = [1.0, 1.0, 0.6, 0.6, 0.6, 0.6];
    for (i, item) in v.as_array().unwrap().iter().enumerate() {
        assert!(
            (item["score"].as_f64().unwrap() - expected_scores[i]).abs() < 1e-6,
            "{item}"
        );
        assert_eq!(item["vector_rank"], i as u64 + 1);
        assert_eq!(item["text_rank"], Value::Null);
    }
    // A model with no embedded chunks: no items (any dimension).
    let none = s.ok(
        "documents.search",
        json!({"embedding": {"model": "other", "vector": [1.0, 2.0, 3.0]}}),
    );
    assert_eq!(none["items"], json!([]));

    // Hybrid: reciprocal rank fusion over both lists; a chunk missing from
    // the text list ranks after every chunk in it; ties by vector rank.
    let h = s.ok(
        "documents.search",
        json!({"query": "alpha", "embedding": {"model": "m", "vector": [0.6, 0.8]}, "limit": 6}),
    )["items"]
        .clone();
    let term = |r: &Value| r.as_u64().map_or(0.0, |r| 1.0 / (60.0 + r as f64));
    let items = h.as_array().unwrap();
    assert_eq!(items.len(), 6);
    for item in items {
        let expected = term(&item["text_rank"]) + term(&item["vector_rank"]);
        assert_eq!(item["score"].as_f64().unwrap(), expected, "{item}");
        assert!(item["vector_rank"].is_u64());
    }
    let ranks: Vec<(Value, Value)> = items
        .iter()
        .map(|i| (i["text_rank"].clone(), i["vector_rank"].clone()))
        .collect();
    // Vector list: old#2, new#2 (0.8... cosine 1.0), then the four equal.
    // Text list: old#0, old#1, new#0, new#1.
    assert_eq!(
        ranks,
        [
            (json!(1), json!(3)),
            (json!(2), json!(4)),
            (json!(3), json!(5)),
            (json!(4), json!(6)),
            (Value::Null, json!(1)),
            (Value::Null, json!(2)),
        ]
    );
    // Filters apply to both lists.
    let filtered = s.ok(
        "documents.search",
        json!({"query": "alpha", "embedding": {"model": "m", "vector": [0.6, 0.8]}, "host": "NEW.example", "source": "user"}),
    );
    assert!(filtered["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["document"]["host"] == "new.example"));
    assert_eq!(filtered["items"].as_array().unwrap().len(), 3);
    let crawl = s.ok(
        "documents.search",
        json!({"query": "alpha", "source": "crawl"}),
    );
    assert_eq!(crawl["items"], json!([]));
}

/// What the host passes as the embedder's `user_data`.
struct Embedder {
    /// The profile, for calls back into the library (0: none).
    handle: u64,
    inputs: Mutex<Vec<Value>>,
    /// The threads the embedder ran on.
    threads: Mutex<Vec<std::thread::ThreadId>>,
}

impl Embedder {
    fn new(handle: u64) -> Box<Embedder> {
        Box::new(Embedder {
            handle,
            inputs: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        })
    }

    fn user_data(&self) -> *mut c_void {
        self as *const Embedder as *mut c_void
    }
}

fn malloc_string(text: &str) -> *mut c_char {
    let text = CString::new(text).unwrap();
    // SAFETY: duplicates a valid C string with malloc, as the contract asks.
    unsafe { libc::strdup(text.as_ptr()) }
}

/// Answers `{vectors}` for `{model, texts}`; a text naming a failure makes
/// the whole batch fail that way.
unsafe extern "C" fn embedder(json: *const c_char, user_data: *mut c_void) -> *mut c_char {
    // SAFETY: `user_data` is the test's `Embedder`, alive while registered.
    let host = unsafe { &*(user_data as *const Embedder) };
    // SAFETY: the library passes a valid NUL-terminated string.
    let input: Value = serde_json::from_slice(unsafe { CStr::from_ptr(json) }.to_bytes()).unwrap();
    host.inputs.lock().push(input.clone());
    host.threads.lock().push(std::thread::current().id());
    if host.handle != 0 {
        // Callbacks may call back into the library.
        let back = call(host.handle, "documents.list", &json!({"limit": 1}));
        assert_eq!(back["ok"], true, "{back}");
    }
    let texts: Vec<&str> = input["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let has = |word: &str| texts.iter().any(|t| t.contains(word));
    if has("NULLREPLY") {
        return ptr::null_mut();
    }
    if has("GARBAGEREPLY") {
        // Not UTF-8, not JSON.
        // SAFETY: a NUL-terminated byte string duplicated with malloc.
        return unsafe { libc::strdup(c"\xff\xfe{\"vectors\":[[".as_ptr()) };
    }
    if has("ERRORREPLY") {
        return malloc_string(r#"{"error":{"code":"timeout","message":"model busy"}}"#);
    }
    let mut vectors: Vec<Vec<f64>> = texts
        .iter()
        .map(|t| vec![t.chars().count() as f64, 1.0, 0.5])
        .collect();
    if has("SHORTREPLY") {
        vectors.pop();
    }
    if has("WIDEREPLY") {
        vectors[0].push(1.0);
    }
    malloc_string(&json!({ "vectors": vectors }).to_string())
}

#[test]
fn the_embedder_callback_embeds_through_the_c_abi() {
    let s = Shell::open();
    let host = Embedder::new(s.handle);
    let user_data = host.user_data();
    let jobs_before = s.ok("jobs.list", json!({}));
    // No embedder: no_handler, and no job.
    s.err("documents.embed", json!({"model": "m"}), "no_handler");
    assert_eq!(s.ok("jobs.list", json!({})), jobs_before);

    // SAFETY: a valid function; `host` outlives the profile (dropped last).
    let r = take(unsafe { hydra_register_embedder(s.handle, Some(embedder), user_data) });
    assert_eq!(r, json!({"ok": true, "data": {"registered": true}}));

    // Refused requests create no job.
    for (request, field) in [
        (json!({}), "model"),
        (json!({"model": "m", "batch": 0}), "batch"),
        (json!({"model": "m", "batch": 513}), "batch"),
        (json!({"model": "m", "wait": "yes"}), "wait"),
        (json!({"model": "m", "modle": 1}), "modle"),
    ] {
        s.refused("documents.embed", request, field);
    }
    s.err(
        "documents.embed",
        json!({"model": "m", "thread_id": "missing"}),
        "not_found",
    );
    s.err(
        "documents.embed",
        json!({"model": "m", "task_id": "missing"}),
        "not_found",
    );
    assert_eq!(s.ok("jobs.list", json!({})), jobs_before);

    // Chunks in insertion order (document, then index), batches of 2:
    // [a0 a1] ok, [a2 b0] the embedder fails, [b1 b2] wrong count,
    // [c0 c1] NULL, [c2 d0] wrong dimension, [d1] ok.
    let texts = [
        ("https://a.example/", ["a zero", "a one", "a two"]),
        (
            "https://b.example/",
            ["b ERRORREPLY", "b one", "b SHORTREPLY"],
        ),
        (
            "https://c.example/",
            ["c NULLREPLY", "c one", "c WIDEREPLY"],
        ),
        ("https://d.example/", ["d zero", "d one", "d two"]),
    ];
    for (url, chunks) in &texts {
        let chunks: Vec<Value> = chunks.iter().map(|t| json!({"text": t})).collect();
        s.upsert(json!({"url": url, "text": "x", "chunks": chunks}));
    }
    // d#2 already has an embedding of "m" (dimension 3): it is not sent.
    s.upsert(json!({"url": "https://d.example/", "text": "x", "chunks": [
        {"text": "d zero"}, {"text": "d one"},
        {"text": "d two", "embedding": {"model": "m", "vector": [1.0, 2.0, 3.0]}}
    ]}));
    let out = s.ok(
        "documents.embed",
        json!({"model": "m", "batch": 2, "wait": true}),
    );
    assert_eq!(keys(&out), ["embedded", "failed", "job_id"]);
    assert_eq!(
        (out["embedded"].clone(), out["failed"].clone()),
        (json!(3), json!(8))
    );
    let sent: Vec<Value> = host.inputs.lock().clone();
    let expected: Vec<Value> = [
        vec!["a zero", "a one"],
        vec!["a two", "b ERRORREPLY"],
        vec!["b one", "b SHORTREPLY"],
        vec!["c NULLREPLY", "c one"],
        vec!["c WIDEREPLY", "d zero"],
        vec!["d one"],
    ]
    .into_iter()
    .map(|texts| json!({"model": "m", "texts": texts}))
    .collect();
    for input in &sent {
        assert_eq!(keys(input), ["model", "texts"], "exactly {{model, texts}}");
    }
    assert_eq!(sent, expected);
    let caller = std::thread::current().id();
    assert!(
        host.threads.lock().iter().all(|t| *t != caller),
        "the embedder runs on a worker thread, not the caller's"
    );
    let job = s.ok("jobs.get", json!({"id": out["job_id"]}))["job"].clone();
    assert_eq!(job["type"], "documents_embed");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["result"], json!({"embedded": 3, "failed": 8}));
    assert_eq!(job["progress"]["steps_total"], 11, "steps are chunks");
    assert_eq!(job["progress"]["steps_completed"], 11);
    let a = s.ok(
        "documents.get",
        json!({"url": "https://a.example/", "include_chunks": true}),
    );
    assert_eq!(a["document"]["embedded_chunks"], 2);
    assert_eq!(
        a["chunks"][0]["embeddings"],
        json!([{"model": "m", "dim": 3}])
    );
    assert_eq!(a["chunks"][2]["embeddings"], json!([]));
    let hits = s.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [6.0, 1.0, 0.5]}, "limit": 1}),
    );
    assert_eq!(hits["items"][0]["chunk"]["text"], "a zero");
    assert_eq!(
        s.ok("overview", json!({}))["knowledge"],
        json!({"documents": 4, "chunks": 12, "embedded_chunks": 4})
    );

    // Without waiting: {job_id} only; the run sends only what still lacks
    // an embedding of the model.
    host.inputs.lock().clear();
    let queued = s.ok("documents.embed", json!({"model": "m", "batch": 512}));
    assert_eq!(keys(&queued), ["job_id"]);
    let done = s.ok(
        "jobs.wait",
        json!({"id": queued["job_id"], "timeout_ms": 60_000}),
    );
    assert_eq!(done["job"]["result"], json!({"embedded": 0, "failed": 8}));
    assert_eq!(host.inputs.lock()[0]["texts"].as_array().unwrap().len(), 8);

    // Registering again replaces the previous function.
    let other = Embedder::new(0);
    // SAFETY: as above; `other` outlives the profile.
    take(unsafe { hydra_register_embedder(s.handle, Some(embedder), other.user_data()) });
    let sent_before = host.inputs.lock().len();
    s.ok("documents.embed", json!({"model": "m2", "wait": true}));
    assert_eq!(host.inputs.lock().len(), sent_before);
    assert_eq!(other.inputs.lock().len(), 1);

    // A NULL function unregisters: no_handler again.
    // SAFETY: NULL unregisters.
    let r = take(unsafe { hydra_register_embedder(s.handle, None, ptr::null_mut()) });
    assert_eq!(r, json!({"ok": true, "data": {"registered": false}}));
    let jobs = s.ok("jobs.list", json!({}));
    s.err(
        "documents.embed",
        json!({"model": "m", "wait": true}),
        "no_handler",
    );
    assert_eq!(s.ok("jobs.list", json!({})), jobs);
    // A closed or unknown handle: `closed`.
    // SAFETY: the handle is not open; nothing is called.
    let r = take(unsafe { hydra_register_embedder(0, Some(embedder), user_data) });
    assert_eq!(r["error"]["code"], "closed");
    drop(s);
    drop(host);
    drop(other);
}

/// The model's `user_data`: the inputs it saw.
struct Model {
    inputs: Mutex<Vec<Value>>,
}

unsafe extern "C" fn model(json: *const c_char, user_data: *mut c_void) -> *mut c_char {
    // SAFETY: `user_data` is the test's `Model`, alive while registered.
    let host = unsafe { &*(user_data as *const Model) };
    // SAFETY: the library passes a valid NUL-terminated string.
    let input: Value = serde_json::from_slice(unsafe { CStr::from_ptr(json) }.to_bytes()).unwrap();
    host.inputs.lock().push(input);
    malloc_string(r#"{"content":"answer"}"#)
}

#[test]
fn chat_hands_the_retrieved_chunks_to_a_c_model() {
    let s = Shell::open();
    let host = Box::new(Model {
        inputs: Mutex::new(Vec::new()),
    });
    // SAFETY: a valid function; `host` outlives the profile.
    let r = take(unsafe {
        hydra_register_model(s.handle, Some(model), &*host as *const Model as *mut c_void)
    });
    assert_eq!(r["ok"], true);
    s.upsert(json!({"url": "https://rust.example/", "title": "Borrowing", "text": "References borrow values."}));
    s.upsert(json!({"url": "https://www.rust.example/", "text": "Lifetimes of references."}));
    s.upsert(json!({"url": "https://notrust.example/", "text": "References elsewhere."}));
    let out = s.ok(
        "chat",
        json!({"message": "how do REFERENCES borrow?", "retrieve": {"host": "rust.example"}}),
    );
    let docs = out["context"]["documents"].as_array().unwrap();
    // The message's words matched with `any`, subdomains included by default.
    let hosts: Vec<&str> = docs
        .iter()
        .map(|d| d["document"]["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["rust.example", "www.rust.example"]);
    let direct = s.ok(
        "documents.search",
        json!({"query": "how do REFERENCES borrow?", "match": "any", "host": "rust.example", "limit": 5}),
    );
    assert_eq!(
        out["context"]["documents"], direct["items"],
        "the items of that search"
    );
    let seen = host.inputs.lock()[0].clone();
    assert_eq!(seen["context"]["documents"], out["context"]["documents"]);
    assert_eq!(out["assistant_message"]["content"], "answer");
    // Exact host only, and the default limit of 5.
    let exact = s.ok(
        "chat",
        json!({"message": "references", "retrieve": {"host": "rust.example", "include_subdomains": false}}),
    );
    assert_eq!(exact["context"]["documents"].as_array().unwrap().len(), 1);
    for i in 0..8 {
        s.upsert(json!({"url": format!("https://many.example/{i}"), "text": "references again"}));
    }
    let many = s.ok("chat", json!({"message": "references", "retrieve": {}}));
    assert_eq!(many["context"]["documents"].as_array().unwrap().len(), 5);
    // Without retrieve: [] for the shell and for the model.
    let plain = s.ok("chat", json!({"message": "references"}));
    assert_eq!(plain["context"]["documents"], json!([]));
    assert_eq!(
        host.inputs.lock().last().unwrap()["context"]["documents"],
        json!([])
    );
    for (retrieve, field) in [
        (json!({"limit": 0}), "retrieve.limit"),
        (json!({"limit": 21}), "retrieve.limit"),
        (json!({"host": ""}), "retrieve.host"),
        (json!({"match": "all"}), "retrieve.match"),
        (
            json!({"embedding": {"model": "m", "vector": [0.0]}}),
            "retrieve.embedding.vector",
        ),
        (
            json!({"embedding": {"model": " ", "vector": [1.0]}}),
            "retrieve.embedding.model",
        ),
        (
            json!({"embedding": {"model": "m", "vector": vec![1.0; 4097]}}),
            "retrieve.embedding.vector",
        ),
    ] {
        s.refused("chat", json!({"message": "x", "retrieve": retrieve}), field);
    }
    drop(s);
    drop(host);
}

#[test]
fn forget_site_answers_every_count_through_the_c_abi() {
    let s = Shell::open();
    s.upsert(
        json!({"url": "https://Forget.example/a", "text": "secret words", "chunk_chars": 200}),
    );
    s.upsert(json!({"url": "https://sub.forget.example/b", "text": "more secret"}));
    s.upsert(json!({"url": "https://forget.example.org/", "text": "other site"}));
    s.upsert(json!({"url": "https://xforget.example/", "text": "lookalike"}));
    s.ok(
        "visits.record",
        json!({"url": "https://forget.example/v", "tab_id": "t", "visited_at": 1}),
    );
    s.ok(
        "bookmarks.add",
        json!({"url": "https://sub.forget.example/bm"}),
    );
    let out = s.ok("privacy.forget_site", json!({"host": "FORGET.example."}));
    assert_eq!(
        out,
        json!({"history_deleted": 1, "documents_deleted": 2, "chunks_deleted": 2,
               "tabs_cleared": 1, "bookmarks_kept": 1, "erased": true})
    );
    let left: Vec<Value> = s.ok("documents.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["host"].clone())
        .collect();
    assert_eq!(
        left,
        [json!("xforget.example"), json!("forget.example.org")]
    );
    // Nothing left to forget: zero counts, still a success.
    let again = s.ok("privacy.forget_site", json!({"host": "forget.example"}));
    assert_eq!(again["documents_deleted"], 0);
    assert_eq!(again["bookmarks_kept"], 1);
    let deleted = s.ok("documents.delete", json!({"host": "nothing.example"}));
    assert_eq!(
        deleted,
        json!({"deleted": 0, "chunks_deleted": 0, "erased": true})
    );
}

#[test]
fn search_takes_ten_items_by_default() {
    let s = Shell::open();
    for i in 0..12 {
        s.upsert(json!({"url": format!("https://p.example/{i}"), "text": "common word"}));
    }
    let hits = s.ok("documents.search", json!({"query": "word"}));
    assert_eq!(hits["items"].as_array().unwrap().len(), 10);
    let all = s.ok("documents.search", json!({"query": "word", "limit": 100}));
    assert_eq!(all["items"].as_array().unwrap().len(), 12);
    let page = s.ok("documents.list", json!({"limit": 5}));
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert!(page["next_cursor"].is_string());
    // A cursor belongs to its filters, whatever the host's spelling.
    let first = s.ok("documents.list", json!({"limit": 5, "host": "P.example."}));
    let second = s.ok(
        "documents.list",
        json!({"limit": 10, "host": "p.example", "cursor": first["next_cursor"]}),
    );
    assert_eq!(second["items"].as_array().unwrap().len(), 7);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(second["items"][0]["url"], "https://p.example/6");
    for other in [
        json!({"host": "q.example"}),
        json!({"host": "p.example", "include_subdomains": false}),
        json!({"source": "user"}),
        json!({}),
    ] {
        let mut request = other.clone();
        request["cursor"] = first["next_cursor"].clone();
        s.refused("documents.list", request, "cursor");
    }
}

/// Rewrites the `documents` lines of a bundle with `edit` and fixes the
/// manifest's checksum, as a hand-made bundle would be.
fn doctor_bundle(path: &str, edit: impl Fn(&mut Value)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for line in lines.iter_mut().skip(1) {
        let mut record: Value = serde_json::from_str(line).unwrap();
        if record["c"] == "documents" {
            edit(&mut record["r"]);
            *line = record.to_string();
        }
    }
    common::reseal_component(&mut lines, "documents");
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A change made to a bundle's document record.
type Edit = fn(&mut Value);

#[test]
fn imported_document_records_keep_the_upsert_rules() {
    let source = Shell::open();
    source.upsert(json!({"url": "https://b.example/", "text": "héllo wörld. ".repeat(40), "chunk_chars": 200}));
    let export = source.ok(
        "bundle.export",
        json!({"components": ["documents"], "wait": true}),
    );
    let path = export["path"].as_str().unwrap().to_owned();
    let target = Shell::open();
    // Untouched, it imports with its offsets.
    let copy = format!("{path}.copy");
    std::fs::copy(&path, &copy).unwrap();
    let ok = target.ok(
        "bundle.import",
        json!({"path": copy, "wait": true, "dry_run": true}),
    );
    assert_eq!(ok["imported"]["documents"]["inserted"], 1);
    let doctored: [(&str, Edit); 7] = [
        ("bad id", |r| r["id"] = json!("not an id!")),
        ("negative time", |r| r["created_at"] = json!(-5)),
        ("negative fetch", |r| r["fetched_at"] = json!(-1)),
        ("shifted", |r| r["chunks"][0]["start"] = json!(1)),
        ("past the end", |r| {
            let last = r["chunks"].as_array().unwrap().len() - 1;
            r["chunks"][last]["end"] = json!(100_000);
        }),
        ("half a span", |r| r["chunks"][0]["end"] = Value::Null),
        ("other text", |r| {
            r["chunks"][0]["text"] = json!("not the page")
        }),
    ];
    for (name, edit) in doctored {
        let copy = format!("{path}.{}", name.replace(' ', "_"));
        std::fs::copy(&path, &copy).unwrap();
        doctor_bundle(&copy, edit);
        let r = call(
            target.handle,
            "bundle.import",
            &json!({"path": copy, "wait": true}),
        );
        assert_eq!(r["ok"], false, "{name}: {r}");
        assert_eq!(r["error"]["code"], "invalid_argument", "{name}: {r}");
        assert_eq!(
            target.state()[0]["documents"],
            0,
            "{name}: nothing imported"
        );
    }
    // Caller chunks (offsets and `chunk_chars` null, as documents.upsert
    // stores them) with any text are fine.
    let copy = format!("{path}.caller");
    std::fs::copy(&path, &copy).unwrap();
    doctor_bundle(&copy, |r| {
        r["chunk_chars"] = Value::Null;
        for c in r["chunks"].as_array_mut().unwrap() {
            c["start"] = Value::Null;
            c["end"] = Value::Null;
            c["text"] = json!("own words");
        }
    });
    let r = target.ok("bundle.import", json!({"path": copy, "wait": true}));
    assert_eq!(r["imported"]["documents"]["inserted"], 1);
}

/// Chunks of `text` (Unicode-scalar spans) as a bundle record carries
/// the chunks the library cut.
fn cut_chunks(text: &str, spans: &[(usize, usize)]) -> Value {
    let chars: Vec<char> = text.chars().collect();
    spans
        .iter()
        .map(|&(start, end)| {
            let text: String = chars[start..end].iter().collect();
            json!({"text": text, "start": start, "end": end, "embeddings": []})
        })
        .collect()
}

/// Spans cutting `n` characters in windows of `window`, each starting
/// `overlap` characters before the previous one's end.
fn overlapping_spans(n: usize, window: usize, overlap: usize) -> Vec<(usize, usize)> {
    let mut spans = vec![(0, window.min(n))];
    while spans.last().unwrap().1 < n {
        let start = spans.last().unwrap().1 - overlap;
        spans.push((start, (start + window).min(n)));
    }
    spans
}

#[test]
fn imported_document_records_keep_the_chunking_rules() {
    // What every stored document satisfies, however it was made: the
    // library cut it (`chunk_chars` 200..8000, chunks with offsets covering
    // the text from 0 to its end, each of 1..chunk_chars characters,
    // overlapping the previous by at most chunk_chars / 5, a short text in
    // one chunk) or the caller gave the chunks (`chunk_chars` and offsets
    // null). A record breaking one fails the import in its verify pass:
    // `invalid_argument` naming component, field and line, nothing
    // written, the job failed.
    let source = Shell::open();
    let text = "abcdefghi ".repeat(180); // 1800 characters, cut every 200
    source.upsert(json!({"url": "https://c.example/", "text": text, "chunk_chars": 200}));
    let export = source.ok(
        "bundle.export",
        json!({"components": ["documents"], "wait": true}),
    );
    let path = export["path"].as_str().unwrap().to_owned();
    let stored = source.ok(
        "documents.get",
        json!({"url": "https://c.example/", "include_chunks": true}),
    );
    assert_eq!(stored["chunks"].as_array().unwrap().len(), 9);
    let target = Shell::open();
    let before = target.state();
    type Case = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "window 50",
            Box::new(|r| r["chunk_chars"] = json!(50)),
            "record.chunk_chars",
        ),
        (
            "window 0",
            Box::new(|r| r["chunk_chars"] = json!(0)),
            "record.chunk_chars",
        ),
        (
            "window 8001",
            Box::new(|r| r["chunk_chars"] = json!(8001)),
            "record.chunk_chars",
        ),
        (
            "one chunk of 300 of 1800",
            Box::new(|r| r["chunks"] = cut_chunks(r["text"].as_str().unwrap(), &[(0, 300)])),
            "record.chunks[0].text",
        ),
        (
            "one chunk of 300 of 1800, window 400",
            Box::new(|r| {
                r["chunk_chars"] = json!(400);
                r["chunks"] = cut_chunks(r["text"].as_str().unwrap(), &[(0, 300)]);
            }),
            "record.chunks[0].end",
        ),
        (
            "the last chunks dropped",
            Box::new(|r| r["chunks"].as_array_mut().unwrap().truncate(2)),
            "record.chunks[1].end",
        ),
        (
            "a gap",
            Box::new(|r| {
                r["chunks"].as_array_mut().unwrap().remove(1);
            }),
            "record.chunks[1].start",
        ),
        (
            "the first chunk later",
            Box::new(|r| {
                r["chunks"].as_array_mut().unwrap().remove(0);
            }),
            "record.chunks[0].start",
        ),
        (
            "overlap above chunk_chars / 5",
            Box::new(|r| {
                let text = r["text"].as_str().unwrap().to_owned();
                r["chunks"] = cut_chunks(&text, &overlapping_spans(1800, 200, 41));
            }),
            "record.chunks[1].start",
        ),
        (
            "a chunk ending before the previous one's end",
            Box::new(|r| {
                let text = r["text"].as_str().unwrap().to_owned();
                r["chunks"] = cut_chunks(&text, &[(0, 200), (190, 195), (195, 395)]);
            }),
            "record.chunks[1].end",
        ),
        (
            "a short text in two chunks",
            Box::new(|r| {
                let head: String = r["text"].as_str().unwrap().chars().take(150).collect();
                r["chunks"] = cut_chunks(&head, &[(0, 100), (100, 150)]);
                r["text"] = json!(head);
            }),
            "record.chunks",
        ),
        (
            "no chunks",
            Box::new(|r| r["chunks"] = json!([])),
            "record.chunks",
        ),
        (
            "caller chunks with a window",
            Box::new(|r| {
                for c in r["chunks"].as_array_mut().unwrap() {
                    c["start"] = Value::Null;
                    c["end"] = Value::Null;
                }
            }),
            "record.chunks[0].start",
        ),
        (
            "offsets without a window",
            Box::new(|r| r["chunk_chars"] = Value::Null),
            "record.chunks[0].start",
        ),
        (
            "an embedding of no model",
            Box::new(|r| r["chunks"][3]["embeddings"] = json!([{"model": " ", "vector": [1.0]}])),
            "record.chunks[3].embedding.model",
        ),
        (
            "two dimensions of one model",
            Box::new(|r| {
                r["chunks"][0]["embeddings"] = json!([{"model": "m", "vector": [1.0, 2.0]}]);
                r["chunks"][1]["embeddings"] = json!([{"model": "m", "vector": [1.0]}]);
            }),
            "record.chunks[1].embedding.vector",
        ),
    ];
    for (name, edit, field) in cases {
        let copy = format!("{path}.{}", name.replace([' ', '\'', '/', ','], "_"));
        std::fs::copy(&path, &copy).unwrap();
        doctor_bundle(&copy, edit);
        for dry_run in [true, false] {
            let r = call(
                target.handle,
                "bundle.import",
                &json!({"path": copy, "wait": true, "dry_run": dry_run}),
            );
            assert_eq!(r["ok"], false, "{name}: {r}");
            assert_eq!(r["error"]["code"], "invalid_argument", "{name}: {r}");
            let details = &r["error"]["details"];
            assert_eq!(details["field"], field, "{name}: {r}");
            assert_eq!(details["component"], "documents", "{name}: {r}");
            assert_eq!(details["line"], 2, "{name}: {r}");
        }
        assert_eq!(target.state()[0], before[0], "{name}: nothing imported");
    }
    // Refused by the verify pass: the failed job never reached its import.
    let failed = target.ok(
        "jobs.list",
        json!({"type": ["bundle_import"], "status": ["failed"], "limit": 1}),
    )["items"][0]
        .clone();
    assert_eq!(failed["progress"]["phase"], "verify", "{failed}");

    // Accepted: an overlap of at most chunk_chars / 5 (the contract's cut,
    // not this library's), and `created_at` after `updated_at` (as for
    // every other component: times are the wall clock's).
    let copy = format!("{path}.overlap");
    std::fs::copy(&path, &copy).unwrap();
    doctor_bundle(&copy, |r| {
        let text = r["text"].as_str().unwrap().to_owned();
        r["chunks"] = cut_chunks(&text, &overlapping_spans(1800, 200, 40));
        r["created_at"] = json!(r["updated_at"].as_i64().unwrap() + 1);
    });
    let r = target.ok("bundle.import", json!({"path": copy, "wait": true}));
    assert_eq!(r["imported"]["documents"]["inserted"], 1);
    let got = target.ok(
        "documents.get",
        json!({"url": "https://c.example/", "include_chunks": true}),
    );
    assert_eq!(got["chunks"][1]["start"], 160);
    assert_eq!(got["chunks"].as_array().unwrap().len(), 11);
}

#[test]
fn odd_but_valid_input_round_trips_and_errors_never_echo_it() {
    let s = Shell::open();
    // Any scalar, NUL included, comes back as given; hostless schemes are
    // absolute URLs without a host.
    let text = "nul\u{0}inside, tab\t, emoji 👩‍👩‍👧, combining é";
    let doc = s.upsert(json!({"url": "javascript:void(0)", "text": text, "title": "t\u{0}t"}));
    assert_eq!(doc["document"]["host"], Value::Null);
    let got = s.ok(
        "documents.get",
        json!({"url": "javascript:void(0)", "include_chunks": true}),
    );
    assert_eq!(got["text"], text);
    assert_eq!(got["document"]["title"], "t\u{0}t");
    assert_eq!(got["chunks"][0]["text"], text);
    assert_eq!(got["chunks"][0]["end"], text.chars().count());
    assert_eq!(got["document"]["text_chars"], text.chars().count());
    // Hostless documents never match a host filter.
    assert_eq!(
        s.ok("documents.list", json!({"host": "javascript"}))["items"],
        json!([])
    );

    const SECRET: &str = "Okapi-Secret-4821";
    let url = format!("https://{SECRET}.example/{SECRET}");
    let refusals = [
        (
            "documents.upsert",
            json!({"url": format!("{SECRET} no url"), "text": SECRET}),
        ),
        (
            "documents.upsert",
            json!({"url": url, "text": 5, "title": SECRET}),
        ),
        (
            "documents.upsert",
            json!({"url": url, "text": SECRET, "source": SECRET}),
        ),
        (
            "documents.upsert",
            json!({"url": url, "text": SECRET, "fetched_at": SECRET}),
        ),
        (
            "documents.upsert",
            json!({"url": url, "text": SECRET, "thread_id": SECRET}),
        ),
        (
            "documents.upsert",
            json!({"url": url, "text": SECRET, "chunks": [{"text": SECRET.repeat(2000)}]}),
        ),
        (
            "documents.upsert",
            json!({"url": url, "text": SECRET, "metadata": SECRET}),
        ),
        ("documents.get", json!({"url": url})),
        ("documents.get", json!({"id": SECRET})),
        ("documents.delete", json!({"url": url})),
        (
            "documents.search",
            json!({"query": SECRET, "match": SECRET}),
        ),
        (
            "documents.search",
            json!({"query": SECRET, "limit": SECRET}),
        ),
        ("documents.list", json!({"cursor": SECRET})),
        ("documents.embed", json!({"model": SECRET, "batch": SECRET})),
        (
            "privacy.forget_site",
            json!({"host": url, "include_subdomains": SECRET}),
        ),
        (
            "chat",
            json!({"message": SECRET, "retrieve": {"query": SECRET, "limit": SECRET}}),
        ),
    ];
    for (op, request) in refusals {
        let envelope = call(s.handle, op, &request);
        assert_eq!(envelope["ok"], false, "{op} {request}");
        let message = envelope["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains(SECRET) && !envelope["error"]["details"].to_string().contains(SECRET),
            "{op}: the error repeats the request's text: {envelope}"
        );
    }
    // An embed job records its links and its request.
    let thread = s.ok("threads.create", json!({}))["thread"]["id"].clone();
    let host = Embedder::new(0);
    // SAFETY: a valid function; `host` outlives the profile.
    take(unsafe { hydra_register_embedder(s.handle, Some(embedder), host.user_data()) });
    s.refused("documents.embed", json!({"model": ""}), "model");
    let out = s.ok(
        "documents.embed",
        json!({"model": "e", "thread_id": thread, "wait": true}),
    );
    assert_eq!(
        (out["embedded"].clone(), out["failed"].clone()),
        (json!(1), json!(0))
    );
    let job = s.ok("jobs.get", json!({"id": out["job_id"]}))["job"].clone();
    assert_eq!(job["thread_id"], thread);
    assert_eq!(job["task_id"], Value::Null);
    assert_eq!(job["payload"]["model"], "e");
    // A reply that is not UTF-8 or not JSON fails its batch, nothing else.
    s.upsert(
        json!({"url": "https://g.example/", "text": "x", "chunks": [{"text": "GARBAGEREPLY"}]}),
    );
    let out = s.ok("documents.embed", json!({"model": "e", "wait": true}));
    assert_eq!(
        (out["embedded"].clone(), out["failed"].clone()),
        (json!(0), json!(1))
    );
    drop(s);
    drop(host);
}
