//! One profile, one process: a second process opening a profile that is in
//! use gets `profile_locked` (and changes nothing), and opens it once the
//! first has closed. Guards against two writers corrupting one user's data.

use hydra_core::{CloseOptions, OpenOptions, Profile};
use std::process::Command;

fn second_process_calls(dir: &std::path::Path) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_hydra"))
        .arg("--profile")
        .arg(dir)
        .args(["call", "meta.version", "{}"])
        .output()
        .expect("run hydra");
    let envelope = serde_json::from_slice(&out.stdout).expect("CLI prints an envelope");
    (out.status.code().unwrap_or(-1), envelope)
}

#[test]
fn second_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = Profile::open(OpenOptions::new(dir.path())).unwrap();
    let db = dir.path().join("hydra.sqlite3");
    let before = std::fs::read(&db).unwrap();

    let (status, envelope) = second_process_calls(dir.path());
    assert_eq!(status, 1);
    assert_eq!(envelope["error"]["code"], "profile_locked");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a refused open wrote to the database"
    );

    first.close(CloseOptions::default()).unwrap();
    let (status, envelope) = second_process_calls(dir.path());
    assert_eq!(status, 0, "{envelope}");
    assert_eq!(envelope["ok"], true);
}
