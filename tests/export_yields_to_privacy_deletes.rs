//! A privacy delete wins over a running export: an export whose snapshot
//! predates a delete that commits while it runs never writes the deleted
//! rows into its bundle; it drops its snapshot and partial file, starts
//! again, and its result says so (`restarts`). And nothing is left behind:
//! the temporary files of a failed or killed export or patch apply
//! (`.hydra-tmp-*`) are gone when the job fails and after the next open.

mod common;
use common::polling;
use common::TestProfile;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "narwhal-lantern-4471";

fn temp_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".hydra-tmp-"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn an_export_overlapping_a_purge_restarts_and_never_writes_the_purged_rows() {
    let t = TestProfile::new();
    let visits = 40_000;
    for start in (0..visits).step_by(10_000) {
        let batch: Vec<Value> = (start..start + 10_000)
            .map(|i| json!({"url": format!("https://keep{}.example/{i}", i % 50), "title": format!("Kept page {i}"), "visited_at": i}))
            .collect();
        t.ok("visits.record_batch", json!({"visits": batch}));
    }
    // Recorded last, so written last: the export is certainly still running
    // (and has written most of its history) when the purge commits.
    t.ok(
        "visits.record",
        json!({"url": format!("https://gone.example/{SECRET}"), "title": SECRET, "visited_at": visits + 1}),
    );
    let path = t.dir.path().join("bundles").join("overlap.hydra");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let job = t.ok("bundle.export", json!({"path": path}))["job_id"].clone();

    // Wait until the export has written some history (the only records).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = t.ok("jobs.get", json!({"id": job}))["job"].clone();
        assert_ne!(
            status["status"], "succeeded",
            "the export finished before the purge: make it bigger"
        );
        if status["progress"]["steps_completed"].as_u64().unwrap_or(0) >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the export never reached history"
        );
        polling::pause();
    }
    let started = Instant::now();
    let purged = t.ok("history.purge", json!({"host": "gone.example"}));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(purged["deleted_count"], 1);
    assert_eq!(purged["erased"], true);

    let done = t.ok("jobs.wait", json!({"id": job, "timeout_ms": 120_000}))["job"].clone();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["result"]["restarts"].as_u64().unwrap() >= 1,
        "the export must say it restarted: {}",
        done["result"]
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the purged visit was exported"
    );
    assert_eq!(
        done["result"]["manifest"]["components"]["browser_history"]["count"],
        visits
    );
    assert!(temp_files(path.parent().unwrap()).is_empty());
}

#[test]
fn a_failed_export_leaves_no_temp_file() {
    let t = TestProfile::new();
    t.ok("visits.record", json!({"url": "https://a.example/"}));
    let bundles = t.dir.path().join("bundles");
    // The target is a non-empty directory: the final rename fails.
    let blocker = bundles.join("blocked.hydra");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    let err = t
        .call("bundle.export", json!({"path": blocker, "wait": true}))
        .unwrap_err();
    assert_eq!(err.code.as_str(), "io", "{err:?}");
    assert_eq!(temp_files(&bundles), Vec::<String>::new());
}

#[test]
fn leftover_temp_files_are_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    Profile::open(OpenOptions::new(dir.path()))
        .unwrap()
        .close(CloseOptions::default())
        .unwrap();
    // What a kill during an export or a journal write leaves behind.
    let bundles = dir.path().join("bundles");
    let journal = dir.path().join("repo-journal");
    for folder in [&bundles, &journal] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join(".hydra-tmp-Ab12Cd"), SECRET).unwrap();
    }
    std::fs::write(bundles.join("mine.hydra"), "the user's bundle").unwrap();

    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    assert!(temp_files(&bundles).is_empty());
    assert!(temp_files(&journal).is_empty());
    assert!(bundles.join("mine.hydra").exists(), "only temp files go");
    profile.close(CloseOptions::default()).unwrap();
}
