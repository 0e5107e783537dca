//! Memories keep the contract: upserts keep omitted fields and audit every
//! write without its text, deletes need a filter, and search returns the
//! exact cosine ranking (or full-text relevance) within the pre-filters,
//! marking what it returned as accessed. Guards against an assistant that
//! forgets, misranks, or mixes vectors of different models.

mod common;
use common::TestProfile;
use hydra_core::db::ConnExt;
use serde_json::{json, Value};

fn upsert(t: &TestProfile, req: Value) -> Value {
    t.ok("memory.upsert", req)
}

#[test]
fn upsert_inserts_then_keeps_omitted_fields_and_audits() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let task = t.ok("tasks.create", json!({"title": "x"}))["task"]["id"].clone();
    let first = upsert(
        &t,
        json!({"id": "m1", "value": "likes tea", "scope": "user", "key": "drink", "scope_ref": "u1",
               "metadata": {"src": "chat"}, "strength": 0.5, "thread_id": th, "task_id": task,
               "source_message_id": "msg-1", "embedding": {"model": "e", "vector": [1.0, 0.0]}}),
    );
    assert_eq!(first["created"], true);
    let m = first["memory"].clone();
    for k in [
        "id",
        "scope",
        "scope_ref",
        "key",
        "value",
        "metadata",
        "strength",
        "thread_id",
        "task_id",
        "source_message_id",
        "created_at",
        "updated_at",
        "last_accessed_at",
        "embedding",
    ] {
        assert!(m.get(k).is_some(), "missing {k}");
    }
    assert_eq!(m["embedding"], json!({"model": "e", "dim": 2}));
    assert_eq!(m["last_accessed_at"], Value::Null);

    let second = upsert(
        &t,
        json!({"id": "m1", "value": "likes green tea", "scope": "user"}),
    );
    assert_eq!(second["created"], false);
    let m2 = second["memory"].clone();
    for k in [
        "key",
        "scope_ref",
        "metadata",
        "strength",
        "thread_id",
        "task_id",
        "source_message_id",
        "embedding",
        "created_at",
    ] {
        assert_eq!(m2[k], m[k], "{k} kept");
    }
    assert_eq!(m2["value"], "likes green tea");
    assert_eq!(t.ok("memory.get", json!({"id": "m1"}))["memory"], m2);

    let cleared = upsert(&t, json!({"id": "m1", "value": "v", "scope": "global", "key": null, "embedding": null, "thread_id": null}))["memory"].clone();
    assert_eq!(cleared["key"], Value::Null);
    assert_eq!(cleared["embedding"], Value::Null);
    assert_eq!(cleared["thread_id"], Value::Null);
    assert_eq!(cleared["scope"], "global");
    assert_eq!(cleared["task_id"], m["task_id"]);

    // Without id: always a new memory; default strength 1.
    let a = upsert(&t, json!({"value": "v", "scope": "global"}))["memory"].clone();
    let b = upsert(&t, json!({"value": "v", "scope": "global"}))["memory"].clone();
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["strength"], 1.0);

    let audit: Vec<(String, i64)> = t
        .profile
        .db()
        .read(|c| {
            c.query_all(
                "SELECT a.action, a.at FROM memory_audit a JOIN memories m ON m.seq = a.memory_seq
                 WHERE m.id = 'm1' ORDER BY a.seq",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(actions, ["created", "updated", "updated"]);
    let columns = t
        .profile
        .db()
        .read(|c| {
            c.query_all(
                "SELECT name FROM pragma_table_info('memory_audit')",
                [],
                |r| r.get::<_, String>(0),
            )
        })
        .unwrap();
    assert!(
        !columns.iter().any(|c| c == "value" || c == "key"),
        "audit keeps no text: {columns:?}"
    );
}

#[test]
fn upsert_refuses_bad_input() {
    let t = TestProfile::new();
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "planet"}),
        "invalid_argument",
    );
    t.err("memory.upsert", json!({"value": "v"}), "invalid_argument");
    t.err(
        "memory.upsert",
        json!({"value": "", "scope": "user"}),
        "invalid_argument",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "strength": 1.5}),
        "invalid_argument",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "strength": -0.1}),
        "invalid_argument",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "thread_id": "nope"}),
        "not_found",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "task_id": "nope"}),
        "not_found",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "metadata": "x"}),
        "invalid_argument",
    );
    let e = t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": []}}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "embedding.vector");
    let big = vec![0.5; 4097];
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": big}}),
        "invalid_argument",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": [1e39]}}),
        "invalid_argument",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": ["1"]}}),
        "invalid_argument",
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": [1], "x": 1}}),
        "invalid_argument",
    );
    let max = vec![0.5; 4096];
    t.ok(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "big", "vector": max}}),
    );
    // One dimension per model.
    t.ok(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": [1, 2]}}),
    );
    t.err(
        "memory.upsert",
        json!({"value": "v", "scope": "user", "embedding": {"model": "e", "vector": [1, 2, 3]}}),
        "invalid_argument",
    );
    let count = t
        .profile
        .db()
        .read(|c| c.query_i64("SELECT count(*) FROM memories", []))
        .unwrap();
    assert_eq!(count, 2, "failed upserts wrote nothing");
}

#[test]
fn list_and_delete_by_filters() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    upsert(
        &t,
        json!({"id": "a", "value": "1", "scope": "user", "scope_ref": "u"}),
    );
    upsert(
        &t,
        json!({"id": "b", "value": "2", "scope": "thread", "scope_ref": "r", "thread_id": th}),
    );
    upsert(
        &t,
        json!({"id": "c", "value": "3", "scope": "user", "scope_ref": "r"}),
    );
    upsert(&t, json!({"id": "d", "value": "4", "scope": "global"}));
    let ids = |req: Value| -> Vec<String> {
        t.ok("memory.list", req)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(json!({})), ["d", "c", "b", "a"]);
    assert_eq!(ids(json!({"scope": "user"})), ["c", "a"]);
    assert_eq!(ids(json!({"scope_ref": "r"})), ["c", "b"]);
    assert_eq!(ids(json!({"thread_id": th})), ["b"]);
    assert_eq!(ids(json!({"scope": "user", "scope_ref": "r"})), ["c"]);
    let page = t.ok("memory.list", json!({"limit": 3}));
    assert_eq!(
        ids(json!({"limit": 3, "cursor": page["next_cursor"]})),
        ["a"]
    );
    t.err(
        "memory.list",
        json!({"scope": "user", "cursor": page["next_cursor"]}),
        "invalid_argument",
    );
    t.err("memory.get", json!({"id": "zz"}), "not_found");
    // A thread filter names a thread that must exist (section 1), in lists
    // and in both kinds of search; a bad request is still refused first.
    t.err("memory.list", json!({"thread_id": "nope"}), "not_found");
    t.err(
        "memory.search",
        json!({"query": "one", "thread_id": "nope"}),
        "not_found",
    );
    t.err(
        "memory.search",
        json!({"embedding": {"model": "m", "vector": [1.0, 0.0]}, "thread_id": "nope"}),
        "not_found",
    );
    t.err(
        "memory.search",
        json!({"thread_id": "nope"}),
        "invalid_argument",
    );
    assert_eq!(
        t.ok("memory.search", json!({"query": "zzz", "thread_id": th}))["items"],
        json!([])
    );

    t.err("memory.delete", json!({}), "filter_required");
    t.err(
        "memory.delete",
        json!({"id": "a", "scope": "user"}),
        "invalid_argument",
    );
    t.err("memory.delete", json!({"id": "zz"}), "not_found");
    t.err(
        "memory.delete",
        json!({"scope": "nope"}),
        "invalid_argument",
    );
    assert_eq!(
        t.ok("memory.delete", json!({"scope": "user", "scope_ref": "r"})),
        json!({"deleted": 1, "erased": true})
    );
    assert_eq!(
        t.ok("memory.delete", json!({"scope": "doc"})),
        json!({"deleted": 0, "erased": true})
    );
    assert_eq!(
        t.ok("memory.delete", json!({"thread_id": th})),
        json!({"deleted": 1, "erased": true})
    );
    assert_eq!(
        t.ok("memory.delete", json!({"id": "a"})),
        json!({"deleted": 1, "erased": true})
    );
    assert_eq!(ids(json!({})), ["d"]);
}

#[test]
fn search_by_embedding_is_exact_cosine_within_filters() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let vectors = [
        ("x", [1.0, 0.0, 0.0]),
        ("xy", [1.0, 1.0, 0.0]),
        ("y", [0.0, 2.0, 0.0]),
        ("negx", [-3.0, 0.0, 0.0]),
    ];
    for (id, v) in vectors {
        let thread = if id == "y" || id == "negx" {
            th.clone()
        } else {
            Value::Null
        };
        upsert(
            &t,
            json!({"id": id, "value": id, "scope": "user", "thread_id": thread, "embedding": {"model": "m3", "vector": v}}),
        );
    }
    upsert(
        &t,
        json!({"id": "other", "value": "o", "scope": "user", "embedding": {"model": "m2", "vector": [1.0, 0.0]}}),
    );
    upsert(&t, json!({"id": "plain", "value": "p", "scope": "user"}));

    let search = |req: Value| {
        t.ok("memory.search", req)["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let hits = search(json!({"embedding": {"model": "m3", "vector": [2.0, 0.0, 0.0]}}));
    let got: Vec<(&str, f64)> = hits
        .iter()
        .map(|h| {
            (
                h["memory"]["id"].as_str().unwrap(),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("x", 1.0),
        ("xy", std::f64::consts::FRAC_1_SQRT_2),
        ("y", 0.0),
        ("negx", -1.0),
    ];
    assert_eq!(
        got.len(),
        4,
        "only model m3, negative scores included: {got:?}"
    );
    for ((id, score), (eid, escore)) in got.iter().zip(expected) {
        assert_eq!(*id, eid);
        // Exact: a memory in the query's own direction scores 1, not
        // f32's 0.99999994.
        assert!((score - escore).abs() <= 1e-15, "{id}: {score}");
    }
    let hits =
        search(json!({"embedding": {"model": "m3", "vector": [2.0, 0.0, 0.0]}, "min_score": 1}));
    assert_eq!(
        hits.len(),
        1,
        "min_score 1 finds the same direction: {hits:?}"
    );
    assert_eq!(hits[0]["score"], 1.0);
    let hits = search(json!({"embedding": {"model": "m3", "vector": [1, 0, 0]}, "limit": 2}));
    assert_eq!(hits.len(), 2);
    assert!(hits
        .iter()
        .all(|h| h["memory"]["last_accessed_at"].is_i64()));
    assert_eq!(
        t.ok("memory.get", json!({"id": "other"}))["memory"]["last_accessed_at"],
        Value::Null
    );
    let hits = search(json!({"embedding": {"model": "m3", "vector": [1, 0, 0]}, "min_score": 0.5}));
    assert_eq!(hits.len(), 2);
    let hits = search(json!({"embedding": {"model": "m3", "vector": [1, 0, 0]}, "thread_id": th}));
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h["memory"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["y", "negx"]);
    assert!(search(json!({"embedding": {"model": "unknown", "vector": [1]}})).is_empty());

    t.err(
        "memory.search",
        json!({"embedding": {"model": "m3", "vector": [1, 0]}}),
        "invalid_argument",
    );
    t.err(
        "memory.search",
        json!({"embedding": {"model": "m3", "vector": [0, 0, 0]}}),
        "invalid_argument",
    );
    t.err("memory.search", json!({}), "invalid_argument");
    t.err(
        "memory.search",
        json!({"query": "x", "embedding": {"model": "m3", "vector": [1, 0, 0]}}),
        "invalid_argument",
    );
    t.err(
        "memory.search",
        json!({"query": "x", "limit": 201}),
        "invalid_argument",
    );
    t.err(
        "memory.search",
        json!({"query": "x", "limit": 0}),
        "invalid_argument",
    );

    // A changed vector is seen by the next search (the in-memory copy follows the database).
    upsert(
        &t,
        json!({"id": "negx", "value": "negx", "scope": "user", "embedding": {"model": "m3", "vector": [5.0, 0.0, 0.0]}}),
    );
    let hits = search(json!({"embedding": {"model": "m3", "vector": [1, 0, 0]}, "limit": 2}));
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h["memory"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["x", "negx"]);
    t.ok("memory.delete", json!({"id": "x"}));
    let hits = search(json!({"embedding": {"model": "m3", "vector": [1, 0, 0]}, "limit": 1}));
    assert_eq!(hits[0]["memory"]["id"], "negx");
}

#[test]
fn search_by_query_is_full_text_and_marks_access() {
    let t = TestProfile::new();
    upsert(
        &t,
        json!({"id": "a", "key": "coffee", "value": "espresso every morning", "scope": "user"}),
    );
    upsert(
        &t,
        json!({"id": "b", "value": "coffee coffee coffee beans", "scope": "user"}),
    );
    upsert(
        &t,
        json!({"id": "c", "value": "tea in the evening", "scope": "doc"}),
    );
    let hits = t.ok("memory.search", json!({"query": "coffee"}))["items"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h["memory"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"a") && ids.contains(&"b"));
    assert!(
        hits[0]["score"].as_f64() >= hits[1]["score"].as_f64(),
        "best first"
    );
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0, "higher is better");
    assert!(hits
        .iter()
        .all(|h| h["memory"]["last_accessed_at"].is_i64()));
    assert!(t.ok("memory.get", json!({"id": "a"}))["memory"]["last_accessed_at"].is_i64());
    assert_eq!(
        t.ok("memory.get", json!({"id": "c"}))["memory"]["last_accessed_at"],
        Value::Null
    );

    let scoped = t.ok("memory.search", json!({"query": "coffee", "scope": "doc"}))["items"].clone();
    assert_eq!(scoped, json!([]));
    // Query syntax characters are plain text, never an error.
    t.ok("memory.search", json!({"query": "\"unbalanced AND ( NEAR"}));
    let both = t.ok("memory.search", json!({"query": "espresso morning"}))["items"].clone();
    assert_eq!(both.as_array().unwrap().len(), 1);
    t.err("memory.search", json!({"query": "   "}), "invalid_argument");
    let high = t.ok(
        "memory.search",
        json!({"query": "coffee", "min_score": 1e9}),
    )["items"]
        .clone();
    assert_eq!(high, json!([]));
}

/// While memories flip between two versions (scope, text and vector),
/// every hit of `memory.search` is the version it scored: inside the
/// search's filter, holding the searched word, and with the score of its
/// own vector.
#[test]
fn search_answers_the_version_it_scored() {
    let t = TestProfile::new();
    let version = |id: usize, apple: bool| {
        if apple {
            json!({"id": format!("m{id}"), "scope": "user", "value": "apple pie",
                   "embedding": {"model": "e", "vector": [1.0, 0.0]}})
        } else {
            json!({"id": format!("m{id}"), "scope": "global", "value": "banana bread",
                   "embedding": {"model": "e", "vector": [0.0, 1.0]}})
        }
    };
    for id in 0..4 {
        upsert(&t, version(id, true));
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let wrong = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (t, version) = (&t, &version);
                s.spawn(move || {
                    for round in 0..600 {
                        upsert(t, version((round + w) % 4, (round / 4 + w) % 2 == 1));
                    }
                })
            })
            .collect();
        s.spawn(|| {
            for writer in writers {
                writer.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        for _ in 0..2 {
            s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for req in [
                    json!({"query": "apple", "scope": "user"}),
                    json!({"embedding": {"model": "e", "vector": [1.0, 0.0]}, "scope": "user", "min_score": 0.99}),
                ] {
                    for hit in t.ok("memory.search", req.clone())["items"].as_array().unwrap() {
                        let m = &hit["memory"];
                        if m["scope"] != "user" || m["value"] != "apple pie" {
                            wrong.lock().unwrap().push(format!("{req} answered {hit}"));
                        }
                    }
                }
            }
        });
        }
    });
    let wrong = wrong.into_inner().unwrap();
    common::assert_none(wrong, "wrong hits");
}
