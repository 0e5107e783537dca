//! The SQL of the jobs ledger (tables `jobs` and `job_status`).
//!
//! Every status change goes through [`transition`], the one place that
//! checks [`JobStatus::can_move_to`] against the stored status and updates
//! the row only if it still holds that status.

use super::model::{Job, JobError, JobLinks, JobStatus, Progress};
use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::types::{Millis, Patch};
use rusqlite::{params, Connection, Row};
use serde_json::Value;

/// The columns [`job_from_row`] reads, in order (`j` = jobs, `s` = job_status).
const JOB_COLUMNS: &str =
    "j.id, j.type, j.status, j.payload, j.result, j.error_code, j.error_message,
     s.phase, s.steps_total, s.steps_completed, s.message, s.eta_s,
     j.thread_id, j.task_id, j.created_at, j.updated_at, j.started_at, j.completed_at,
     j.error_details";

fn json_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

fn u64_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row.get::<_, Option<i64>>(idx)?.map(|v| v.max(0) as u64))
}

/// Reads a row selected with [`JOB_COLUMNS`].
fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let status: String = row.get(2)?;
    let status = JobStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            "unknown job status".into(),
        )
    })?;
    let error_code: Option<String> = row.get(5)?;
    let error_message: Option<String> = row.get(6)?;
    let error_details = match json_column(row, 18)? {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    Ok(Job {
        id: row.get(0)?,
        job_type: row.get(1)?,
        status,
        payload: json_column(row, 3)?.unwrap_or(Value::Null),
        result: json_column(row, 4)?,
        error: error_code.map(|code| JobError {
            code,
            message: error_message.unwrap_or_default(),
            details: error_details,
        }),
        progress: Progress {
            phase: row.get(7)?,
            steps_total: u64_column(row, 8)?,
            steps_completed: u64_column(row, 9)?,
            message: row.get(10)?,
            eta_s: row.get(11)?,
        },
        thread_id: row.get(12)?,
        task_id: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
        started_at: row.get(16)?,
        completed_at: row.get(17)?,
    })
}

/// The job `id`, if it exists.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Job>> {
    get_where(conn, "j.id = ?1", id)
}

/// The job matching `condition` on `key` (`?1`), if any.
fn get_where(conn: &Connection, condition: &str, key: impl rusqlite::ToSql) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j LEFT JOIN job_status s ON s.job_seq = j.seq
         WHERE {condition}"
    );
    conn.query_opt(&sql, [key], job_from_row)
}

/// The job `id`, or `not_found`.
pub fn require(conn: &Connection, id: &str) -> Result<Job> {
    get(conn, id)?.ok_or_else(|| Error::not_found("job", "id"))
}

/// The job with insertion sequence `seq`.
pub fn get_by_seq(conn: &Connection, seq: i64) -> Result<Option<Job>> {
    get_where(conn, "j.seq = ?1", seq)
}

/// The stored status of job `id`, if it exists.
pub fn status_of(conn: &Connection, id: &str) -> Result<Option<JobStatus>> {
    let text: Option<String> =
        conn.query_opt("SELECT status FROM jobs WHERE id = ?1", [id], |r| r.get(0))?;
    Ok(text.and_then(|t| JobStatus::parse(&t)))
}

/// The status of job `id`; `not_found` (field `id`) when there is none.
pub fn require_status(conn: &Connection, id: &str) -> Result<JobStatus> {
    status_of(conn, id)?.ok_or_else(|| Error::not_found("job", "id"))
}

/// Writes a new job row with `status` `queued` or `running` (a job run
/// inline on its caller's thread starts at once).
pub fn insert(
    conn: &Connection,
    id: &str,
    job_type: &str,
    payload: &Value,
    links: &JobLinks,
    status: JobStatus,
    now: Millis,
) -> Result<()> {
    debug_assert!(matches!(status, JobStatus::Queued | JobStatus::Running));
    let started_at = (status == JobStatus::Running).then_some(now);
    conn.run(
        "INSERT INTO jobs (id, type, status, payload, thread_id, task_id, created_at, updated_at, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            id,
            job_type,
            status.as_str(),
            payload.to_string(),
            links.thread_id,
            links.task_id,
            now,
            started_at
        ],
    )?;
    Ok(())
}

/// A change of status.
#[derive(Debug, Clone)]
pub enum Move {
    /// `queued -> running`.
    Start,
    /// `running -> succeeded` with the job's result.
    Succeed(Value),
    /// `running -> failed` with the error.
    Fail(JobError),
    /// `queued | running -> cancelled`.
    Cancel(JobError),
    /// Crash recovery of a type that may re-run: `running -> queued`. Not a
    /// transition of the contract's life cycle: the interrupted run is
    /// forgotten, as if it never started.
    RequeueAfterCrash,
}

impl Move {
    fn target(&self) -> JobStatus {
        match self {
            Move::Start => JobStatus::Running,
            Move::Succeed(_) => JobStatus::Succeeded,
            Move::Fail(_) => JobStatus::Failed,
            Move::Cancel(_) => JobStatus::Cancelled,
            Move::RequeueAfterCrash => JobStatus::Queued,
        }
    }

    fn allowed_from(&self, from: JobStatus) -> bool {
        match self {
            Move::RequeueAfterCrash => from == JobStatus::Running,
            other => from.can_move_to(other.target()),
        }
    }
}

/// The one place a job's status changes. The row is updated only if its
/// stored status is one the move is allowed from ([`JobStatus::can_move_to`]);
/// otherwise nothing changes and the error says why: `not_found` for an
/// unknown id, `conflict` (with `details.status`) for a move the life cycle
/// does not allow.
pub fn transition(conn: &Connection, id: &str, change: Move, now: Millis) -> Result<()> {
    let to = change.target().as_str();
    // At most two statuses lead to any target (queued and running).
    let mut from = JobStatus::ALL
        .into_iter()
        .filter(|s| change.allowed_from(*s))
        .map(JobStatus::as_str);
    let from_a = from.next().unwrap_or("");
    let from_b = from.next().unwrap_or(from_a);
    debug_assert!(from.next().is_none());
    let changed = match &change {
        Move::Start => conn.run(
            "UPDATE jobs SET status = ?4, started_at = ?5, updated_at = ?5
             WHERE id = ?1 AND status IN (?2, ?3)",
            params![id, from_a, from_b, to, now],
        )?,
        Move::RequeueAfterCrash => conn.run(
            "UPDATE jobs SET status = ?4, started_at = NULL, updated_at = ?5
             WHERE id = ?1 AND status IN (?2, ?3)",
            params![id, from_a, from_b, to, now],
        )?,
        Move::Succeed(_) | Move::Fail(_) | Move::Cancel(_) => {
            let (result, error) = match &change {
                Move::Succeed(v) => (Some(v.to_string()), None),
                Move::Fail(e) | Move::Cancel(e) => (None, Some(e)),
                _ => (None, None),
            };
            conn.run(
                "UPDATE jobs SET status = ?4, result = ?6, error_code = ?7, error_message = ?8,
                     error_details = ?9, completed_at = ?5, updated_at = ?5
                 WHERE id = ?1 AND status IN (?2, ?3)",
                params![
                    id,
                    from_a,
                    from_b,
                    to,
                    now,
                    result,
                    error.map(|e| e.code.as_str()),
                    error.map(|e| e.message.as_str()),
                    error
                        .filter(|e| !e.details.is_empty())
                        .map(|e| Value::Object(e.details.clone()).to_string())
                ],
            )?
        }
    };
    if changed == 1 {
        return Ok(());
    }
    let from = status_of(conn, id)?.ok_or_else(|| Error::not_found("job", "id"))?;
    Err(Error::conflict(format!(
        "a {} job cannot become {}",
        from.as_str(),
        change.target().as_str()
    ))
    .with_detail("status", from.as_str()))
}

/// A progress report for the ledger: each field absent (kept), null
/// (cleared) or a value.
#[derive(Debug, Clone, Default)]
pub struct ProgressPatch {
    pub phase: Patch<String>,
    pub steps_total: Patch<u64>,
    pub steps_completed: Patch<u64>,
    pub message: Patch<String>,
    pub eta_s: Patch<f64>,
}

/// Records progress of the running job `id` (`conflict` when it is not
/// running, `not_found` when it does not exist).
pub fn record_progress(
    conn: &Connection,
    id: &str,
    patch: &ProgressPatch,
    now: Millis,
) -> Result<()> {
    let row: Option<(i64, String)> =
        conn.query_opt("SELECT seq, status FROM jobs WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (seq, status) = row.ok_or_else(|| Error::not_found("job", "id"))?;
    if status != JobStatus::Running.as_str() {
        return Err(
            Error::conflict("only a running job reports progress").with_detail("status", status)
        );
    }
    // One upsert: each column takes the reported value when the field was
    // named (`?n` flag), else keeps what it had.
    let steps = |p: &Patch<u64>| named(p).1.map(|v| (*v).min(i64::MAX as u64) as i64);
    conn.run(
        "INSERT INTO job_status (job_seq, phase, steps_total, steps_completed, message, eta_s, updated_at)
         VALUES (?1, ?2, ?4, ?6, ?8, ?10, ?12)
         ON CONFLICT (job_seq) DO UPDATE SET
             phase           = CASE WHEN ?3  THEN excluded.phase           ELSE phase           END,
             steps_total     = CASE WHEN ?5  THEN excluded.steps_total     ELSE steps_total     END,
             steps_completed = CASE WHEN ?7  THEN excluded.steps_completed ELSE steps_completed END,
             message         = CASE WHEN ?9  THEN excluded.message         ELSE message         END,
             eta_s           = CASE WHEN ?11 THEN excluded.eta_s           ELSE eta_s           END,
             updated_at      = excluded.updated_at",
        params![
            seq,
            named(&patch.phase).1,
            named(&patch.phase).0,
            steps(&patch.steps_total),
            named(&patch.steps_total).0,
            steps(&patch.steps_completed),
            named(&patch.steps_completed).0,
            named(&patch.message).1,
            named(&patch.message).0,
            named(&patch.eta_s).1,
            named(&patch.eta_s).0,
            now
        ],
    )?;
    conn.run(
        "UPDATE jobs SET updated_at = ?2 WHERE seq = ?1",
        params![seq, now],
    )?;
    Ok(())
}

/// Whether a patch field was named, and its new value (`None` clears).
fn named<T>(patch: &Patch<T>) -> (bool, Option<&T>) {
    (patch.is_present(), patch.as_value())
}

/// What a job may be linked to besides a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Thread,
    Task,
}

/// Clears the `link` of the jobs that point at `id` (the thread or task is
/// being deleted); the ledger keeps the jobs. Returns how many changed.
pub fn detach(conn: &Connection, link: Link, id: &str) -> Result<usize> {
    let sql = match link {
        Link::Thread => "UPDATE jobs SET thread_id = NULL WHERE thread_id = ?1",
        Link::Task => "UPDATE jobs SET task_id = NULL WHERE task_id = ?1",
    };
    conn.run(sql, [id])
}

/// Crash recovery: every job left `running` by a previous process ends
/// `failed` with `interrupted`, unless its type may re-run (`may_rerun`),
/// which puts it back in the queue. Returns how many jobs were touched.
pub fn recover_interrupted(
    conn: &Connection,
    may_rerun: impl Fn(&str) -> bool,
    now: Millis,
) -> Result<usize> {
    let running: Vec<(String, String)> = conn.query_all(
        "SELECT id, type FROM jobs WHERE status = 'running' ORDER BY seq",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (id, job_type) in &running {
        let change = if may_rerun(job_type) {
            Move::RequeueAfterCrash
        } else {
            Move::Fail(JobError::new(
                ErrorCode::Interrupted,
                "the job was running when the profile was last closed abnormally",
            ))
        };
        transition(conn, id, change, now)?;
    }
    Ok(running.len())
}

/// Crash recovery of work that finished but was not yet recorded (a patch
/// whose swaps were durable): a job still `running` becomes `succeeded`
/// with `result`. A job already finished, or gone, is left as it is.
pub fn finish_recovered(conn: &Connection, id: &str, result: Value, now: Millis) -> Result<()> {
    if status_of(conn, id)? == Some(JobStatus::Running) {
        transition(conn, id, Move::Succeed(result), now)?;
    }
    Ok(())
}

/// Every queued job as `(id, type)`, oldest first.
pub fn queued(conn: &Connection) -> Result<Vec<(String, String)>> {
    conn.query_all(
        "SELECT id, type FROM jobs WHERE status = 'queued' ORDER BY seq",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The page keys `(created_at, seq)` of one list branch: the jobs with
/// `status` (and `job_type`, if given), newest first, strictly before
/// `before`, at most `limit`.
pub fn page_keys(
    conn: &Connection,
    status: JobStatus,
    job_type: Option<&str>,
    before: (i64, i64),
    limit: usize,
) -> Result<Vec<(i64, i64)>> {
    use rusqlite::types::Value as Sql;
    let mut filter = String::new();
    let mut args: Vec<Sql> = Vec::with_capacity(4);
    filter.push_str("status = ? AND ");
    args.push(Sql::Text(status.as_str().to_owned()));
    if let Some(job_type) = job_type {
        filter.push_str("type = ? AND ");
        args.push(Sql::Text(job_type.to_owned()));
    }
    args.extend([Sql::Integer(before.0), Sql::Integer(before.1)]);
    conn.query_all(
        &format!(
            "SELECT created_at, seq FROM jobs
             WHERE {filter}(created_at, seq) < (?, ?)
             ORDER BY created_at DESC, seq DESC LIMIT {limit}"
        ),
        rusqlite::params_from_iter(args),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Deletes the finished jobs with one of `statuses` completed at or before
/// `cutoff`; returns how many.
pub fn prune(conn: &Connection, statuses: &[JobStatus], cutoff: Millis) -> Result<usize> {
    let mut deleted = 0;
    for status in statuses {
        debug_assert!(status.is_terminal());
        deleted += conn.run(
            "DELETE FROM jobs WHERE status = ?1 AND completed_at <= ?2",
            params![status.as_str(), cutoff],
        )?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        conn
    }

    fn add(conn: &Connection, id: &str) {
        insert(
            conn,
            id,
            "t",
            &json!({"a": 1}),
            &JobLinks::none(),
            JobStatus::Queued,
            10,
        )
        .unwrap();
    }

    #[test]
    fn transitions_outside_the_life_cycle_are_conflicts() {
        let c = conn();
        add(&c, "j");
        let fail = || Move::Fail(JobError::new(ErrorCode::Internal, "x"));
        assert_eq!(
            transition(&c, "j", fail(), 11).unwrap_err().code(),
            ErrorCode::Conflict
        );
        transition(&c, "j", Move::Start, 12).unwrap();
        assert_eq!(
            transition(&c, "j", Move::Start, 13).unwrap_err().code(),
            ErrorCode::Conflict
        );
        transition(&c, "j", Move::Succeed(json!({"ok": 1})), 14).unwrap();
        for change in [
            Move::Start,
            fail(),
            Move::Cancel(JobError::new(ErrorCode::Cancelled, "c")),
            Move::RequeueAfterCrash,
        ] {
            assert_eq!(
                transition(&c, "j", change, 15).unwrap_err().code(),
                ErrorCode::Conflict
            );
        }
        let job = require(&c, "j").unwrap();
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.result, Some(json!({"ok": 1})));
        assert_eq!(
            (job.started_at, job.completed_at, job.updated_at),
            (Some(12), Some(14), 14)
        );
        assert_eq!(
            transition(&c, "nope", Move::Start, 1).unwrap_err().code(),
            ErrorCode::NotFound
        );
    }

    #[test]
    fn progress_patches_keep_absent_and_clear_null() {
        let c = conn();
        add(&c, "j");
        let patch = ProgressPatch {
            phase: Patch::Value("fetch".into()),
            steps_total: Patch::Value(4),
            ..Default::default()
        };
        assert_eq!(
            record_progress(&c, "j", &patch, 11).unwrap_err().code(),
            ErrorCode::Conflict
        );
        transition(&c, "j", Move::Start, 12).unwrap();
        record_progress(&c, "j", &patch, 13).unwrap();
        let patch = ProgressPatch {
            phase: Patch::Null,
            steps_completed: Patch::Value(2),
            ..Default::default()
        };
        record_progress(&c, "j", &patch, 14).unwrap();
        let job = require(&c, "j").unwrap();
        assert_eq!(job.progress.phase, None);
        assert_eq!(job.progress.steps_total, Some(4));
        assert_eq!(job.progress.steps_completed, Some(2));
        assert_eq!(job.updated_at, 14);
    }

    #[test]
    fn recovery_fails_running_jobs_unless_they_may_rerun() {
        let c = conn();
        for id in ["a", "b", "q"] {
            add(&c, id);
        }
        c.run("UPDATE jobs SET type = 'again' WHERE id = 'b'", [])
            .unwrap();
        transition(&c, "a", Move::Start, 11).unwrap();
        transition(&c, "b", Move::Start, 11).unwrap();
        assert_eq!(recover_interrupted(&c, |t| t == "again", 20).unwrap(), 2);
        let a = require(&c, "a").unwrap();
        assert_eq!(a.status, JobStatus::Failed);
        assert_eq!(a.error.unwrap().code, "interrupted");
        let b = require(&c, "b").unwrap();
        assert_eq!((b.status, b.started_at), (JobStatus::Queued, None));
        let ids: Vec<String> = queued(&c).unwrap().into_iter().map(|x| x.0).collect();
        assert_eq!(ids, ["b", "q"]);
    }
}
