//! Guards the all-or-nothing promise of `repo.apply_patch` against the
//! worst moments: the process SIGKILLed between any two renames of a
//! 20-file apply or between the last swap and the ledger writes, a swap
//! that fails half-way, and a directory replaced by a symlink while the
//! renames run. After the next open every file must be all old or all new
//! (checked by hash), with no staging file, backup or journal left, nothing
//! outside the root touched, and the ledger agreeing with the tree: a
//! change that stands has its `repo_changes` row and a `succeeded` job
//! (marked `recovered` when the crash came before the job was recorded);
//! a rolled-back one has neither.
//!
//! The kill test re-runs this test binary as a child process (selected by
//! an environment variable) with a swap hook that stops at a given step;
//! the parent waits for the child to reach it and SIGKILLs it, for every
//! step of the apply.

mod common;
use common::polling;
mod repo_support;

use hydra_core::repo::journal::SWAP_HOOK;
use hydra_core::{ops, CloseOptions, OpenOptions, Profile};
use repo_support::{sha256_hex, RepoFixture};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "HYDRA_REPO_KILL_CHILD";
const KILL_TEST: &str = "sigkill_at_every_step_leaves_all_old_or_all_new";

/// 14 files modified, 3 deleted, 3 created.
const MODIFIED: usize = 14;
const DELETED: usize = 3;
const CREATED: usize = 3;
/// Hook calls: two per modify or create, one per delete, one after the last
/// swap; from that one on the change stands.
const SWAPS_DONE: usize = 2 * MODIFIED + DELETED + 2 * CREATED;
/// Then: the `applied` mark is durable, the change row is written, the job
/// is recorded (the journal is removed right after).
const STEPS: usize = SWAPS_DONE + 4;
const JOB_RECORDED: usize = STEPS - 1;

fn rel(i: usize) -> String {
    format!("d{}/f{i}.txt", i % 4)
}

fn old_content(i: usize) -> Option<String> {
    (i < MODIFIED + DELETED).then(|| format!("old {i}\n").repeat(20))
}

fn new_content(i: usize) -> Option<String> {
    (!(MODIFIED..MODIFIED + DELETED).contains(&i)).then(|| format!("new {i}\n").repeat(25))
}

fn patch() -> Value {
    let files: Vec<Value> = (0..MODIFIED + DELETED + CREATED)
        .map(|i| match new_content(i) {
            Some(c) => json!({"path": rel(i), "content": c}),
            None => json!({"path": rel(i), "delete": true}),
        })
        .collect();
    json!({"id": "r", "files": files})
}

/// Hash of each of the 20 paths (None = absent).
fn state(root: &Path) -> Vec<Option<String>> {
    (0..MODIFIED + DELETED + CREATED)
        .map(|i| {
            std::fs::read(root.join(rel(i)))
                .ok()
                .map(|b| sha256_hex(&b))
        })
        .collect()
}

fn expected(content: fn(usize) -> Option<String>) -> Vec<Option<String>> {
    (0..MODIFIED + DELETED + CREATED)
        .map(|i| content(i).map(|c| sha256_hex(c.as_bytes())))
        .collect()
}

fn leftovers(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hydra-"))
        .collect()
}

fn journal_count(profile_dir: &Path) -> usize {
    std::fs::read_dir(profile_dir.join("repo-journal"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The child: opens the profile, stops at step `HYDRA_REPO_STOP_STEP`
/// (signalling the parent through a marker file) and never returns.
fn child(profile_dir: &str) {
    fn stop_here(step: usize) {
        let stop: usize = std::env::var("HYDRA_REPO_STOP_STEP")
            .unwrap()
            .parse()
            .unwrap();
        if step == stop {
            std::fs::write(std::env::var("HYDRA_REPO_MARKER").unwrap(), b"here").unwrap();
            polling::park_forever();
        }
    }
    *SWAP_HOOK.write() = Some(stop_here);
    let profile = Profile::open(OpenOptions::new(profile_dir)).unwrap();
    let request = serde_json::to_vec(&patch()).unwrap();
    let result = ops::call_json(&profile, "repo.apply_patch", &request);
    // Reaching this line means the hook never stopped the apply.
    eprintln!("child finished the apply: {result:?}");
    std::process::exit(3);
}

fn prepare(base: &Path) -> (PathBuf, PathBuf) {
    let profile_dir = base.join("profile");
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..MODIFIED + DELETED + CREATED {
        if let Some(c) = old_content(i) {
            let p = root.join(rel(i));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
    }
    let p = Profile::open(OpenOptions::new(&profile_dir)).unwrap();
    common::call(
        &p,
        "repo.register",
        json!({"id": "r", "root_path": root, "allowed_ops": ["write"]}),
    )
    .unwrap();
    p.close(CloseOptions::default()).unwrap();
    (profile_dir, root)
}

fn kill_at(stop: usize) {
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().canonicalize().unwrap();
    let (profile_dir, root) = prepare(&base_path);
    let marker = base_path.join("marker");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([KILL_TEST, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, &profile_dir)
        .env("HYDRA_REPO_STOP_STEP", stop.to_string())
        .env("HYDRA_REPO_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("child exited ({status}) before step {stop}: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "child never reached step {stop}"
        );
        polling::pause();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        journal_count(&profile_dir),
        1,
        "step {stop}: the journal must survive the kill"
    );

    // The next open recovers.
    let p = Profile::open(OpenOptions::new(&profile_dir)).unwrap();
    let now = state(&root);
    let stands = stop >= SWAPS_DONE;
    let want = if stands {
        expected(new_content)
    } else {
        expected(old_content)
    };
    assert_eq!(now, want, "step {stop}: not all old / all new as expected");
    assert_eq!(leftovers(&root), Vec::<String>::new(), "step {stop}");
    assert_eq!(journal_count(&profile_dir), 0, "step {stop}");
    // Directories the apply created are gone after a rollback.
    if !stands {
        let dirs: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(dirs.len(), 4, "step {stop}: {dirs:?}");
    }
    // The ledger agrees with the tree.
    let jobs = common::call(&p, "jobs.list", json!({"type": ["repo_apply_patch"]})).unwrap();
    let job = jobs["items"][0].clone();
    let changes = common::call(&p, "repo.changes", json!({"id": "r"})).unwrap()["items"].clone();
    if stands {
        assert_eq!(job["status"], "succeeded", "step {stop}: {job}");
        // Recovery finished the job when the crash came before it was
        // recorded, and says so.
        let recovered = if stop < JOB_RECORDED {
            json!(true)
        } else {
            Value::Null
        };
        assert_eq!(job["result"]["recovered"], recovered, "step {stop}: {job}");
        assert_eq!(
            changes.as_array().unwrap().len(),
            1,
            "step {stop}: {changes}"
        );
        assert_eq!(changes[0]["job_id"], job["id"], "step {stop}");
        assert_eq!(changes[0]["id"], job["result"]["change_id"], "step {stop}");
        assert_eq!(
            changes[0]["files"].as_array().unwrap().len(),
            MODIFIED + DELETED + CREATED
        );
    } else {
        // The killed apply's job is marked interrupted; no change row.
        assert_eq!(job["status"], "failed", "step {stop}");
        assert_eq!(job["error"]["code"], "interrupted", "step {stop}");
        assert!(
            changes.as_array().unwrap().is_empty(),
            "step {stop}: {changes}"
        );
    }
    // And the profile works: the same patch now applies (or is a no-op
    // conflict-free rewrite when it was completed).
    if !stands {
        common::call(&p, "repo.apply_patch", patch()).unwrap();
        assert_eq!(state(&root), expected(new_content));
    }
    p.close(CloseOptions::default()).unwrap();
}

#[test]
fn sigkill_at_every_step_leaves_all_old_or_all_new() {
    if let Ok(profile_dir) = std::env::var(CHILD_ENV) {
        child(&profile_dir);
        return;
    }
    let _serial = HOOK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    for stop in 0..STEPS {
        kill_at(stop);
    }
}

/// Tests that set the process-wide swap hook run one at a time.
static HOOK_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A closure for the hook of this process (the hook itself is a `fn`).
type HookFn = Box<dyn Fn(usize) + Send + Sync>;
static HOOK_ACTION: std::sync::Mutex<Option<HookFn>> = std::sync::Mutex::new(None);

fn dispatch(step: usize) {
    if let Some(action) = HOOK_ACTION.lock().unwrap().as_ref() {
        action(step);
    }
}

fn with_hook<T>(action: impl Fn(usize) + Send + Sync + 'static, f: impl FnOnce() -> T) -> T {
    *HOOK_ACTION.lock().unwrap() = Some(Box::new(action));
    *SWAP_HOOK.write() = Some(dispatch);
    let out = f();
    *SWAP_HOOK.write() = None;
    *HOOK_ACTION.lock().unwrap() = None;
    out
}

#[test]
fn a_swap_failing_half_way_rolls_back_every_file() {
    let _serial = HOOK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let f = RepoFixture::with(json!({"allowed_ops": ["write"]}));
    for i in 0..10 {
        f.write(&format!("m{i}.txt"), &format!("old {i}\n"));
    }
    let mut files: Vec<Value> = (0..10)
        .map(|i| json!({"path": format!("m{i}.txt"), "content": format!("new {i}\n")}))
        .collect();
    files.push(json!({"path": "late/new.txt", "content": "mine\n"}));
    // Just before the last link (step 20), someone else creates the file.
    let intruder = f.root.join("late/new.txt");
    let before: BTreeMap<String, String> = f.snapshot();
    let result = with_hook(
        move |step| {
            if step == 20 {
                std::fs::write(&intruder, "theirs\n").unwrap();
            }
        },
        || {
            f.t.call("repo.apply_patch", json!({"id": "r", "files": files}))
        },
    );
    let e = result.unwrap_err();
    assert_eq!(e.code.as_str(), "conflict", "{e:?}");
    let mut after = f.snapshot();
    // Only the intruder's file (and its directory) differ; ours are all old.
    assert_eq!(f.read("late/new.txt").as_deref(), Some("theirs\n"));
    after.remove("root/late/new.txt");
    after.remove("root/late");
    assert_eq!(after, before);
    assert!(leftovers(&f.root).is_empty());
    assert!(f.t.ok("repo.changes", json!({"id": "r"}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_directory_swapped_for_a_symlink_mid_apply_cannot_redirect_writes() {
    let _serial = HOOK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let f = RepoFixture::with(json!({"allowed_ops": ["write"]}));
    f.write("sub/a.txt", "old\n");
    let outside_before = repo_support::snapshot(&f.outside);
    let (root, outside) = (f.root.clone(), f.outside.clone());
    let result = with_hook(
        move |step| {
            if step == 0 {
                std::fs::rename(root.join("sub"), root.join("sub_real")).unwrap();
                std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
            }
        },
        || {
            f.t.call(
                "repo.apply_patch",
                json!({"id": "r", "files": [{"path": "sub/a.txt", "content": "new\n"},
                                            {"path": "sub/b.txt", "content": "b\n"}]}),
            )
        },
    );
    // The writes went to the directory that was checked (now `sub_real`),
    // never through the link: nothing outside the root changed.
    result.unwrap();
    assert_eq!(repo_support::snapshot(&f.outside), outside_before);
    assert_eq!(f.read("sub_real/a.txt").as_deref(), Some("new\n"));
    assert_eq!(f.read("sub_real/b.txt").as_deref(), Some("b\n"));
    assert!(leftovers(&f.root).is_empty());
    assert_eq!(journal_count(f.t.profile.dir()), 0);
}

#[test]
fn a_file_edited_during_the_apply_is_a_conflict_not_overwritten() {
    let _serial = HOOK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let f = RepoFixture::with(json!({"allowed_ops": ["write"]}));
    for i in 0..6 {
        f.write(&format!("m{i}.txt"), &format!("old {i}\n"));
    }
    let files: Vec<Value> = (0..6)
        .map(|i| json!({"path": format!("m{i}.txt"), "content": format!("new {i}\n")}))
        .collect();
    let edited = f.root.join("m4.txt");
    // The user saves m4.txt after the patch was checked, during the swaps.
    let result = with_hook(
        move |step| {
            if step == 2 {
                std::fs::write(&edited, "user edit\n").unwrap();
            }
        },
        || {
            f.t.call("repo.apply_patch", json!({"id": "r", "files": files}))
        },
    );
    let e = result.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.details["index"].clone()),
        ("conflict", json!(4))
    );
    for i in 0..6 {
        let want = if i == 4 {
            "user edit\n".to_owned()
        } else {
            format!("old {i}\n")
        };
        assert_eq!(f.read(&format!("m{i}.txt")).unwrap(), want, "m{i}");
    }
    assert!(leftovers(&f.root).is_empty());
}

#[test]
fn a_journal_whose_root_is_gone_does_not_block_opening() {
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().canonicalize().unwrap();
    let (profile_dir, root) = prepare(&base_path);
    let journal_dir = profile_dir.join("repo-journal");
    std::fs::create_dir_all(&journal_dir).unwrap();
    let journal = json!({"format": "hydra-repo-journal-1", "root": root.join("vanished"),
                         "change_id": "x", "entries": [], "created_dirs": []});
    std::fs::write(journal_dir.join("x.json"), journal.to_string()).unwrap();
    let p = Profile::open(OpenOptions::new(&profile_dir)).unwrap();
    p.close(CloseOptions::default()).unwrap();
    // An unreadable journal is refused rather than guessed at.
    std::fs::write(journal_dir.join("y.json"), b"{not json").unwrap();
    let e = Profile::open(OpenOptions::new(&profile_dir)).err().unwrap();
    assert_eq!(e.code().as_str(), "corrupt");
}

#[test]
fn jobs_cancel_during_an_apply_rolls_it_back() {
    let _serial = HOOK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let f = RepoFixture::with(json!({"allowed_ops": ["write"]}));
    for i in 0..4 {
        f.write(&format!("m{i}.txt"), &format!("old {i}\n"));
    }
    let before = f.snapshot();
    let files: Vec<Value> = (0..4)
        .map(|i| json!({"path": format!("m{i}.txt"), "content": format!("new {i}\n")}))
        .collect();
    let profile = f.t.profile.clone();
    // Half-way through the swaps, the user cancels the running job.
    let result = with_hook(
        move |step| {
            if step == 5 {
                let running =
                    common::call(&profile, "jobs.list", json!({"status": ["running"]})).unwrap();
                let id = running["items"][0]["id"].clone();
                common::call(&profile, "jobs.cancel", json!({"id": id})).unwrap();
            }
        },
        || {
            f.t.call("repo.apply_patch", json!({"id": "r", "files": files}))
        },
    );
    assert_eq!(result.unwrap_err().code.as_str(), "cancelled");
    assert_eq!(f.snapshot(), before);
    let jobs = f.t.ok("jobs.list", json!({"type": ["repo_apply_patch"]}));
    assert_eq!(jobs["items"][0]["status"], "cancelled");
    assert!(f.t.ok("repo.changes", json!({"id": "r"}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}
