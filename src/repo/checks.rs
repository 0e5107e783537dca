//! `repo.run_checks`: runs the one argv a repo was registered with, and
//! nothing else, as job `repo_run_checks`.
//!
//! The sandbox is deliberately plain: the exact configured argv
//! (`command_not_allowed` for anything else), no shell, the root as working
//! directory, an environment of only `PATH` (always set), `HOME`, `LANG`
//! and `TMPDIR`, stdin closed, and the child in its own process group,
//! which is killed whole (`SIGKILL` to the group) on timeout, on
//! `jobs.cancel`, and once the command has exited (so a check cannot leave
//! background processes behind). stdout and stderr are read on their own
//! threads, each keeping only its last 64 KiB; invalid UTF-8 is replaced.
//!
//! While the command runs, the job reports progress every 250 ms: phase
//! `running`, `steps_completed` the milliseconds elapsed and `steps_total`
//! the time limit in milliseconds (the most it can take). No ETA: how long
//! a check command runs cannot be measured from outside.
//!
//! Whenever the command ran, the call returns the outcome; the job ends
//! `succeeded` on exit code 0, else `failed` with `check_failed` or
//! `timeout` (or `cancelled`). A command that cannot start is `io`.

use super::registry::{self, Change, ChangeKind, Permission};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{JobContext, JobLinks, JobStatus, ProgressUpdate};
use crate::profile::Profile;
use crate::sys::os;
use crate::types::{now_ms, Bounded, Id};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes kept of each of stdout and stderr (the last ones).
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// `PATH` given to the command when the library's own process has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long to wait for the output pipes once the process group is gone
/// (a process that left the group may still hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Longest pause between two looks at the child, the deadline and the
/// cancellation flag (bounds how late a timeout or cancel is acted on).
const MAX_POLL: Duration = Duration::from_millis(50);

/// How often a running check reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Request of `repo.run_checks`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksRequest {
    pub id: Id,
    /// Must equal the configured argv exactly when given.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Seconds, 1..3600, default 600.
    #[serde(default)]
    pub timeout_s: Bounded<600, 3600>,
    /// Wait for the outcome (default true); false returns `{job_id}` at once.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

/// What a check run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The exit code; null when the process was killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    pub timed_out: bool,
    /// True when `jobs.cancel` stopped the run.
    #[serde(skip)]
    pub cancelled: bool,
}

/// The outcome of `repo.run_checks` with `wait: true`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChecksDone {
    pub job_id: String,
    /// The job's final status: `succeeded`, `failed` or `cancelled`.
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    pub timed_out: bool,
}

/// Response of `repo.run_checks`: the outcome, or `{job_id}` for `wait: false`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ChecksResponse {
    Done(ChecksDone),
    Queued { job_id: String },
}

/// The environment of a check: PATH (always), HOME, LANG, TMPDIR.
fn minimal_env() -> Vec<(&'static str, String)> {
    let mut env = vec![(
        "PATH",
        std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned()),
    )];
    for key in ["HOME", "LANG", "TMPDIR"] {
        if let Ok(v) = std::env::var(key) {
            env.push((key, v));
        }
    }
    env
}

/// Reads a pipe to its end, keeping only the last [`OUTPUT_TAIL_BYTES`].
fn read_tail(mut pipe: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * OUTPUT_TAIL_BYTES {
                    kept.drain(..kept.len() - OUTPUT_TAIL_BYTES);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > OUTPUT_TAIL_BYTES {
        kept.drain(..kept.len() - OUTPUT_TAIL_BYTES);
    }
    kept
}

/// The text of an output tail: a character cut at the start of the tail is
/// dropped rather than shown as a replacement; other invalid UTF-8 is
/// replaced with U+FFFD.
fn tail_text(bytes: &[u8], truncated: bool) -> String {
    let skip = if truncated {
        bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count()
    } else {
        0
    };
    String::from_utf8_lossy(&bytes[skip..]).into_owned()
}

/// Spawns a reader thread for one pipe; its result arrives on the channel.
fn spawn_reader(
    pipe: Option<impl Read + Send + 'static>,
) -> crossbeam_channel::Receiver<(Vec<u8>, bool)> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if let Some(pipe) = pipe {
        std::thread::spawn(move || {
            let mut counting = CountingReader {
                inner: pipe,
                total: 0,
            };
            let tail = read_tail(&mut counting);
            let _ = tx.send((tail, counting.total > OUTPUT_TAIL_BYTES as u64));
        });
    } else {
        let _ = tx.send((Vec::new(), false));
    }
    rx
}

struct CountingReader<R> {
    inner: R,
    total: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        Ok(n)
    }
}

/// Runs `argv` in `cwd` under the sandbox rules of the module doc, until it
/// exits, `timeout` passes or `cancel` is set, calling `on_progress` with
/// the time elapsed every [`PROGRESS_EVERY`]. Errors only when the command
/// cannot start (`io`).
pub fn run_command(
    argv: &[String],
    cwd: &Path,
    timeout: Duration,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Duration),
) -> Result<CheckOutcome> {
    use std::os::unix::process::CommandExt;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::internal("empty argv"))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(minimal_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Error::new(
                ErrorCode::Io,
                format!("the check command could not start: {}", e.kind()),
            )
        })?;
    let pgid = child.id();
    let stdout = spawn_reader(child.stdout.take());
    let stderr = spawn_reader(child.stderr.take());
    let deadline = started + timeout;
    let (mut timed_out, mut cancelled) = (false, false);
    let mut poll = Duration::from_millis(1);
    let mut reported = started;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            on_progress(started.elapsed());
        }
        if Instant::now() >= deadline {
            timed_out = true;
        } else if cancel.load(Ordering::Acquire) {
            cancelled = true;
        }
        if timed_out || cancelled {
            os::kill_process_group(pgid, libc::SIGKILL)?;
            break child.wait()?;
        }
        // Poll quickly at first (most checks are short), then back off.
        std::thread::sleep(poll);
        poll = (poll * 2).min(MAX_POLL);
    };
    // Whatever is left of the group (background children) goes too.
    os::kill_process_group(pgid, libc::SIGKILL)?;
    let collect = |rx: crossbeam_channel::Receiver<(Vec<u8>, bool)>| {
        rx.recv_timeout(PIPE_GRACE)
            .map(|(bytes, truncated)| tail_text(&bytes, truncated))
            .unwrap_or_default()
    };
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    Ok(CheckOutcome {
        exit_code: if timed_out || cancelled {
            None
        } else {
            status.code()
        },
        stdout,
        stderr,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out,
        cancelled,
    })
}

/// The argv to run: the configured one (`no_check_command` if none), which
/// a given `command` must equal exactly (`command_not_allowed`).
fn resolve_argv(
    configured: Option<&Vec<String>>,
    asked: Option<&Vec<String>>,
) -> Result<Vec<String>> {
    let argv = configured.ok_or_else(|| {
        Error::new(
            ErrorCode::NoCheckCommand,
            "this repo has no check_command; register one first",
        )
    })?;
    if asked.is_some_and(|a| a != argv) {
        return Err(Error::new(
            ErrorCode::CommandNotAllowed,
            "only the repo's configured check_command may run (exact argv)",
        )
        .with_detail("field", "command"));
    }
    Ok(argv.clone())
}

/// The payload of a `repo_run_checks` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksPayload {
    pub id: String,
    pub command: Vec<String>,
    pub timeout_s: u64,
}

/// The error a finished run gives its job, if it did not succeed.
fn outcome_error(o: &CheckOutcome) -> Option<Error> {
    if o.cancelled {
        Some(Error::new(
            ErrorCode::Cancelled,
            "the check run was cancelled",
        ))
    } else if o.timed_out {
        Some(Error::new(
            ErrorCode::Timeout,
            "the check command timed out; its process group was killed",
        ))
    } else if o.exit_code != Some(0) {
        Some(
            Error::new(ErrorCode::CheckFailed, "the check command failed")
                .with_detail("exit_code", o.exit_code),
        )
    } else {
        None
    }
}

/// The status a job ends with after `error` (or success).
fn final_status(error: Option<ErrorCode>) -> JobStatus {
    match error {
        None => JobStatus::Succeeded,
        Some(ErrorCode::Cancelled) => JobStatus::Cancelled,
        Some(_) => JobStatus::Failed,
    }
}

/// The job type of `repo.run_checks`.
pub const CHECKS_JOB_TYPE: &str = "repo_run_checks";

/// The runner of queued `repo_run_checks` jobs (`wait: false`), listed in
/// `ops::JOB_TYPES`.
pub fn run_queued_job(ctx: &JobContext) -> Result<Value> {
    let payload: ChecksPayload = serde_json::from_value(ctx.payload().clone())
        .map_err(|_| Error::invalid("payload", "not a repo_run_checks payload"))?;
    run_job(ctx.profile(), &payload, ctx).1
}

/// The work of a `repo_run_checks` job: re-checks the repo (it may have
/// changed since the job was queued), runs the command and records the
/// change row. Returns the outcome (when the command ran) and the job's
/// result.
pub fn run_job(
    profile: &Profile,
    payload: &ChecksPayload,
    ctx: &JobContext,
) -> (Option<CheckOutcome>, Result<Value>) {
    let (job_id, cancel) = (ctx.job_id(), ctx.cancel_flag());
    let prepared = (|| {
        let id = Id::parse(payload.id.clone())?;
        let repo = registry::load_for(profile, &id, Permission::RunChecks)?;
        resolve_argv(repo.check_command.as_ref(), Some(&payload.command))?;
        super::paths::open_root(&repo.root_path)?;
        Ok::<_, Error>(repo)
    })();
    let repo = match prepared {
        Ok(repo) => repo,
        Err(e) => return (None, Err(e)),
    };
    let timeout = Duration::from_secs(payload.timeout_s);
    let limit_ms = timeout.as_millis() as u64;
    let mut report = |elapsed: Duration| {
        // A failed report (the job was cancelled) is acted on through `cancel`.
        // Never waits for the writer: the command runs on meanwhile.
        let _ = ctx.progress_queued(&ProgressUpdate {
            phase: Some("running".to_owned()),
            steps_total: Some(limit_ms),
            steps_completed: Some((elapsed.as_millis() as u64).min(limit_ms)),
            message: Some("milliseconds elapsed of the time limit".to_owned()),
            eta_s: None,
        });
    };
    let outcome = match run_command(
        &payload.command,
        &repo.root_path,
        timeout,
        &cancel,
        &mut report,
    ) {
        Ok(o) => o,
        Err(e) => return (None, Err(e)),
    };
    let change = Change {
        id: crate::types::new_id(),
        repo_id: repo.id.clone(),
        kind: ChangeKind::RunChecks,
        job_id: job_id.to_owned(),
        summary: Some(match outcome_error(&outcome) {
            None => "checks passed".to_owned(),
            Some(e) => e.to_public().message,
        }),
        files: json!([]),
        stats: json!({
            "status": final_status(outcome_error(&outcome).map(|e| e.code())),
            "exit_code": outcome.exit_code,
            "duration_ms": outcome.duration_ms,
            "timed_out": outcome.timed_out,
        }),
        created_at: now_ms(),
    };
    if let Err(e) = profile
        .db()
        .write(|tx| registry::record_change(tx, &change))
    {
        return (Some(outcome), Err(e));
    }
    let result = match outcome_error(&outcome) {
        Some(e) => Err(e),
        None => serde_json::to_value(&outcome).map_err(|e| Error::internal(e.to_string())),
    };
    (Some(outcome), result)
}

/// `repo.run_checks`.
pub fn run_checks(profile: &Profile, req: ChecksRequest) -> Result<ChecksResponse> {
    let repo = registry::load_for(profile, &req.id, Permission::RunChecks)?;
    let command = resolve_argv(repo.check_command.as_ref(), req.command.as_ref())?;
    super::paths::open_root(&repo.root_path)?;
    let payload = ChecksPayload {
        id: repo.id.clone(),
        command,
        timeout_s: req.timeout_s.get() as u64,
    };
    if !req.wait {
        let (job_id, _) = profile.jobs().submit_request::<_, serde_json::Value>(
            CHECKS_JOB_TYPE,
            &payload,
            JobLinks::none(),
            false,
        )?;
        return Ok(ChecksResponse::Queued { job_id });
    }
    // With `wait`, the check runs on the caller's thread (still a job in
    // the ledger): the contract returns the outcome of a command that ran,
    // failed or not, which a job's error cannot carry.
    let payload_json =
        serde_json::to_value(&payload).map_err(|_| Error::internal("request encoding failed"))?;
    let mut ran = None;
    let (job_id, result) =
        profile
            .jobs()
            .run_inline(CHECKS_JOB_TYPE, payload_json, JobLinks::none(), |ctx| {
                let (outcome, result) = run_job(profile, &payload, ctx);
                ran = outcome;
                result
            })?;
    // The job's status as the ledger has it (a cancel that came as the
    // command ended still makes the job `cancelled`).
    let status = final_status(result.as_ref().err().map(Error::code));
    match ran {
        Some(o) => Ok(ChecksResponse::Done(ChecksDone {
            job_id,
            status,
            exit_code: o.exit_code,
            stdout: o.stdout,
            stderr: o.stderr,
            duration_ms: o.duration_ms,
            timed_out: o.timed_out,
        })),
        None => Err(result
            .err()
            .unwrap_or_else(|| Error::internal("check run lost"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(v: &[&str], timeout_ms: u64) -> CheckOutcome {
        let dir = tempfile::tempdir().unwrap();
        run_command(
            &argv(v),
            dir.path(),
            Duration::from_millis(timeout_ms),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
    }

    #[test]
    fn a_running_command_reports_its_elapsed_time_every_250_ms() {
        let dir = tempfile::tempdir().unwrap();
        let mut reports = Vec::new();
        let o = run_command(
            &argv(&["sleep", "0.8"]),
            dir.path(),
            Duration::from_secs(10),
            &AtomicBool::new(false),
            &mut |elapsed| reports.push(elapsed),
        )
        .unwrap();
        assert_eq!(o.exit_code, Some(0));
        assert!(reports.len() >= 2, "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
        assert!(
            reports[0] >= PROGRESS_EVERY && reports[0] < Duration::from_millis(400),
            "{reports:?}"
        );
    }

    #[test]
    fn captures_both_streams_and_the_exit_code() {
        let o = run(&["sh", "-c", "echo out; echo err >&2; exit 3"], 10_000);
        assert_eq!(
            (o.exit_code, o.stdout.as_str(), o.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
        assert!(!o.timed_out);
    }

    #[test]
    fn keeps_the_last_64_kib_and_replaces_invalid_utf8() {
        let o = run(
            &[
                "sh",
                "-c",
                "head -c 200000 /dev/zero | tr '\\0' a; printf 'END'; printf '\\377' >&2",
            ],
            10_000,
        );
        assert_eq!(o.stdout.len(), OUTPUT_TAIL_BYTES);
        assert!(o.stdout.ends_with("aEND"));
        assert_eq!(o.stderr, "\u{FFFD}");
    }

    #[test]
    fn environment_is_minimal() {
        let o = run(&["env"], 10_000);
        let keys: Vec<&str> = o
            .stdout
            .lines()
            .filter_map(|l| l.split('=').next())
            .collect();
        assert!(keys.contains(&"PATH"));
        assert!(
            keys.iter()
                .all(|k| ["PATH", "HOME", "LANG", "TMPDIR", "PWD", "SHLVL", "_"].contains(k)),
            "{keys:?}"
        );
    }

    #[test]
    fn no_shell_interprets_the_argv() {
        let o = run(&["echo", "$HOME;", "`id`"], 10_000);
        assert_eq!(o.stdout, "$HOME; `id`\n");
    }

    #[test]
    fn a_missing_program_is_io() {
        let dir = tempfile::tempdir().unwrap();
        let e = run_command(
            &argv(&["/nonexistent/prog"]),
            dir.path(),
            Duration::from_secs(1),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Io);
    }

    #[test]
    fn argv_must_match_exactly() {
        let conf = argv(&["cargo", "test"]);
        assert_eq!(resolve_argv(Some(&conf), None).unwrap(), conf);
        assert_eq!(resolve_argv(Some(&conf), Some(&conf)).unwrap(), conf);
        let other = argv(&["cargo", "test", "--", "x"]);
        assert_eq!(
            resolve_argv(Some(&conf), Some(&other)).unwrap_err().code(),
            ErrorCode::CommandNotAllowed
        );
        assert_eq!(
            resolve_argv(None, None).unwrap_err().code(),
            ErrorCode::NoCheckCommand
        );
    }
}
