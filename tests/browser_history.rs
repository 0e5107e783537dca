//! Reading history: newest-first paging without skips or repeats (ties by
//! insertion order), host filters by whole labels, inclusive time bounds,
//! substring search with wildcards taken literally, `history.visited` in
//! request order, and `history.delete` with tab clearing. Guards against
//! lists that lose or repeat rows, hosts matched as substrings and queries
//! where `%` or `_` act as wildcards.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn urls(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["url"].as_str().unwrap().to_owned())
        .collect()
}

fn record(t: &TestProfile, url: &str, title: &str, at: i64) -> i64 {
    t.ok(
        "visits.record",
        json!({"url": url, "title": title, "visited_at": at}),
    )["id"]
        .as_i64()
        .unwrap()
}

#[test]
fn pages_newest_first_with_ties_by_insertion() {
    let t = TestProfile::new();
    let mut expected = Vec::new();
    for i in 0..23 {
        let url = format!("https://e.example/{i}");
        record(&t, &url, "x", i / 5);
        expected.push(url);
    }
    // visited_at desc, then insertion order reversed.
    expected.reverse();
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut req = json!({"limit": 4});
        if !cursor.is_null() {
            req["cursor"] = cursor.clone();
        }
        let page = t.ok("history.list", req);
        seen.extend(urls(&page));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, expected);
    // A cursor belongs to its filters.
    let page = t.ok("history.list", json!({"limit": 2}));
    t.err(
        "history.list",
        json!({"limit": 2, "host": "e.example", "cursor": page["next_cursor"]}),
        "invalid_argument",
    );
    t.err(
        "history.list",
        json!({"cursor": "garbage"}),
        "invalid_argument",
    );
    t.err("history.list", json!({"limit": 0}), "invalid_argument");
    t.err("history.list", json!({"limit": 1001}), "invalid_argument");
    assert_eq!(
        t.ok("history.list", json!({"limit": 1000}))["items"]
            .as_array()
            .unwrap()
            .len(),
        23
    );
}

#[test]
fn host_filters_match_whole_labels() {
    let t = TestProfile::new();
    record(&t, "https://example.com/", "a", 1);
    record(&t, "https://www.example.com/", "b", 2);
    record(&t, "https://deep.sub.example.com/", "c", 3);
    record(&t, "https://notexample.com/", "d", 4);
    record(&t, "https://other.org/?ref=example.com", "e", 5);
    record(&t, "https://example.com.evil.org/", "f", 6);
    let all = t.ok("history.list", json!({"host": "EXAMPLE.com"}));
    assert_eq!(
        urls(&all),
        [
            "https://deep.sub.example.com/",
            "https://www.example.com/",
            "https://example.com/"
        ]
    );
    let exact = t.ok(
        "history.list",
        json!({"host": "example.com", "include_subdomains": false}),
    );
    assert_eq!(urls(&exact), ["https://example.com/"]);
    for wildcard in ["%", "_", "%example.com", "_xample.com"] {
        assert!(urls(&t.ok("history.list", json!({"host": wildcard}))).is_empty());
    }
}

#[test]
fn subdomain_lists_page_across_many_hosts() {
    let t = TestProfile::new();
    let mut expected = Vec::new();
    // More hosts than the merge handles, so the range scan is used too.
    for i in 0..80 {
        let url = format!("https://h{i}.example.org/");
        record(&t, &url, "x", 1000 - (i % 7));
        expected.push((1000 - (i % 7), i, url));
    }
    record(&t, "https://example.net/", "x", 2000);
    expected.sort_by_key(|(at, i, _)| std::cmp::Reverse((*at, *i)));
    let expected: Vec<String> = expected.into_iter().map(|e| e.2).collect();
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = t.ok(
            "history.list",
            json!({"host": "example.org", "limit": 9, "cursor": cursor}),
        );
        seen.extend(urls(&page));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, expected);
    // A few hosts: the merged path, also paged.
    let few = t.ok(
        "history.list",
        json!({"host": "h1.example.org", "limit": 1}),
    );
    assert_eq!(urls(&few), ["https://h1.example.org/"]);
}

#[test]
fn time_bounds_are_inclusive_and_checked() {
    let t = TestProfile::new();
    for at in [99, 100, 150, 200, 201] {
        record(&t, &format!("https://t.example/{at}"), "x", at);
    }
    let page = t.ok("history.list", json!({"from": 100, "to": 200}));
    assert_eq!(
        urls(&page),
        [
            "https://t.example/200",
            "https://t.example/150",
            "https://t.example/100"
        ]
    );
    assert_eq!(
        urls(&t.ok("history.list", json!({"from": 200, "to": 200}))),
        ["https://t.example/200"]
    );
    t.err(
        "history.list",
        json!({"from": 201, "to": 200}),
        "invalid_argument",
    );
    t.err("history.list", json!({"from": -1}), "invalid_argument");
    t.err(
        "history.list",
        json!({"to": "yesterday"}),
        "invalid_argument",
    );
}

#[test]
fn query_is_a_literal_case_insensitive_substring() {
    let t = TestProfile::new();
    record(&t, "https://shop.example/cart", "Shopping CART", 1);
    record(&t, "https://docs.example/100%_done", "Progress", 2);
    record(&t, "https://docs.example/1000-done", "Progress", 3);
    record(&t, "https://x.example/", "Ünïcode Straße", 4);
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "cart"}))),
        ["https://shop.example/cart"]
    );
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "PING c"}))),
        ["https://shop.example/cart"]
    );
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "100%_"}))),
        ["https://docs.example/100%_done"]
    );
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "%_"}))),
        ["https://docs.example/100%_done"]
    );
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "%"}))),
        ["https://docs.example/100%_done"]
    );
    assert!(urls(&t.ok("history.list", json!({"query": "10_0"}))).is_empty());
    assert!(urls(&t.ok("history.list", json!({"query": "\"quoted\""}))).is_empty());
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "straße"}))),
        ["https://x.example/"]
    );
    // Combined with other filters (AND).
    assert_eq!(
        urls(&t.ok("history.list", json!({"query": "progress", "from": 3}))),
        ["https://docs.example/1000-done"]
    );
    assert!(urls(&t.ok(
        "history.list",
        json!({"query": "cart", "host": "docs.example"})
    ))
    .is_empty());
}

#[test]
fn visited_answers_in_request_order() {
    let t = TestProfile::new();
    record(&t, "https://a.example/", "a", 1);
    record(&t, "https://a.example/", "a", 2);
    record(&t, "https://c.example/", "c", 3);
    let r = t.ok(
        "history.visited",
        json!({"urls": ["https://c.example/", "https://b.example/", "https://a.example/", "https://A.example/"]}),
    );
    assert_eq!(r, json!({"visited": [true, false, true, false]}));
    assert_eq!(
        t.ok("history.visited", json!({"urls": []})),
        json!({"visited": []})
    );
    t.err("history.visited", json!({}), "invalid_argument");
}

#[test]
fn delete_one_visit_clears_its_tab() {
    let t = TestProfile::new();
    let old = t.ok(
        "visits.record",
        json!({"url": "https://a.example/1", "visited_at": 1, "tab_id": "tab"}),
    );
    let new = t.ok(
        "visits.record",
        json!({"url": "https://a.example/2", "title": "two", "visited_at": 2, "tab_id": "tab"}),
    );
    let r = t.ok("history.delete", json!({"id": old["id"]}));
    assert_eq!(
        r,
        json!({"deleted": 1, "deleted_id": old["id"], "tabs_cleared": 0, "erased": true})
    );
    let r = t.ok("history.delete", json!({"id": new["id"]}));
    assert_eq!(
        r,
        json!({"deleted": 1, "deleted_id": new["id"], "tabs_cleared": 1, "erased": true})
    );
    let tab = t.ok("tabs.get", json!({"id": "tab"}))["tab"].clone();
    for field in [
        "current_history_id",
        "current_url",
        "current_title",
        "last_visited_at",
    ] {
        assert_eq!(tab[field], Value::Null, "{field}");
    }
    t.err("history.delete", json!({"id": new["id"]}), "not_found");
    t.err("history.delete", json!({"id": "x"}), "invalid_argument");
    assert!(urls(&t.ok("history.list", json!({}))).is_empty());
    // The FTS entries went with the rows.
    assert!(urls(&t.ok("history.list", json!({"query": "a.example"}))).is_empty());
}
