//! The `hydra` command line prints envelopes and reports failure through
//! its exit code, reads a request from stdin with `-`, lists the registry
//! and runs the demo. Guards against scripts that trust exit code 0 on an
//! error envelope.

use std::io::Write;
use std::process::{Command, Stdio};

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
