//! Guards what a user relies on when an agent patches their tree: the
//! change is measured by the library (not by the agent), checked against
//! the budgets and `expected_sha256` preconditions before anything is
//! written, applied whole or not at all, touching only the patched paths,
//! keeping file modes, and one patch at a time per repo.

mod common;
mod repo_support;

use repo_support::{sha256_hex, RepoFixture};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn mode(f: &RepoFixture, rel: &str) -> u32 {
    std::fs::metadata(f.root.join(rel))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn lines(n: usize, tag: &str) -> String {
    (0..n).map(|i| format!("{tag} line {i}\n")).collect()
}

#[test]
fn propose_measures_and_apply_changes_exactly_the_patched_paths() {
    let f = RepoFixture::new();
    f.write("keep.txt", "untouched\n");
    f.write("src/lib.rs", &lines(10, "old"));
    f.write("old/gone.txt", "a\nb\nc\n");
    let mut new_lib = lines(10, "old");
    new_lib = new_lib.replace("old line 3\n", "new line 3\n") + "appended\n";
    let files = json!([
        {"path": "src/lib.rs", "content": new_lib},
        {"path": "old/gone.txt", "delete": true},
        {"path": "deep/er/new.md", "content": "# hi\n"},
    ]);
    let before = f.snapshot();
    let proposed = f.t.ok(
        "repo.propose_patch",
        json!({"id": "r", "files": files.clone()}),
    );
    assert_eq!(f.snapshot(), before, "propose wrote something");
    assert_eq!(proposed["accepted"], true);
    assert_eq!(
        proposed["files"],
        json!([
            {"path": "src/lib.rs", "action": "modify", "additions": 2, "deletions": 1, "bytes": new_lib.len()},
            {"path": "old/gone.txt", "action": "delete", "additions": 0, "deletions": 3, "bytes": 0},
            {"path": "deep/er/new.md", "action": "create", "additions": 1, "deletions": 0, "bytes": 5},
        ])
    );
    assert_eq!(
        proposed["budget"],
        json!({"files": 3, "lines": 7, "bytes": new_lib.len() + 5,
               "max_files": 50, "max_lines": 4000, "max_bytes": 4194304})
    );

    let applied = f.t.ok(
        "repo.apply_patch",
        json!({"id": "r", "files": files, "summary": "refactor"}),
    );
    assert_eq!(applied["job_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        applied["files"],
        json!([{"path": "src/lib.rs", "action": "modify"},
               {"path": "old/gone.txt", "action": "delete"},
               {"path": "deep/er/new.md", "action": "create"}])
    );
    assert_eq!(
        applied["change_stats"],
        json!({"files": 3, "additions": 3, "deletions": 4, "lines": 7, "bytes": new_lib.len() + 5})
    );
    assert_eq!(f.read("src/lib.rs").unwrap(), new_lib);
    assert_eq!(f.read("deep/er/new.md").unwrap(), "# hi\n");
    assert_eq!(f.read("old/gone.txt"), None);

    // Exactly the patched paths changed (plus the two new directories).
    let after = f.snapshot();
    let mut changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    changed.sort();
    changed.dedup();
    assert_eq!(
        changed,
        vec![
            "root/deep",
            "root/deep/er",
            "root/deep/er/new.md",
            "root/old/gone.txt",
            "root/src/lib.rs"
        ]
    );

    let change = &f.t.ok("repo.changes", json!({"id": "r"}))["items"][0];
    assert_eq!(change["id"], applied["change_id"]);
    assert_eq!(change["job_id"], applied["job_id"]);
    assert_eq!(change["summary"], "refactor");
    assert_eq!(change["kind"], "apply_patch");
    assert_eq!(change["stats"], applied["change_stats"]);
}

#[test]
fn budgets_are_measured_from_the_real_change() {
    let f = RepoFixture::with(json!({"allowed_ops": ["write"],
                                    "budgets": {"max_files": 2, "max_lines": 10, "max_bytes": 4000}}));
    f.write("big.txt", &lines(100, "x"));
    // Rewriting one line of a 100-line file is 2 lines, however big the file.
    let one_line = lines(100, "x").replace("x line 50\n", "y line 50\n");
    let ok = f.t.ok(
        "repo.propose_patch",
        json!({"id": "r", "files": [{"path": "big.txt", "content": one_line}]}),
    );
    assert_eq!(ok["budget"]["lines"], 2);
    let before = f.snapshot();
    let over = |files: serde_json::Value, expect: (u64, u64, u64)| {
        for op in ["repo.propose_patch", "repo.apply_patch"] {
            let e = f.t.err(
                op,
                json!({"id": "r", "files": files.clone()}),
                "budget_exceeded",
            );
            let d = &e.details;
            assert_eq!(
                (
                    d["files"].as_u64().unwrap(),
                    d["lines"].as_u64().unwrap(),
                    d["bytes"].as_u64().unwrap()
                ),
                expect
            );
            assert_eq!(
                (
                    d["max_files"].clone(),
                    d["max_lines"].clone(),
                    d["max_bytes"].clone()
                ),
                (json!(2), json!(10), json!(4000))
            );
        }
    };
    // Deleting the file removes 100 lines.
    over(json!([{"path": "big.txt", "delete": true}]), (1, 100, 0));
    // Three files.
    over(
        json!([{"path": "a", "content": ""}, {"path": "b", "content": ""}, {"path": "c", "content": ""}]),
        (3, 0, 0),
    );
    // Bytes: one long line.
    over(
        json!([{"path": "long.txt", "content": "z".repeat(5000)}]),
        (1, 1, 5000),
    );
    // Self-reported counts are not even accepted.
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": "a", "content": "x", "lines": 0}]}),
        "invalid_argument",
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn expected_sha256_preconditions_give_conflict_with_nothing_written() {
    let f = RepoFixture::new();
    f.write("a.txt", "current\n");
    let good = sha256_hex(b"current\n");
    let wrong = sha256_hex(b"something else");
    let before = f.snapshot();
    let conflicts = [
        json!([{"path": "new.txt", "content": "n"}, {"path": "a.txt", "content": "x", "expected_sha256": wrong}]),
        json!([{"path": "a.txt", "content": "x", "expected_sha256": ""}]),
        json!([{"path": "missing.txt", "content": "x", "expected_sha256": good}]),
        json!([{"path": "missing.txt", "delete": true}]),
        json!([{"path": "a.txt", "delete": true, "expected_sha256": wrong}]),
    ];
    for files in conflicts {
        let e = f.t.err(
            "repo.propose_patch",
            json!({"id": "r", "files": files.clone()}),
            "conflict",
        );
        let e2 = f.t.err(
            "repo.apply_patch",
            json!({"id": "r", "files": files.clone()}),
            "conflict",
        );
        assert_eq!(e.details["index"], e2.details["index"]);
        assert_eq!(f.snapshot(), before, "{files}");
    }
    assert!(f.t.ok("repo.changes", json!({"id": "r"}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
    // The right hash (any case) and "" for a new file pass.
    f.t.ok(
        "repo.apply_patch",
        json!({"id": "r", "files": [
        {"path": "a.txt", "content": "next\n", "expected_sha256": good.to_uppercase()},
        {"path": "b.txt", "content": "b\n", "expected_sha256": ""}]}),
    );
    assert_eq!(f.read("a.txt").as_deref(), Some("next\n"));
    // Applying the same patch again now conflicts: the precondition is stale.
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [
        {"path": "a.txt", "content": "next\n", "expected_sha256": good}]}),
        "conflict",
    );
}

#[test]
fn existing_modes_are_kept_and_mode_sets_new_files() {
    let f = RepoFixture::new();
    f.write("run.sh", "#!/bin/sh\n");
    f.write("private.txt", "p\n");
    std::fs::set_permissions(
        f.root.join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        f.root.join("private.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    f.t.ok(
        "repo.apply_patch",
        json!({"id": "r", "files": [
        {"path": "run.sh", "content": "#!/bin/sh\necho hi\n"},
        {"path": "private.txt", "content": "q\n", "mode": 420},
        {"path": "new.sh", "content": "x", "mode": "0750"},
        {"path": "plain.txt", "content": "x"},
        {"path": "int.txt", "content": "x", "mode": 416}]}),
    );
    assert_eq!(mode(&f, "run.sh"), 0o755);
    assert_eq!(
        mode(&f, "private.txt"),
        0o600,
        "mode only applies to new files"
    );
    assert_eq!(mode(&f, "new.sh"), 0o750);
    assert_eq!(mode(&f, "plain.txt"), 0o644);
    assert_eq!(mode(&f, "int.txt"), 0o640);
}

#[test]
fn concurrent_patches_to_one_repo_run_one_at_a_time() {
    let f = RepoFixture::new();
    f.write("shared.txt", "v0\n");
    let base = sha256_hex(b"v0\n");
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let t = &f.t;
                let base = base.clone();
                s.spawn(move || {
                    t.call("repo.apply_patch", json!({"id": "r", "files": [
                        {"path": "shared.txt", "content": format!("v{}\n", i + 1), "expected_sha256": base},
                        {"path": format!("own{i}.txt"), "content": "x"}]}))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert_eq!(r.as_ref().unwrap_err().code.as_str(), "conflict");
    }
    let w = winners[0];
    assert_eq!(f.read("shared.txt").unwrap(), format!("v{}\n", w + 1));
    for i in 0..6 {
        assert_eq!(f.read(&format!("own{i}.txt")).is_some(), i == w, "own{i}");
    }
}

#[test]
fn no_staging_files_or_journal_are_left_behind() {
    let f = RepoFixture::new();
    f.write("a/x.txt", "1\n");
    f.t.ok("repo.apply_patch", json!({"id": "r", "files": [
        {"path": "a/x.txt", "content": "2\n"}, {"path": "a/y.txt", "content": "3\n"}, {"path": "z.txt", "content": "4\n"}]}));
    let names: Vec<String> = f.snapshot().keys().cloned().collect();
    assert!(names.iter().all(|n| !n.contains(".hydra-")), "{names:?}");
    let journal = f.t.profile.dir().join("repo-journal");
    assert!(std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0) == 0);
}

#[test]
fn setid_bits_are_dropped_and_owners_kept_where_possible() {
    use std::os::unix::fs::MetadataExt;
    let f = RepoFixture::new();
    f.write("tool", "#!/bin/sh\n");
    f.write("owned.txt", "o\n");
    std::fs::set_permissions(f.root.join("tool"), std::fs::Permissions::from_mode(0o6755)).unwrap();
    // Giving a file away needs privilege; when the tests run unprivileged,
    // the owner is ours before and after and the check below still holds.
    let given_away =
        std::os::unix::fs::chown(f.root.join("owned.txt"), Some(4321), Some(4321)).is_ok();
    let before = std::fs::metadata(f.root.join("owned.txt")).unwrap();
    f.t.ok(
        "repo.apply_patch",
        json!({"id": "r", "files": [
        {"path": "tool", "content": "#!/bin/sh\necho changed\n"},
        {"path": "owned.txt", "content": "p\n"}]}),
    );
    assert_eq!(mode(&f, "tool"), 0o755);
    let after = std::fs::metadata(f.root.join("owned.txt")).unwrap();
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    if given_away {
        assert_eq!(after.uid(), 4321);
    }
}

#[test]
fn an_apply_invalidates_the_overview_storage_cache_and_a_proposal_does_not() {
    let f = RepoFixture::new();
    let dir = f.t.profile.dir().to_owned();
    let patch = json!({"id": "r", "files": [{"path": "a.txt", "content": "x\n"}]});
    let epoch = hydra_core::profile::storage_epoch(&dir);
    f.t.ok("repo.propose_patch", patch.clone());
    assert_eq!(hydra_core::profile::storage_epoch(&dir), epoch);
    f.t.ok("repo.apply_patch", patch);
    assert!(hydra_core::profile::storage_epoch(&dir) > epoch);
}
