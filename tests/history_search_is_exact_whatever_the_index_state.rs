//! `history.list` returns exactly what the contract says, whatever the
//! state of the in-memory text index: fully caught up, partly caught up (a
//! held-back indexer, as after an open or a large import) or empty. Every
//! page of every filter combination (query, host with and without
//! subdomains, time bounds, tab) is compared with a brute-force scan of the
//! table, through writes and deletes in between. Guards against a lagging
//! or stale index dropping, repeating or inventing rows.

mod common;

use common::TestProfile;
use hydra_core::db::text_match::fold_case;
use hydra_core::db::ConnExt;
use serde_json::{json, Value};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "Alpha",
    "beta",
    "ÉTÉ",
    "straße",
    "news",
    "Wiki",
    "map",
    "ß",
    "zürich",
    "100%",
    "a_b",
    "caf\u{e9}",
    "x\u{0}y",
    "LOG",
    "log",
    "İstanbul",
];
const HOSTS: &[&str] = &[
    "example.com",
    "www.example.com",
    "mail.example.com",
    "notexample.com",
    "news.org",
    "a.news.org",
    "wiki.net",
];

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    url: String,
    host: String,
    title: Option<String>,
    visited_at: i64,
    tab_id: Option<String>,
}

fn record_random(t: &TestProfile, rng: &mut Rng, n: usize) {
    let mut batch = Vec::new();
    for _ in 0..n {
        let host = *rng.pick(HOSTS);
        let path = format!("{}-{}", rng.pick(WORDS), rng.below(40));
        let title = match rng.below(4) {
            0 => Value::Null,
            _ => json!(format!(
                "{} {} {}",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.below(9)
            )),
        };
        let tab = match rng.below(3) {
            0 => Value::Null,
            n => json!(format!("tab{n}")),
        };
        batch.push(json!({
            "url": format!("https://{host}/{}", urlencode(&path)),
            "title": title,
            "visited_at": rng.below(300),
            "tab_id": tab,
        }));
    }
    t.ok("visits.record_batch", json!({ "visits": batch }));
}

/// Percent-encodes what a URL cannot hold raw (spaces, NUL, non-ASCII stay
/// readable enough for substring queries on the rest).
fn urlencode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c.to_string(),
            c if !c.is_ascii() => c.to_string(),
            c => format!("%{:02X}", c as u32),
        })
        .collect()
}

fn table(t: &TestProfile) -> Vec<Row> {
    t.profile
        .db()
        .read(|c| {
            c.query_all(
                "SELECT id, url, host, title, visited_at, tab_id FROM history",
                [],
                |r| {
                    Ok(Row {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        host: r.get(2)?,
                        title: r.get(3)?,
                        visited_at: r.get(4)?,
                        tab_id: r.get(5)?,
                    })
                },
            )
        })
        .unwrap()
}

/// The contract, by brute force.
fn expected(rows: &[Row], filter: &Value) -> Vec<i64> {
    let query = filter["query"].as_str().map(|q| fold_case(q).into_owned());
    let host = filter["host"].as_str();
    let subdomains = filter["include_subdomains"].as_bool().unwrap_or(true);
    let from = filter["from"].as_i64().unwrap_or(i64::MIN);
    let to = filter["to"].as_i64().unwrap_or(i64::MAX);
    let tab = filter["tab_id"].as_str();
    let mut hits: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            query.as_deref().is_none_or(|q| {
                fold_case(&r.url).contains(q)
                    || r.title.as_deref().is_some_and(|t| fold_case(t).contains(q))
            })
        })
        .filter(|r| {
            host.is_none_or(|h| r.host == h || (subdomains && r.host.ends_with(&format!(".{h}"))))
        })
        .filter(|r| r.visited_at >= from && r.visited_at <= to)
        .filter(|r| tab.is_none_or(|tab| r.tab_id.as_deref() == Some(tab)))
        .collect();
    hits.sort_by_key(|r| std::cmp::Reverse((r.visited_at, r.id)));
    hits.into_iter().map(|r| r.id).collect()
}

/// Every page of `history.list` with `filter`, concatenated.
fn listed(t: &TestProfile, filter: &Value, limit: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = filter.clone();
        req["limit"] = json!(limit);
        if let Some(c) = &cursor {
            req["cursor"] = json!(c);
        }
        let page = t.ok("history.list", req);
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

fn random_filter(rng: &mut Rng, rows: &[Row]) -> Value {
    let mut f = json!({});
    // A query cut from stored text (re-cased), or a word, or a long one.
    let q = match rng.below(4) {
        0 => rng.pick(WORDS).to_uppercase(),
        1 => "example".to_owned(),
        _ => {
            let r = rng.pick(rows);
            let text: Vec<char> = match (&r.title, rng.below(2)) {
                (Some(t), 0) => t.chars().collect(),
                _ => r.url.chars().collect(),
            };
            let start = rng.below(text.len());
            let len = 1 + rng.below(6);
            let cut: String = text[start..(start + len).min(text.len())].iter().collect();
            if rng.below(2) == 0 {
                cut.to_uppercase()
            } else {
                cut
            }
        }
    };
    f["query"] = json!(q);
    if rng.below(3) == 0 {
        f["host"] = json!(rng.pick(&["example.com", "news.org", "wiki.net"]));
        f["include_subdomains"] = json!(rng.below(2) == 0);
    }
    if rng.below(3) == 0 {
        let from = rng.below(300) as i64;
        f["from"] = json!(from);
        f["to"] = json!(from + rng.below(150) as i64);
    }
    if rng.below(4) == 0 {
        f["tab_id"] = json!("tab1");
    }
    f
}

fn check_many(t: &TestProfile, rng: &mut Rng, rounds: usize, state: &str) {
    let rows = table(t);
    for _ in 0..rounds {
        let filter = random_filter(rng, &rows);
        let want = expected(&rows, &filter);
        // Small pages, but at most ~12 of them per filter (debug builds).
        let limit = (*rng.pick(&[1usize, 7, 50, 200])).max(want.len() / 12 + 1);
        assert_eq!(
            listed(t, &filter, limit),
            want,
            "index {state}, filter {filter}, limit {limit}"
        );
    }
}

#[test]
fn lists_match_a_brute_force_scan_with_the_index_full_partial_and_empty() {
    let t = TestProfile::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    record_random(&t, &mut rng, 1500);
    let index = t.profile.history_text_index();

    check_many(&t, &mut rng, 60, "caught up");
    assert_eq!(index.stats().docs, 1500, "a search caught the index up");

    let mid = table(&t).iter().map(|r| r.id).max().unwrap() / 2;
    index.hold_at(Some(mid));
    record_random(&t, &mut rng, 300);
    check_many(&t, &mut rng, 60, "partly caught up");
    assert_eq!(index.stats().watermark, mid);

    index.hold_at(Some(0));
    check_many(&t, &mut rng, 40, "empty");
    assert_eq!(index.stats().docs, 0);

    // Deletes while held, then the index catches up again.
    t.ok("history.purge", json!({"host": "news.org"}));
    index.hold_at(None);
    check_many(&t, &mut rng, 40, "caught up after a purge");
    let some = table(&t)[0].id;
    t.ok("history.delete", json!({"id": some}));
    record_random(&t, &mut rng, 200);
    check_many(&t, &mut rng, 40, "caught up after a delete and new rows");
    t.ok("history.purge", json!({"all": true}));
    record_random(&t, &mut rng, 100);
    check_many(&t, &mut rng, 20, "rebuilt after purge all");
}

#[test]
fn a_nul_in_the_query_matches_exactly() {
    let t = TestProfile::new();
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/", "title": "x\u{0}y"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://b.example/", "title": "xy"}),
    );
    let found = t.ok("history.list", json!({"query": "X\u{0}Y"}));
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["url"], json!("https://a.example/"));
    let found = t.ok("history.list", json!({"query": "\u{0}"}));
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
}

/// Visits recorded in time order (as a browser records them), with ties:
/// a query matching far more rows than the index hands over by id is
/// answered by the index's newest-first walk; every page must still be the
/// brute-force answer, whatever the index's state, and once one visit is
/// recorded out of order the table walk takes over, just as exact.
#[test]
fn common_queries_over_visits_in_time_order_match_a_brute_force_scan() {
    let t = TestProfile::new();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let record_in_order = |rng: &mut Rng, first: usize, n: usize| {
        let visits: Vec<Value> = (first..first + n)
            .map(|i| {
                let word = rng.pick(WORDS);
                json!({
                    "url": format!(
                        "https://{}/{}",
                        rng.pick(HOSTS),
                        urlencode(&format!("{word}-{}", rng.below(60)))
                    ),
                    "title": format!("{word} common page {}", i % 7),
                    // Three visits per millisecond: ties break by id.
                    "visited_at": 1_000 + i / 3,
                })
            })
            .collect();
        t.ok("visits.record_batch", json!({ "visits": visits }));
    };
    record_in_order(&mut rng, 0, 2_500);
    let index = t.profile.history_text_index();
    let check = |state: &str| {
        let rows = table(&t);
        for q in ["common", "COMMON PAGE 3", "page", "https", "PAGE 1"] {
            let filter = json!({ "query": q });
            let want = expected(&rows, &filter);
            assert!(want.len() > 200, "{q} is a common query");
            for limit in [7usize, 50, 500] {
                if limit == 7 && want.len() > 700 {
                    continue; // hundreds of pages: the other limits page too
                }
                assert_eq!(listed(&t, &filter, limit), want, "{state}: {q} by {limit}");
            }
        }
    };
    check("caught up");
    // The walk served those lists (keys ascend with ids).
    assert!(index
        .newest_matches("common", (i64::MAX, i64::MAX), 10, usize::MAX)
        .is_some());
    let mid = table(&t).iter().map(|r| r.id).max().unwrap() / 2;
    index.hold_at(Some(mid));
    record_in_order(&mut rng, 2_500, 500);
    check("partly caught up");
    index.hold_at(None);
    t.ok("history.purge", json!({"host": "news.org"}));
    check("after a purge");
    // One visit older than the newest: id order is no longer time order.
    t.ok(
        "visits.record",
        json!({"url": "https://example.com/late", "title": "common late page", "visited_at": 1_100}),
    );
    check("with a visit recorded out of order");
    assert!(index
        .newest_matches("common", (i64::MAX, i64::MAX), 10, usize::MAX)
        .is_none());
}

/// A query-only list first walks the index newest first for a few thousand
/// visits (`NEWEST_FIRST_BUDGET` in src/browser/history.rs); a query too
/// rare to fill the page there is looked up whole instead. Both ways, and
/// across the boundary, every page is the brute-force answer.
#[test]
fn query_only_lists_past_the_newest_first_budget_match_a_brute_force_scan() {
    let t = TestProfile::new();
    let visits: Vec<Value> = (0..6_000)
        .map(|i| {
            // ~10% "often", ~1% "seldom" (too few for a page within the
            // newest 4,000), one visit "lonely" near the start.
            let tag = match i {
                5 => " lonely",
                _ if i % 100 == 7 => " seldom",
                _ if i % 10 == 3 => " often",
                _ => "",
            };
            json!({"url": format!("https://s{}.example/{i}", i % 37),
                   "title": format!("page {i}{tag}"), "visited_at": 1_000 + i})
        })
        .collect();
    for chunk in visits.chunks(2_000) {
        t.ok("visits.record_batch", json!({ "visits": chunk }));
    }
    let rows = table(&t);
    for q in ["often", "SELDOM", "lonely", "page 59", "no such text"] {
        let filter = json!({ "query": q });
        let want = expected(&rows, &filter);
        for limit in [10usize, 50, 200] {
            assert_eq!(listed(&t, &filter, limit), want, "{q} by {limit}");
        }
    }
}

/// Read-your-writes under concurrent deletes: each visit is found by a
/// `query` for its own word right after `visits.record` returns, while
/// other threads record and purge throw-away visits (which lets SQLite
/// reuse the top ids, and makes purges overlap).
#[test]
fn a_visit_is_found_right_after_it_is_recorded_while_others_purge() {
    let t = TestProfile::new();
    let done = std::sync::atomic::AtomicBool::new(false);
    let missed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for churn in 0..2 {
            let (t, done) = (&t, &done);
            s.spawn(move || {
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let host = format!("churn{churn}.example");
                    for k in 0..3 {
                        t.ok("visits.record", json!({"url": format!("https://{host}/{i}/{k}"), "title": "throw away"}));
                    }
                    t.ok("history.purge", json!({"host": host}));
                    i += 1;
                }
            });
        }
        let recorders: Vec<_> = (0..2)
            .map(|r| {
                let (t, missed) = (&t, &missed);
                s.spawn(move || {
                    for i in 0..150 {
                        let word = format!("tok{r}x{i}q");
                        t.ok(
                            "visits.record",
                            json!({"url": format!("https://keep.example/{r}/{i}"), "title": word}),
                        );
                        let page = t.ok("history.list", json!({"query": word}));
                        if page["items"].as_array().unwrap().len() != 1 {
                            missed.lock().unwrap().push(word);
                        }
                    }
                })
            })
            .collect();
        for r in recorders {
            r.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let missed = missed.into_inner().unwrap();
    common::assert_none(missed, "visits not found by their own word");
}
