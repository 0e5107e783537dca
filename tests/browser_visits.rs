//! Recording visits: absolute URLs only, lower-cased hosts, `(url,
//! visited_at)` dedupe with the existing id, all-or-nothing batches that name
//! the bad entry, and tab pointers that move only to a tab's newest visit.
//! Guards against duplicate history rows, half-stored batches and tabs that
//! show an older page after out-of-order recording.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn count(t: &TestProfile) -> usize {
    t.ok("history.list", json!({"limit": 1000}))["items"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn record_stores_lowercased_host_and_dedupes() {
    let t = TestProfile::new();
    let r = t.ok(
        "visits.record",
        json!({"url": "https://WWW.Example.COM/Path?q=1", "title": "T", "visited_at": 1000,
               "referrer": "https://ref.example/", "status_code": 200,
               "content_type": "text/html", "transition": "link", "duration_ms": 5}),
    );
    assert_eq!(r["duplicate"], json!(false));
    let id = r["id"].as_i64().unwrap();
    let again = t.ok(
        "visits.record",
        json!({"url": "https://WWW.Example.COM/Path?q=1", "visited_at": 1000}),
    );
    assert_eq!(again, json!({"id": id, "duplicate": true}));
    let items = t.ok("history.list", json!({}))["items"].clone();
    assert_eq!(
        items,
        json!([{"id": id, "url": "https://WWW.Example.COM/Path?q=1", "host": "www.example.com",
                "title": "T", "visited_at": 1000, "tab_id": null,
                "referrer": "https://ref.example/", "status_code": 200,
                "content_type": "text/html", "transition": "link", "duration_ms": 5}])
    );
    // Another time is another visit; no time means now.
    let before = hydra_core::types::now_ms();
    let other = t.ok("visits.record", json!({"url": "https://www.example.com/"}));
    assert_ne!(other["id"].as_i64().unwrap(), id);
    let newest = &t.ok("history.list", json!({"limit": 1}))["items"][0];
    assert!(newest["visited_at"].as_i64().unwrap() >= before);
    assert_eq!(newest["title"], Value::Null);
}

#[test]
fn idn_and_hostless_urls() {
    let t = TestProfile::new();
    t.ok(
        "visits.record",
        json!({"url": "https://Bücher.example/x", "visited_at": 1}),
    );
    t.ok(
        "visits.record",
        json!({"url": "about:blank", "visited_at": 2}),
    );
    let items = t.ok("history.list", json!({}))["items"].clone();
    assert_eq!(items[0]["host"], Value::Null);
    assert_eq!(items[1]["host"], json!("xn--bcher-kva.example"));
    assert_eq!(items[1]["url"], json!("https://Bücher.example/x"));
}

#[test]
fn invalid_visits_are_refused() {
    let t = TestProfile::new();
    for url in [
        "example.com/a",
        "/relative",
        "http:example.com",
        "https://",
        "",
        " https://a.b/",
    ] {
        let e = t.err("visits.record", json!({"url": url}), "invalid_argument");
        assert_eq!(e.details["field"], json!("url"));
        assert!(
            url.is_empty() || !e.message.contains(url.trim()),
            "message echoes url"
        );
    }
    for bad in [
        json!({"url": "https://a.b/", "visited_at": -1}),
        json!({"url": "https://a.b/", "visited_at": 1.5}),
        json!({"url": "https://a.b/", "tab_id": "bad id"}),
        json!({"url": "https://a.b/", "colour": "red"}),
        json!({"url": "https://a.b/", "duration_ms": -3}),
        json!({"url": 7}),
        json!({}),
    ] {
        t.err("visits.record", bad, "invalid_argument");
    }
    assert_eq!(count(&t), 0);
}

#[test]
fn batch_is_all_or_nothing_and_names_the_index() {
    let t = TestProfile::new();
    let e = t.err(
        "visits.record_batch",
        json!({"visits": [
            {"url": "https://a.example/", "visited_at": 1},
            {"url": "https://b.example/", "visited_at": 2, "tab_id": "t1"},
            {"url": "not a url", "visited_at": 3}
        ]}),
        "invalid_argument",
    );
    assert_eq!(e.details["index"], json!(2));
    assert_eq!(e.details["field"], json!("visits[2].url"));
    let e = t.err(
        "visits.record_batch",
        json!({"visits": [{"url": "https://a.example/"}, {"url": "https://b.example/", "tilte": "x"}]}),
        "invalid_argument",
    );
    assert_eq!(e.details["index"], json!(1));
    assert_eq!(count(&t), 0);
    t.err("tabs.get", json!({"id": "t1"}), "not_found");
    t.err(
        "visits.record_batch",
        json!({"visits": []}),
        "invalid_argument",
    );
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"url": "https://a.example/", "visited_at": i}))
        .collect();
    t.err(
        "visits.record_batch",
        json!({"visits": too_many}),
        "invalid_argument",
    );
}

#[test]
fn batch_ids_cover_duplicates_and_in_batch_repeats() {
    let t = TestProfile::new();
    let first = t.ok(
        "visits.record",
        json!({"url": "https://a.example/", "visited_at": 5}),
    );
    let r = t.ok(
        "visits.record_batch",
        json!({"visits": [
            {"url": "https://b.example/", "visited_at": 1},
            {"url": "https://a.example/", "visited_at": 5},
            {"url": "https://c.example/", "visited_at": 1},
            {"url": "https://b.example/", "visited_at": 1},
            {"url": "https://b.example/", "visited_at": 2}
        ]}),
    );
    let ids: Vec<i64> = serde_json::from_value(r["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[1], first["id"].as_i64().unwrap());
    assert_eq!(ids[3], ids[0]);
    assert!(ids[0] != ids[2] && ids[2] != ids[4] && ids[0] != ids[4]);
    assert_eq!(
        (r["inserted"].clone(), r["duplicates"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(count(&t), 4);
}

#[test]
fn tab_pointer_moves_only_to_the_newest_visit() {
    let t = TestProfile::new();
    let v2 = t.ok(
        "visits.record",
        json!({"url": "https://a.example/2", "title": "two", "visited_at": 200, "tab_id": "tab"}),
    );
    let tab = t.ok("tabs.get", json!({"id": "tab"}))["tab"].clone();
    assert_eq!(tab["current_history_id"], v2["id"]);
    assert_eq!(tab["current_url"], json!("https://a.example/2"));
    assert_eq!(tab["current_title"], json!("two"));
    assert_eq!(tab["last_visited_at"], json!(200));

    // An older visit recorded later does not move the pointer.
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/1", "title": "one", "visited_at": 100, "tab_id": "tab"}),
    );
    assert_eq!(
        t.ok("tabs.get", json!({"id": "tab"}))["tab"]["current_history_id"],
        v2["id"]
    );

    // A newer one does, also inside a batch; another tab is unaffected.
    let r = t.ok(
        "visits.record_batch",
        json!({"visits": [
            {"url": "https://a.example/3", "visited_at": 300, "tab_id": "tab"},
            {"url": "https://a.example/0", "visited_at": 50, "tab_id": "tab"},
            {"url": "https://b.example/", "visited_at": 999, "tab_id": "other"}
        ]}),
    );
    let tab = t.ok("tabs.get", json!({"id": "tab"}))["tab"].clone();
    assert_eq!(tab["current_history_id"], r["ids"][0]);
    assert_eq!(tab["current_title"], Value::Null);
    assert_eq!(tab["last_visited_at"], json!(300));
    let other = t.ok("tabs.get", json!({"id": "other"}))["tab"].clone();
    assert_eq!(other["current_history_id"], r["ids"][2]);
    let listed = t.ok("history.list", json!({"tab_id": "tab"}))["items"].clone();
    let times: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["visited_at"].as_i64().unwrap())
        .collect();
    assert_eq!(times, [300, 200, 100, 50]);
}
