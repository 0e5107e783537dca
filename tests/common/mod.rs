//! Helpers shared by the integration tests: a temporary profile and calls
//! through the same JSON dispatcher the C ABI uses.
#![allow(dead_code)]

pub mod fuzz;
#[path = "../polling/mod.rs"]
pub mod polling;
pub mod progress;

use hydra_core::types::ManualClock;
use hydra_core::{ops, CloseOptions, OpenOptions, Profile, PublicError};
use serde_json::Value;

/// A profile in a temporary directory, closed and removed on drop.
pub struct TestProfile {
    pub profile: Profile,
    pub dir: tempfile::TempDir,
    /// The profile's clock, when it was opened with one.
    pub clock: Option<ManualClock>,
}

impl TestProfile {
    pub fn new() -> TestProfile {
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = Profile::open(OpenOptions::new(dir.path())).expect("open profile");
        TestProfile {
            profile,
            dir,
            clock: None,
        }
    }

    /// A profile whose time moves only by [`TestProfile::tick`].
    pub fn ticking() -> TestProfile {
        TestProfile::with_clock(&ManualClock::starting_now())
    }

    /// A profile reading its time from `clock` (profiles may share one).
    pub fn with_clock(clock: &ManualClock) -> TestProfile {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = OpenOptions::new(dir.path()).with_clock(clock);
        let profile = Profile::open(options).expect("open profile");
        TestProfile {
            profile,
            dir,
            clock: Some(clock.clone()),
        }
    }

    /// Moves the profile's clock forward by one millisecond.
    pub fn tick(&self) {
        self.clock.as_ref().expect("opened with a clock").advance(1);
    }

    /// Calls `op` with a JSON request; `Ok(data)` or `Err(error)`.
    pub fn call(&self, op: &str, request: Value) -> Result<Value, PublicError> {
        call(&self.profile, op, request)
    }

    /// Calls `op` and expects success.
    pub fn ok(&self, op: &str, request: Value) -> Value {
        self.call(op, request.clone())
            .unwrap_or_else(|e| panic!("{op} {request} failed: {e:?}"))
    }

    /// Calls `op` and expects failure with `code`; returns the error.
    pub fn err(&self, op: &str, request: Value, code: &str) -> PublicError {
        match self.call(op, request.clone()) {
            Ok(data) => panic!("{op} {request} succeeded with {data}, expected {code}"),
            Err(e) => {
                assert_eq!(e.code.as_str(), code, "{op} {request}: {e:?}");
                e
            }
        }
    }

    /// Closes the profile (the directory stays until drop).
    pub fn close(&self) {
        self.profile.close(CloseOptions::default()).expect("close");
    }
}

/// Calls `op` on `profile` through the JSON dispatcher.
pub fn call(profile: &Profile, op: &str, request: Value) -> Result<Value, PublicError> {
    let bytes = serde_json::to_vec(&request).expect("request JSON");
    ops::call_json(profile, op, &bytes)
        .map(|data| serde_json::from_str(&data).expect("response is JSON"))
        .map_err(|e| e.to_public())
}

/// A reader outside the library: its own connection on the profile's
/// database file, inside a read transaction that has read the history
/// (so it holds the pages of that moment until dropped).
pub fn outside_reader(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("hydra.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database file");
    conn.execute_batch("BEGIN").expect("begin");
    let _: i64 = conn
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .expect("read");
    conn
}

/// Every file under `dir`, read raw; true when any contains `needle`.
pub fn any_file_contains(dir: &std::path::Path, needle: &[u8]) -> Option<std::path::PathBuf> {
    for entry in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if entry.file_type().is_file() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return Some(entry.path().to_owned());
                }
            }
        }
    }
    None
}

/// Recomputes the checksum of `component` in a bundle's manifest
/// (`lines[0]`) from that component's record lines, as a hand-made bundle
/// would carry it.
pub fn reseal_component(lines: &mut [String], component: &str) {
    use sha2::Digest;
    let prefix = format!(r#"{{"c":"{component}""#);
    let mut hasher = sha2::Sha256::new();
    for line in lines.iter().skip(1).filter(|l| l.starts_with(&prefix)) {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut manifest: Value = serde_json::from_str(&lines[0]).unwrap();
    manifest["components"][component]["sha256"] = Value::String(sha);
    lines[0] = manifest.to_string();
}

/// Fails naming how many `problems` a concurrency check collected, with
/// the first few (`what` says what each one is).
pub fn assert_none(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{} {what}, e.g. {:?}",
        problems.len(),
        &problems[..problems.len().min(3)]
    );
}
