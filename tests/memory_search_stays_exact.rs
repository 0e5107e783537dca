//! `memory.search {query}` runs on the FTS5 index `memories_fts` (with
//! `secure-delete`), kept in the memory's own transaction. Guards against a
//! search that finds deleted or overwritten memories, misses live ones
//! after many segments merged, a query holding NUL failing as `internal`,
//! and an index that `PRAGMA integrity_check` reports as malformed after
//! deletes (issue 10 saw "malformed inverted index" with SQLite 3.46).

mod common;
use common::TestProfile;
use rusqlite::Connection;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const WORDS: [&str; 12] = [
    "apple", "river", "stone", "cloud", "maple", "tiger", "ocean", "pepper", "violet", "amber",
    "cedar", "lunar",
];

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }

    fn text(&mut self) -> String {
        let n = 1 + self.next(4);
        (0..n)
            .map(|_| WORDS[self.next(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The ids a brute-force scan finds: every term is a word of key or value.
fn brute_force(stored: &BTreeMap<String, (String, String)>, terms: &[&str]) -> BTreeSet<String> {
    stored
        .iter()
        .filter(|(_, (key, value))| {
            let words: BTreeSet<&str> = key.split(' ').chain(value.split(' ')).collect();
            terms.iter().all(|t| words.contains(t))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

fn searched(t: &TestProfile, query: &str) -> BTreeSet<String> {
    let r = t.ok("memory.search", json!({"query": query, "limit": 200}));
    r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["memory"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn integrity(t: &TestProfile) -> Vec<String> {
    let conn = Connection::open(t.dir.path().join("hydra.sqlite3")).unwrap();
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn search_matches_a_brute_force_scan_after_inserts_updates_and_deletes() {
    let t = TestProfile::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut stored: BTreeMap<String, (String, String)> = BTreeMap::new();
    // One transaction per upsert: hundreds of small segments, merged by
    // FTS5 as they accumulate.
    for i in 0..400 {
        let (key, value) = (rng.text(), rng.text());
        let id = format!("m{i}");
        t.ok(
            "memory.upsert",
            json!({"id": id, "scope": "global", "key": key, "value": value}),
        );
        stored.insert(id, (key, value));
    }
    for round in 0..3 {
        // Overwrite some values, delete others.
        for _ in 0..40 {
            let id = format!("m{}", rng.next(400));
            if let Some(entry) = stored.get_mut(&id) {
                entry.1 = rng.text();
                t.ok(
                    "memory.upsert",
                    json!({"id": id, "scope": "global", "value": entry.1}),
                );
            }
        }
        for _ in 0..40 {
            let id = format!("m{}", rng.next(400));
            if stored.remove(&id).is_some() {
                t.ok("memory.delete", json!({"id": id}));
            }
        }
        for (a, b) in WORDS.iter().zip(WORDS.iter().skip(round + 1)) {
            assert_eq!(
                searched(&t, a),
                brute_force(&stored, &[a]),
                "{a} round {round}"
            );
            assert_eq!(
                searched(&t, &format!("{a} {b}")),
                brute_force(&stored, &[a, b]),
                "{a} {b} round {round}"
            );
        }
        assert_eq!(integrity(&t), ["ok"], "integrity_check after round {round}");
    }
    // Deleting everything leaves an index that finds nothing and checks ok.
    t.ok("memory.delete", json!({"scope": "global"}));
    for word in WORDS {
        assert!(searched(&t, word).is_empty(), "{word}");
    }
    assert_eq!(integrity(&t), ["ok"]);
}

#[test]
fn a_nul_in_the_query_separates_terms_as_the_index_does() {
    let t = TestProfile::new();
    t.ok(
        "memory.upsert",
        json!({"id": "nul", "scope": "global", "value": "alpha\u{0}beta"}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "spaced", "scope": "global", "value": "alpha beta"}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "other", "scope": "global", "value": "alpha gamma"}),
    );
    let both: BTreeSet<String> = ["nul", "spaced"].map(String::from).into();
    assert_eq!(searched(&t, "alpha\u{0}beta"), both);
    assert_eq!(searched(&t, "alpha beta"), both);
    assert_eq!(searched(&t, "\u{0}gamma\u{0}"), ["other".to_owned()].into());
    let e = t.err(
        "memory.search",
        json!({"query": "\u{0}\u{0} "}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "query");
}
