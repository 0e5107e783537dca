//! A bundle export or import of thousands of records reports progress as
//! it goes (issue 13): at least every 1% of its rows or bytes (or every
//! 250 ms), ending at `steps_completed == steps_total`, with an ETA once
//! something was done. Guards against a long backup or restore that shows
//! one step per component and leaves the user looking at a frozen bar.

mod common;
use common::progress::{assert_every_percent, reports, Updates};
use common::TestProfile;
use serde_json::{json, Value};

const VISITS: u64 = 3_000;
const MESSAGES: u64 = 500;

fn populate(t: &TestProfile) {
    t.ok("threads.create", json!({"id": "th", "title": "Trip"}));
    for i in 0..MESSAGES {
        t.ok(
            "messages.append",
            json!({"thread_id": "th", "role": "user", "content": format!("message {i}")}),
        );
    }
    let visits: Vec<Value> = (0..VISITS)
        .map(|i| json!({"url": format!("https://site{}.example/{i}", i % 40), "title": format!("Page {i}"), "visited_at": 1_000 + i}))
        .collect();
    t.ok("visits.record_batch", json!({"visits": visits}));
}

/// The longest record line of the bundle at `path`, in bytes (newline
/// included): how far one line moves a byte count at once.
fn longest_line(path: &std::path::Path) -> u64 {
    std::fs::read(path)
        .unwrap()
        .split_inclusive(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.len() as u64)
        .max()
        .unwrap()
}

#[test]
fn export_and_import_report_every_percent_with_an_eta() {
    let source = TestProfile::new();
    populate(&source);
    let updates = Updates::collect(&source.profile);
    let path = source.dir.path().join("progress.hydra");
    let out = source.ok("bundle.export", json!({"path": path, "wait": true}));
    let export = updates.of_finished_job(&out["job_id"]);
    // Steps are the records written: 1 thread, the messages, the visits.
    let total = assert_every_percent(&reports(&export, "export"), 0);
    assert_eq!(total, 1 + MESSAGES + VISITS);
    assert_eq!(
        export.last().unwrap()["progress"]["steps_completed"],
        json!(total),
        "the finished job keeps its last report"
    );

    let size = std::fs::metadata(&path).unwrap().len();
    let slack = longest_line(&path);
    assert!(
        slack * 100 < size,
        "lines must be small beside 1% of the file"
    );
    let target = TestProfile::new();
    let updates = Updates::collect(&target.profile);
    let out = target.ok("bundle.import", json!({"path": path, "wait": true}));
    assert_eq!(
        out["imported"]["browser_history"]["inserted"],
        json!(VISITS)
    );
    let import = updates.of_finished_job(&out["job_id"]);
    // Both passes count the bytes of the file, verify first.
    let verify = reports(&import, "verify");
    assert_eq!(assert_every_percent(&verify, slack), size);
    let imported = reports(&import, "import");
    assert_eq!(assert_every_percent(&imported, slack), size);
    let phases: Vec<&str> = import
        .iter()
        .filter_map(|job| job["progress"]["phase"].as_str())
        .collect();
    let first_import = phases.iter().position(|p| *p == "import").unwrap();
    assert!(phases[first_import..].iter().all(|p| *p == "import"));
}

#[test]
fn an_empty_export_reports_zero_of_zero() {
    let t = TestProfile::new();
    let updates = Updates::collect(&t.profile);
    let path = t.dir.path().join("empty.hydra");
    let out = t.ok("bundle.export", json!({"path": path, "wait": true}));
    let export = updates.of_finished_job(&out["job_id"]);
    let last = &export.last().unwrap()["progress"];
    assert_eq!(
        (&last["steps_completed"], &last["steps_total"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(last["phase"], "export");
}
