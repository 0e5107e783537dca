//! A process killed with SIGKILL while a job runs: the next open shows that
//! job `failed` with error `interrupted`, and the job that was queued behind
//! it runs to success. Guards against jobs stuck `running` forever after a
//! crash, a recovered job run twice, and queued work lost with the process.
//!
//! The child is this same test binary, re-executed with `--exact` and an
//! environment variable naming the profile directory.

mod jobs_support;
use jobs_support::polling;

use hydra_core::jobs::JobStatus;
use jobs_support::{handler, open_with_workers, wait_for_status};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "HYDRA_JOBS_CRASH_CHILD_DIR";
const TEST_NAME: &str = "a_job_running_at_sigkill_is_interrupted_and_the_queued_one_runs";

/// The child: queues a long host-handled job and one behind it, writes the
/// ids once the first runs, then sleeps until killed.
fn child(dir: &Path) -> ! {
    let profile = open_with_workers(dir, 1);
    profile
        .jobs()
        .register_host_handler("focused_crawl", handler(|_| polling::park_forever()))
        .unwrap();
    let submit = |query: &str| {
        let r = profile
            .refresh_focused_crawl(serde_json::from_value(json!({"query": query})).unwrap())
            .unwrap();
        r.job_id
    };
    let long = submit("long");
    let queued = submit("queued");
    wait_for_status(&profile, &long, JobStatus::Running);
    let tmp = dir.join("ids.tmp");
    std::fs::write(&tmp, format!("{long}\n{queued}\n")).unwrap();
    std::fs::rename(&tmp, dir.join("ids")).unwrap();
    polling::park_forever();
}

#[test]
fn a_job_running_at_sigkill_is_interrupted_and_the_queued_one_runs() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ids_file = dir.path().join("ids");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids_file.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child ended early: {status}");
        }
        assert!(Instant::now() < deadline, "child never started its job");
        polling::pause();
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let ids = std::fs::read_to_string(&ids_file).unwrap();
    let (long, queued) = ids.trim().split_once('\n').unwrap();

    let profile = open_with_workers(dir.path(), 1);
    let job = profile.jobs().get(long).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_ref().unwrap().code, "interrupted");
    assert!(job.completed_at.is_some());
    assert_eq!(
        profile.jobs().get(queued).unwrap().status,
        JobStatus::Queued
    );

    profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(|job| Ok(json!({"ran": job["payload"]}))),
        )
        .unwrap();
    let job = profile
        .jobs()
        .wait(queued, Duration::from_secs(10))
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result, Some(json!({"ran": {"query": "queued"}})));
    // The interrupted job is not run again.
    assert_eq!(profile.jobs().get(long).unwrap().status, JobStatus::Failed);
    profile.close(Default::default()).unwrap();
}
