//! Helpers shared by the `jobs_*` integration tests: profiles with a chosen
//! worker count, host handlers written as Rust closures, and a gate that
//! holds a handler until the test lets it go.
#![allow(dead_code)]

#[path = "../polling/mod.rs"]
pub mod polling;

use hydra_core::jobs::{Job, JobStatus};
use hydra_core::types::{Bounded, HostJsonFn};
use hydra_core::{OpenOptions, Profile, Result};
use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens the profile in `dir` with `workers` job threads.
pub fn open_with_workers(dir: &std::path::Path, workers: u32) -> Profile {
    let mut options = OpenOptions::new(dir);
    options.workers = Bounded::new("workers", workers).unwrap();
    Profile::open(options).expect("open profile")
}

/// A host handler from a closure.
pub fn handler(f: impl Fn(&Value) -> Result<Value> + Send + Sync + 'static) -> Option<HostJsonFn> {
    Some(Arc::new(f))
}

/// A gate a handler waits at until the test opens it.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Blocks until [`Gate::open`] (or 30 s, so a broken test cannot hang).
    pub fn wait(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut open = self.open.lock();
        while !*open {
            if self.changed.wait_until(&mut open, deadline).timed_out() {
                return;
            }
        }
    }

    pub fn open(&self) {
        *self.open.lock() = true;
        self.changed.notify_all();
    }
}

/// Polls the ledger until job `id` has `status` (panics after 10 s).
pub fn wait_for_status(profile: &Profile, id: &str, status: JobStatus) -> Job {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = profile.jobs().get(id).expect("job exists");
        if job.status == status {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} stayed {:?}, expected {status:?}",
            job.status
        );
        polling::pause();
    }
}
