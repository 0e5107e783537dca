//! Guards the registry of repositories and its permission gates: a repo
//! registered with a bad root (missing, a file, `/`, the profile), a
//! re-register that drops omitted settings, or an operation that runs
//! without its permission in `allowed_ops` would let an agent touch trees
//! the user never opened to it.

mod common;
mod repo_support;

use common::TestProfile;
use repo_support::RepoFixture;
use serde_json::json;

#[test]
fn register_defaults_canonical_root_and_upsert_keeps_omitted_fields() {
    let t = TestProfile::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let odd = format!("{}/real/../real", dir.path().display());
    let repo = &t.ok("repo.register", json!({"id": "a", "root_path": odd}))["repo"];
    let canonical = dir.path().canonicalize().unwrap().join("real");
    assert_eq!(repo["root_path"], canonical.to_str().unwrap());
    assert_eq!(repo["allowed_ops"], json!(["read"]));
    assert_eq!(repo["check_command"], json!(null));
    assert_eq!(
        repo["budgets"],
        json!({"max_files": 50, "max_lines": 4000, "max_bytes": 4194304})
    );
    assert_eq!(repo["created_at"], repo["updated_at"]);

    let updated = &t.ok(
        "repo.register",
        json!({"id": "a", "root_path": canonical, "allowed_ops": ["write", "read", "write"],
               "check_command": ["make", "test"], "budgets": {"max_files": 3}}),
    )["repo"];
    assert_eq!(updated["allowed_ops"], json!(["read", "write"]));
    assert_eq!(updated["budgets"]["max_files"], 3);
    assert_eq!(updated["budgets"]["max_lines"], 4000);
    assert_eq!(updated["created_at"], repo["created_at"]);

    // Omitted fields are kept; an explicit null clears the command.
    let kept = &t.ok("repo.register", json!({"id": "a", "root_path": canonical}))["repo"];
    assert_eq!(kept["allowed_ops"], json!(["read", "write"]));
    assert_eq!(kept["check_command"], json!(["make", "test"]));
    assert_eq!(kept["budgets"]["max_files"], 3);
    let cleared = &t.ok(
        "repo.register",
        json!({"id": "a", "root_path": canonical, "check_command": null}),
    )["repo"];
    assert_eq!(cleared["check_command"], json!(null));

    let list = t.ok("repo.list", json!({}));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], "a");
}

#[test]
fn register_refuses_bad_roots_and_fields() {
    let t = TestProfile::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let profile_dir = t.profile.dir().to_owned();
    let bad_roots = [
        dir.path().join("missing").display().to_string(),
        dir.path().join("file").display().to_string(),
        "/".to_owned(),
        "relative/path".to_owned(),
        profile_dir.display().to_string(),
        profile_dir.join("bundles").display().to_string(),
    ];
    std::fs::create_dir_all(profile_dir.join("bundles")).unwrap();
    for root in bad_roots {
        let e = t.err(
            "repo.register",
            json!({"id": "a", "root_path": root}),
            "invalid_argument",
        );
        assert_eq!(e.details["field"], "root_path", "{root}");
    }
    let root = dir.path().to_str().unwrap();
    let cases = [
        (
            json!({"id": "a", "root_path": root, "allowed_ops": ["admin"]}),
            "allowed_ops[0]",
        ),
        (
            json!({"id": "a", "root_path": root, "allowed_ops": ["READ"]}),
            "allowed_ops[0]",
        ),
        (
            json!({"id": "a", "root_path": root, "check_command": []}),
            "check_command",
        ),
        (
            json!({"id": "a", "root_path": root, "check_command": "make"}),
            "check_command",
        ),
        (
            json!({"id": "a", "root_path": root, "budgets": {"max_files": 0}}),
            "budgets.max_files",
        ),
        (
            json!({"id": "a", "root_path": root, "budgets": {"max_lnes": 5}}),
            "budgets.max_lnes",
        ),
        (json!({"id": "a b", "root_path": root}), "id"),
        (json!({"id": "a", "root_path": root, "extra": 1}), "extra"),
    ];
    for (req, field) in cases {
        let e = t.err("repo.register", req.clone(), "invalid_argument");
        assert_eq!(e.details["field"], field, "{req}");
    }
    assert!(t.ok("repo.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn unknown_repos_are_not_found_everywhere() {
    let t = TestProfile::new();
    let patch = json!({"id": "nope", "files": [{"path": "a", "content": "x"}]});
    t.err("repo.unregister", json!({"id": "nope"}), "not_found");
    t.err("repo.status", json!({"id": "nope"}), "not_found");
    t.err("repo.changes", json!({"id": "nope"}), "not_found");
    t.err("repo.propose_patch", patch.clone(), "not_found");
    t.err("repo.apply_patch", patch, "not_found");
    t.err("repo.run_checks", json!({"id": "nope"}), "not_found");
}

#[test]
fn each_operation_needs_its_permission() {
    let f = RepoFixture::with(json!({"allowed_ops": [], "check_command": ["true"]}));
    let patch = json!({"id": "r", "files": [{"path": "a.txt", "content": "x"}]});
    for (op, req, permission) in [
        ("repo.status", json!({"id": "r"}), "read"),
        ("repo.propose_patch", patch.clone(), "write"),
        ("repo.apply_patch", patch.clone(), "write"),
        ("repo.run_checks", json!({"id": "r"}), "run_checks"),
    ] {
        let e = f.t.err(op, req, "forbidden");
        assert_eq!(e.details["permission"], permission);
    }
    assert_eq!(f.read("a.txt"), None);
    // Read alone does not grant write or run_checks, and vice versa.
    let root = f.root.to_str().unwrap();
    f.t.ok(
        "repo.register",
        json!({"id": "r", "root_path": root, "allowed_ops": ["read"]}),
    );
    f.t.ok("repo.status", json!({"id": "r"}));
    f.t.err("repo.apply_patch", patch.clone(), "forbidden");
    f.t.err("repo.run_checks", json!({"id": "r"}), "forbidden");
    f.t.ok(
        "repo.register",
        json!({"id": "r", "root_path": root, "allowed_ops": ["write"]}),
    );
    f.t.err("repo.status", json!({"id": "r"}), "forbidden");
    f.t.ok("repo.apply_patch", patch);
    assert_eq!(f.read("a.txt").as_deref(), Some("x"));
}

#[test]
fn changes_page_newest_first_and_unregister_forgets_them() {
    let f = RepoFixture::new();
    for i in 0..5 {
        f.t.ok(
            "repo.apply_patch",
            json!({"id": "r", "summary": format!("p{i}"),
                   "files": [{"path": format!("f{i}.txt"), "content": "x\n"}]}),
        );
    }
    let first = f.t.ok("repo.changes", json!({"id": "r", "limit": 3}));
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["summary"], "p4");
    assert_eq!(items[0]["kind"], "apply_patch");
    assert_eq!(items[0]["repo_id"], "r");
    assert_eq!(
        items[0]["files"],
        json!([{"path": "f4.txt", "action": "create"}])
    );
    assert_eq!(items[0]["stats"]["lines"], 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = f.t.ok(
        "repo.changes",
        json!({"id": "r", "limit": 3, "cursor": cursor}),
    );
    let summaries: Vec<_> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["summary"].clone())
        .collect();
    assert_eq!(summaries, vec![json!("p1"), json!("p0")]);
    assert_eq!(second["next_cursor"], json!(null));
    f.t.err(
        "repo.changes",
        json!({"id": "r", "cursor": "garbage"}),
        "invalid_argument",
    );
    f.t.err(
        "repo.changes",
        json!({"id": "r", "limit": 501}),
        "invalid_argument",
    );

    let gone = f.t.ok("repo.unregister", json!({"id": "r"}));
    assert_eq!(gone, json!({"deleted": 1, "changes_deleted": 5}));
    f.t.err("repo.changes", json!({"id": "r"}), "not_found");
    // The files stay.
    assert_eq!(f.read("f0.txt").as_deref(), Some("x\n"));
}

#[test]
fn propose_is_read_only_in_the_catalogue() {
    let t = TestProfile::new();
    let ops = t.ok("meta.operations", json!({}));
    let find = |name: &str| {
        ops["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap()
    };
    for (name, read_only) in [
        ("repo.register", false),
        ("repo.unregister", false),
        ("repo.list", true),
        ("repo.status", true),
        ("repo.changes", true),
        ("repo.propose_patch", true),
        ("repo.apply_patch", false),
        ("repo.run_checks", false),
    ] {
        assert_eq!(find(name)["read_only"], read_only, "{name}");
    }
}
