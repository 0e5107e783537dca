//! The shapes of the jobs domain: a [`Job`] as the contract shows it, its
//! [`JobStatus`] and the one rule of which status may follow which, the
//! optional links a job carries, and the declaration of a built-in job type.

use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::types::{Id, Millis};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a job is in its life. Transitions: `queued -> running ->
/// succeeded | failed | cancelled`, or `queued -> cancelled`
/// ([`JobStatus::can_move_to`]).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The status as stored and shown (`"queued"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True once the job can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The transitions of the contract, and only those.
    pub fn can_move_to(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Queued, Running) | (Queued, Cancelled) | (Running, Succeeded | Failed | Cancelled)
        )
    }
}

/// Why a job failed or was cancelled: `{code, message}` of the contract,
/// plus `details` when the error named something (`{"field": "path"}`), so
/// a failed job keeps the whole error it ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobError {
    /// A stable error code of the contract (`"interrupted"`, `"cancelled"`, ...).
    pub code: String,
    /// For people.
    pub message: String,
    /// What the error named (`{"field": "path"}`, ...); empty when nothing.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl JobError {
    /// The ledger form of an error a job ended with.
    pub fn from_error(e: &Error) -> JobError {
        let public = e.to_public();
        JobError {
            code: public.code.as_str().to_owned(),
            message: public.message,
            details: public.details,
        }
    }

    /// A job error with a code of the contract.
    pub fn new(code: ErrorCode, message: &str) -> JobError {
        JobError {
            code: code.as_str().to_owned(),
            message: message.to_owned(),
            details: Map::new(),
        }
    }

    /// The error as the library's [`Error`] (for `submit_and_wait` callers).
    pub fn to_error(&self) -> Error {
        let code = ErrorCode::parse(&self.code).unwrap_or(ErrorCode::Internal);
        self.details
            .iter()
            .fold(Error::new(code, self.message.clone()), |e, (k, v)| {
                e.with_detail(k, v.clone())
            })
    }
}

/// The latest progress a job reported; every field is `null` until reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Progress {
    pub phase: Option<String>,
    pub steps_total: Option<u64>,
    pub steps_completed: Option<u64>,
    pub message: Option<String>,
    pub eta_s: Option<f64>,
}

impl Progress {
    /// `steps_completed / steps_total` in `0..=1`; `None` while
    /// `steps_total` is unset or zero (a ratio of nothing is not a number).
    pub fn fraction(&self) -> Option<f64> {
        match self.steps_total {
            Some(total) if total > 0 => {
                let done = self.steps_completed.unwrap_or(0) as f64;
                Some((done / total as f64).clamp(0.0, 1.0))
            }
            _ => None,
        }
    }
}

/// A job as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: JobStatus,
    /// The request that queued the job.
    pub payload: Value,
    /// What the job returned, once it succeeded.
    pub result: Option<Value>,
    pub error: Option<JobError>,
    pub progress: Progress,
    pub thread_id: Option<String>,
    pub task_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
}

/// A progress report of a running job. `None` leaves a field as it was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressUpdate {
    pub phase: Option<String>,
    pub steps_total: Option<u64>,
    pub steps_completed: Option<u64>,
    pub message: Option<String>,
    pub eta_s: Option<f64>,
}

/// Optional links stored on a job. Each must name an existing row
/// (`llm_threads(id)`, `tasks(id)`), else `not_found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobLinks {
    pub thread_id: Option<String>,
    pub task_id: Option<String>,
}

impl JobLinks {
    /// No links.
    pub fn none() -> JobLinks {
        JobLinks::default()
    }

    /// The links a request names (its `thread_id` and `task_id` fields).
    pub fn of(thread_id: &Option<Id>, task_id: &Option<Id>) -> JobLinks {
        JobLinks {
            thread_id: thread_id.clone().map(Id::into_string),
            task_id: task_id.clone().map(Id::into_string),
        }
    }

    /// Checks that every link names an existing thread / task (`not_found`).
    pub fn check(&self, conn: &Connection) -> Result<()> {
        if let Some(thread_id) = &self.thread_id {
            conn.require_id("llm_threads", thread_id, "thread", "thread_id")?;
        }
        if let Some(task_id) = &self.task_id {
            conn.require_id("tasks", task_id, "task", "task_id")?;
        }
        Ok(())
    }
}

/// A built-in job type: run by the library itself on a worker thread. The
/// registry assembles the table of them and hands it to [`super::Jobs`] at
/// open.
#[derive(Debug, Clone, Copy)]
pub struct JobType {
    /// The `type` of its jobs (`"bundle_export"`).
    pub name: &'static str,
    /// True when a job left `running` by a crash may simply run again
    /// (queued at the next open) instead of ending `failed` / `interrupted`.
    pub rerun_after_crash: bool,
    /// The work. Its `Ok` value is the job's `result`; an `Err` fails the job
    /// with that error's code and message.
    pub run: fn(&super::JobContext) -> Result<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contract_transitions_are_allowed() {
        use JobStatus::*;
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn fraction_is_null_until_there_is_a_total() {
        let mut p = Progress::default();
        assert_eq!(p.fraction(), None);
        p.steps_completed = Some(3);
        assert_eq!(p.fraction(), None);
        p.steps_total = Some(0);
        assert_eq!(p.fraction(), None);
        p.steps_total = Some(4);
        assert_eq!(p.fraction(), Some(0.75));
        p.steps_completed = Some(9);
        assert_eq!(p.fraction(), Some(1.0));
    }

    #[test]
    fn status_text_round_trips() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(JobStatus::parse("Queued"), None);
    }
}
