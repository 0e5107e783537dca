//! A host has one normal form: a purge (or list) of `example.com` reaches
//! every spelling of it (case, IDN/punycode, trailing dot, port, userinfo),
//! never `notexample.com`. Guards against a visit escaping a privacy purge
//! because its URL wrote the host differently.

mod common;
use common::TestProfile;
use hydra_core::db::ConnExt;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::json;

const SPELLINGS: [&str; 7] = [
    "https://example.com/a",
    "https://EXAMPLE.COM/b",
    "https://example.com./c",
    "https://example.com../g",
    "https://user:secret@Example.Com:8443/d",
    "http://www.Example.com.:80/e",
    "https://deep.sub.EXAMPLE.com./f",
];

const OTHERS: [&str; 4] = [
    "https://notexample.com/",
    "https://example.com.evil.org/",
    "https://example.co/",
    "file://localhost/example.com",
];

fn urls_left(t: &TestProfile) -> Vec<String> {
    let items = t.ok("history.list", json!({"limit": 1000}))["items"].clone();
    let mut urls: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["url"].as_str().unwrap().to_owned())
        .collect();
    urls.sort();
    urls
}

fn record_all(t: &TestProfile, urls: &[&str]) {
    for (i, url) in urls.iter().enumerate() {
        t.ok("visits.record", json!({"url": url, "visited_at": i}));
    }
}

#[test]
fn a_purge_of_a_host_removes_every_spelling_and_keeps_lookalikes() {
    let t = TestProfile::new();
    record_all(&t, &SPELLINGS);
    record_all(&t, &OTHERS);
    for filter in [
        "example.com",
        "Example.COM.",
        "EXAMPLE.com",
        "example.com..",
    ] {
        let listed = t.ok("history.list", json!({"host": filter}))["items"].clone();
        assert_eq!(
            listed.as_array().unwrap().len(),
            SPELLINGS.len(),
            "{filter}"
        );
    }
    let purged = t.ok("history.purge", json!({"host": "Example.com."}));
    assert_eq!(purged["deleted_count"], SPELLINGS.len());
    let mut others: Vec<String> = OTHERS.iter().map(|s| s.to_string()).collect();
    others.sort();
    assert_eq!(urls_left(&t), others);
}

#[test]
fn idn_hosts_match_in_either_form() {
    let t = TestProfile::new();
    record_all(
        &t,
        &[
            "https://Bücher.example/a",
            "https://BÜCHER.example./b",
            "https://xn--bcher-kva.example/c",
            "https://www.bücher.example/d",
            "https://bucher.example/keep",
        ],
    );
    let purged = t.ok("history.purge", json!({"host": "bücher.EXAMPLE."}));
    assert_eq!(purged["deleted_count"], 4);
    assert_eq!(
        urls_left(&t),
        vec!["https://bucher.example/keep".to_owned()]
    );
}

#[test]
fn file_urls_have_no_host_with_or_without_localhost() {
    let t = TestProfile::new();
    record_all(
        &t,
        &[
            "file:///tmp/a",
            "file://localhost/tmp/b",
            "file://LocalHost./tmp/c",
        ],
    );
    let items = t.ok("history.list", json!({}))["items"].clone();
    for item in items.as_array().unwrap() {
        assert_eq!(item["host"], serde_json::Value::Null, "{item}");
    }
    t.ok("history.purge", json!({"host": "localhost"}));
    assert_eq!(
        urls_left(&t).len(),
        3,
        "a host purge never reaches host-less rows"
    );
}

#[test]
fn rows_stored_with_a_trailing_dot_before_the_fix_are_repaired_at_open() {
    let t = TestProfile::new();
    record_all(&t, &["https://example.com/new"]);
    // A row as the library stored it before (trailing dot kept).
    t.profile
        .db()
        .write(|tx| {
            tx.run(
                "INSERT INTO history (url, host, rev_host, visited_at)
                 VALUES ('https://www.example.com./old', 'www.example.com.', '.moc.elpmaxe.www.', 7),
                        ('https://www.example.com../older', 'www.example.com..', '..moc.elpmaxe.www.', 6)",
                [],
            )
            .map(|_| ())
        })
        .unwrap();
    t.close();
    let reopened = Profile::open(OpenOptions::new(t.dir.path())).unwrap();
    let repaired = reopened
        .db()
        .read(|c| {
            c.query_i64(
                "SELECT count(*) FROM history
                  WHERE host = 'www.example.com' AND rev_host = 'moc.elpmaxe.www.'",
                [],
            )
        })
        .unwrap();
    assert_eq!(repaired, 2);
    let purged = common::call(&reopened, "history.purge", json!({"host": "example.com"})).unwrap();
    assert_eq!(purged["deleted_count"], 3);
    reopened.close(CloseOptions::default()).unwrap();
}

#[test]
fn forget_site_reaches_visits_and_documents_written_with_trailing_dots() {
    let t = TestProfile::new();
    for (i, url) in ["https://secret.example../a", "https://secret.example./b"]
        .iter()
        .enumerate()
    {
        t.ok("visits.record", json!({"url": url, "visited_at": i}));
        let doc = t.ok("documents.upsert", json!({"url": url, "text": "page text"}));
        assert_eq!(doc["document"]["host"], "secret.example");
    }
    t.ok(
        "visits.record",
        json!({"url": "https://notsecret.example/", "visited_at": 9}),
    );
    let out = t.ok("privacy.forget_site", json!({"host": "secret.example"}));
    assert_eq!(out["history_deleted"], 2);
    assert_eq!(out["documents_deleted"], 2);
    assert_eq!(urls_left(&t), vec!["https://notsecret.example/".to_owned()]);
}
