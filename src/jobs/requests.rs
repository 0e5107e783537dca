//! The operations of `spec/OPERATIONS.md` §9: `jobs.list`, `jobs.get`,
//! `jobs.status`, `jobs.wait`, `jobs.cancel`, `jobs.progress`, `jobs.prune`
//! and `refresh.focused_crawl`.

use super::ledger::{self, ProgressPatch};
use super::model::{Job, JobLinks, JobStatus};
use crate::db::paging::{Keyset, Order};
use crate::error::{Error, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{Bounded, Id, ListLimit, Millis, Page, Patch};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The job type the host's crawler runs (`refresh.focused_crawl`).
pub const FOCUSED_CRAWL: &str = "focused_crawl";

/// At most this many distinct values in a `type` filter of `jobs.list`.
const MAX_TYPE_FILTERS: usize = 32;

/// Request of `jobs.list`. An empty `status` or `type` array is
/// `invalid_argument` (omit the field to list every status / type).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub status: Option<Vec<JobStatus>>,
    #[serde(default, rename = "type")]
    #[schemars(length(max = MAX_TYPE_FILTERS))]
    pub job_type: Option<Vec<Id>>,
    #[serde(default)]
    pub limit: ListLimit,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Request of `jobs.get`, `jobs.status` and `jobs.cancel`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIdRequest {
    pub id: Id,
}

/// Response of `jobs.get`, `jobs.wait`, `jobs.cancel` and `jobs.progress`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct JobResponse {
    pub job: Job,
}

/// Response of `jobs.status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct StatusResponse {
    pub job_id: String,
    pub status: JobStatus,
    /// `steps_completed / steps_total` in `0..=1`; null while `steps_total`
    /// is unset (or zero).
    pub progress: Option<f64>,
    pub phase: Option<String>,
    pub message: Option<String>,
    pub eta_s: Option<f64>,
    pub updated_at: Millis,
}

/// Request of `jobs.wait`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    pub id: Id,
    /// 1..3,600,000 ms.
    pub timeout_ms: Bounded<1, 3_600_000>,
}

/// Request of `jobs.progress`: an omitted field keeps its value, an
/// explicit `null` clears it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    pub id: Id,
    #[serde(default)]
    pub phase: Patch<String>,
    #[serde(default)]
    pub steps_total: Patch<u64>,
    #[serde(default)]
    pub steps_completed: Patch<u64>,
    #[serde(default)]
    pub message: Patch<String>,
    #[serde(default)]
    pub eta_s: Patch<f64>,
}

/// Request of `jobs.prune`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Default `["succeeded"]`; only finished statuses.
    #[serde(default)]
    pub statuses: Option<Vec<JobStatus>>,
    /// Default 30.
    #[serde(default)]
    pub older_than_days: Option<u32>,
}

/// Response of `jobs.prune`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PruneResponse {
    pub deleted: u64,
    pub statuses: Vec<JobStatus>,
    pub older_than_days: u32,
}

/// Request of `refresh.focused_crawl`; stored as the job's payload (fields
/// the caller omitted stay omitted). The host's crawler gives the fields
/// their meaning; the library checks their shape and ranges.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FocusedCrawlRequest {
    /// What to look for (1..2,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Absolute http(s) URLs to start from (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<String>>,
    /// Pages the crawl may fetch (1..10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Bounded<1, 10_000>>,
    /// Link depth from the seeds (0..10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Fetch again pages that are already fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Id>,
}

/// Response of operations that queue a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SubmittedResponse {
    pub job_id: String,
}

/// Sorted, distinct filter values; an empty list is refused.
fn filter_values<T: Ord>(values: Option<Vec<T>>, field: &str) -> Result<Option<Vec<T>>> {
    let Some(mut values) = values else {
        return Ok(None);
    };
    if values.is_empty() {
        return Err(Error::invalid(
            field,
            "must not be empty; omit it to match everything",
        ));
    }
    values.sort();
    values.dedup();
    Ok(Some(values))
}

/// `jobs.list`: newest first (`created_at`, ties by insertion order).
///
/// Each status (or each pair of a status and a type) is a "branch" served
/// in order by one index range (`jobs_by_status`, `jobs_by_type`); the page
/// is the merge of the branches' first rows, so any page costs a few index
/// seeks whatever the ledger size.
pub fn list(profile: &Profile, request: ListRequest) -> Result<Page<Job>> {
    let statuses = filter_values(request.status, "status")?;
    let types = filter_values(request.job_type, "type")?;
    if types.as_ref().is_some_and(|t| t.len() > MAX_TYPE_FILTERS) {
        return Err(Error::invalid(
            "type",
            format!("at most {MAX_TYPE_FILTERS} types"),
        ));
    }
    let join = |v: Vec<&str>| v.join(",");
    let scope = format!(
        "jobs.list|status={}|type={}",
        join(statuses.iter().flatten().map(|s| s.as_str()).collect()),
        join(types.iter().flatten().map(Id::as_str).collect()),
    );
    let limit = request.limit.get();
    let keyset = Keyset::new(scope, Order::Desc, limit, request.cursor.as_deref())?;
    // Every branch names one status, so it reads one ordered index range.
    let status_branches: Vec<JobStatus> = statuses.unwrap_or_else(|| JobStatus::ALL.to_vec());
    let type_branches: Vec<Option<Id>> = match types {
        Some(v) => v.into_iter().map(Some).collect(),
        None => vec![None],
    };
    // One snapshot for every branch and row: a job whose status changes
    // between two reads would otherwise be listed under both statuses.
    profile.db().read(|conn| {
        let mut keys = Vec::new();
        for status in &status_branches {
            for job_type in &type_branches {
                keys.extend(ledger::page_keys(
                    conn,
                    *status,
                    job_type.as_ref().map(Id::as_str),
                    keyset.bounds(),
                    limit + 1,
                )?);
            }
        }
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.truncate(limit + 1);
        let mut rows = Vec::with_capacity(keys.len());
        for (created_at, seq) in keys {
            if let Some(mut job) = ledger::get_by_seq(conn, seq)? {
                profile.jobs().overlay(&mut job);
                rows.push((job, created_at, seq));
            }
        }
        Ok(keyset.finish(rows))
    })
}

/// `jobs.get`.
pub fn get(profile: &Profile, request: JobIdRequest) -> Result<JobResponse> {
    let job = profile.jobs().get(request.id.as_str())?;
    Ok(JobResponse { job })
}

/// `jobs.status`: the ledger's view of one job, reduced for a progress bar.
pub fn status(profile: &Profile, request: JobIdRequest) -> Result<StatusResponse> {
    let job = profile.jobs().get(request.id.as_str())?;
    Ok(StatusResponse {
        progress: job.progress.fraction(),
        job_id: job.id,
        status: job.status,
        phase: job.progress.phase,
        message: job.progress.message,
        eta_s: job.progress.eta_s,
        updated_at: job.updated_at,
    })
}

/// `jobs.wait`.
pub fn wait(profile: &Profile, request: WaitRequest) -> Result<JobResponse> {
    let timeout = Duration::from_millis(request.timeout_ms.get() as u64);
    let job = profile.jobs().wait(request.id.as_str(), timeout)?;
    Ok(JobResponse { job })
}

/// `jobs.cancel`.
pub fn cancel(profile: &Profile, request: JobIdRequest) -> Result<JobResponse> {
    let job = profile.jobs().cancel(request.id.as_str())?;
    Ok(JobResponse { job })
}

/// `jobs.progress`.
pub fn progress(profile: &Profile, request: ProgressRequest) -> Result<JobResponse> {
    let patch = ProgressPatch {
        phase: request.phase,
        steps_total: request.steps_total,
        steps_completed: request.steps_completed,
        message: request.message,
        eta_s: request.eta_s,
    };
    let job = profile
        .jobs()
        .report_progress(request.id.as_str(), &patch)?;
    Ok(JobResponse { job })
}

/// `jobs.prune`: deletes finished jobs completed at or before
/// `now - older_than_days` days. Erased like a privacy delete (payloads
/// and results may hold private text), but not one of the contract's
/// privacy deletes: the overview storage cache stays.
pub fn prune(profile: &Profile, request: PruneRequest) -> Result<Purged<PruneResponse>> {
    let statuses =
        filter_values(request.statuses, "statuses")?.unwrap_or_else(|| vec![JobStatus::Succeeded]);
    if let Some(bad) = statuses.iter().find(|s| !s.is_terminal()) {
        return Err(Error::invalid(
            "statuses",
            format!("only finished jobs may be pruned, not {}", bad.as_str()),
        ));
    }
    let older_than_days = request.older_than_days.unwrap_or(30);
    let cutoff = crate::types::now_ms() - i64::from(older_than_days) * 86_400_000;
    let purged = crate::privacy::purge_keeping_storage_cache(profile, |tx| {
        ledger::prune(tx, &statuses, cutoff)
    })?;
    Ok(purged.map(|deleted| PruneResponse {
        deleted: deleted as u64,
        statuses,
        older_than_days,
    }))
}

impl FocusedCrawlRequest {
    fn validate(&self) -> Result<()> {
        if let Some(query) = &self.query {
            let n = query.chars().count();
            if n == 0 || n > 2_000 {
                return Err(Error::invalid("query", "must be 1..2000 characters"));
            }
        }
        if let Some(seeds) = &self.seeds {
            if seeds.len() > 100 {
                return Err(Error::invalid("seeds", "at most 100 seeds"));
            }
            for (i, seed) in seeds.iter().enumerate() {
                let ok = seed.len() <= 8_192
                    && url::Url::parse(seed).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    return Err(Error::invalid(
                        format!("seeds[{i}]"),
                        "must be an absolute http(s) URL",
                    ));
                }
            }
        }
        if self.depth.is_some_and(|d| d > 10) {
            return Err(Error::invalid("depth", "must be 0..10"));
        }
        Ok(())
    }
}

/// `refresh.focused_crawl`: queues a `focused_crawl` job for the host's
/// handler; `no_handler` when none is registered.
pub fn focused_crawl(profile: &Profile, request: FocusedCrawlRequest) -> Result<SubmittedResponse> {
    request.validate()?;
    let links = JobLinks::of(&request.thread_id, &request.task_id);
    let payload =
        serde_json::to_value(&request).map_err(|_| Error::internal("request encoding failed"))?;
    let job_id = profile.jobs().submit(FOCUSED_CRAWL, payload, links)?;
    Ok(SubmittedResponse { job_id })
}
