//! Guards the one path rule of patches against an agent (or a prompt
//! injection) trying to write outside the registered tree, into `.git`, or
//! through a symlink: for every payload of the attack corpus both
//! `repo.propose_patch` and `repo.apply_patch` must refuse with the exact
//! code and entry index, and nothing inside or outside the root may change.

mod common;
mod repo_support;

use repo_support::RepoFixture;
use serde_json::{json, Value};
use std::os::unix::fs::symlink;

/// The tree every case starts from: real files, a `.git` directory, and
/// symlinks inside the root that point outside it (and inside it).
fn fixture() -> RepoFixture {
    let f = RepoFixture::new();
    f.write("src/a.txt", "alpha\n");
    f.write(".git/config", "[core]\n");
    f.write("inner/keep.txt", "keep\n");
    symlink(&f.outside, f.root.join("link_out")).unwrap();
    symlink(f.outside.join("secret.txt"), f.root.join("file_link")).unwrap();
    symlink(&f.outside, f.root.join("inner/link_dir")).unwrap();
    symlink(f.root.join("src"), f.root.join("link_in")).unwrap();
    symlink("../outside/secret.txt", f.root.join("rel_link")).unwrap();
    symlink(f.root.join("missing-target"), f.root.join("dangling")).unwrap();
    f
}

fn corpus() -> Vec<(String, &'static str)> {
    let long_name = "a".repeat(256);
    let long_path = "d/".repeat(2100) + "f";
    let mut cases: Vec<(String, &'static str)> = [
        // `..` in every position
        ("..", "path_escape"),
        ("../x", "path_escape"),
        ("../outside/secret.txt", "path_escape"),
        ("src/..", "path_escape"),
        ("src/../../outside/secret.txt", "path_escape"),
        ("src/../a.txt", "path_escape"),
        ("a/b/../../..", "path_escape"),
        // absolute paths
        ("/etc/passwd", "path_escape"),
        ("/tmp/hydra-pwn", "path_escape"),
        ("//server/share", "path_escape"),
        // drive prefixes and colons
        ("C:", "path_escape"),
        ("c:x", "path_escape"),
        ("C:/Windows/x", "path_escape"),
        ("src/a:stream", "path_escape"),
        // backslashes
        ("src\\a.txt", "path_escape"),
        ("..\\outside\\secret.txt", "path_escape"),
        ("C:\\Windows\\system32", "path_escape"),
        // NUL
        ("src/a.txt\0.png", "path_escape"),
        ("\0", "path_escape"),
        // empty and `.` components
        ("", "path_escape"),
        (".", "path_escape"),
        ("./src/a.txt", "path_escape"),
        ("src/./a.txt", "path_escape"),
        ("src//a.txt", "path_escape"),
        ("src/", "path_escape"),
        // .git in any case and depth
        (".git", "forbidden"),
        (".git/config", "forbidden"),
        (".GIT/config", "forbidden"),
        (".Git/hooks/pre-commit", "forbidden"),
        ("src/.git/config", "forbidden"),
        ("a/b/c/.gIt", "forbidden"),
        (".git./config", "forbidden"),
        // symlinks inside the root, pointing outside or inside
        ("link_out/pwn.txt", "path_escape"),
        ("link_out/secret.txt", "path_escape"),
        ("file_link", "path_escape"),
        ("rel_link", "path_escape"),
        ("inner/link_dir/pwn.txt", "path_escape"),
        ("link_in/a.txt", "path_escape"),
        ("dangling", "path_escape"),
        ("dangling/x", "path_escape"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), *c))
    .collect();
    // overlong names
    cases.push((long_name, "path_escape"));
    cases.push((long_path, "path_escape"));
    cases
}

/// Both operations refuse `files` with `code` at entry `index`, and the
/// sandbox is byte for byte unchanged.
fn assert_refused(f: &RepoFixture, files: Value, code: &str, index: usize, label: &str) {
    let before = f.snapshot();
    let rows_before = (count_rows(f, "repo_changes"), count_rows(f, "jobs"));
    for op in ["repo.propose_patch", "repo.apply_patch"] {
        let e =
            f.t.call(op, json!({"id": "r", "files": files.clone()}))
                .expect_err(label);
        assert_eq!(e.code.as_str(), code, "{op} {label:?}: {e:?}");
        assert_eq!(e.details["index"], index, "{op} {label:?}");
        assert!(!e.message.contains("secret"), "{}", e.message);
    }
    assert_eq!(f.snapshot(), before, "{label:?} changed the sandbox");
    let rows_after = (count_rows(f, "repo_changes"), count_rows(f, "jobs"));
    assert_eq!(
        rows_after, rows_before,
        "{label:?} recorded a change or a job"
    );
}

fn count_rows(f: &RepoFixture, table: &str) -> i64 {
    f.t.profile
        .db()
        .read(|c| Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn every_attack_is_refused_and_changes_nothing() {
    let f = fixture();
    let cases = corpus();
    assert!(cases.len() >= 40, "corpus has {} cases", cases.len());
    for (path, code) in &cases {
        // Alone, as a write and as a deletion.
        assert_refused(
            &f,
            json!([{"path": path, "content": "pwned\n"}]),
            code,
            0,
            path,
        );
        assert_refused(&f, json!([{"path": path, "delete": true}]), code, 0, path);
        // Behind a valid entry: the valid one must not be written either.
        assert_refused(
            &f,
            json!([{"path": "ok.txt", "content": "fine\n"}, {"path": path, "content": "pwned\n"}]),
            code,
            1,
            path,
        );
    }
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        "outside secret\n"
    );
}

#[test]
fn targets_that_are_not_regular_files_are_refused() {
    let f = fixture();
    std::fs::create_dir_all(f.root.join("adir")).unwrap();
    let before = f.snapshot();
    for (path, label) in [("adir", "directory"), ("src/a.txt/x", "file as parent")] {
        let e = f.t.err(
            "repo.apply_patch",
            json!({"id": "r", "files": [{"path": path, "content": "x"}]}),
            "invalid_argument",
        );
        assert_eq!(e.details["index"], 0, "{label}");
    }
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_symlink_swapped_in_between_propose_and_apply_is_caught() {
    let f = fixture();
    f.write("sub/x.txt", "old\n");
    let patch = json!({"id": "r", "files": [{"path": "sub/x.txt", "content": "new\n"},
                                            {"path": "sub/new.txt", "content": "n\n"}]});
    f.t.ok("repo.propose_patch", patch.clone());
    // The agent's tree changes under it: `sub` becomes a link to outside.
    std::fs::rename(f.root.join("sub"), f.root.join("sub_real")).unwrap();
    symlink(&f.outside, f.root.join("sub")).unwrap();
    std::fs::write(f.outside.join("x.txt"), "outside x\n").unwrap();
    let before = f.snapshot();
    let e = f.t.err("repo.apply_patch", patch, "path_escape");
    assert_eq!(e.details["index"], 0);
    assert_eq!(f.snapshot(), before);
}

#[test]
fn the_profile_directory_is_never_patched_even_inside_the_root() {
    let t = common::TestProfile::new();
    // Register the parent of the profile directory as the root.
    let parent = t.profile.dir().parent().unwrap().to_owned();
    let profile_name = t
        .profile
        .dir()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    t.ok(
        "repo.register",
        json!({"id": "p", "root_path": parent, "allowed_ops": ["write"]}),
    );
    let db = repo_support::snapshot(t.profile.dir()).len();
    let e = t.err(
        "repo.apply_patch",
        json!({"id": "p", "files": [{"path": format!("{profile_name}/hydra.sqlite3"), "content": "x"}]}),
        "forbidden",
    );
    assert_eq!(e.details["index"], 0);
    assert_eq!(repo_support::snapshot(t.profile.dir()).len(), db);
}

#[test]
fn a_root_replaced_by_a_symlink_is_refused() {
    let f = fixture();
    let moved = f.sandbox.path().join("moved");
    std::fs::rename(&f.root, &moved).unwrap();
    symlink(&f.outside, &f.root).unwrap();
    let before = f.snapshot();
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": "pwn.txt", "content": "x"}]}),
        "path_escape",
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn duplicates_and_bad_entry_shapes_are_invalid_and_change_nothing() {
    let f = fixture();
    let before = f.snapshot();
    let cases = [
        json!([{"path": "a.txt", "content": "1"}, {"path": "a.txt", "content": "2"}]),
        json!([{"path": "a.txt"}]),
        json!([{"path": "a.txt", "content": "1", "delete": true}]),
        json!([{"path": "a.txt", "delete": false}]),
        json!([{"path": "src/a.txt", "delete": true, "mode": 420}]),
        json!([{"path": "a.txt", "content": "1", "expected_sha256": "xyz"}]),
        json!([{"path": "a.txt", "content": "1", "mode": 4095}]),
        json!([{"path": "a.txt", "content": "1", "colour": "red"}]),
        json!([]),
    ];
    for files in cases {
        for op in ["repo.propose_patch", "repo.apply_patch"] {
            f.t.err(
                op,
                json!({"id": "r", "files": files.clone()}),
                "invalid_argument",
            );
        }
    }
    assert_eq!(f.snapshot(), before);
}
