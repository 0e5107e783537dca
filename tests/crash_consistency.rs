//! A SIGKILL at any instant leaves a profile that opens, is consistent, and
//! holds every write the library acknowledged (redb's `crash_consistency`
//! style). A child process (this test binary, re-executed with
//! `HYDRA_CRASH_CHILD` set) runs a random mix of writes across every domain
//! (visits, visit batches, threads and messages, tasks, memories with
//! vectors, history purges (of a host and of everything), thread deletes, bundle export and import,
//! history import, patch applies, jobs left queued) and prints one line on
//! its stdout pipe for each call that returned. The parent kills it at a
//! random moment, reopens the profile and checks:
//!
//! - `PRAGMA integrity_check` and `foreign_key_check` pass;
//! - every acknowledged write is there (and every acknowledged delete is
//!   gone);
//! - no patch is half-applied and the change ledger agrees with the tree
//!   (every file a patch created has its `repo_changes` row and back);
//! - no job is `running`;
//! - no staging file, backup or journal of an apply is left, and no
//!   temporary file of an atomic write (`.hydra-tmp-*`) either.
//!
//! The same profile lives through every kill, so damage would accumulate.
//! The test command runs [`DEFAULT_KILLS`] kills; `scripts/crash --kills N`
//! (or `HYDRA_CRASH_KILLS=N`) any number; `HYDRA_CRASH_SEED` replays a run.

mod browser_fixtures;
mod common;
use common::polling;

use common::fuzz::Rng;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "HYDRA_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_at_random_moments_loses_no_acknowledged_write";
const DEFAULT_KILLS: usize = 50;

/// One acknowledged call, as the child reports it.
fn ack(out: &mut impl Write, record: Value) {
    writeln!(out, "{record}").unwrap();
    out.flush().unwrap();
}

fn call(p: &Profile, op: &str, request: Value) -> Value {
    common::call(p, op, request.clone()).unwrap_or_else(|e| panic!("{op} {request}: {e:?}"))
}

/// The child: opens the profile and writes until it is killed.
fn child(base: &Path, run: u64) -> ! {
    let profile = Profile::open(OpenOptions::new(base.join("profile"))).unwrap();
    let mut out = std::io::stdout().lock();
    ack(&mut out, json!({"kind": "opened"}));
    let mut rng = Rng(run.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let p = &profile;
    for n in 0.. {
        let tag = format!("r{run}n{n}");
        match rng.below(14) {
            0 | 1 => {
                let url = format!("https://keep.example/{tag}");
                call(
                    p,
                    "visits.record",
                    json!({"url": url, "visited_at": 1_000 + n}),
                );
                ack(&mut out, json!({"kind": "visit", "url": url}));
            }
            2 => {
                let urls: Vec<String> = (0..5)
                    .map(|i| format!("https://keep.example/{tag}/b{i}"))
                    .collect();
                let visits: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
                call(p, "visits.record_batch", json!({"visits": visits}));
                for url in urls {
                    ack(&mut out, json!({"kind": "visit", "url": url}));
                }
            }
            3 => {
                let thread =
                    call(p, "threads.create", json!({"title": tag}))["thread"]["id"].clone();
                ack(&mut out, json!({"kind": "thread", "id": thread}));
                for i in 0..3 {
                    let m = call(
                        p,
                        "messages.append",
                        json!({"thread_id": thread, "role": "user", "content": format!("{tag} m{i}")}),
                    );
                    ack(
                        &mut out,
                        json!({"kind": "message", "id": m["message"]["id"], "thread_id": thread}),
                    );
                }
            }
            4 => {
                let task = call(p, "tasks.create", json!({"title": tag}))["task"]["id"].clone();
                ack(&mut out, json!({"kind": "task", "id": task}));
            }
            5 => {
                let vector: Vec<f64> = (0..8).map(|i| ((n + i) % 7) as f64 - 3.0).collect();
                let m = call(
                    p,
                    "memory.upsert",
                    json!({"value": tag, "scope": "global",
                           "embedding": {"model": "crash", "vector": vector}}),
                );
                ack(&mut out, json!({"kind": "memory", "id": m["memory"]["id"]}));
            }
            6 => {
                let host = format!("purge-{tag}.example");
                for i in 0..3 {
                    call(
                        p,
                        "visits.record",
                        json!({"url": format!("https://{host}/{i}"), "title": "secret"}),
                    );
                }
                call(p, "history.purge", json!({"host": host}));
                ack(&mut out, json!({"kind": "purged", "host": host}));
            }
            7 => {
                let thread =
                    call(p, "threads.create", json!({"title": "doomed"}))["thread"]["id"].clone();
                call(
                    p,
                    "messages.append",
                    json!({"thread_id": thread, "role": "user", "content": "private words"}),
                );
                call(
                    p,
                    "memory.upsert",
                    json!({"value": "private", "scope": "thread", "scope_ref": thread,
                           "thread_id": thread}),
                );
                call(p, "threads.delete", json!({"id": thread}));
                ack(&mut out, json!({"kind": "thread_deleted", "id": thread}));
            }
            8 => {
                let r = call(
                    p,
                    "bundle.export",
                    json!({"components": ["threads", "tasks"], "wait": true}),
                );
                ack(&mut out, json!({"kind": "bundle", "path": r["path"]}));
            }
            9 => {
                let r = call(
                    p,
                    "bundle.import",
                    json!({"path": base.join("seed.hydra"), "wait": true}),
                );
                assert!(r["job_id"].is_string());
                ack(&mut out, json!({"kind": "bundle_imported"}));
            }
            10 => {
                let r = call(
                    p,
                    "history.import",
                    json!({"browser": "chrome", "path": base.join("History"), "wait": true}),
                );
                assert!(r["job_id"].is_string());
                ack(&mut out, json!({"kind": "history_imported"}));
            }
            11 => {
                let path = format!("n/{tag}.txt");
                let r = call(
                    p,
                    "repo.apply_patch",
                    json!({"id": "r", "files": [
                        {"path": path, "content": format!("{tag}\n")},
                        {"path": "counter.txt", "content": format!("{tag}\n").repeat(50)}]}),
                );
                ack(
                    &mut out,
                    json!({"kind": "patch", "path": path, "change_id": r["change_id"]}),
                );
            }
            12 => {
                // Frees every history page at once, zeroed in place after
                // the commit (src/db/free_pages.rs): a kill between the
                // two is finished by the next open. Visits acknowledged
                // before this line may be gone.
                ack(&mut out, json!({"kind": "purging_all"}));
                call(p, "history.purge", json!({"all": true}));
            }
            _ => {
                // Left queued or running for the kill: recovery must end it.
                let r = call(p, "bundle.export", json!({"components": ["tasks"]}));
                ack(&mut out, json!({"kind": "job", "id": r["job_id"]}));
            }
        }
    }
    unreachable!()
}

/// What the parent knows the profile must hold.
#[derive(Default)]
struct Model {
    visits: BTreeSet<String>,
    threads: BTreeSet<String>,
    messages: Vec<(String, String)>,
    tasks: BTreeSet<String>,
    memories: BTreeSet<String>,
    purged_hosts: BTreeSet<String>,
    deleted_threads: BTreeSet<String>,
    bundles: BTreeSet<String>,
    patched: BTreeSet<String>,
    jobs: BTreeSet<String>,
    imported_bundle: bool,
    imported_history: bool,
}

impl Model {
    fn learn(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            panic!("unreadable ack line {line:?}");
        };
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        match v["kind"].as_str().unwrap() {
            "opened" => {}
            "visit" => drop(self.visits.insert(s("url"))),
            "thread" => drop(self.threads.insert(s("id"))),
            "message" => self.messages.push((s("thread_id"), s("id"))),
            "task" => drop(self.tasks.insert(s("id"))),
            "memory" => drop(self.memories.insert(s("id"))),
            "purged" => drop(self.purged_hosts.insert(s("host"))),
            "purging_all" => {
                self.visits.clear();
                self.imported_history = false;
            }
            "thread_deleted" => drop(self.deleted_threads.insert(s("id"))),
            "bundle" => drop(self.bundles.insert(s("path"))),
            "patch" => drop(self.patched.insert(s("path"))),
            "job" => drop(self.jobs.insert(s("id"))),
            "bundle_imported" => self.imported_bundle = true,
            "history_imported" => self.imported_history = true,
            other => panic!("unknown ack {other}"),
        }
    }
}

/// Acks of one run: a new model holding only them, checked right after the
/// kill; merged into the whole run's model for the final check.
///
/// Queued jobs start on this process's workers right after the open, so a
/// job `running` now must have started after `opened_at`: none may still
/// be running from before the kill.
fn check(p: &Profile, m: &Model, root: &Path, opened_at: i64, ctx: &str) {
    let running = call(p, "jobs.list", json!({"status": ["running"], "limit": 500}));
    for job in running["items"].as_array().unwrap() {
        let started = job["started_at"].as_i64().unwrap();
        assert!(
            started >= opened_at,
            "{ctx}: job left running by the crash: {job}"
        );
    }
    let urls: Vec<&String> = m.visits.iter().collect();
    for chunk in urls.chunks(500) {
        let visited = call(p, "history.visited", json!({"urls": chunk}))["visited"].clone();
        for (url, seen) in chunk.iter().zip(visited.as_array().unwrap()) {
            assert_eq!(seen, &json!(true), "{ctx}: acknowledged visit {url} lost");
        }
    }
    for host in &m.purged_hosts {
        let left = call(p, "history.list", json!({"host": host}))["items"].clone();
        assert_eq!(left, json!([]), "{ctx}: purged host {host} has visits");
    }
    for id in &m.threads {
        call(p, "threads.get", json!({"id": id}));
    }
    for (thread, id) in &m.messages {
        let page = call(
            p,
            "messages.list",
            json!({"thread_id": thread, "limit": 500}),
        );
        let ids: Vec<&Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| &x["id"])
            .collect();
        assert!(ids.contains(&&json!(id)), "{ctx}: message {id} lost");
    }
    for id in &m.tasks {
        call(p, "tasks.get", json!({"id": id}));
    }
    for id in &m.memories {
        let memory = call(p, "memory.get", json!({"id": id}))["memory"].clone();
        assert_eq!(
            memory["embedding"]["model"],
            json!("crash"),
            "{ctx}: {memory}"
        );
    }
    for id in &m.deleted_threads {
        let e = common::call(p, "threads.get", json!({"id": id})).unwrap_err();
        assert_eq!(
            e.code.as_str(),
            "not_found",
            "{ctx}: deleted thread {id} is back"
        );
    }
    for path in &m.bundles {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let manifest: Value = serde_json::from_str(text.lines().next().unwrap_or("")).unwrap();
        assert_eq!(manifest["format"], json!("hydra-bundle"), "{ctx}: {path}");
    }
    if m.imported_bundle {
        call(p, "threads.get", json!({"id": "bundled-thread"}));
    }
    if m.imported_history {
        let visited = call(
            p,
            "history.visited",
            json!({"urls": ["https://example.com/start", "http://example.com/old"]}),
        );
        assert_eq!(visited["visited"], json!([true, true]), "{ctx}");
    }
    for id in &m.jobs {
        let job = call(p, "jobs.get", json!({"id": id}))["job"].clone();
        if job["status"] == json!("running") {
            assert!(
                job["started_at"].as_i64().unwrap() >= opened_at,
                "{ctx}: {job}"
            );
        }
    }
    for path in &m.patched {
        assert!(root.join(path).is_file(), "{ctx}: patched {path} lost");
    }
    check_ledger_agrees_with_tree(p, root, ctx);
}

/// Every file a patch created is in the tree exactly when its change row
/// is in the ledger; nothing of an apply is left in the tree.
fn check_ledger_agrees_with_tree(p: &Profile, root: &Path, ctx: &str) {
    let mut in_ledger = BTreeSet::new();
    let mut cursor = Value::Null;
    loop {
        let page = call(
            p,
            "repo.changes",
            json!({"id": "r", "limit": 500, "cursor": cursor}),
        );
        for change in page["items"].as_array().unwrap() {
            for file in change["files"].as_array().unwrap() {
                if file["path"] != json!("counter.txt") {
                    in_ledger.insert(file["path"].as_str().unwrap().to_owned());
                }
            }
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let in_tree: BTreeSet<String> = std::fs::read_dir(root.join("n"))
        .map(|d| {
            d.map(|e| format!("n/{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        in_tree, in_ledger,
        "{ctx}: the change ledger disagrees with the tree"
    );
    let counter = std::fs::read_to_string(root.join("counter.txt")).unwrap();
    let first = counter.lines().next().unwrap_or("");
    assert!(
        counter == format!("{first}\n").repeat(50) || counter == "start\n",
        "{ctx}: counter.txt is half-applied"
    );
    if first != "start" {
        assert!(in_ledger.contains(&format!("n/{first}.txt")), "{ctx}");
    }
    let debris: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".hydra-"))
        .map(|e| e.path().to_owned())
        .collect();
    assert!(debris.is_empty(), "{ctx}: apply debris {debris:?}");
    let journals = std::fs::read_dir(p.dir().join("repo-journal"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(journals, 0, "{ctx}: a patch journal survived the open");
}

fn check_database_file(profile_dir: &Path, ctx: &str) {
    let conn = rusqlite::Connection::open(profile_dir.join("hydra.sqlite3")).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{ctx}");
    let fk_problems: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk_problems, 0, "{ctx}: foreign_key_check");
}

fn check_no_temp_files(profile_dir: &Path, prefix: &str, ctx: &str) {
    let temps: Vec<PathBuf> = walkdir::WalkDir::new(profile_dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path().to_owned())
        .collect();
    assert!(temps.is_empty(), "{ctx}: temp files left {temps:?}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The profile, its repo, the bundle and History file the child imports.
fn prepare(base: &Path) {
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("counter.txt"), "start\n").unwrap();
    let profile = Profile::open(OpenOptions::new(base.join("profile"))).unwrap();
    call(
        &profile,
        "repo.register",
        json!({"id": "r", "root_path": root, "allowed_ops": ["write"]}),
    );
    profile.close(CloseOptions::default()).unwrap();

    let other = tempfile::tempdir().unwrap();
    let source = Profile::open(OpenOptions::new(other.path())).unwrap();
    call(
        &source,
        "threads.create",
        json!({"id": "bundled-thread", "title": "b"}),
    );
    for i in 0..20 {
        call(
            &source,
            "messages.append",
            json!({"thread_id": "bundled-thread", "role": "user", "content": format!("b{i}")}),
        );
    }
    call(
        &source,
        "bundle.export",
        json!({"path": base.join("seed.hydra"), "wait": true}),
    );
    source.close(CloseOptions::default()).unwrap();
    let history =
        browser_fixtures::chrome_history(base, browser_fixtures::CHROME_ERAS.last().unwrap());
    std::fs::rename(history, base.join("History")).unwrap();
}

/// Runs one child until a random moment, SIGKILLs it, returns its acks.
fn run_and_kill(base: &Path, run: u64, rng: &mut Rng) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, base)
        .env("HYDRA_CRASH_RUN", run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        // Only complete lines count: a kill mid-line acknowledges nothing.
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') && line.starts_with('{') {
                lines.push(line.trim_end().to_owned());
            }
            line.clear();
        }
        lines
    });
    // Between 5 ms and 600 ms after the spawn: some kills land in the
    // open (migration, recovery), most mid-write.
    let delay = Duration::from_millis(5 + rng.below(600));
    let started = Instant::now();
    while started.elapsed() < delay {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("run {run}: the child died on its own ({status}): {err}");
        }
        polling::pause();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    if let Ok(base) = std::env::var(CHILD_ENV) {
        let run = std::env::var("HYDRA_CRASH_RUN").unwrap().parse().unwrap();
        child(Path::new(&base), run);
    }
    let kills: usize = std::env::var("HYDRA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var("HYDRA_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash_consistency: {kills} kills, HYDRA_CRASH_SEED={seed}");
    let base_dir = tempfile::tempdir().unwrap();
    let base = base_dir.path().canonicalize().unwrap();
    prepare(&base);
    let profile_dir = base.join("profile");
    let root = base.join("root");
    let mut rng = Rng(seed | 1);
    let mut all = Model::default();
    let mut acked = 0usize;
    let started = Instant::now();
    for kill in 0..kills {
        let run = rng.next();
        let lines = run_and_kill(&base, run, &mut rng);
        let ctx = format!("seed {seed}, kill {kill} (run {run})");
        let mut latest = Model::default();
        for line in &lines {
            latest.learn(line);
            all.learn(line);
        }
        acked += lines.len();
        let opened_at = now_ms();
        let p = Profile::open(OpenOptions::new(&profile_dir))
            .unwrap_or_else(|e| panic!("{ctx}: the profile does not open: {e:?}"));
        check(&p, &latest, &root, opened_at, &ctx);
        p.close(CloseOptions::default()).unwrap();
        // Checked bundles are the user's copies, not the profile's state:
        // removed so that long runs do not fill the disk.
        for entry in std::fs::read_dir(profile_dir.join("bundles"))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "hydra") {
                std::fs::remove_file(path).unwrap();
            }
        }
        all.bundles.clear();
        check_database_file(&profile_dir, &ctx);
        check_no_temp_files(&profile_dir, ".history-import-", &ctx);
        // The open zeroed what a cut-short `history.purge {all}` left.
        check_no_temp_files(&profile_dir, "hydra.sqlite3-free-pages", &ctx);
        if (kill + 1) % 100 == 0 {
            eprintln!(
                "crash_consistency: {} kills, {acked} acknowledged calls, {:.0}s",
                kill + 1,
                started.elapsed().as_secs_f64()
            );
        }
        check_no_temp_files(&profile_dir, ".hydra-tmp-", &ctx);
    }
    // Nothing acknowledged in an earlier run was lost by a later crash.
    let opened_at = now_ms();
    let p = Profile::open(OpenOptions::new(&profile_dir)).unwrap();
    check(&p, &all, &root, opened_at, &format!("seed {seed}, final"));
    p.close(CloseOptions::default()).unwrap();
    eprintln!(
        "crash_consistency: {kills} kills, {acked} acknowledged calls checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
