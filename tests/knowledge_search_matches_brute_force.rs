//! `documents.search` returns exactly what a brute-force reference computes
//! on random data: BM25 over title + chunk words (`all` / `any`), exact
//! cosine over chunk embeddings, and reciprocal rank fusion with its tie
//! rules; with host, subdomain and source filters. The hybrid scores are
//! also recomputed from the text-only and vector-only results of the API
//! itself. Guards against approximate ranking, lost ties, and filters
//! that leak or drop chunks.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

const WORDS: &[&str] = &[
    "Apple", "banana", "cherry", "delta", "Echo", "fox", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "québec", "romeo", "sierra", "tango",
];

struct Chunk {
    text: String,
    vector: Option<Vec<f64>>,
}

struct Doc {
    url: String,
    host: String,
    title: String,
    source: &'static str,
    chunks: Vec<Chunk>,
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

fn build(seed: u64) -> (TestProfile, Vec<Doc>) {
    let mut rng = Rng(seed);
    let t = TestProfile::new();
    let hosts = [
        "site.example",
        "a.site.example",
        "notsite.example",
        "other.example",
    ];
    let bases: Vec<Vec<f64>> = (0..7)
        .map(|_| (0..6).map(|_| rng.unit()).collect())
        .collect();
    let mut docs = Vec::new();
    for d in 0..50 {
        let host = hosts[rng.below(hosts.len())].to_owned();
        let title: String = (0..rng.below(3))
            .map(|_| WORDS[rng.below(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        let chunks: Vec<Chunk> = (0..1 + rng.below(4))
            .map(|_| Chunk {
                text: (0..3 + rng.below(10))
                    .map(|_| WORDS[rng.below(WORDS.len())])
                    .collect::<Vec<_>>()
                    .join(if rng.below(2) == 0 { " " } else { ", " }),
                vector: (rng.below(5) != 0).then(|| bases[rng.below(bases.len())].clone()),
            })
            .collect();
        let source = ["crawl", "user"][rng.below(2)];
        let doc = Doc {
            url: format!("https://{host}/{d}"),
            host,
            title,
            source,
            chunks,
        };
        let chunks: Vec<Value> = doc
            .chunks
            .iter()
            .map(|c| match &c.vector {
                Some(v) => json!({"text": c.text, "embedding": {"model": "m", "vector": v}}),
                None => json!({"text": c.text}),
            })
            .collect();
        let mut req = json!({"url": doc.url, "text": "body", "source": source, "chunks": chunks});
        if !doc.title.is_empty() {
            req["title"] = json!(doc.title);
        }
        t.ok("documents.upsert", req);
        docs.push(doc);
    }
    (t, docs)
}

/// `((doc index, chunk index), text rank, vector rank)` of a fused item.
type FusedRef = ((usize, usize), Option<usize>, Option<usize>);

/// `(doc index, chunk index, score)`, best first.
type Ranked = Vec<(usize, usize, f64)>;

fn admitted(doc: &Doc, host: Option<&str>, sub: bool, source: Option<&str>) -> bool {
    let host_ok = match host {
        None => true,
        Some(h) => {
            let h = h.to_lowercase();
            doc.host == h || (sub && doc.host.ends_with(&format!(".{h}")))
        }
    };
    host_ok && source.is_none_or(|s| s == doc.source)
}

fn text_reference(
    docs: &[Doc],
    query: &str,
    all: bool,
    filter: (Option<&str>, bool, Option<&str>),
    depth: usize,
) -> Ranked {
    let mut terms: Vec<String> = Vec::new();
    for t in tokens(query) {
        if !terms.contains(&t) {
            terms.push(t);
        }
    }
    let units: Vec<(usize, usize, Vec<String>)> = docs
        .iter()
        .enumerate()
        .flat_map(|(d, doc)| {
            doc.chunks.iter().enumerate().map(move |(c, chunk)| {
                let mut words = tokens(&doc.title);
                words.extend(tokens(&chunk.text));
                (d, c, words)
            })
        })
        .collect();
    let n = units.len() as u64;
    let total: u64 = units.iter().map(|u| u.2.len() as u64).sum();
    let avg = total as f64 / n as f64;
    let df: Vec<u64> = terms
        .iter()
        .map(|t| units.iter().filter(|u| u.2.contains(t)).count() as u64)
        .collect();
    let idf: Vec<f64> = df
        .iter()
        .map(|&d| (1.0 + (n as f64 - d as f64 + 0.5) / (d as f64 + 0.5)).ln())
        .collect();
    let mut out: Ranked = Vec::new();
    for (d, c, words) in &units {
        let tf: Vec<u32> = terms
            .iter()
            .map(|t| words.iter().filter(|w| *w == t).count() as u32)
            .collect();
        let present = tf.iter().filter(|&&x| x > 0).count();
        let matched = if all {
            present == terms.len()
        } else {
            present > 0
        };
        if !matched || !admitted(&docs[*d], filter.0, filter.1, filter.2) {
            continue;
        }
        let len = words.len() as f64;
        let score: f64 = tf
            .iter()
            .zip(&idf)
            .filter(|(&x, _)| x > 0)
            .map(|(&x, &idf)| {
                let x = x as f64;
                idf * x * (1.2 + 1.0) / (x + 1.2 * (1.0 - 0.75 + 0.75 * len / avg))
            })
            .sum();
        out.push((*d, *c, score));
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    out.truncate(depth);
    out
}

fn vector_reference(
    docs: &[Doc],
    query: &[f64],
    filter: (Option<&str>, bool, Option<&str>),
    depth: usize,
) -> Ranked {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut out: Ranked = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        if !admitted(doc, filter.0, filter.1, filter.2) {
            continue;
        }
        for (c, chunk) in doc.chunks.iter().enumerate() {
            if let Some(v) = &chunk.vector {
                let dot: f64 = v.iter().zip(query).map(|(a, b)| a * b).sum();
                out.push((d, c, dot / norm(v) / norm(query)));
            }
        }
    }
    // Equal vectors give bitwise equal scores in the library; distinct
    // random ones differ far beyond f32 rounding.
    out.sort_by(|a, b| {
        let equal = (a.2 - b.2).abs() < 1e-9;
        if equal {
            (a.0, a.1).cmp(&(b.0, b.1))
        } else {
            b.2.total_cmp(&a.2)
        }
    });
    out.truncate(depth);
    out
}

/// Equal up to JSON's decimal round trip (serde_json's parser may be one
/// ulp off); ordering ties are checked by position, not by this.
fn assert_close(got: &Value, expected: f64) {
    let got = got.as_f64().unwrap();
    assert!(
        (got - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{got} vs {expected}"
    );
}

fn position(docs: &[Doc], item: &Value) -> (usize, usize) {
    let url = item["document"]["url"].as_str().unwrap();
    let d = docs.iter().position(|doc| doc.url == url).unwrap();
    (d, item["chunk"]["index"].as_u64().unwrap() as usize)
}

fn filter_json(req: &mut Value, filter: (Option<&str>, bool, Option<&str>)) {
    if let Some(h) = filter.0 {
        req["host"] = json!(h);
        req["include_subdomains"] = json!(filter.1);
    }
    if let Some(s) = filter.2 {
        req["source"] = json!(s);
    }
}

const FILTERS: &[(Option<&str>, bool, Option<&str>)] = &[
    (None, true, None),
    (Some("site.example"), true, None),
    (Some("site.example"), false, None),
    (Some("SITE.example"), true, Some("crawl")),
    (None, true, Some("user")),
];

#[test]
fn text_vector_and_hybrid_match_the_reference() {
    for seed in [7u64, 99, 2024] {
        let (t, docs) = build(seed);
        let mut rng = Rng(seed ^ 0xabcdef);
        for round in 0..12 {
            let filter = FILTERS[round % FILTERS.len()];
            let query: String = (0..1 + rng.below(3))
                .map(|_| WORDS[rng.below(WORDS.len())].to_uppercase())
                .collect::<Vec<_>>()
                .join(" ");
            let all = rng.below(2) == 0;
            let vector: Vec<f64> = (0..6).map(|_| rng.unit()).collect();
            let limit = 1 + rng.below(12);

            // Text only.
            let mut req =
                json!({"query": query, "match": if all {"all"} else {"any"}, "limit": limit});
            filter_json(&mut req, filter);
            let got = t.ok("documents.search", req);
            let expected = text_reference(&docs, &query, all, filter, limit);
            let items = got["items"].as_array().unwrap();
            assert_eq!(
                items.len(),
                expected.len(),
                "seed {seed} round {round} text count"
            );
            for (i, (item, e)) in items.iter().zip(&expected).enumerate() {
                assert_eq!(
                    position(&docs, item),
                    (e.0, e.1),
                    "seed {seed} round {round} text #{i}"
                );
                assert_close(&item["score"], e.2);
                assert_eq!(item["text_rank"], i + 1);
                assert_eq!(item["vector_rank"], Value::Null);
                assert_eq!(
                    item["document"]["title"],
                    if docs[e.0].title.is_empty() {
                        Value::Null
                    } else {
                        json!(docs[e.0].title)
                    }
                );
                assert_eq!(item["chunk"]["text"], docs[e.0].chunks[e.1].text);
            }

            // Vector only.
            let mut req = json!({"embedding": {"model": "m", "vector": vector}, "limit": limit});
            filter_json(&mut req, filter);
            let got = t.ok("documents.search", req);
            let expected = vector_reference(&docs, &vector, filter, limit);
            let items = got["items"].as_array().unwrap();
            assert_eq!(
                items.len(),
                expected.len(),
                "seed {seed} round {round} vector count"
            );
            for (i, (item, e)) in items.iter().zip(&expected).enumerate() {
                assert_eq!(
                    position(&docs, item),
                    (e.0, e.1),
                    "seed {seed} round {round} vector #{i}"
                );
                assert!((item["score"].as_f64().unwrap() - e.2).abs() < 1e-5);
                assert_eq!(item["vector_rank"], i + 1);
                assert_eq!(item["text_rank"], Value::Null);
            }

            // Hybrid: fused from the reference lists at depth K...
            let k = 50usize.max(5 * limit);
            let text_list = text_reference(&docs, &query, false, filter, k);
            let vector_list = vector_reference(&docs, &vector, filter, k);
            let mut fused: Vec<FusedRef> = Vec::new();
            for (i, e) in text_list.iter().enumerate() {
                fused.push(((e.0, e.1), Some(i + 1), None));
            }
            for (i, e) in vector_list.iter().enumerate() {
                match fused.iter_mut().find(|f| f.0 == (e.0, e.1)) {
                    Some(f) => f.2 = Some(i + 1),
                    None => fused.push(((e.0, e.1), None, Some(i + 1))),
                }
            }
            let score = |t: Option<usize>, v: Option<usize>| {
                t.map_or(0.0, |r| 1.0 / (60.0 + r as f64))
                    + v.map_or(0.0, |r| 1.0 / (60.0 + r as f64))
            };
            fused.sort_by(|a, b| {
                score(b.1, b.2)
                    .total_cmp(&score(a.1, a.2))
                    .then(a.2.unwrap_or(usize::MAX).cmp(&b.2.unwrap_or(usize::MAX)))
                    .then(a.1.unwrap_or(usize::MAX).cmp(&b.1.unwrap_or(usize::MAX)))
                    .then(a.0.cmp(&b.0))
            });
            fused.truncate(limit);
            let mut req = json!({"query": query, "match": "any", "embedding": {"model": "m", "vector": vector}, "limit": limit});
            filter_json(&mut req, filter);
            let got = t.ok("documents.search", req.clone());
            let items = got["items"].as_array().unwrap();
            assert_eq!(
                items.len(),
                fused.len(),
                "seed {seed} round {round} hybrid count"
            );
            for (i, (item, f)) in items.iter().zip(&fused).enumerate() {
                assert_eq!(
                    position(&docs, item),
                    f.0,
                    "seed {seed} round {round} hybrid #{i}"
                );
                assert_eq!(item["text_rank"], json!(f.1));
                assert_eq!(item["vector_rank"], json!(f.2));
                assert_close(&item["score"], score(f.1, f.2));
            }

            // ...and from the API's own single-list results.
            let mut text_req = json!({"query": query, "match": "any", "limit": k});
            filter_json(&mut text_req, filter);
            let mut vector_req = json!({"embedding": {"model": "m", "vector": vector}, "limit": k});
            filter_json(&mut vector_req, filter);
            let text_items = t.ok("documents.search", text_req)["items"].clone();
            let vector_items = t.ok("documents.search", vector_req)["items"].clone();
            for item in items {
                let key = position(&docs, item);
                let rank_in = |list: &Value| {
                    list.as_array()
                        .unwrap()
                        .iter()
                        .position(|x| position(&docs, x) == key)
                        .map(|p| p + 1)
                };
                let (tr, vr) = (rank_in(&text_items), rank_in(&vector_items));
                assert_close(&item["score"], score(tr, vr));
            }
        }
    }
}

#[test]
fn vector_search_rules() {
    let t = TestProfile::new();
    t.ok(
        "documents.upsert",
        json!({"url": "https://v.example/", "text": "x", "chunks": [
            {"text": "a", "embedding": {"model": "m", "vector": [1.0, 0.0, 0.0]}},
            {"text": "b", "embedding": {"model": "m", "vector": [-1.0, 0.0, 0.0]}},
            {"text": "c"}
        ]}),
    );
    let e = t.err(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [1.0, 0.0]}}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "embedding.vector");
    let none = t.ok(
        "documents.search",
        json!({"embedding": {"model": "other", "vector": [1.0]}}),
    );
    assert_eq!(none["items"], json!([]));
    let got = t.ok(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [2.0, 0.0, 0.0]}}),
    );
    let items = got["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "the chunk without an embedding is not a candidate"
    );
    assert_eq!(items[0]["score"], 1.0);
    assert_eq!(items[1]["score"], -1.0, "negative cosines are returned");
    assert_eq!(items[0]["chunk"]["start"], Value::Null);
    t.err(
        "documents.search",
        json!({"embedding": {"model": "m", "vector": [0.0, 0.0, 0.0]}}),
        "invalid_argument",
    );
    t.err(
        "documents.search",
        json!({"query": "..."}),
        "invalid_argument",
    );
}

#[test]
fn text_search_matches_titles_case_insensitively_and_all_requires_every_term() {
    let t = TestProfile::new();
    t.ok("documents.upsert", json!({"url": "https://a.example/", "title": "Rust Guide", "text": "borrow checker explained"}));
    t.ok(
        "documents.upsert",
        json!({"url": "https://b.example/", "text": "rust and BORROW"}),
    );
    let all = t.ok("documents.search", json!({"query": "GUIDE borrow"}));
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["document"]["url"], "https://a.example/");
    let any = t.ok(
        "documents.search",
        json!({"query": "guide borrow", "match": "any"}),
    );
    assert_eq!(any["items"].as_array().unwrap().len(), 2);
    let none = t.ok("documents.search", json!({"query": "absent"}));
    assert_eq!(none["items"], json!([]));
}

/// Checks text searches (every filter, `all` and `any`) against the
/// reference over `docs`.
fn check_text(t: &TestProfile, docs: &[Doc], rng: &mut Rng, label: &str) {
    for round in 0..10 {
        let filter = FILTERS[round % FILTERS.len()];
        let query: String = (0..1 + rng.below(3))
            .map(|_| WORDS[rng.below(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        let all = rng.below(2) == 0;
        let limit = 1 + rng.below(30);
        let mut req = json!({"query": query, "match": if all {"all"} else {"any"}, "limit": limit});
        filter_json(&mut req, filter);
        let got = t.ok("documents.search", req);
        let expected = text_reference(docs, &query, all, filter, limit);
        let items = got["items"].as_array().unwrap();
        assert_eq!(items.len(), expected.len(), "{label} round {round} count");
        for (i, (item, e)) in items.iter().zip(&expected).enumerate() {
            assert_eq!(
                position(docs, item),
                (e.0, e.1),
                "{label} round {round} #{i}"
            );
            assert_close(&item["score"], e.2);
        }
    }
}

/// Upserts `doc` (its chunks as caller chunks, its title if any).
fn upsert(t: &TestProfile, doc: &Doc) {
    let chunks: Vec<Value> = doc.chunks.iter().map(|c| json!({"text": c.text})).collect();
    let mut req = json!({"url": doc.url, "text": "body", "source": doc.source, "chunks": chunks});
    if !doc.title.is_empty() {
        req["title"] = json!(doc.title);
    }
    t.ok("documents.upsert", req);
}

/// The in-memory text index (caught up, partial, or empty) never changes
/// an answer, including after replacing upserts, deletes and forget_site
/// made while it held the changed chunks.
#[test]
fn text_search_is_exact_whatever_the_index_state_and_after_changes() {
    for seed in [11u64, 4242] {
        let (t, mut docs) = build(seed);
        let mut rng = Rng(seed ^ 0x5eed);
        let index = t.profile.chunk_text_index();
        check_text(&t, &docs, &mut rng, "built");
        assert!(
            index.stats().chunks > 0,
            "the first search builds the index"
        );

        // Changes while the index holds every chunk.
        for round in 0..3 {
            // Replace a document's chunks and title (same url keeps its
            // place in insertion order).
            let d = rng.below(docs.len());
            docs[d].title = WORDS[rng.below(WORDS.len())].to_owned();
            docs[d].chunks = (0..1 + rng.below(3))
                .map(|_| Chunk {
                    text: format!(
                        "{} {} zulu{round}",
                        WORDS[rng.below(WORDS.len())],
                        WORDS[rng.below(WORDS.len())]
                    ),
                    vector: None,
                })
                .collect();
            upsert(&t, &docs[d]);
            // Delete one document by url.
            let d = rng.below(docs.len());
            t.ok("documents.delete", json!({"url": docs[d].url}));
            docs.remove(d);
            // A new document at the end.
            let doc = Doc {
                url: format!("https://new.example/{seed}/{round}"),
                host: "new.example".to_owned(),
                title: String::new(),
                source: "user",
                chunks: vec![Chunk {
                    text: format!("apple zulu{round} fox"),
                    vector: None,
                }],
            };
            upsert(&t, &doc);
            docs.push(doc);
            check_text(&t, &docs, &mut rng, &format!("seed {seed} change {round}"));
        }
        let zulu = t.ok("documents.search", json!({"query": "zulu0", "limit": 100}));
        let expected = text_reference(&docs, "zulu0", true, (None, true, None), 100);
        assert_eq!(zulu["items"].as_array().unwrap().len(), expected.len());

        // forget_site and a host delete while the index is caught up.
        t.ok("privacy.forget_site", json!({"host": "other.example"}));
        docs.retain(|d| d.host != "other.example");
        t.ok(
            "documents.delete",
            json!({"host": "site.example", "include_subdomains": false}),
        );
        docs.retain(|d| d.host != "site.example");
        check_text(&t, &docs, &mut rng, &format!("seed {seed} forgotten"));

        // Partial and empty index, then caught up again.
        let total = docs_chunks(&docs);
        index.hold_at(Some(total / 2));
        check_text(&t, &docs, &mut rng, &format!("seed {seed} partial"));
        index.hold_at(Some(0));
        check_text(&t, &docs, &mut rng, &format!("seed {seed} empty"));
        assert_eq!(index.stats().chunks, 0);
        index.hold_at(None);
        check_text(&t, &docs, &mut rng, &format!("seed {seed} caught up"));
        assert_eq!(index.stats().chunks as i64, docs_chunks(&docs));

        // Deleting everything leaves nothing indexed.
        t.ok("documents.delete", json!({"all": true}));
        let stats = index.stats();
        assert_eq!((stats.chunks, stats.terms, stats.postings), (0, 0, 0));
        check_text(&t, &[], &mut rng, &format!("seed {seed} emptied"));
    }
}

fn docs_chunks(docs: &[Doc]) -> i64 {
    docs.iter().map(|d| d.chunks.len() as i64).sum()
}

/// Checks the given queries (`all` and `any`, several limits, every
/// filter) against the reference over `docs`.
fn check_queries(t: &TestProfile, docs: &[Doc], queries: &[&str], label: &str) {
    for (q, query) in queries.iter().enumerate() {
        for (l, limit) in [1usize, 3, 10, 37, 100].into_iter().enumerate() {
            for all in [false, true] {
                let filter = FILTERS[(q + l) % FILTERS.len()];
                for filter in [(None, true, None), filter] {
                    let mut req = json!({"query": query, "match": if all {"all"} else {"any"}, "limit": limit});
                    filter_json(&mut req, filter);
                    let got = t.ok("documents.search", req);
                    let expected = text_reference(docs, query, all, filter, limit);
                    let items = got["items"].as_array().unwrap();
                    let at = format!("{label}: {query:?} all={all} limit={limit} {filter:?}");
                    assert_eq!(items.len(), expected.len(), "{at} count");
                    for (i, (item, e)) in items.iter().zip(&expected).enumerate() {
                        assert_eq!(position(docs, item), (e.0, e.1), "{at} #{i}");
                        assert_close(&item["score"], e.2);
                    }
                }
            }
        }
    }
}

/// Enough chunks for many posting blocks per term, so that the ranking
/// skips blocks and terms (block-max bounds, MaxScore): a word in every
/// chunk, words in some, rare words, and chunks repeated verbatim so that
/// many scores are equal and ties fall at the k boundary. The answers
/// stay the brute-force top k, also with dead (deleted, not yet
/// compacted) chunks in the postings, after re-upserts, and after
/// compaction.
#[test]
fn text_search_that_skips_postings_stays_exact_with_ties_and_deletes() {
    let mut rng = Rng(77);
    let t = TestProfile::new();
    let hosts = ["site.example", "a.site.example", "other.example"];
    // A pool of chunk texts: chunks repeat them verbatim (equal scores).
    let pool: Vec<String> = (0..40)
        .map(|p| {
            let mut words = vec!["common"; 1 + p % 3];
            if p % 4 == 0 {
                words.push("often");
            }
            if p % 9 == 0 {
                words.extend(["rare", "rare"]);
            }
            if p == 17 {
                words.push("unique");
            }
            for _ in 0..rng.below(6) {
                words.push(WORDS[rng.below(WORDS.len())]);
            }
            words.join(" ")
        })
        .collect();
    let mut docs: Vec<Doc> = (0..8)
        .map(|d| Doc {
            url: format!("https://{}/{d}", hosts[d % hosts.len()]),
            host: hosts[d % hosts.len()].to_owned(),
            title: if d % 3 == 0 {
                "often".to_owned()
            } else {
                String::new()
            },
            source: ["crawl", "user"][d % 2],
            chunks: (0..300 + rng.below(200))
                .map(|c| Chunk {
                    // Long runs of the same text, then random picks.
                    text: if c % 50 < 25 {
                        pool[(c / 50) % pool.len()].clone()
                    } else {
                        pool[rng.below(pool.len())].clone()
                    },
                    vector: None,
                })
                .collect(),
        })
        .collect();
    for doc in &docs {
        upsert(&t, doc);
    }
    let queries = [
        "common",
        "common rare",
        "common often",
        "often rare unique",
        "rare",
        "unique common",
        "apple common often",
    ];
    check_queries(&t, &docs, &queries, "built");
    let index = t.profile.chunk_text_index();
    assert!(index.stats().postings > 3_000);

    // Deleted chunks stay in the postings as dead entries for a while:
    // never returned, never counted.
    t.ok("documents.delete", json!({"url": docs[2].url}));
    docs.remove(2);
    t.ok("privacy.forget_site", json!({"host": "other.example"}));
    docs.retain(|d| d.host != "other.example");
    assert!(index.stats().dead_slots > 0);
    check_queries(&t, &docs, &queries, "with dead postings");

    // A re-upsert replaces a document's chunks (new slots, old ones dead).
    docs[0].chunks.truncate(120);
    docs[0].chunks.push(Chunk {
        text: "unique unique rare".to_owned(),
        vector: None,
    });
    upsert(&t, &docs[0]);
    check_queries(&t, &docs, &queries, "after a re-upsert");

    index.compact_now();
    assert_eq!(index.stats().dead_slots, 0);
    check_queries(&t, &docs, &queries, "compacted");
}
