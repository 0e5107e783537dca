//! A process killed with SIGKILL while it records visits from several
//! threads, purges a host and searches (so the in-memory index is being fed
//! and the background builder may be running): the profile reopens, every
//! acknowledged visit is there, every acknowledged purge has held, and
//! searches are exact against a brute-force scan whatever the index state.
//! Guards against acknowledged-but-uncommitted group commits, and against
//! an index state that a crash could make disagree with the table.
//!
//! The child is this same test binary, re-executed with `--exact` and an
//! environment variable naming the profile directory.

mod common;
use common::polling;

use common::call;
use hydra_core::db::text_match::fold_case;
use hydra_core::db::ConnExt;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "HYDRA_HISTORY_CRASH_CHILD_DIR";
const TEST_NAME: &str = "acknowledged_visits_survive_sigkill_and_searches_stay_exact";
const HOSTS: &[&str] = &["alpha.example", "beta.example", "gone.example"];

fn child(dir: &Path) -> ! {
    let profile = Profile::open(OpenOptions::new(dir)).unwrap();
    let log = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("acked"))
            .unwrap(),
    );
    // Purges finished so far: a batch logs the count it saw before its
    // call, so a purge that ran between its commit and its log line (and
    // took its gone.example rows) is still seen as later than it, and so is
    // one the kill cut off after its commit.
    let purges = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for thread in 0..3u64 {
            let (profile, log, purges) = (&profile, &log, &purges);
            s.spawn(move || {
                for round in 0u64.. {
                    let purges_before = purges.load(std::sync::atomic::Ordering::SeqCst);
                    let visits: Vec<_> = (0..200u64)
                        .map(|i| {
                            let host = HOSTS[((i + round) % 3) as usize];
                            json!({"url": format!("https://{host}/t{thread}/r{round}/{i}"),
                                   "title": format!("Page {i} of round {round} Ünïcode"),
                                   "visited_at": round * 1000 + i})
                        })
                        .collect();
                    let r =
                        call(profile, "visits.record_batch", json!({ "visits": visits })).unwrap();
                    // `id:host` (the host's index in HOSTS).
                    let ids: Vec<String> = r["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .zip(0u64..)
                        .map(|(v, i)| format!("{v}:{}", (i + round) % 3))
                        .collect();
                    writeln!(log.lock().unwrap(), "ids {purges_before} {}", ids.join(" ")).unwrap();
                    if thread == 0 && round % 4 == 3 {
                        // Logged before: the kill may come after the purge's
                        // commit but before "purged".
                        writeln!(log.lock().unwrap(), "purging").unwrap();
                        call(profile, "history.purge", json!({"host": "gone.example"})).unwrap();
                        writeln!(log.lock().unwrap(), "purged").unwrap();
                        purges.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    call(
                        profile,
                        "history.list",
                        json!({"query": format!("round {round} ü")}),
                    )
                    .unwrap();
                    if thread == 0 && round == 5 {
                        std::fs::write(dir.join("started"), b"").unwrap();
                    }
                }
            });
        }
    });
    std::process::exit(3);
}

fn brute_force(profile: &Profile, q: &str) -> Vec<i64> {
    let folded = fold_case(q).into_owned();
    let mut rows: Vec<(i64, String, Option<String>, i64)> = profile
        .db()
        .read(|c| {
            c.query_all("SELECT id, url, title, visited_at FROM history", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
        })
        .unwrap();
    rows.retain(|(_, url, title, _)| {
        fold_case(url).contains(&folded)
            || title
                .as_deref()
                .is_some_and(|t| fold_case(t).contains(&folded))
    });
    rows.sort_by_key(|r| std::cmp::Reverse((r.3, r.0)));
    rows.into_iter().take(1000).map(|r| r.0).collect()
}

fn listed(profile: &Profile, q: &str) -> Vec<i64> {
    call(profile, "history.list", json!({"query": q, "limit": 1000})).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn acknowledged_visits_survive_sigkill_and_searches_stay_exact() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.path().join("started").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child ended early: {status}");
        }
        assert!(Instant::now() < deadline, "child never got going");
        polling::pause();
    }
    // Kill mid-stream: once a few more batches were acknowledged.
    let acked = || {
        std::fs::read_to_string(dir.path().join("acked"))
            .map(|log| log.lines().filter(|l| l.starts_with("ids ")).count())
            .unwrap_or(0)
    };
    let at_start = acked();
    polling::until_true(Duration::from_secs(60), "more acknowledged batches", || {
        acked() >= at_start + 6
    });
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    let opened = Instant::now();
    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "open after a kill"
    );

    // Every acknowledged id is stored; gone.example rows acknowledged before
    // the last acknowledged purge are not.
    let log = std::fs::read_to_string(dir.path().join("acked")).unwrap();
    // A line the kill cut short is not an acknowledgement.
    let lines: Vec<&str> = match log.rfind('\n') {
        Some(end) => log[..end].lines().collect(),
        None => Vec::new(),
    };
    let stored = |id: i64| {
        profile
            .db()
            .read(|c| {
                c.query_opt("SELECT host FROM history WHERE id = ?1", [id], |r| {
                    r.get::<_, String>(0)
                })
            })
            .unwrap()
    };
    // Purges started (a started one may have committed before the kill).
    let purges = lines.iter().filter(|l| **l == "purging").count() as u64;
    let mut checked = 0;
    for line in &lines {
        let Some(logged) = line.strip_prefix("ids ") else {
            continue;
        };
        let mut fields = logged.split(' ');
        let purges_before: u64 = fields.next().unwrap().parse().unwrap();
        for (id, host) in fields.filter_map(|s| s.split_once(':')) {
            let id: i64 = id.parse().unwrap();
            match stored(id) {
                Some(_) => {}
                // Only a purge of its host that had not finished when the
                // batch began may have taken it.
                None => assert!(
                    HOSTS[host.parse::<usize>().unwrap()] == "gone.example"
                        && purges > purges_before,
                    "acknowledged visit {id} lost (host {host}, {purges} purges started, \
                     {purges_before} finished before its batch)"
                ),
            }
            checked += 1;
        }
    }
    assert!(checked >= 1200, "the child acknowledged {checked} visits");

    // Searches are exact with the index empty, partly built and caught up.
    let index = profile.history_text_index();
    let queries = ["ÜNÏCODE", "round 3 ", "beta.example/t1", "gone", "page 19"];
    index.hold_at(Some(0));
    for q in queries {
        assert_eq!(
            listed(&profile, q),
            brute_force(&profile, q),
            "empty index, {q}"
        );
    }
    let max = profile
        .db()
        .read(|c| c.query_i64("SELECT max(id) FROM history", []))
        .unwrap();
    index.hold_at(Some(max / 2));
    for q in queries {
        assert_eq!(
            listed(&profile, q),
            brute_force(&profile, q),
            "partial index, {q}"
        );
    }
    index.hold_at(None);
    for q in queries {
        assert_eq!(
            listed(&profile, q),
            brute_force(&profile, q),
            "caught up, {q}"
        );
    }
    profile.close(CloseOptions::default()).unwrap();
}
