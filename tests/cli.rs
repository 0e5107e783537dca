//! The `hydra` command line prints envelopes and reports failure through
//! its exit code, reads a request from stdin with `-`, lists the registry
//! and runs the demo. Guards against scripts that trust exit code 0 on an
//! error envelope, and against a command line a person cannot find their
//! way in: help, version, per-operation help, "did you mean", plain errors,
//! and no profile created where none was asked for.

#![cfg(feature = "cli")]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `hydra ARGS` (no profile) in `cwd`: exit code, stdout, stderr.
fn bare(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hydra"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn help_and_version_print_to_stdout_and_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let (code, out, _) = bare(dir.path(), args);
        assert_eq!(code, 0, "{args:?}");
        assert!(
            out.contains("Usage: hydra") && out.contains("call"),
            "{args:?}: {out}"
        );
    }
    let (code, out, _) = bare(dir.path(), &["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("hydra ", env!("CARGO_PKG_VERSION")))
    );
    let (code, out, _) = bare(dir.path(), &["help", "history.purge"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("history.purge (writes)"), "{out}");
    assert!(out.contains("Request fields"), "{out}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "help created files"
    );
}

#[test]
fn a_misspelt_operation_gets_a_suggestion_and_no_profile_is_implied() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = bare(dir.path(), &["help", "history.lst"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean 'history.list'"), "{err}");
    let (code, _, err) = bare(
        dir.path(),
        &["--profile", "p", "call", "histroy.purge", "{}"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("did you mean 'history.purge'"), "{err}");
    let (code, _, err) = bare(dir.path(), &["call", "meta.version"]);
    assert_eq!(code, 2);
    assert!(err.contains("--profile"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a profile was created"
    );
}

#[test]
fn a_refused_request_is_explained_in_plain_words_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bare(
        dir.path(),
        &[
            "--profile",
            "p",
            "call",
            "visits.record_batch",
            r#"{"visits": [{"url": 5}]}"#,
        ],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["details"]["field"], "visits[0].url");
    assert!(
        err.contains("visits[0].url") && err.contains("expected a string"),
        "{err}"
    );
    assert!(!err.contains("i64") && !err.contains("struct"), "{err}");
}

fn hydra(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hydra"))
        .arg("--profile")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn call_prints_the_envelope_and_exit_code_follows_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = hydra(dir.path(), &["call", "meta.version", "{}"], None);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));

    let (code, out) = hydra(
        dir.path(),
        &["call", "meta.version", r#"{"bogus":1}"#],
        None,
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["code"], "invalid_argument");

    let (code, out) = hydra(
        dir.path(),
        &["--pretty", "call", "profile.info", "-"],
        Some("{}"),
    );
    assert_eq!(code, 0);
    assert!(out.contains("\n  "), "pretty output is indented: {out}");

    let (code, _) = hydra(dir.path(), &["call"], None);
    assert_eq!(code, 2);
}

#[test]
fn ops_lists_every_operation_and_demo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = hydra(dir.path(), &["ops"], None);
    assert_eq!(code, 0);
    for op in hydra_core::ops::OPERATIONS {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(op.name)),
            "{} missing",
            op.name
        );
    }
    let (code, out) = hydra(dir.path(), &["demo"], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("== meta.version"));
    // The demo runs again on the same profile.
    let (code, _) = hydra(dir.path(), &["demo"], None);
    assert_eq!(code, 0);
}
