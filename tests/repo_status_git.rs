//! Guards `repo.status` against a real git repository with an upstream (a
//! local bare repository as the remote): the branch, upstream, ahead and
//! behind counts and the changed paths a user sees in `git status`, and
//! `vcs: null` for a tree that is not under git. A wrong parse would tell
//! an agent a dirty tree is clean.

mod common;
mod repo_support;

use repo_support::RepoFixture;
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_reports_branch_upstream_counts_and_changes() {
    let f = RepoFixture::new();
    let remote = f.sandbox.path().join("remote.git");
    std::fs::create_dir(&remote).unwrap();
    git(&remote, &["init", "--bare", "-q", "-b", "main"]);
    let root = &f.root;
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.name", "Test"]);
    git(root, &["config", "user.email", "test@example.invalid"]);
    git(root, &["config", "commit.gpgsign", "false"]);
    f.write("tracked.txt", "one\n");
    f.write("gone.txt", "bye\n");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "first"]);
    git(root, &["remote", "add", "origin", remote.to_str().unwrap()]);
    git(root, &["push", "-q", "-u", "origin", "main"]);

    let clean = f.t.ok("repo.status", json!({"id": "r"}));
    assert_eq!(
        clean,
        json!({"vcs": "git", "branch": "main", "upstream": "origin/main",
               "ahead": 0, "behind": 0, "dirty": false, "changes": []})
    );

    // Two local commits ahead, then a dirty tree.
    f.write("tracked.txt", "two\n");
    git(root, &["commit", "-q", "-am", "second"]);
    f.write("more.txt", "m\n");
    git(root, &["add", "more.txt"]);
    git(root, &["commit", "-q", "-m", "third"]);
    f.write("tracked.txt", "three\n");
    std::fs::remove_file(root.join("gone.txt")).unwrap();
    f.write("staged.txt", "s\n");
    git(root, &["add", "staged.txt"]);
    f.write("new dir/untracked file.txt", "u\n");

    let st = f.t.ok("repo.status", json!({"id": "r"}));
    assert_eq!(st["branch"], "main");
    assert_eq!(st["upstream"], "origin/main");
    assert_eq!(
        (st["ahead"].clone(), st["behind"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(st["dirty"], true);
    let mut changes: Vec<(String, String)> = st["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            ("gone.txt".into(), "deleted".into()),
            ("new dir/".into(), "untracked".into()),
            ("staged.txt".into(), "added".into()),
            ("tracked.txt".into(), "modified".into()),
        ]
    );
    // status only reads: the index was not rewritten by it.
    let index = std::fs::metadata(root.join(".git/index"))
        .unwrap()
        .modified()
        .unwrap();
    f.t.ok("repo.status", json!({"id": "r"}));
    assert_eq!(
        std::fs::metadata(root.join(".git/index"))
            .unwrap()
            .modified()
            .unwrap(),
        index
    );

    // Behind: the remote gains a commit from another clone.
    let other = f.sandbox.path().join("other");
    git(
        f.sandbox.path(),
        &["clone", "-q", remote.to_str().unwrap(), "other"],
    );
    git(&other, &["config", "user.name", "Other"]);
    git(&other, &["config", "user.email", "other@example.invalid"]);
    std::fs::write(other.join("theirs.txt"), "t\n").unwrap();
    git(&other, &["add", "."]);
    git(&other, &["commit", "-q", "-m", "theirs"]);
    git(&other, &["push", "-q"]);
    git(root, &["fetch", "-q"]);
    let st = f.t.ok("repo.status", json!({"id": "r"}));
    assert_eq!(
        (st["ahead"].clone(), st["behind"].clone()),
        (json!(2), json!(1))
    );
}

#[test]
fn a_tree_outside_git_has_null_vcs() {
    let f = RepoFixture::new();
    f.write("a.txt", "x\n");
    let st = f.t.ok("repo.status", json!({"id": "r"}));
    assert_eq!(
        st,
        json!({"vcs": null, "branch": null, "upstream": null, "ahead": null,
               "behind": null, "dirty": null, "changes": null})
    );
}

#[test]
fn a_repository_config_cannot_make_status_run_a_program() {
    use std::os::unix::fs::PermissionsExt;
    let f = RepoFixture::new();
    git(&f.root, &["init", "-q"]);
    let marker = f.sandbox.path().join("hook-ran");
    let script = f.sandbox.path().join("hook.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    git(
        &f.root,
        &["config", "core.fsmonitor", script.to_str().unwrap()],
    );
    // A plain `git status` runs the configured program...
    git(&f.root, &["status", "--porcelain=v2"]);
    assert!(marker.exists(), "the hook did not run under plain git");
    std::fs::remove_file(&marker).unwrap();
    // ...repo.status does not.
    let st = f.t.ok("repo.status", json!({"id": "r"}));
    assert_eq!(st["vcs"], "git");
    assert!(
        !marker.exists(),
        "repo.status ran the repository's fsmonitor program"
    );
}
