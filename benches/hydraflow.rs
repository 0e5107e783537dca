//! HydraFlow speed targets (issue 4), measured on this machine:
//! - `messages.append` one call at a time through `hydra_call` at no less
//!   than 70% of the rate of a raw rusqlite single-row autocommit insert
//!   measured in the same run (two baselines, see [`append_vs_raw_insert`]);
//! - the latest 50 messages of a 100,000-message thread under 2 ms;
//! - `memory.search` by embedding over 100,000 memories of dimension 384
//!   under 25 ms;
//! - `chat` with `reply` under 200 µs.
//!
//! Each measurement prints its median (own timing loop, so the ratio of the
//! two inserts comes from one run), then criterion reports its own figures.

use criterion::{criterion_group, criterion_main, Criterion};
use hydra_core::hydraflow::messages::{insert, NewMessage, Role};
use hydra_core::testing::ffi::{hydra_call, hydra_open, hydra_string_free};
use hydra_core::types::{Id, Metadata, Timestamp};
use hydra_core::{CloseOptions, OpenOptions, Profile};
use std::ffi::CString;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Opens a profile through the C ABI; returns its handle.
fn open_handle(dir: &std::path::Path) -> u64 {
    let options = CString::new(serde_json::json!({ "profile_dir": dir }).to_string()).unwrap();
    // SAFETY: valid options string; NULL error pointer is allowed.
    let handle = unsafe { hydra_open(options.as_ptr(), std::ptr::null_mut()) };
    assert_ne!(handle, 0);
    handle
}

/// One `hydra_call`, checked for success, result freed.
fn call(handle: u64, op: &CString, request: &CString) {
    // SAFETY: NUL-terminated strings alive across the call; freed once.
    unsafe {
        let out = hydra_call(handle, op.as_ptr(), request.as_ptr());
        debug_assert!(std::ffi::CStr::from_ptr(out)
            .to_bytes()
            .starts_with(b"{\"ok\":true"));
        hydra_string_free(black_box(out));
    }
}

/// The median time of one call of `f`, over `samples` batches of `batch`.
fn median(samples: usize, batch: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed() / batch as u32
        })
        .collect();
    times.sort();
    times[samples / 2]
}

/// False when `HYDRAFLOW_BENCH` is set and does not name this measurement
/// (`append`, `list`, `search`, `chat`): lets one target be re-measured
/// without the others' setup.
fn selected(name: &str) -> bool {
    std::env::var("HYDRAFLOW_BENCH").map_or(true, |only| only.split(',').any(|n| n == name))
}

/// Runs `setup` on the profile in `dir` (typed API), then closes it.
fn with_profile<T>(dir: &std::path::Path, setup: impl FnOnce(&Profile) -> T) -> T {
    let profile = Profile::open(OpenOptions::new(dir)).unwrap();
    let value = setup(&profile);
    profile.close(CloseOptions::default()).unwrap();
    value
}

/// Prepares a profile with the typed API, closes it, and reopens it
/// through the C ABI. Returns the handle and what `setup` returned.
fn prepared<T>(dir: &std::path::Path, setup: impl FnOnce(&Profile) -> T) -> (u64, T) {
    let value = with_profile(dir, setup);
    (open_handle(dir), value)
}

fn thread_id(profile: &Profile) -> String {
    profile
        .threads_create(Default::default())
        .unwrap()
        .thread
        .id
}

/// A raw rusqlite connection with the library's pragmas, and a closure that
/// inserts one message row per call (autocommit) with `sql`.
struct RawInsert {
    conn: rusqlite::Connection,
    sql: &'static str,
    thread: String,
    n: i64,
}

impl RawInsert {
    fn open(path: &std::path::Path, setup: &str, sql: &'static str, thread: &str) -> RawInsert {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;",
        )
        .unwrap();
        conn.execute_batch(setup).unwrap();
        // The profile schema's `llm_messages.id_key` (RAW_INSERT_KEYED).
        hydra_core::db::id_key::register(&conn).unwrap();
        RawInsert {
            conn,
            sql,
            thread: thread.to_owned(),
            n: 0,
        }
    }

    fn insert(&mut self) {
        self.n += 1;
        self.conn
            .prepare_cached(self.sql)
            .unwrap()
            .execute(rusqlite::params![
                hydra_core::types::new_id(),
                self.thread,
                "a short chat message of ordinary length",
                self.n
            ])
            .unwrap();
    }
}

const RAW_INSERT: &str =
    "INSERT INTO llm_messages (id, thread_id, role, content, created_at) VALUES (?1, ?2, 'user', ?3, ?4)";
/// The same into the profile schema, whose messages carry their id's key.
const RAW_INSERT_KEYED: &str =
    "INSERT INTO llm_messages (id, id_key, thread_id, role, content, created_at)
     VALUES (?1, hydra_id_key(?1), ?2, 'user', ?3, ?4)";

/// Two baselines, both a single-row autocommit insert through rusqlite with
/// the library's pragmas: into the profile schema's own `llm_messages`
/// (same work: unique id, thread index, foreign key and the FTS5 trigger),
/// and into a bare table with the same columns and indexes but no FTS5.
fn append_vs_raw_insert(c: &mut Criterion) {
    if !selected("append") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (handle, thread) = prepared(&dir.path().join("profile"), thread_id);
    let op = CString::new("messages.append").unwrap();
    let request = CString::new(
        serde_json::json!({"thread_id": thread, "role": "user", "content": "a short chat message of ordinary length"})
            .to_string(),
    )
    .unwrap();

    let schema_dir = dir.path().join("raw-schema");
    let schema_thread = with_profile(&schema_dir, thread_id);
    let mut same_schema = RawInsert::open(
        &schema_dir.join(hydra_core::profile::DB_FILE_NAME),
        "",
        RAW_INSERT_KEYED,
        &schema_thread,
    );
    let mut bare = RawInsert::open(
        &dir.path().join("raw-bare.sqlite3"),
        "CREATE TABLE llm_messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
             thread_id TEXT NOT NULL, parent_id TEXT, role TEXT NOT NULL, content TEXT NOT NULL,
             tokens INTEGER, created_at INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '{}') STRICT;
         CREATE INDEX llm_messages_by_thread ON llm_messages (thread_id, created_at, seq);",
        RAW_INSERT,
        &thread,
    );

    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    for round in 0..3 {
        let api = median(15, 200, || call(handle, &op, &request));
        let schema = median(15, 200, || same_schema.insert());
        let plain = median(15, 200, || bare.insert());
        println!(
            "messages.append round {round}: hydra_call {api:?} ({:.0}/s); raw insert, same schema {schema:?} ({:.0}/s) -> ratio {:.0}%; raw insert, bare table {plain:?} ({:.0}/s) -> ratio {:.0}%",
            rate(api),
            rate(schema),
            100.0 * rate(api) / rate(schema),
            rate(plain),
            100.0 * rate(api) / rate(plain),
        );
    }

    let mut group = c.benchmark_group("messages.append");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    group.bench_function("hydra_call", |b| b.iter(|| call(handle, &op, &request)));
    group.bench_function("raw insert, same schema", |b| {
        b.iter(|| same_schema.insert())
    });
    group.bench_function("raw insert, bare table", |b| b.iter(|| bare.insert()));
    group.finish();
}

/// 100,000 messages in one thread, written in one transaction.
fn add_messages(profile: &Profile, thread: &str) {
    profile
        .db()
        .write(|tx| {
            for i in 0..100_000i64 {
                let message = NewMessage {
                    id: Some(Id::generate()),
                    thread_id: thread.to_owned(),
                    parent_id: None,
                    role: if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    content: format!("message number {i} with some words in it"),
                    tokens: None,
                    created_at: Some(Timestamp(1_700_000_000_000 + i / 3)),
                    metadata: Metadata::default(),
                };
                insert(tx, message, 1_700_000_000_000)?;
            }
            Ok(())
        })
        .unwrap();
}

fn latest_messages(c: &mut Criterion) {
    if !selected("list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (handle, thread) = prepared(dir.path(), |profile| {
        let thread = thread_id(profile);
        add_messages(profile, &thread);
        thread
    });
    let op = CString::new("messages.list").unwrap();
    let request = CString::new(
        serde_json::json!({"thread_id": thread, "order": "desc", "limit": 50}).to_string(),
    )
    .unwrap();
    println!(
        "messages.list latest 50 of 100,000: median {:?} (target < 2 ms)",
        median(31, 20, || call(handle, &op, &request))
    );
    let mut group = c.benchmark_group("messages.list");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    group.bench_function("latest 50 of 100k (hydra_call)", |b| {
        b.iter(|| call(handle, &op, &request))
    });
    group.finish();
}

/// A deterministic pseudo-random vector.
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// `n` memories with `dim`-dimensional embeddings of model `bench`.
fn add_memories(profile: &Profile, n: u64, dim: usize) {
    profile
        .db()
        .write(|tx| {
            use hydra_core::db::ConnExt;

            for i in 0..n {
                let seq: i64 = tx.query_i64(
                    "INSERT INTO memories (id, scope, value, strength, created_at, updated_at)
                     VALUES (?1, 'user', ?2, 1.0, 1, 1) RETURNING seq",
                    rusqlite::params![format!("m{i}"), format!("memory {i}")],
                )?;
                let blob: Vec<u8> = vector(i, dim).iter().flat_map(|x| x.to_le_bytes()).collect();
                tx.run(
                    "INSERT INTO memory_embeddings (memory_seq, model, dim, vector) VALUES (?1, 'bench', ?2, ?3)",
                    rusqlite::params![seq, dim as i64, blob],
                )?;
            }
            Ok(())
        })
        .unwrap();
}

fn memory_search(c: &mut Criterion) {
    if !selected("search") {
        return;
    }
    const N: u64 = 100_000;
    const DIM: usize = 384;
    let dir = tempfile::tempdir().unwrap();
    let (handle, ()) = prepared(dir.path(), |profile| add_memories(profile, N, DIM));
    let op = CString::new("memory.search").unwrap();
    let request = CString::new(
        serde_json::json!({"embedding": {"model": "bench", "vector": vector(N + 1, DIM)}, "limit": 20})
            .to_string(),
    )
    .unwrap();
    let first = Instant::now();
    call(handle, &op, &request);
    println!(
        "memory.search first call (loads the vectors): {:?}",
        first.elapsed()
    );
    println!(
        "memory.search 100,000 x 384: median {:?} (target < 25 ms)",
        median(21, 3, || call(handle, &op, &request))
    );
    let mut group = c.benchmark_group("memory.search");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("embedding 100k x 384 (hydra_call)", |b| {
        b.iter(|| call(handle, &op, &request))
    });
    group.finish();
}

fn chat_with_reply(c: &mut Criterion) {
    if !selected("chat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (handle, thread) = prepared(dir.path(), thread_id);
    let op = CString::new("chat").unwrap();
    let request = CString::new(
        serde_json::json!({"thread_id": thread, "message": "what is on this page?", "reply": "a recipe for bread"})
            .to_string(),
    )
    .unwrap();
    println!(
        "chat with reply: median {:?} (target < 200 µs)",
        median(21, 100, || call(handle, &op, &request))
    );
    let mut group = c.benchmark_group("chat");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    group.bench_function("with reply (hydra_call)", |b| {
        b.iter(|| call(handle, &op, &request))
    });
    group.finish();
}

criterion_group!(
    benches,
    append_vs_raw_insert,
    latest_messages,
    memory_search,
    chat_with_reply
);
criterion_main!(benches);
