//! The registered repositories (`repo.register`, `repo.unregister`,
//! `repo.list`) and the change ledger (`repo.changes`), plus the one gate
//! every other repo operation passes: [`load_for`] finds the repo
//! (`not_found`) and checks its `allowed_ops` (`forbidden`).

use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::profile::Profile;
use crate::types::{now_ms, Bounded, Id, ListLimit, Millis, Page, Patch};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A permission a repo grants (`allowed_ops`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `repo.status`.
    Read,
    /// `repo.propose_patch`, `repo.apply_patch`.
    Write,
    /// `repo.run_checks`.
    RunChecks,
}

impl Permission {
    fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::RunChecks => "run_checks",
        }
    }
}

/// Patch budgets of a repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Budgets {
    pub max_files: u64,
    pub max_lines: u64,
    pub max_bytes: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_files: 50,
            max_lines: 4_000,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A registered repository as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Repo {
    pub id: String,
    pub root_path: PathBuf,
    pub allowed_ops: Vec<Permission>,
    pub check_command: Option<Vec<String>>,
    pub budgets: Budgets,
    pub created_at: Millis,
    pub updated_at: Millis,
}

const REPO_COLUMNS: &str = "id, root_path, allowed_ops, check_command, max_files, max_lines, max_bytes, created_at, updated_at";

fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

impl Repo {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Repo> {
        let command: Option<String> = row.get(3)?;
        let check_command = match command {
            None => None,
            Some(_) => Some(json_column(row, 3)?),
        };
        Ok(Repo {
            id: row.get(0)?,
            root_path: PathBuf::from(row.get::<_, String>(1)?),
            allowed_ops: json_column(row, 2)?,
            check_command,
            budgets: Budgets {
                // Budgets are bounded far below i64::MAX when registered.
                max_files: row.get::<_, i64>(4)?.max(0) as u64,
                max_lines: row.get::<_, i64>(5)?.max(0) as u64,
                max_bytes: row.get::<_, i64>(6)?.max(0) as u64,
            },
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
        })
    }

    /// True when `allowed_ops` grants `p`.
    pub fn allows(&self, p: Permission) -> bool {
        self.allowed_ops.contains(&p)
    }
}

/// The repo `id`, if registered.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Repo>> {
    conn.query_opt(
        &format!("SELECT {REPO_COLUMNS} FROM repos WHERE id = ?1"),
        [id],
        Repo::from_row,
    )
}

/// The repo `id` if it exists (`not_found`) and grants `permission`
/// (`forbidden`). Every gated repo operation starts here.
pub fn load_for(profile: &Profile, id: &Id, permission: Permission) -> Result<Repo> {
    let repo = profile
        .db()
        .read(|conn| get(conn, id.as_str()))?
        .ok_or_else(|| Error::not_found("repo", "id"))?;
    if !repo.allows(permission) {
        return Err(Error::new(
            ErrorCode::Forbidden,
            format!(
                "this repo does not allow '{}'; re-register it with that permission in allowed_ops",
                permission.as_str()
            ),
        )
        .with_detail("permission", permission.as_str()));
    }
    Ok(repo)
}

/// Budgets in a register request; omitted ones are kept (or defaulted).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetsRequest {
    #[serde(default)]
    pub max_files: Option<Bounded<50, 100_000>>,
    #[serde(default)]
    pub max_lines: Option<Bounded<4_000, 10_000_000>>,
    #[serde(default)]
    pub max_bytes: Option<Bounded<4_194_304, 1_073_741_824>>,
}

/// Request of `repo.register`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub id: Id,
    pub root_path: String,
    #[serde(default)]
    pub allowed_ops: Option<Vec<Permission>>,
    /// Absent: keep (default none); null: clear; an argv array: set.
    #[serde(default)]
    pub check_command: Patch<Vec<String>>,
    #[serde(default)]
    pub budgets: Option<BudgetsRequest>,
}

/// Response of `repo.register`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RepoResponse {
    pub repo: Repo,
}

/// Largest argv accepted for `check_command`.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;

fn check_argv(argv: &[String]) -> Result<()> {
    let field = "check_command";
    if argv.is_empty() || argv[0].is_empty() {
        return Err(Error::invalid(
            field,
            "must name a program (a non-empty argv)",
        ));
    }
    if argv.len() > MAX_ARGS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_ARGS} arguments"),
        ));
    }
    if argv
        .iter()
        .any(|a| a.contains('\0') || a.len() > MAX_ARG_BYTES)
    {
        return Err(Error::invalid(
            field,
            format!("arguments are at most {MAX_ARG_BYTES} bytes, without NUL"),
        ));
    }
    Ok(())
}

/// The canonical root of a register request: an existing absolute
/// directory, not `/`, not the profile directory nor inside it.
fn canonical_root(root: &str, profile_dir: &Path) -> Result<PathBuf> {
    let field = "root_path";
    let path = Path::new(root);
    if root.contains('\0') || !path.is_absolute() {
        return Err(Error::invalid(field, "must be an absolute path"));
    }
    let canonical = path
        .canonicalize()
        .map_err(|_| Error::invalid(field, "must be an existing directory"))?;
    if !canonical.is_dir() {
        return Err(Error::invalid(field, "must be an existing directory"));
    }
    if canonical.parent().is_none() {
        return Err(Error::invalid(
            field,
            "the file system root may not be registered",
        ));
    }
    if canonical.starts_with(profile_dir) {
        return Err(Error::invalid(
            field,
            "the profile directory and folders inside it may not be registered",
        ));
    }
    if canonical.to_str().is_none() {
        return Err(Error::invalid(field, "must be valid UTF-8"));
    }
    Ok(canonical)
}

/// `repo.register`: creates or updates a repo (omitted fields are kept).
pub fn register(profile: &Profile, req: RegisterRequest) -> Result<RepoResponse> {
    let root = canonical_root(&req.root_path, profile.dir())?;
    if let Some(argv) = req.check_command.as_value() {
        check_argv(argv)?;
    }
    let now = now_ms();
    let repo = profile.db().write(|tx| {
        let old = get(tx, req.id.as_str())?;
        let mut allowed_ops = req
            .allowed_ops
            .clone()
            .or_else(|| old.as_ref().map(|r| r.allowed_ops.clone()))
            .unwrap_or_else(|| vec![Permission::Read]);
        allowed_ops.sort();
        allowed_ops.dedup();
        let check_command = match req.check_command.clone().into_update() {
            Some(update) => update,
            None => old.as_ref().and_then(|r| r.check_command.clone()),
        };
        let base = old.as_ref().map(|r| r.budgets).unwrap_or_default();
        let b = req.budgets.clone().unwrap_or_default();
        let budgets = Budgets {
            max_files: b.max_files.map_or(base.max_files, |v| v.get() as u64),
            max_lines: b.max_lines.map_or(base.max_lines, |v| v.get() as u64),
            max_bytes: b.max_bytes.map_or(base.max_bytes, |v| v.get() as u64),
        };
        let repo = Repo {
            id: req.id.to_string(),
            root_path: root.clone(),
            allowed_ops,
            check_command,
            budgets,
            created_at: old.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
        };
        save(tx, &repo)?;
        Ok(repo)
    })?;
    Ok(RepoResponse { repo })
}

fn save(conn: &Connection, repo: &Repo) -> Result<()> {
    conn.run(
        "INSERT INTO repos (id, root_path, allowed_ops, check_command, max_files, max_lines,
                            max_bytes, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET root_path = ?2, allowed_ops = ?3, check_command = ?4,
             max_files = ?5, max_lines = ?6, max_bytes = ?7, updated_at = ?9",
        params![
            repo.id,
            repo.root_path.to_string_lossy(),
            to_json(&repo.allowed_ops),
            repo.check_command.as_ref().map(to_json),
            repo.budgets.max_files as i64,
            repo.budgets.max_lines as i64,
            repo.budgets.max_bytes as i64,
            repo.created_at,
            repo.updated_at,
        ],
    )?;
    Ok(())
}

/// JSON text of a value that always serializes (vectors of strings and enums).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Request of `repo.unregister`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnregisterRequest {
    pub id: Id,
}

/// Response of `repo.unregister`: `{deleted: 1, changes_deleted}`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UnregisterResponse {
    pub deleted: u64,
    /// Rows of the change ledger deleted with the repo.
    pub changes_deleted: u64,
}

/// `repo.unregister`: forgets a repo and its change ledger. The files of
/// the tree are never touched.
pub fn unregister(profile: &Profile, req: UnregisterRequest) -> Result<UnregisterResponse> {
    profile.db().write(|tx| {
        let deleted = tx.run("DELETE FROM repos WHERE id = ?1", [req.id.as_str()])?;
        if deleted == 0 {
            return Err(Error::not_found("repo", "id"));
        }
        let changes = tx.run(
            "DELETE FROM repo_changes WHERE repo_id = ?1",
            [req.id.as_str()],
        )?;
        Ok(UnregisterResponse {
            deleted: deleted as u64,
            changes_deleted: changes as u64,
        })
    })
}

/// Request of `repo.list` (no fields).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {}

/// Response of `repo.list`: every repo, in registration order.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    pub items: Vec<Repo>,
}

/// `repo.list`.
pub fn list(profile: &Profile, _req: ListRequest) -> Result<ListResponse> {
    let items = profile.db().read(|conn| {
        conn.query_all(
            &format!("SELECT {REPO_COLUMNS} FROM repos ORDER BY seq"),
            [],
            Repo::from_row,
        )
    })?;
    Ok(ListResponse { items })
}

/// The kind of a change row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    ApplyPatch,
    RunChecks,
}

/// One row of the change ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub id: String,
    pub repo_id: String,
    pub kind: ChangeKind,
    pub job_id: String,
    pub summary: Option<String>,
    pub files: Value,
    pub stats: Value,
    pub created_at: Millis,
}

const CHANGE_COLUMNS: &str = "id, repo_id, kind, job_id, summary, files, stats, created_at, seq";

impl Change {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<(Change, i64, i64)> {
        let change = Change {
            id: row.get(0)?,
            repo_id: row.get(1)?,
            kind: match row.get_ref(2)?.as_str()? {
                "run_checks" => ChangeKind::RunChecks,
                _ => ChangeKind::ApplyPatch,
            },
            job_id: row.get(3)?,
            summary: row.get(4)?,
            files: json_column(row, 5)?,
            stats: json_column(row, 6)?,
            created_at: row.get(7)?,
        };
        let created_at = change.created_at;
        Ok((change, created_at, row.get(8)?))
    }
}

/// True when the change row `id` is recorded.
pub fn change_exists(conn: &Connection, id: &str) -> Result<bool> {
    conn.exists("SELECT 1 FROM repo_changes WHERE id = ?1", [id])
}

/// Appends a row to the change ledger (inside the caller's transaction).
pub fn record_change(conn: &Connection, change: &Change) -> Result<()> {
    let kind = match change.kind {
        ChangeKind::ApplyPatch => "apply_patch",
        ChangeKind::RunChecks => "run_checks",
    };
    conn.run(
        "INSERT INTO repo_changes (id, repo_id, kind, job_id, summary, files, stats, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            change.id,
            change.repo_id,
            kind,
            change.job_id,
            change.summary,
            change.files.to_string(),
            change.stats.to_string(),
            change.created_at,
        ],
    )?;
    Ok(())
}

/// Request of `repo.changes`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangesRequest {
    pub id: Id,
    #[serde(default)]
    pub limit: ListLimit,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `repo.changes`: the change ledger of a repo, newest first. Reading the
/// ledger needs no permission beyond the repo existing.
pub fn changes(profile: &Profile, req: ChangesRequest) -> Result<Page<Change>> {
    let keyset = Keyset::new(
        format!("repo.changes|{}", req.id),
        Order::Desc,
        req.limit.get(),
        req.cursor.as_deref(),
    )?;
    profile.db().read(|conn| {
        if get(conn, req.id.as_str())?.is_none() {
            return Err(Error::not_found("repo", "id"));
        }
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM repo_changes WHERE repo_id = ?1 AND {} {}",
            keyset.condition("created_at", "seq", 2),
            keyset.order_and_limit("created_at", "seq")
        );
        let (key, seq) = keyset.bounds();
        let rows = conn.query_all(&sql, params![req.id.as_str(), key, seq], Change::from_row)?;
        Ok(keyset.finish(rows))
    })
}
