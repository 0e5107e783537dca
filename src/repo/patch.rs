//! Patches: `repo.propose_patch` (check and measure, write nothing) and
//! `repo.apply_patch` (the same checks, then the all-or-nothing engine of
//! [`super::journal`]).
//!
//! Both run [`plan`], which checks in the contract's order: the repo and
//! its `write` permission, the path rule on every entry ([`super::paths`]),
//! duplicate paths, each entry's shape, then the budgets measured from the
//! real change (files touched, lines added plus removed from a line diff of
//! old and new content, bytes written; nothing the caller reports is
//! trusted). `expected_sha256` preconditions and deletions of missing files
//! are found by the plan too but reported last: `propose_patch` fails with
//! `conflict`, `apply_patch` records its job as `failed` with `conflict`.
//!
//! Decisions beyond the contract's text:
//! - every entry counts as a touched file, even one whose content is
//!   unchanged; `bytes` is the sum of the new contents' sizes;
//! - deleting a file that does not exist is `conflict`;
//! - `mode` (an integer such as 420, or an octal string such as `"0644"`,
//!   at most `0o777`) applies to created files only (default `0o644`); an
//!   existing file keeps its mode (except set-user-id / set-group-id bits,
//!   which are dropped as the kernel drops them on a write by another user)
//!   and, where the process may, its owner; `mode` on a deletion is
//!   `invalid_argument`;
//! - `jobs.cancel` on a running apply rolls it back if it arrives before
//!   the last swap (the call then fails with `cancelled`); later, the
//!   change stands;
//! - the job payload of `repo_apply_patch` lists paths, actions, sizes and
//!   preconditions but not the contents, so file contents are never copied
//!   into the jobs ledger.

use super::journal::{self, sha256_hex, Action, FileChange};
use super::paths::{self, Found, RepoPath};
use super::registry::{self, Budgets, Change, ChangeKind, Permission, Repo};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{JobContext, JobLinks};
use crate::profile::Profile;
use crate::sys::os::Dir;
use crate::types::{now_ms, Id};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

/// Permission bits of a new file: an integer (`420`) or an octal string
/// (`"0644"`, `"755"`), at most `0o777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FileMode(pub u32);

/// Read as an integer or an octal string, written as an integer.
impl schemars::JsonSchema for FileMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FileMode".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let integer = serde_json::json!({ "type": "integer", "minimum": 0, "maximum": 0o777 });
        if generator.contract().is_serialize() {
            return schemars::Schema::try_from(integer).unwrap_or_default();
        }
        schemars::json_schema!({
            "description": "Permission bits: an integer (420) or an octal string (\"0644\"), at most 0o777.",
            "oneOf": [integer, { "type": "string", "pattern": "^[0-7]{1,4}$" }]
        })
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let bad = || de::Error::custom("a mode is 0..=0o777 (an integer or an octal string)");
        let value = match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::Int(n) => n,
            Raw::Text(t) if !t.is_empty() && t.len() <= 4 => {
                i64::from_str_radix(&t, 8).map_err(|_| bad())?
            }
            Raw::Text(_) => return Err(bad()),
        };
        if (0..=0o777).contains(&value) {
            Ok(FileMode(value as u32))
        } else {
            Err(bad())
        }
    }
}

/// One entry of a patch payload.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEdit {
    pub path: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub delete: bool,
    #[serde(default)]
    pub mode: Option<FileMode>,
    /// Hex SHA-256 the current file must have, or `""` for "must not exist".
    #[serde(default)]
    pub expected_sha256: Option<String>,
}

/// Request of `repo.propose_patch` and `repo.apply_patch`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    pub id: Id,
    pub files: Vec<FileEdit>,
    #[serde(default)]
    #[schemars(length(max = MAX_SUMMARY_CHARS))]
    pub summary: Option<String>,
}

/// The job type of `repo.apply_patch`. Its jobs run only inline, on the
/// caller's thread, so it has no entry in `ops::JOB_TYPES`.
pub const APPLY_JOB_TYPE: &str = "repo_apply_patch";

/// Longest `summary` accepted, in characters.
const MAX_SUMMARY_CHARS: usize = 4096;

/// What one entry changes, as measured.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FileReport {
    pub path: String,
    pub action: Action,
    pub additions: u64,
    pub deletions: u64,
    pub bytes: u64,
}

/// The measured change against the repo's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BudgetReport {
    pub files: u64,
    pub lines: u64,
    pub bytes: u64,
    pub max_files: u64,
    pub max_lines: u64,
    pub max_bytes: u64,
}

impl BudgetReport {
    fn exceeded(&self) -> bool {
        self.files > self.max_files || self.lines > self.max_lines || self.bytes > self.max_bytes
    }
}

/// A checked and measured patch.
#[derive(Debug)]
pub struct Plan {
    pub changes: Vec<FileChange>,
    pub reports: Vec<FileReport>,
    pub budget: BudgetReport,
    /// The first failed precondition, reported after the budgets.
    pub conflict: Option<Error>,
}

fn entry_field(index: usize, name: &str) -> String {
    format!("files[{index}].{name}")
}

fn check_shape(index: usize, e: &FileEdit) -> Result<()> {
    match (&e.content, e.delete) {
        (Some(_), true) | (None, false) => {
            return Err(Error::invalid(
                format!("files[{index}]"),
                "each entry has exactly one of content or delete: true",
            )
            .with_detail("index", index))
        }
        _ => {}
    }
    if e.delete && e.mode.is_some() {
        return Err(
            Error::invalid(entry_field(index, "mode"), "a deletion takes no mode")
                .with_detail("index", index),
        );
    }
    if let Some(sha) = &e.expected_sha256 {
        let hex = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if !(sha.is_empty() || hex) {
            return Err(Error::invalid(
                entry_field(index, "expected_sha256"),
                "64 hex characters, or \"\" for a file that must not exist",
            )
            .with_detail("index", index));
        }
    }
    Ok(())
}

/// Lines added and removed between two contents (a Myers line diff; a very
/// slow diff gives up after a deadline and reports a coarser, larger count,
/// never a smaller one).
pub fn line_stats(old: &[u8], new: &[u8]) -> (u64, u64) {
    if old == new {
        return (0, 0);
    }
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .timeout(std::time::Duration::from_millis(500))
        .diff_lines(old.as_ref(), new.as_ref());
    let (mut added, mut removed) = (0u64, 0u64);
    for op in diff.ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        match tag {
            similar::DiffTag::Equal => {}
            similar::DiffTag::Delete => removed += old_range.len() as u64,
            similar::DiffTag::Insert => added += new_range.len() as u64,
            similar::DiffTag::Replace => {
                removed += old_range.len() as u64;
                added += new_range.len() as u64;
            }
        }
    }
    (added, removed)
}

fn conflict(index: usize, reason: &str) -> Error {
    Error::new(ErrorCode::Conflict, format!("files[{index}]: {reason}"))
        .with_detail("index", index)
        .with_detail("field", entry_field(index, "path"))
}

/// Checks a patch against the repo and the tree and measures it; writes
/// nothing. Errors in contract order (see the module doc); a failed
/// precondition is returned in [`Plan::conflict`] instead.
pub fn plan(profile: &Profile, repo: &Repo, req: &PatchRequest) -> Result<Plan> {
    if req.files.is_empty() {
        return Err(Error::invalid("files", "a patch changes at least one file"));
    }
    if req
        .summary
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SUMMARY_CHARS)
    {
        return Err(Error::invalid("summary", "at most 4096 characters"));
    }
    let root = paths::open_root(&repo.root_path)?;
    // 1. The path rule, on every entry, before anything else is looked at.
    let mut paths = Vec::with_capacity(req.files.len());
    for (i, e) in req.files.iter().enumerate() {
        let checked = paths::validate(&root, &repo.root_path, profile.dir(), i, &e.path)?;
        paths.push(checked.path);
    }
    // 2. Duplicates.
    let mut seen = HashSet::new();
    for (i, path) in paths.iter().enumerate() {
        if !seen.insert(path.as_str()) {
            return Err(
                Error::invalid(entry_field(i, "path"), "the same path appears twice")
                    .with_detail("index", i),
            );
        }
    }
    // 3. Entry shapes.
    for (i, e) in req.files.iter().enumerate() {
        check_shape(i, e)?;
    }
    // 4. Measure against the tree.
    let mut changes = Vec::with_capacity(req.files.len());
    let mut reports = Vec::with_capacity(req.files.len());
    let mut first_conflict = None;
    let (mut lines, mut bytes) = (0u64, 0u64);
    for (i, (e, path)) in req.files.iter().zip(paths).enumerate() {
        let old = read_old(&root, repo, profile, i, &path)?;
        if first_conflict.is_none() {
            first_conflict = precondition(i, e, old.as_ref().map(|o| o.bytes.as_slice()));
        }
        let (change, report) = measure(path, e, old);
        lines += report.additions + report.deletions;
        bytes += report.bytes;
        changes.push(change);
        reports.push(report);
    }
    let budget = budget_report(repo.budgets, changes.len() as u64, lines, bytes);
    if budget.exceeded() {
        return Err(budget_error(&budget));
    }
    Ok(Plan {
        changes,
        reports,
        budget,
        conflict: first_conflict,
    })
}

/// The current file at a checked path, read through a walk that follows no
/// symlink (the path rule is applied again, so a change since step 1 of
/// the plan is caught too). No descriptor is kept between entries.
fn read_old(
    root: &Dir,
    repo: &Repo,
    profile: &Profile,
    index: usize,
    path: &RepoPath,
) -> Result<Option<OldFile>> {
    let checked = paths::validate(root, &repo.root_path, profile.dir(), index, path.as_str())?;
    let Found::File { mode, uid, gid } = checked.found else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    let dir = checked.parent.as_ref().unwrap_or(root);
    dir.open_file(path.file_name())?.read_to_end(&mut bytes)?;
    Ok(Some(OldFile {
        bytes,
        mode,
        owner: (uid, gid),
    }))
}

/// The failed precondition of entry `i`, if any.
fn precondition(i: usize, e: &FileEdit, old: Option<&[u8]>) -> Option<Error> {
    match (&e.expected_sha256, old) {
        (Some(sha), None) if !sha.is_empty() => {
            return Some(conflict(
                i,
                "the file does not exist (expected_sha256 names one)",
            ))
        }
        (Some(sha), Some(_)) if sha.is_empty() => {
            return Some(conflict(i, "the file exists (expected_sha256 is \"\")"))
        }
        (Some(sha), Some(bytes)) if !sha.eq_ignore_ascii_case(&sha256_hex(bytes)) => {
            return Some(conflict(i, "the file differs from expected_sha256"))
        }
        _ => {}
    }
    if e.delete && old.is_none() {
        return Some(conflict(i, "the file to delete does not exist"));
    }
    None
}

/// The current state of a file a patch replaces or deletes.
struct OldFile {
    bytes: Vec<u8>,
    mode: u32,
    owner: (u32, u32),
}

/// Set-user-id and set-group-id bits: never kept on content an agent wrote.
const SETID_BITS: u32 = 0o6000;

fn measure(path: RepoPath, e: &FileEdit, old: Option<OldFile>) -> (FileChange, FileReport) {
    let new = e.content.as_ref().map(|c| c.as_bytes().to_vec());
    let action = match (&new, &old) {
        (None, _) => Action::Delete,
        (Some(_), Some(_)) => Action::Modify,
        (Some(_), None) => Action::Create,
    };
    let old_bytes = old.as_ref().map_or(&[][..], |o| o.bytes.as_slice());
    let (additions, deletions) = line_stats(old_bytes, new.as_deref().unwrap_or_default());
    let mode = match &old {
        Some(o) => o.mode & !SETID_BITS,
        None => e.mode.map_or(0o644, |m| m.0),
    };
    let report = FileReport {
        path: path.as_str().to_owned(),
        action,
        additions,
        deletions,
        bytes: new.as_ref().map_or(0, |n| n.len() as u64),
    };
    let change = FileChange {
        path,
        action,
        content: new,
        mode,
        owner: old.as_ref().map(|o| o.owner),
        old_sha256: old.as_ref().map(|o| sha256_hex(&o.bytes)),
    };
    (change, report)
}

fn budget_report(b: Budgets, files: u64, lines: u64, bytes: u64) -> BudgetReport {
    BudgetReport {
        files,
        lines,
        bytes,
        max_files: b.max_files,
        max_lines: b.max_lines,
        max_bytes: b.max_bytes,
    }
}

fn budget_error(b: &BudgetReport) -> Error {
    Error::new(
        ErrorCode::BudgetExceeded,
        "the patch is larger than the repo's budgets; split it or raise the budgets",
    )
    .with_detail("files", b.files)
    .with_detail("lines", b.lines)
    .with_detail("bytes", b.bytes)
    .with_detail("max_files", b.max_files)
    .with_detail("max_lines", b.max_lines)
    .with_detail("max_bytes", b.max_bytes)
}

/// Response of `repo.propose_patch`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProposeResponse {
    pub accepted: bool,
    pub files: Vec<FileReport>,
    pub budget: BudgetReport,
}

/// `repo.propose_patch`: everything `apply_patch` checks, nothing written.
pub fn propose(profile: &Profile, req: PatchRequest) -> Result<ProposeResponse> {
    let repo = registry::load_for(profile, &req.id, Permission::Write)?;
    let plan = plan(profile, &repo, &req)?;
    if let Some(e) = plan.conflict {
        return Err(e);
    }
    Ok(ProposeResponse {
        accepted: true,
        files: plan.reports,
        budget: plan.budget,
    })
}

/// One path of an applied patch.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppliedFile {
    pub path: String,
    pub action: Action,
}

/// Totals of an applied patch (also the `stats` of its change row).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeStats {
    pub files: u64,
    pub additions: u64,
    pub deletions: u64,
    pub lines: u64,
    pub bytes: u64,
}

/// Response of `repo.apply_patch`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApplyResponse {
    pub job_id: String,
    pub change_id: String,
    pub files: Vec<AppliedFile>,
    pub change_stats: ChangeStats,
}

/// One patch at a time per repository root, across every profile of the
/// process (two repo ids may name one root). Other processes are kept out
/// by the profile lock only.
static ROOT_LOCKS: once_cell::sync::Lazy<
    parking_lot::Mutex<HashMap<std::path::PathBuf, Arc<parking_lot::Mutex<()>>>>,
> = once_cell::sync::Lazy::new(Default::default);

fn root_lock(root: &std::path::Path) -> Arc<parking_lot::Mutex<()>> {
    ROOT_LOCKS
        .lock()
        .entry(root.to_owned())
        .or_default()
        .clone()
}

/// The job payload: the request without file contents.
fn job_payload(req: &PatchRequest) -> Value {
    let files: Vec<Value> = req
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "delete": f.delete,
                "bytes": f.content.as_ref().map(|c| c.len()),
                "mode": f.mode,
                "expected_sha256": f.expected_sha256,
            })
        })
        .collect();
    json!({"id": req.id, "files": files, "summary": req.summary})
}

/// `repo.apply_patch`: checks as [`propose`] does (errors from the call,
/// nothing recorded), then applies the patch all or nothing inside job
/// `repo_apply_patch`, recording a change row. Patches to one root run one
/// at a time (a second call waits).
pub fn apply(profile: &Profile, req: PatchRequest) -> Result<ApplyResponse> {
    let repo = registry::load_for(profile, &req.id, Permission::Write)?;
    let lock = root_lock(&repo.root_path);
    let _one_at_a_time = lock.lock();
    let plan = plan(profile, &repo, &req)?;
    let mut applied = None;
    let (job_id, outcome) =
        profile
            .jobs()
            .run_inline(APPLY_JOB_TYPE, job_payload(&req), JobLinks::none(), |ctx| {
                let (result, journal) = execute(profile, &repo, &req, plan, ctx)?;
                applied = Some((result.clone(), journal));
                Ok(result)
            })?;
    // The job is recorded: the journal may go (the ledger agrees with the
    // tree from here on).
    let applied = match applied {
        Some((value, journal)) => {
            journal.finish()?;
            Some(value)
        }
        None => None,
    };
    // A cancellation that came after the last swap is too late: the change
    // stands (and has its row), so the call reports it.
    let result = match (outcome, applied) {
        (Ok(value), _) | (Err(_), Some(value)) => value,
        (Err(e), None) => return Err(e),
    };
    let response = serde_json::from_value::<ApplyResult>(result)
        .map_err(|e| Error::internal(format!("apply result: {e}")))?;
    Ok(ApplyResponse {
        job_id,
        change_id: response.change_id,
        files: response.files,
        change_stats: response.change_stats,
    })
}

/// The result value of a `repo_apply_patch` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApplyResult {
    change_id: String,
    files: Vec<AppliedFile>,
    change_stats: ChangeStats,
}

/// What the ledger records of an applied patch, kept in its journal until
/// both are written: the change row and the job's result.
#[derive(Debug, Serialize, Deserialize)]
struct LedgerRecord {
    change: Change,
    result: Value,
}

/// The work of the job: preconditions, the engine, the change row. Returns
/// the job's result and the journal, which stays until the job is recorded.
fn execute(
    profile: &Profile,
    repo: &Repo,
    req: &PatchRequest,
    plan: Plan,
    ctx: &JobContext,
) -> Result<(Value, journal::Applied)> {
    if let Some(e) = plan.conflict {
        return Err(e);
    }
    let change_id = crate::types::new_id();
    let files: Vec<AppliedFile> = plan
        .reports
        .iter()
        .map(|r| AppliedFile {
            path: r.path.clone(),
            action: r.action,
        })
        .collect();
    let additions = plan.reports.iter().map(|r| r.additions).sum();
    let deletions = plan.reports.iter().map(|r| r.deletions).sum();
    let result = ApplyResult {
        change_id: change_id.clone(),
        files,
        change_stats: ChangeStats {
            files: plan.budget.files,
            additions,
            deletions,
            lines: plan.budget.lines,
            bytes: plan.budget.bytes,
        },
    };
    let change = Change {
        id: change_id.clone(),
        repo_id: repo.id.clone(),
        kind: ChangeKind::ApplyPatch,
        job_id: ctx.job_id().to_owned(),
        summary: req.summary.clone(),
        files: serde_json::to_value(&result.files).unwrap_or(Value::Null),
        stats: serde_json::to_value(&result.change_stats).unwrap_or(Value::Null),
        created_at: now_ms(),
    };
    let result = serde_json::to_value(&result).map_err(|e| Error::internal(e.to_string()))?;
    let record = LedgerRecord { change, result };
    let ledger = serde_json::to_value(&record).map_err(|e| Error::internal(e.to_string()))?;
    let cancelled = || ctx.is_cancelled();
    let mut journal = journal::apply(
        profile.dir(),
        &repo.root_path,
        &change_id,
        &plan.changes,
        ledger,
        &cancelled,
    )?;
    profile.invalidate_storage_cache();
    profile
        .db()
        .write(|tx| registry::record_change(tx, &record.change))?;
    journal.checkpoint();
    Ok((record.result, journal))
}

/// Finishes the ledger of every apply a crash interrupted after its swaps
/// (see [`journal::recover`]): the change row is written if missing, and a
/// job still `running` becomes `succeeded` with its result marked
/// `recovered: true`. Run by `Profile::open` before interrupted jobs are
/// failed.
pub fn recover(profile_dir: &std::path::Path, db: &crate::db::Db) -> Result<()> {
    journal::recover(profile_dir, &mut |ledger| {
        let record: LedgerRecord = serde_json::from_value(ledger.clone()).map_err(|_| {
            Error::new(
                ErrorCode::Corrupt,
                "a repo patch journal's ledger record is unreadable",
            )
        })?;
        db.write(|tx| {
            if !registry::change_exists(tx, &record.change.id)? {
                registry::record_change(tx, &record.change)?;
            }
            let mut result = record.result.clone();
            if let Value::Object(map) = &mut result {
                map.insert("recovered".to_owned(), Value::Bool(true));
            }
            crate::jobs::ledger::finish_recovered(tx, &record.change.job_id, result, now_ms())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_stats_count_real_changes() {
        assert_eq!(line_stats(b"a\nb\nc\n", b"a\nb\nc\n"), (0, 0));
        assert_eq!(line_stats(b"a\nb\nc\n", b"a\nB\nc\n"), (1, 1));
        assert_eq!(line_stats(b"", b"x\ny\n"), (2, 0));
        assert_eq!(line_stats(b"x\ny\nz", b""), (0, 3));
        assert_eq!(line_stats(b"a\n", b"a\nb\n"), (1, 0));
    }

    #[test]
    fn modes_parse_from_integers_and_octal_text() {
        let m = |v: Value| serde_json::from_value::<FileMode>(v).map(|m| m.0).ok();
        assert_eq!(m(json!(420)), Some(0o644));
        assert_eq!(m(json!("0755")), Some(0o755));
        assert_eq!(m(json!("644")), Some(0o644));
        assert_eq!(m(json!(0o4755)), None);
        assert_eq!(m(json!("9")), None);
        assert_eq!(m(json!(-1)), None);
    }
}
