//! How repo operations record their jobs. Temporary stand-in until the jobs
//! ledger is merged: ids only, nothing recorded.

use crate::error::Result;
use crate::profile::Profile;
use serde_json::Value;
use std::sync::atomic::AtomicBool;

/// Runs `work` on the caller's thread as a job of `job_type`.
pub fn run_inline(
    _profile: &Profile,
    _job_type: &str,
    _payload: Value,
    work: impl FnOnce(&str) -> Result<Value>,
) -> Result<(String, Result<Value>)> {
    let id = crate::types::new_id();
    let outcome = work(&id);
    Ok((id, outcome))
}

/// Like [`run_inline`], handing `work` the job's cancellation flag.
pub fn run_inline_cancellable(
    profile: &Profile,
    job_type: &str,
    payload: Value,
    work: impl FnOnce(&str, &AtomicBool) -> Result<Value>,
) -> Result<(String, Result<Value>)> {
    let flag = AtomicBool::new(false);
    run_inline(profile, job_type, payload, |id| work(id, &flag))
}

/// Queues a job of `job_type`; returns its id.
pub fn submit(profile: &Profile, _job_type: &str, payload: Value) -> Result<String> {
    let profile = profile.clone();
    let id = crate::types::new_id();
    let job_id = id.clone();
    std::thread::spawn(move || {
        if let Ok(p) = serde_json::from_value(payload) {
            let _ = super::checks::run_job(&profile, &p, &job_id, &AtomicBool::new(false));
        }
    });
    Ok(id)
}
