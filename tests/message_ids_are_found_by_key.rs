//! Messages are found by a 64-bit key of their id (migration 0014), with no
//! UNIQUE index on the text id. What users depend on still holds: ids that
//! share long prefixes or suffixes stay distinct (each found, listed,
//! deleted on its own, none taken for another), a stored id is `conflict`
//! and the refused call changes nothing, and two ids that share a key are
//! told apart by the id itself. Guards against a key that only looks at part
//! of the id (the rejected suffix design) and against uniqueness lost with
//! the UNIQUE index.

mod common;
use common::TestProfile;
use hydra_core::db::id_key::id_key;
use hydra_core::db::ConnExt;
use serde_json::{json, Value};

fn count(t: &TestProfile, sql: &str) -> i64 {
    t.profile.db().read(|c| c.query_i64(sql, [])).unwrap()
}

fn list_ids(t: &TestProfile, thread: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = t.ok(
            "messages.list",
            json!({"thread_id": thread, "limit": 500, "cursor": cursor}),
        );
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return ids;
        }
    }
}

#[test]
fn ids_sharing_long_prefixes_and_suffixes_stay_distinct() {
    let t = TestProfile::new();
    t.ok("threads.create", json!({"id": "th"}));
    // 120-character shared prefix, shared suffixes such as `-assistant`,
    // and ids that differ only in their first or their middle character.
    let prefix = "p".repeat(120);
    let mut ids = Vec::new();
    for i in 0..400 {
        ids.push(format!("{prefix}{i:04}"));
        ids.push(format!("{i}-assistant"));
        ids.push(format!("{i}-user"));
        ids.push(format!("{:x}{}", i % 16, "s".repeat(100 + i / 16)));
    }
    ids.push("a-middle-z".into());
    ids.push("a-m1ddle-z".into());
    for (n, id) in ids.iter().enumerate() {
        let m = t.ok(
            "messages.append",
            json!({"thread_id": "th", "id": id, "role": "user", "content": format!("text {n}")}),
        );
        assert_eq!(m["message"]["id"], json!(id));
    }
    assert_eq!(list_ids(&t, "th"), ids, "every id listed once, in order");
    // Each one is a conflict now, and nothing was added.
    for id in ids.iter().step_by(7) {
        t.err(
            "messages.append",
            json!({"thread_id": "th", "id": id, "role": "user", "content": "again"}),
            "conflict",
        );
    }
    assert_eq!(
        count(&t, "SELECT count(*) FROM llm_messages"),
        ids.len() as i64
    );
    // The keys spread: no two of these ids share one.
    assert_eq!(
        count(&t, "SELECT count(DISTINCT id_key) FROM llm_messages"),
        ids.len() as i64
    );
    // Deleting one takes exactly that one.
    for id in ["a-middle-z", &format!("{prefix}0007"), "7-assistant"] {
        assert_eq!(
            t.ok("messages.delete", json!({"id": id}))["deleted"],
            1,
            "{id}"
        );
        t.err("messages.delete", json!({"id": id}), "not_found");
    }
    let left = list_ids(&t, "th");
    assert_eq!(left.len(), ids.len() - 3);
    assert!(left.iter().any(|id| id == "a-m1ddle-z"));
    assert!(left.iter().any(|id| *id == format!("{prefix}0070")));
    assert!(left.iter().any(|id| id == "7-user"));
    // A deleted id can be used again.
    t.ok(
        "messages.append",
        json!({"thread_id": "th", "id": "7-assistant", "role": "assistant", "content": "back"}),
    );
}

#[test]
fn every_stored_key_is_the_documented_hash_of_its_id() {
    let t = TestProfile::new();
    t.ok("threads.create", json!({"id": "th"}));
    t.ok(
        "messages.append",
        json!({"thread_id": "th", "id": "abc", "role": "user", "content": "x"}),
    );
    for _ in 0..20 {
        t.ok(
            "messages.append",
            json!({"thread_id": "th", "role": "user", "content": "generated id"}),
        );
    }
    // A chat turn writes two messages in one insert.
    t.ok(
        "chat",
        json!({"thread_id": "th", "message": "hello", "reply": "hi there"}),
    );
    // SHA-256("abc") starts ba7816bf8f01cfea: the stored key, forever.
    assert_eq!(
        count(&t, "SELECT id_key FROM llm_messages WHERE id = 'abc'"),
        0xba78_16bf_8f01_cfea_u64 as i64
    );
    let rows: Vec<(String, i64)> = t
        .profile
        .db()
        .read(|c| {
            c.query_all("SELECT id, id_key FROM llm_messages", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .unwrap();
    assert!(rows.len() >= 22);
    for (id, key) in rows {
        assert_eq!(key, id_key(&id), "{id}");
    }
}

#[test]
fn a_stored_id_is_a_conflict_that_changes_nothing() {
    let t = TestProfile::ticking();
    t.ok("threads.create", json!({"id": "th"}));
    t.ok(
        "messages.append",
        json!({"thread_id": "th", "id": "m-1", "role": "user", "content": "first", "created_at": 5}),
    );
    let thread_before = t.ok("threads.get", json!({"id": "th"}));
    let overview_before = t.ok("overview", json!({}))["llm"].clone();
    let rows_before = count(&t, "SELECT count(*) FROM llm_messages");
    t.tick();
    let e = t.err(
        "messages.append",
        json!({"thread_id": "th", "id": "m-1", "role": "assistant", "content": "second", "created_at": 9}),
        "conflict",
    );
    assert_eq!(e.message, "a message with this id exists");
    assert_eq!(e.details["field"], "id");
    // The same id in another thread is the same conflict.
    t.ok("threads.create", json!({"id": "other"}));
    let other_before = t.ok("threads.get", json!({"id": "other"}));
    t.err(
        "messages.append",
        json!({"thread_id": "other", "id": "m-1", "role": "user", "content": "third"}),
        "conflict",
    );
    assert_eq!(t.ok("threads.get", json!({"id": "th"})), thread_before);
    assert_eq!(t.ok("threads.get", json!({"id": "other"})), other_before);
    assert_eq!(count(&t, "SELECT count(*) FROM llm_messages"), rows_before);
    let listed = t.ok("messages.list", json!({"thread_id": "th"}));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["content"], "first");
    assert_eq!(listed["items"][0]["role"], "user");
    assert_eq!(listed["items"][0]["created_at"], 5);
    let o = t.ok("overview", json!({}))["llm"].clone();
    assert_eq!(o["messages"], overview_before["messages"]);
}

#[test]
fn two_ids_sharing_a_key_are_told_apart_by_the_id() {
    // No two ids with the same SHA-256 prefix are known, so the collision
    // is made by hand: `x` is stored under the key of `a`.
    let t = TestProfile::new();
    t.ok("threads.create", json!({"id": "th"}));
    t.profile
        .db()
        .write(|tx| {
            tx.execute(
                "INSERT INTO llm_messages (id, id_key, thread_id, role, content, created_at)
                 VALUES ('x', ?1, 'th', 'user', 'collides', 1)",
                [id_key("a")],
            )?;
            Ok(())
        })
        .unwrap();
    // `a` is not stored: its key is found, its id is not.
    t.ok(
        "messages.append",
        json!({"thread_id": "th", "id": "a", "role": "user", "content": "own", "created_at": 2}),
    );
    t.err(
        "messages.append",
        json!({"thread_id": "th", "id": "a", "role": "user", "content": "again"}),
        "conflict",
    );
    assert_eq!(
        count(
            &t,
            &format!(
                "SELECT count(*) FROM llm_messages WHERE id_key = {}",
                id_key("a")
            )
        ),
        2
    );
    // Deleting `a` leaves `x`, its key-mate.
    assert_eq!(t.ok("messages.delete", json!({"id": "a"}))["deleted"], 1);
    assert_eq!(list_ids(&t, "th"), vec!["x".to_owned()]);
    t.err("messages.delete", json!({"id": "a"}), "not_found");
}

#[test]
fn bundle_import_finds_stored_messages_by_id() {
    // A message already stored is skipped or updated in place by the
    // policy (found by its key and id), never stored twice.
    let a = TestProfile::new();
    a.ok("threads.create", json!({"id": "th"}));
    let append = |content: &str, at: i64| {
        a.ok(
            "messages.append",
            json!({"thread_id": "th", "id": "dup", "role": "user", "content": content, "created_at": at}),
        );
    };
    let export = |name: &str| {
        let path = a.dir.path().join(name);
        a.ok(
            "bundle.export",
            json!({"path": path, "components": ["threads", "messages"], "wait": true}),
        );
        path
    };
    append("old", 1);
    let first = export("first.hydra");
    a.ok("messages.delete", json!({"id": "dup"}));
    append("new", 2);
    let second = export("second.hydra");

    let b = TestProfile::new();
    let import = |path: &std::path::Path, policy: &str| {
        b.ok(
            "bundle.import",
            json!({"path": path, "policy": policy, "wait": true}),
        )["imported"]["messages"]
            .clone()
    };
    let content = || {
        b.ok("messages.list", json!({"thread_id": "th"}))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        import(&first, "newer_wins"),
        json!({"inserted": 1, "updated": 0, "skipped": 0})
    );
    assert_eq!(
        import(&second, "skip_existing"),
        json!({"inserted": 0, "updated": 0, "skipped": 1})
    );
    assert_eq!(content(), vec!["old"]);
    assert_eq!(
        import(&second, "newer_wins"),
        json!({"inserted": 0, "updated": 1, "skipped": 0})
    );
    assert_eq!(content(), vec!["new"]);
    assert_eq!(
        import(&first, "newer_wins"),
        json!({"inserted": 0, "updated": 0, "skipped": 1})
    );
    assert_eq!(content(), vec!["new"]);
    assert_eq!(count(&b, "SELECT count(*) FROM llm_messages"), 1);
    assert_eq!(count(&b, "SELECT id_key FROM llm_messages"), id_key("dup"));
    // Still unique for the operations afterwards.
    b.err(
        "messages.append",
        json!({"thread_id": "th", "id": "dup", "role": "user", "content": "x"}),
        "conflict",
    );
}
