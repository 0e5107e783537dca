//! Helpers shared by the `repo_*` integration tests: a registered repo in a
//! temporary directory, and exact snapshots of a directory tree.
#![allow(dead_code)]

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::TestProfile;

/// A profile plus a sandbox holding `root/` (the registered repo) and
/// `outside/` (files a patch must never reach).
pub struct RepoFixture {
    pub t: TestProfile,
    pub sandbox: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
}

impl RepoFixture {
    /// A repo `r` allowing every operation.
    pub fn new() -> RepoFixture {
        Self::with(json!({"allowed_ops": ["read", "write", "run_checks"]}))
    }

    /// A repo `r` registered with `extra` fields merged into the request.
    pub fn with(extra: Value) -> RepoFixture {
        let t = TestProfile::new();
        let sandbox = tempfile::tempdir().unwrap();
        let base = sandbox.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "outside secret\n").unwrap();
        let mut req = json!({"id": "r", "root_path": root.to_str().unwrap()});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        t.ok("repo.register", req);
        RepoFixture {
            t,
            sandbox,
            root,
            outside,
        }
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    /// Snapshot of the whole sandbox (root and outside).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        snapshot(self.sandbox.path())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every entry under `dir` (symlinks not followed) -> kind, mode and
/// content hash or link target.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let what = if meta.file_type().is_symlink() {
            format!(
                "link -> {}",
                std::fs::read_link(e.path()).unwrap().display()
            )
        } else if meta.is_dir() {
            format!("dir {mode:o}")
        } else {
            format!(
                "file {mode:o} {}",
                sha256_hex(&std::fs::read(e.path()).unwrap())
            )
        };
        out.insert(rel, what);
    }
    out
}
