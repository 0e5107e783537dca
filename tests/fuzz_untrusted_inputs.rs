//! Deterministic fuzzing of every file the library reads from elsewhere:
//! bundle lines (`bundle.import`), browser history databases
//! (`history.import`) and patch paths (`repo.propose_patch` /
//! `repo.apply_patch`). Each target starts from valid seeds (built here or
//! committed in `tests/fuzz_corpus/`), mutates them with a seeded
//! generator, and requires a clean refusal: a damaged bundle is `corrupt`
//! or `invalid_argument` and imports nothing, a damaged history file is
//! imported as far as it reads or is `corrupt`, a hostile path is refused
//! by the path rule; never `internal`, never a panic, never a write
//! outside the repository. Runs in bounded time on stable Rust (the
//! iteration counts below); `HYDRA_FUZZ_SCALE=N` multiplies them.

mod browser_fixtures;
mod common;

use common::fuzz::Rng;
use common::TestProfile;
use serde_json::{json, Value};
use std::path::Path;

fn scale() -> u32 {
    std::env::var("HYDRA_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A bundle with every component, as `bundle.export` writes it.
fn seed_bundle(dir: &Path) -> Vec<u8> {
    let t = TestProfile::new();
    t.ok("threads.create", json!({"id": "th", "title": "T"}));
    for i in 0..3 {
        t.ok(
            "messages.append",
            json!({"thread_id": "th", "role": "user", "content": format!("m{i}")}),
        );
    }
    t.ok(
        "tasks.create",
        json!({"id": "k", "title": "K", "thread_id": "th"}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "mem", "value": "v", "scope": "global",
               "embedding": {"model": "m", "vector": [0.5, -1.0]}}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/", "visited_at": 5, "tab_id": "tab"}),
    );
    let folder = t.ok("bookmarks.create_folder", json!({"name": "F"}))["folder"]["id"].clone();
    t.ok(
        "bookmarks.add",
        json!({"url": "https://b.example/", "folder_id": folder, "tags": ["x"]}),
    );
    let path = dir.join("seed.hydra");
    t.ok("bundle.export", json!({"path": path, "wait": true}));
    std::fs::read(path).unwrap()
}

/// Line-level mutations of an NDJSON bundle: drop, repeat or swap lines,
/// or mutate one line's JSON or bytes.
fn mutate_bundle(rng: &mut Rng, bundle: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bundle).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let i = rng.below(lines.len() as u64) as usize;
    match rng.below(6) {
        0 => drop(lines.remove(i)),
        1 => lines.insert(i, lines[i].clone()),
        2 => {
            let j = rng.below(lines.len() as u64) as usize;
            lines.swap(i, j);
        }
        3 | 4 => {
            if let Ok(v) = serde_json::from_str::<Value>(&lines[i]) {
                lines[i] = rng.mutate_json(&v, true).to_string();
            }
        }
        _ => return rng.mutate_bytes(bundle),
    }
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

#[test]
fn damaged_bundles_are_refused_cleanly_and_import_nothing() {
    let work = tempfile::tempdir().unwrap();
    let seed = seed_bundle(work.path());
    let t = TestProfile::new();
    let path = work.path().join("fuzzed.hydra");
    // The seed imports (dry run), so refusals below are the mutations'.
    std::fs::write(&path, &seed).unwrap();
    t.ok(
        "bundle.import",
        json!({"path": path, "dry_run": true, "wait": true}),
    );
    let mut rng = Rng(0xB0D1E5);
    let (mut refused, mut accepted) = (0, 0);
    for i in 0..300 * scale() {
        let bytes = mutate_bundle(&mut rng, &seed);
        std::fs::write(&path, &bytes).unwrap();
        let dry_run = i % 4 != 0;
        match t.call(
            "bundle.import",
            json!({"path": path, "dry_run": dry_run, "wait": true}),
        ) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert!(
                    matches!(e.code.as_str(), "corrupt" | "invalid_argument"),
                    "mutation {i}: {e:?}\n{}",
                    String::from_utf8_lossy(&bytes)
                );
                refused += 1;
            }
        }
    }
    // A refused import wrote nothing: only accepted real imports may have
    // added the seed's records (and at most once each).
    let threads = t.ok("threads.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(threads <= 1, "{threads} threads");
    assert!(refused > 100, "{refused} refused, {accepted} accepted");
    eprintln!("fuzz bundles: {refused} refused, {accepted} accepted");
}

#[test]
fn damaged_history_files_import_what_reads_or_are_corrupt() {
    let work = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    for era in browser_fixtures::CHROME_ERAS {
        seeds.push((
            "chrome",
            std::fs::read(browser_fixtures::chrome_history(work.path(), era)).unwrap(),
        ));
    }
    for era in browser_fixtures::FIREFOX_ERAS.iter().filter(|e| !e.wal) {
        let (path, conn) = browser_fixtures::firefox_places(work.path(), era);
        drop(conn);
        seeds.push(("firefox", std::fs::read(path).unwrap()));
    }
    let t = TestProfile::new();
    let target = work.path().join("History");
    let mut rng = Rng(0x415_7041);
    let mut outcomes = std::collections::BTreeMap::new();
    for i in 0..150 * scale() {
        let (browser, seed) = rng.pick(&seeds).clone();
        let bytes = match i % 5 {
            // Truncated at a page boundary or anywhere.
            0 => seed[..(rng.below(seed.len() as u64) as usize)
                & !(if rng.below(2) == 0 { 4095 } else { 0 })]
                .to_vec(),
            // Random bytes.
            1 => rng.bytes(8192),
            // A damaged page in the middle.
            _ => {
                let mut b = seed.clone();
                let page = 4096 * (1 + rng.below((b.len() / 4096).max(2) as u64 - 1) as usize);
                for _ in 0..1 + rng.below(32) {
                    let at = (page + rng.below(4096) as usize).min(b.len() - 1);
                    b[at] = rng.next() as u8;
                }
                b
            }
        };
        std::fs::write(&target, &bytes).unwrap();
        let code = match t.call(
            "history.import",
            json!({"browser": browser, "path": target, "wait": true}),
        ) {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                assert_eq!(e.code.as_str(), "corrupt", "case {i}: {e:?}");
                assert_eq!(e.details.get("field"), Some(&json!("path")), "case {i}");
                e.code.as_str().to_owned()
            }
        };
        *outcomes.entry(code).or_insert(0) += 1;
    }
    assert!(
        outcomes.get("corrupt").copied().unwrap_or(0) > 10,
        "{outcomes:?}"
    );
    // Every failed job is failed, none running or internal.
    let jobs = t.ok("jobs.list", json!({"status": ["running"]}));
    assert_eq!(jobs["items"], json!([]));
    eprintln!("fuzz history files: {outcomes:?}");
}

#[test]
fn hostile_patch_paths_are_refused_and_nothing_outside_the_root_changes() {
    let t = TestProfile::new();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), "keep").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    t.ok(
        "repo.register",
        json!({"id": "r", "root_path": root, "allowed_ops": ["read", "write"]}),
    );
    let pieces: Vec<&str> = include_str!("fuzz_corpus/patch_paths.txt")
        .lines()
        .collect();
    let mut rng = Rng(0x9A7B);
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..400 * scale() {
        let mut path = String::new();
        for k in 0..1 + rng.below(3) {
            if k > 0 {
                path.push(*rng.pick(&['/', '/', '\\', '\0']));
            }
            let piece = *rng.pick::<&str>(&pieces);
            path.push_str(piece);
        }
        if rng.below(6) == 0 {
            path = rng.hostile_string();
        }
        let op = if i % 3 == 0 {
            "repo.apply_patch"
        } else {
            "repo.propose_patch"
        };
        let request = json!({"id": "r", "files": [{"path": path, "content": "fuzz\n"}]});
        let code = match t.call(op, request) {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                assert!(
                    matches!(
                        e.code.as_str(),
                        "path_escape"
                            | "forbidden"
                            | "invalid_argument"
                            | "conflict"
                            | "budget_exceeded"
                    ),
                    "{op} {path:?}: {e:?}"
                );
                e.code.as_str().to_owned()
            }
        };
        *codes.entry(code).or_insert(0) += 1;
    }
    // Nothing outside the root was written or followed into.
    let outside_files: Vec<_> = walkdir::WalkDir::new(&outside)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(outside_files, ["keep.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("keep.txt")).unwrap(),
        "keep"
    );
    assert!(
        codes.get("path_escape").copied().unwrap_or(0) > 10,
        "{codes:?}"
    );
    eprintln!("fuzz patch paths: {codes:?}");
}
