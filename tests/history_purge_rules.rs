//! `history.purge` deletes exactly what its filters name and nothing else:
//! hosts by whole labels (never substrings, never LIKE wildcards), time
//! bounds exact at both ends, filters combined with AND, every rule checked
//! before anything is deleted, tabs that pointed at purged visits cleared,
//! bookmarks untouched. Guards against a purge that deletes too much (a
//! substring host match, a bad time read as "no bound") or too little.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn record(t: &TestProfile, url: &str, at: i64) -> i64 {
    t.ok("visits.record", json!({"url": url, "visited_at": at}))["id"]
        .as_i64()
        .unwrap()
}

fn remaining(t: &TestProfile) -> Vec<String> {
    let mut urls: Vec<String> = t.ok("history.list", json!({"limit": 1000}))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{}@{}", v["url"].as_str().unwrap(), v["visited_at"]))
        .collect();
    urls.sort();
    urls
}

fn hosts_fixture(t: &TestProfile) {
    for url in [
        "https://example.com/",
        "https://www.example.com/a",
        "https://a.b.example.com/",
        "https://notexample.com/",
        "https://other.org/?ref=example.com",
        "https://example.com.evil.org/",
        "https://example.co/",
    ] {
        record(t, url, 10);
    }
}

#[test]
fn host_purge_matches_host_and_subdomains_only() {
    let t = TestProfile::new();
    hosts_fixture(&t);
    let r = t.ok("history.purge", json!({"host": "Example.COM"}));
    assert_eq!(r["deleted_count"], json!(3));
    assert_eq!(
        r["filters"],
        json!({"host": "example.com", "include_subdomains": true, "from": null, "to": null, "all": false})
    );
    assert_eq!(
        remaining(&t),
        [
            "https://example.co/@10",
            "https://example.com.evil.org/@10",
            "https://notexample.com/@10",
            "https://other.org/?ref=example.com@10"
        ]
    );
}

#[test]
fn exact_host_purge_keeps_subdomains() {
    let t = TestProfile::new();
    hosts_fixture(&t);
    let r = t.ok(
        "history.purge",
        json!({"host": "example.com", "include_subdomains": false}),
    );
    assert_eq!(r["deleted_count"], json!(1));
    assert_eq!(remaining(&t).len(), 6);
}

#[test]
fn wildcard_hosts_delete_nothing() {
    let t = TestProfile::new();
    hosts_fixture(&t);
    for host in ["%", "_", "%.com", "example.c_m", "%example.com"] {
        let r = t.ok("history.purge", json!({"host": host}));
        assert_eq!(r["deleted_count"], json!(0), "{host}");
    }
    assert_eq!(remaining(&t).len(), 7);
}

#[test]
fn time_bounds_are_exact_and_combine_with_host() {
    let t = TestProfile::new();
    for at in [99, 100, 101, 199, 200, 201] {
        record(&t, "https://a.example/", at);
        record(&t, "https://b.example/", at);
    }
    let r = t.ok(
        "history.purge",
        json!({"host": "a.example", "from": 100, "to": 200}),
    );
    assert_eq!(r["deleted_count"], json!(4));
    let left: Vec<String> = remaining(&t)
        .into_iter()
        .filter(|u| u.starts_with("https://a."))
        .collect();
    assert_eq!(left, ["https://a.example/@201", "https://a.example/@99"]);
    // from only / to only, inclusive.
    let r = t.ok("history.purge", json!({"from": 201}));
    assert_eq!(r["deleted_count"], json!(2));
    let r = t.ok("history.purge", json!({"to": 99}));
    assert_eq!(r["deleted_count"], json!(2));
    assert_eq!(remaining(&t).len(), 4);
    let r = t.ok("history.purge", json!({"from": 150, "to": 150}));
    assert_eq!(r["deleted_count"], json!(0));
}

#[test]
fn bad_requests_delete_nothing() {
    let t = TestProfile::new();
    hosts_fixture(&t);
    for (req, code) in [
        (json!({}), "filter_required"),
        (json!({"all": false}), "filter_required"),
        (json!({"include_subdomains": true}), "filter_required"),
        (
            json!({"all": true, "host": "example.com"}),
            "invalid_argument",
        ),
        (json!({"all": true, "from": 1}), "invalid_argument"),
        (json!({"all": true, "to": 1}), "invalid_argument"),
        (json!({"from": 20, "to": 10}), "invalid_argument"),
        (
            json!({"host": "example.com", "from": -1}),
            "invalid_argument",
        ),
        (
            json!({"host": "example.com", "to": 1.5}),
            "invalid_argument",
        ),
        (
            json!({"host": "example.com", "to": "2024-01-01"}),
            "invalid_argument",
        ),
        (
            json!({"host": "example.com", "from": 1, "to": 0}),
            "invalid_argument",
        ),
        (json!({"host": ""}), "invalid_argument"),
        (
            json!({"host": "example.com", "hosts": ["x"]}),
            "invalid_argument",
        ),
        (json!({"all": "yes"}), "invalid_argument"),
    ] {
        t.err("history.purge", req, code);
    }
    assert_eq!(remaining(&t).len(), 7);
}

#[test]
fn purge_all_clears_tabs_and_keeps_bookmarks() {
    let t = TestProfile::new();
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/", "title": "A", "visited_at": 5, "tab_id": "t1"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://b.example/", "visited_at": 6, "tab_id": "t2"}),
    );
    t.ok(
        "bookmarks.add",
        json!({"url": "https://a.example/", "title": "A"}),
    );
    // A purge that misses t2's visit leaves t2 alone.
    let r = t.ok("history.purge", json!({"host": "a.example"}));
    assert_eq!(
        (r["deleted_count"].clone(), r["tabs_cleared"].clone()),
        (json!(1), json!(1))
    );
    let t1 = t.ok("tabs.get", json!({"id": "t1"}))["tab"].clone();
    for field in [
        "current_history_id",
        "current_url",
        "current_title",
        "last_visited_at",
    ] {
        assert_eq!(t1[field], Value::Null, "{field}");
    }
    assert_eq!(
        t.ok("tabs.get", json!({"id": "t2"}))["tab"]["last_visited_at"],
        json!(6)
    );
    let epoch = hydra_core::profile::storage_epoch(t.profile.dir());
    let r = t.ok("history.purge", json!({"all": true}));
    assert!(
        hydra_core::profile::storage_epoch(t.profile.dir()) > epoch,
        "overview storage cache not invalidated"
    );
    assert_eq!(
        (r["deleted_count"].clone(), r["tabs_cleared"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(r["filters"]["all"], json!(true));
    assert!(remaining(&t).is_empty());
    // Tabs themselves stay; bookmarks are never touched by history purges.
    assert_eq!(
        t.ok("tabs.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        t.ok("bookmarks.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The search index is empty too.
    let found = t.ok("history.list", json!({"query": "a.example"}));
    assert!(found["items"].as_array().unwrap().is_empty());
}

/// The in-memory search index must hold exactly the table's rows after
/// every purge path (one row, many rows, everything): a search brings it up
/// to date, then its document count and coverage equal the table's.
fn assert_index_consistent(t: &TestProfile) {
    t.ok("history.list", json!({"query": "zzz-no-match"}));
    let (count, max): (i64, i64) = t
        .profile
        .db()
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*), coalesce(max(id), 0) FROM history",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .unwrap();
    let stats = t.profile.history_text_index().stats();
    assert_eq!(stats.docs as i64, count, "index documents = table rows");
    assert_eq!(stats.watermark, max, "index covers the table");
}

fn query_count(t: &TestProfile, q: &str) -> usize {
    t.ok("history.list", json!({"query": q}))["items"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn small_and_large_purges_keep_the_search_index_exact() {
    let t = TestProfile::new();
    for i in 0..40 {
        t.ok("visits.record", json!({"url": format!("https://a.example/{i}"), "title": format!("alpha {i}"), "visited_at": i}));
        t.ok("visits.record", json!({"url": format!("https://b.example/{i}"), "title": format!("beta {i}"), "visited_at": i}));
    }
    // One row of 80: deleted row by row.
    t.ok(
        "history.purge",
        json!({"host": "b.example", "from": 0, "to": 0}),
    );
    assert_index_consistent(&t);
    assert_eq!(query_count(&t, "beta"), 39);
    // Half of the history: re-indexed.
    let r = t.ok("history.purge", json!({"host": "a.example"}));
    assert_eq!(r["deleted_count"], json!(40));
    assert_index_consistent(&t);
    assert_eq!(query_count(&t, "alpha"), 0);
    assert_eq!(query_count(&t, "beta"), 39);
    // The delete trigger is back: a later single delete still cleans the index.
    let id = t.ok("history.list", json!({"limit": 1}))["items"][0]["id"].clone();
    t.ok("history.delete", json!({"id": id}));
    assert_index_consistent(&t);
    assert_eq!(query_count(&t, "beta"), 38);
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/new", "title": "alpha new", "visited_at": 99}),
    );
    assert_eq!(query_count(&t, "alpha"), 1);
    t.ok("history.purge", json!({"all": true}));
    assert_index_consistent(&t);
    assert_eq!(query_count(&t, "beta"), 0);
}
