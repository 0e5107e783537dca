//! The all-or-nothing apply engine and its crash journal.
//!
//! An apply runs in four steps:
//! 1. the journal `<profile>/repo-journal/<change_id>.json` is written
//!    (atomically, through [`crate::fsutil::write_atomic`]): the root, every
//!    target with the names of its temp and backup files and the hash of
//!    its new content, and the directories the apply will create;
//! 2. every new content is staged in a temp file in its target directory
//!    (missing directories created), with its final mode, and fsynced;
//! 3. the swaps, in two passes: first every file to be replaced is
//!    hard-linked to its backup name and the directories are fsynced (so a
//!    backup is durable before any content changes); then, each file
//!    re-checked against the hash the plan measured, the temp is renamed
//!    over a replaced file (the target name always exists), a new file is
//!    linked into place (never replacing anything that appeared meanwhile)
//!    and a deleted file is renamed to its backup name; then every
//!    directory touched is fsynced;
//! 4. the journal is rewritten marked `applied` (the change now stands,
//!    whatever the tree looks like later) and the backups are removed;
//! 5. the caller records the change in the ledger (the change row, the
//!    job's result), and only then deletes the journal
//!    ([`Applied::finish`]): the journal outlives the change row.
//!
//! An error in steps 2-3 rolls every entry back; a crash anywhere leaves the
//! journal, and [`recover`] (run by `Profile::open`) finishes the job: a
//! change marked `applied`, or whose swaps are all visibly done, is
//! completed (backups removed) and its ledger record (stored in the journal
//! from step 1) is handed to the caller's `finish`, so the ledger never
//! misses a change the tree holds; any other is rolled back. Whether a swap
//! is done is read from the tree itself (temp gone, target holding the new
//! hash or gone for a delete), so the journal is not rewritten mid-swap.
//!
//! Every directory is reached from a descriptor of the root with
//! `O_NOFOLLOW` at each component ([`paths::walk_parent`]), and every name
//! used is a single component inside it, so no symlink can redirect a write,
//! a rename or a removal outside the tree.
//!
//! The journal is written before staging (not after, as the contract's
//! summary reads) so that temp files and created directories of a crash
//! during staging are cleaned up as well.

use super::paths::{self, RepoPath};
use crate::error::{Error, ErrorCode, Result};
use crate::fsutil;
use crate::sys::os::{Dir, EntryKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The folder of pending journals inside a profile directory.
pub const JOURNAL_DIR: &str = "repo-journal";

/// What an apply does to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Modify,
    Delete,
}

/// One file of an apply, as the engine needs it.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub path: RepoPath,
    pub action: Action,
    /// New content (create/modify).
    pub content: Option<Vec<u8>>,
    /// Final permission bits (create/modify).
    pub mode: u32,
    /// Owner `(uid, gid)` of the replaced file, given to the new content
    /// where the process is allowed to (best effort).
    pub owner: Option<(u32, u32)>,
    /// SHA-256 of the content the plan measured (modify/delete): the file
    /// must still hold it when its swap comes, else `conflict`.
    pub old_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    path: String,
    action: Action,
    temp: String,
    backup: String,
    new_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    format: String,
    root: PathBuf,
    change_id: String,
    entries: Vec<Entry>,
    /// Directories (relative to the root) this apply creates, parents first.
    created_dirs: Vec<String>,
    /// Set once every swap is durable: the change stands.
    #[serde(default)]
    applied: bool,
    /// What the ledger must record once the change stands (the caller's
    /// change row and job result), replayed by [`recover`].
    #[serde(default)]
    ledger: Option<serde_json::Value>,
}

/// A change whose swaps are durable and whose journal still exists: the
/// caller records it in the ledger, then calls [`Applied::finish`].
#[must_use = "the journal stays until finish is called"]
pub struct Applied {
    journal: PathBuf,
    /// False when the backups could not all be removed: the journal then
    /// stays for the next open to finish.
    settled: bool,
    step: usize,
}

impl Applied {
    /// The ledger has recorded the change: the journal goes.
    pub fn finish(mut self) -> Result<()> {
        hook(&mut self.step);
        if self.settled {
            remove_journal(&self.journal)?;
        }
        Ok(())
    }

    /// A test seam between ledger steps (see [`SWAP_HOOK`]).
    pub fn checkpoint(&mut self) {
        hook(&mut self.step);
    }
}

const JOURNAL_FORMAT: &str = "hydra-repo-journal-1";

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::types::hex(&Sha256::digest(bytes))
}

/// A test seam: called with the step number before each swap primitive of
/// an apply (two per created or replaced file, one per deletion), once
/// more after the last, once after the `applied` mark is durable, and then
/// at each [`Applied::checkpoint`] and at [`Applied::finish`]. The kill test pauses here to SIGKILL a child
/// process mid-apply. Never set outside tests.
/// Exists only in tests and with the `testing` feature.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub static SWAP_HOOK: parking_lot::RwLock<Option<fn(usize)>> = parking_lot::RwLock::new(None);

fn hook(step: &mut usize) {
    #[cfg(any(test, feature = "testing"))]
    if let Some(f) = *SWAP_HOOK.read() {
        f(*step);
    }
    *step += 1;
}

fn journal_path(profile_dir: &Path, change_id: &str) -> PathBuf {
    profile_dir
        .join(JOURNAL_DIR)
        .join(format!("{change_id}.json"))
}

/// Applies `files` to the tree at `root_path` all or nothing (see the
/// module doc). On error every file is as it was before (or, if even the
/// rollback failed, the journal stays for [`recover`]). On success the
/// journal, holding `ledger`, stays until [`Applied::finish`].
///
/// `cancelled` is asked after staging and again after the last swap; when
/// it answers true the change is rolled back and the error is `cancelled`
/// (a cancellation arriving after that is too late: the change stands).
pub fn apply(
    profile_dir: &Path,
    root_path: &Path,
    change_id: &str,
    files: &[FileChange],
    ledger: serde_json::Value,
    cancelled: &dyn Fn() -> bool,
) -> Result<Applied> {
    let root = paths::open_root(root_path)?;
    let tag: String = change_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    let entries: Vec<Entry> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Entry {
            path: f.path.as_str().to_owned(),
            action: f.action,
            temp: format!(".hydra-{tag}-{i}.new"),
            backup: format!(".hydra-{tag}-{i}.old"),
            new_sha256: f.content.as_deref().map(sha256_hex),
        })
        .collect();
    let journal = Journal {
        format: JOURNAL_FORMAT.to_owned(),
        root: root_path.to_owned(),
        change_id: change_id.to_owned(),
        created_dirs: missing_dirs(&root, files)?,
        entries,
        applied: false,
        ledger: Some(ledger),
    };
    let path = journal_path(profile_dir, change_id);
    let journal_dir = fsutil::parent_dir(&path);
    if !journal_dir.is_dir() {
        std::fs::create_dir_all(journal_dir)?;
        fsutil::sync_dir(profile_dir)?;
    }
    let text = serde_json::to_vec(&journal).map_err(|e| Error::internal(e.to_string()))?;
    fsutil::write_atomic(&path, &text)?;

    // The directory of each entry, held open from the staging walk on, so
    // that completing or rolling back never resolves a path again.
    let mut parents = Vec::with_capacity(files.len());
    let mut step = 0;
    let outcome = stage_and_swap(&root, &journal, files, &mut parents, cancelled, &mut step);
    for e in &journal.entries[parents.len()..] {
        parents.push(Parent::of(&root, &e.path)?);
    }
    if let Err(e) = outcome {
        if rollback(&root, &journal, &parents).is_ok() {
            remove_journal(&path)?;
        }
        return Err(e);
    }
    // The change stands: say so durably before any backup goes, so a
    // recovery never rolls back a change the ledger may already hold.
    let applied = Journal {
        applied: true,
        ..journal
    };
    let text = serde_json::to_vec(&applied).map_err(|e| Error::internal(e.to_string()))?;
    fsutil::write_atomic(&path, &text)?;
    hook(&mut step);
    // Leftover backups are only garbage; a failure to remove them leaves
    // the journal for the next open.
    let settled = complete(&root, &applied, &parents).is_ok();
    Ok(Applied {
        journal: path,
        settled,
        step,
    })
}

/// The directories that applying `files` must create, parents first.
fn missing_dirs(root: &Dir, files: &[FileChange]) -> Result<Vec<String>> {
    let mut missing = BTreeSet::new();
    for (index, f) in files.iter().enumerate() {
        if f.action == Action::Delete {
            continue;
        }
        let mut current: Option<Dir> = None;
        let mut so_far = String::new();
        let mut absent = false;
        for name in f.path.parent_components() {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(name);
            if !absent {
                let dir = current.as_ref().unwrap_or(root);
                match dir.stat(name)?.map(|s| s.kind) {
                    None => absent = true,
                    Some(EntryKind::Dir) => current = Some(dir.open_dir(name)?),
                    Some(_) => return Err(escaped(index)),
                }
            }
            if absent {
                missing.insert(so_far.clone());
            }
        }
    }
    // BTreeSet order puts "a" before "a/b": parents first.
    Ok(missing.into_iter().collect())
}

fn escaped(index: usize) -> Error {
    Error::new(
        ErrorCode::PathEscape,
        "a path changed into a symlink or file while the patch was applied",
    )
    .with_detail("index", index)
}

fn conflict(index: usize, reason: &str) -> Error {
    Error::conflict(reason).with_detail("index", index)
}

fn appeared(index: usize) -> Error {
    conflict(index, "a file appeared at a path the patch creates")
}

/// Staged files are written first and fsynced in batches of this many (the
/// file system can then write them back together; the batch bounds the
/// descriptors held open).
const SYNC_BATCH: usize = 64;

fn sync_files(files: &mut Vec<std::fs::File>) -> Result<()> {
    for f in files.drain(..) {
        f.sync_all()?;
    }
    Ok(())
}

fn stage_and_swap(
    root: &Dir,
    journal: &Journal,
    files: &[FileChange],
    parents: &mut Vec<Parent>,
    cancelled: &dyn Fn() -> bool,
    step: &mut usize,
) -> Result<()> {
    let mut created = Vec::new();
    let mut opened: HashMap<&str, Rc<Dir>> = HashMap::new();
    let mut unsynced = Vec::with_capacity(SYNC_BATCH);
    for (i, (f, e)) in files.iter().zip(&journal.entries).enumerate() {
        let rel = f.path.parent_text();
        let parent = match opened.get(rel) {
            Some(dir) => Parent::Dir(Rc::clone(dir)),
            None => {
                let make = (f.action != Action::Delete).then_some(&mut created);
                match paths::walk_parent(root, i, &f.path, make)? {
                    Some(dir) => {
                        let dir = Rc::new(dir);
                        opened.insert(rel, Rc::clone(&dir));
                        Parent::Dir(dir)
                    }
                    None => Parent::Root,
                }
            }
        };
        parents.push(parent);
        if let Some(content) = &f.content {
            let dir = parents[i].get(root).unwrap_or(root);
            let mut temp = dir.create_new(&e.temp, 0o600)?;
            temp.write_all(content)?;
            if let Some((uid, gid)) = f.owner {
                // Only a privileged process may give a file away; anyone
                // else keeps owning what it writes, as any editor does.
                let _ = std::os::unix::fs::fchown(&temp, Some(uid), Some(gid));
            }
            // After chown, which may clear mode bits.
            temp.set_permissions(std::fs::Permissions::from_mode(f.mode))?;
            unsynced.push(temp);
            if unsynced.len() == SYNC_BATCH {
                sync_files(&mut unsynced)?;
            }
        }
    }
    sync_files(&mut unsynced)?;
    let entries = || {
        files
            .iter()
            .zip(&journal.entries)
            .zip(parents.iter())
            .enumerate()
            .map(|(i, ((f, e), parent))| (i, f, e, parent.get(root).unwrap_or(root)))
    };
    let stop_if_cancelled = || {
        if cancelled() {
            Err(Error::new(
                ErrorCode::Cancelled,
                "the apply was cancelled; nothing changed",
            ))
        } else {
            Ok(())
        }
    };
    stop_if_cancelled()?;
    // Pass 1: a durable backup name for every file to be replaced, before
    // any content changes, so a rollback can always restore it.
    for (i, f, e, dir) in entries() {
        let name = f.path.file_name();
        let kind = dir.stat(name)?.map(|s| s.kind);
        match f.action {
            Action::Modify | Action::Delete if kind != Some(EntryKind::File) => {
                return Err(escaped(i))
            }
            Action::Create if kind.is_some() => return Err(appeared(i)),
            Action::Modify => {
                hook(step);
                dir.link(name, &e.backup)?;
            }
            _ => {}
        }
    }
    sync_dirs(root, journal, parents)?;
    // Pass 2: the swaps. Each replaced or deleted file is checked against
    // the content the plan measured right before it goes.
    for (i, f, e, dir) in entries() {
        let name = f.path.file_name();
        if f.action != Action::Create && file_hash(dir, name)? != f.old_sha256 {
            return Err(conflict(i, "the file changed while the patch was applied"));
        }
        hook(step);
        match f.action {
            Action::Modify => dir.rename(&e.temp, name)?,
            Action::Create => {
                dir.link(&e.temp, name).map_err(|err| {
                    if err.kind() == std::io::ErrorKind::AlreadyExists {
                        appeared(i)
                    } else {
                        err.into()
                    }
                })?;
                hook(step);
                dir.unlink(&e.temp)?;
            }
            Action::Delete => dir.rename(name, &e.backup)?,
        }
    }
    hook(step);
    stop_if_cancelled()?;
    sync_dirs(root, journal, parents)
}

/// Fsyncs every directory whose entries the journal changes: the parent of
/// each target (through the descriptors held) and of each created
/// directory.
fn sync_dirs(root: &Dir, journal: &Journal, parents: &[Parent]) -> Result<()> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for (e, parent) in journal.entries.iter().zip(parents) {
        let rel = e.path.rsplit_once('/').map_or("", |p| p.0);
        if done.insert(rel) {
            if let Some(dir) = parent.get(root) {
                dir.sync()?;
            }
        }
    }
    for d in &journal.created_dirs {
        let rel = d.rsplit_once('/').map_or("", |p| p.0);
        if done.insert(rel) {
            match open_rel_dir(root, rel)? {
                Some(dir) => dir.sync()?,
                None if rel.is_empty() => root.sync()?,
                None => {}
            }
        }
    }
    Ok(())
}

/// Opens a directory given relative to the root, without following
/// symlinks. `None` for `""` (the root itself, which the caller holds) and
/// for a directory that does not exist or is no longer reachable without
/// following a symlink.
fn open_rel_dir(root: &Dir, rel: &str) -> Result<Option<Dir>> {
    if rel.is_empty() {
        return Ok(None);
    }
    let mut current: Option<Dir> = None;
    for name in rel.split('/') {
        let dir = current.as_ref().unwrap_or(root);
        match dir.open_dir(name) {
            Ok(d) => current = Some(d),
            // Missing, or replaced by a symlink or file since: unreachable,
            // and never followed.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(current)
}

/// The directory holding the entry's target, if it exists.
/// Entries in one directory share its descriptor.
enum Parent {
    Root,
    Dir(Rc<Dir>),
    Missing,
}

impl Parent {
    fn of(root: &Dir, path: &str) -> Result<Parent> {
        let rel = path.rsplit_once('/').map_or("", |p| p.0);
        if rel.is_empty() {
            return Ok(Parent::Root);
        }
        Ok(match open_rel_dir(root, rel)? {
            Some(d) => Parent::Dir(Rc::new(d)),
            None => Parent::Missing,
        })
    }

    fn get<'a>(&'a self, root: &'a Dir) -> Option<&'a Dir> {
        match self {
            Parent::Root => Some(root),
            Parent::Dir(d) => Some(d),
            Parent::Missing => None,
        }
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |p| p.1)
}

fn exists(dir: &Dir, name: &str) -> Result<bool> {
    Ok(dir.stat(name)?.is_some())
}

/// SHA-256 of the regular file `name`, or `None` if it is not one.
fn file_hash(dir: &Dir, name: &str) -> Result<Option<String>> {
    if dir.stat(name)?.map(|s| s.kind) != Some(EntryKind::File) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    dir.open_file(name)?.read_to_end(&mut bytes)?;
    Ok(Some(sha256_hex(&bytes)))
}

/// True when the entry's swap is visibly done in the tree.
fn swap_done(root: &Dir, e: &Entry, parent: &Parent) -> Result<bool> {
    let Some(dir) = parent.get(root) else {
        return Ok(false);
    };
    let name = file_name(&e.path);
    Ok(match e.action {
        Action::Delete => !exists(dir, name)?,
        Action::Create | Action::Modify => {
            !exists(dir, &e.temp)? && file_hash(dir, name)? == e.new_sha256
        }
    })
}

/// Finishes a change whose swaps are all done: removes the backups.
fn complete(root: &Dir, journal: &Journal, parents: &[Parent]) -> Result<()> {
    let mut touched = false;
    for (e, parent) in journal.entries.iter().zip(parents) {
        if let Some(dir) = parent.get(root) {
            for name in [&e.backup, &e.temp] {
                if exists(dir, name)? {
                    dir.unlink(name)?;
                    touched = true;
                }
            }
        }
    }
    if touched {
        sync_dirs(root, journal, parents)?;
    }
    Ok(())
}

/// Puts every entry back as it was, in reverse order, then removes the
/// directories the apply created (when empty).
fn rollback(root: &Dir, journal: &Journal, parents: &[Parent]) -> Result<()> {
    for (e, parent) in journal.entries.iter().zip(parents).rev() {
        let Some(dir) = parent.get(root) else {
            continue; // nothing was staged or swapped there
        };
        let name = file_name(&e.path);
        match e.action {
            Action::Modify | Action::Delete => {
                if exists(dir, &e.backup)? {
                    dir.rename(&e.backup, name)?;
                    // Renaming a hard link onto another link of the same
                    // file does nothing: the backup then still exists.
                    if exists(dir, &e.backup)? {
                        dir.unlink(&e.backup)?;
                    }
                }
            }
            Action::Create => {
                if file_hash(dir, name)? == e.new_sha256 {
                    dir.unlink(name)?;
                }
            }
        }
        if exists(dir, &e.temp)? {
            dir.unlink(&e.temp)?;
        }
    }
    for rel in journal.created_dirs.iter().rev() {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = match open_rel_dir(root, parent)? {
            Some(d) => Some(d),
            None if parent.is_empty() => None,
            None => continue,
        };
        let dir = dir.as_ref().unwrap_or(root);
        match dir.rmdir(name) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT)
                        | Some(libc::ENOTEMPTY)
                        | Some(libc::EEXIST)
                        | Some(libc::ENOTDIR)
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    sync_dirs(root, journal, parents)
}

fn remove_journal(path: &Path) -> Result<()> {
    std::fs::remove_file(path)?;
    fsutil::sync_dir(fsutil::parent_dir(path))
}

/// Finishes every apply a crash interrupted in the profile `profile_dir`:
/// a change marked applied, or whose swaps all happened, is completed and
/// its ledger record handed to `finish` (which must be idempotent: the
/// crash may have come after the ledger was written); any other is rolled
/// back. The journal is removed only after both. Run by `Profile::open`
/// while it holds the profile lock. A journal whose root cannot be opened
/// safely (missing, or replaced by a symlink) is kept for a later open; an
/// unreadable journal is `corrupt`.
pub fn recover(
    profile_dir: &Path,
    finish: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<()> {
    let dir = profile_dir.join(JOURNAL_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            // The temp file of a journal write the crash interrupted: that
            // apply never started staging. Only we write in this folder.
            std::fs::remove_file(&path)?;
            continue;
        }
        let journal: Journal = serde_json::from_slice(&std::fs::read(&path)?).map_err(|_| {
            Error::new(ErrorCode::Corrupt, "a repo patch journal is unreadable")
                .with_detail("journal", path.to_string_lossy().into_owned())
        })?;
        let Ok(root) = paths::open_root(&journal.root) else {
            // The root is gone or no longer the same directory: nothing is
            // reachable without following a link. The journal stays, so a
            // later open finishes the job if the root comes back.
            continue;
        };
        let parents = journal
            .entries
            .iter()
            .map(|e| Parent::of(&root, &e.path))
            .collect::<Result<Vec<_>>>()?;
        let mut all_done = journal.applied;
        if !all_done {
            all_done = true;
            for (e, parent) in journal.entries.iter().zip(&parents) {
                all_done &= swap_done(&root, e, parent)?;
            }
        }
        if all_done {
            complete(&root, &journal, &parents)?;
            if let Some(ledger) = &journal.ledger {
                finish(ledger)?;
            }
        } else {
            rollback(&root, &journal, &parents)?;
        }
        remove_journal(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn change(root: &Path, path: &str, action: Action, content: Option<&str>) -> FileChange {
        FileChange {
            path: paths::check_text(0, path).unwrap(),
            action,
            content: content.map(|c| c.as_bytes().to_vec()),
            mode: 0o644,
            owner: None,
            old_sha256: std::fs::read(root.join(path)).ok().map(|b| sha256_hex(&b)),
        }
    }

    fn listing(dir: &Path) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap())
            .map(|e| {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let body = if e.file_type().is_file() {
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned()
                } else {
                    "<dir>".to_owned()
                };
                (rel, body)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn applies_creates_modifies_and_deletes() {
        let profile = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        std::fs::write(root_path.join("m.txt"), "old").unwrap();
        std::fs::write(root_path.join("d.txt"), "gone").unwrap();
        let files = [
            change(&root_path, "m.txt", Action::Modify, Some("new")),
            change(&root_path, "d.txt", Action::Delete, None),
            change(&root_path, "x/y/c.txt", Action::Create, Some("created")),
        ];
        let applied = apply(
            profile.path(),
            &root_path,
            "c1",
            &files,
            Value::Null,
            &|| false,
        );
        // Until the ledger has recorded the change, its journal stays.
        assert_eq!(listing(&profile.path().join(JOURNAL_DIR)).len(), 1);
        applied.unwrap().finish().unwrap();
        assert_eq!(
            listing(&root_path),
            vec![
                ("m.txt".into(), "new".into()),
                ("x".into(), "<dir>".into()),
                ("x/y".into(), "<dir>".into()),
                ("x/y/c.txt".into(), "created".into()),
            ]
        );
        assert!(listing(&profile.path().join(JOURNAL_DIR)).is_empty());
    }

    #[test]
    fn a_failing_swap_rolls_everything_back() {
        let profile = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        std::fs::write(root_path.join("a.txt"), "a").unwrap();
        let before = listing(&root_path);
        // The third entry creates a file that already exists by then.
        std::fs::write(root_path.join("late.txt"), "someone else").unwrap();
        let before_late = listing(&root_path);
        let files = [
            change(&root_path, "a.txt", Action::Modify, Some("A")),
            change(&root_path, "n/new.txt", Action::Create, Some("N")),
            change(&root_path, "late.txt", Action::Create, Some("L")),
        ];
        let err = apply(
            profile.path(),
            &root_path,
            "c2",
            &files,
            Value::Null,
            &|| false,
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert_eq!(listing(&root_path), before_late);
        assert_ne!(before, before_late);
    }

    #[test]
    fn recovery_completes_when_every_swap_is_done_and_rolls_back_otherwise() {
        let profile = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        std::fs::write(root_path.join("a.txt"), "a").unwrap();
        let files = [change(&root_path, "a.txt", Action::Modify, Some("A"))];
        // Simulate a crash after all swaps: apply, then put the journal and
        // a stale backup back.
        apply(
            profile.path(),
            &root_path,
            "c3",
            &files,
            Value::Null,
            &|| false,
        )
        .unwrap()
        .finish()
        .unwrap();
        let journal = Journal {
            format: JOURNAL_FORMAT.into(),
            root: root_path.clone(),
            change_id: "c3".into(),
            entries: vec![Entry {
                path: "a.txt".into(),
                action: Action::Modify,
                temp: ".t".into(),
                backup: ".b".into(),
                new_sha256: Some(sha256_hex(b"A")),
            }],
            created_dirs: vec![],
            applied: false,
            ledger: Some(serde_json::json!({"row": "c3"})),
        };
        std::fs::write(root_path.join(".b"), "a").unwrap();
        let jp = journal_path(profile.path(), "c3");
        std::fs::write(&jp, serde_json::to_vec(&journal).unwrap()).unwrap();
        let mut finished = Vec::new();
        recover(profile.path(), &mut |ledger| {
            finished.push(ledger.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(listing(&root_path), vec![("a.txt".into(), "A".into())]);
        assert!(!jp.exists());
        // The completed change's ledger record was replayed.
        assert_eq!(finished, [serde_json::json!({"row": "c3"})]);
        // A crash before the rename: temp staged, backup linked.
        std::fs::write(root_path.join(".t"), "A2").unwrap();
        std::fs::hard_link(root_path.join("a.txt"), root_path.join(".b")).unwrap();
        let mut j2 = journal.clone();
        j2.entries[0].new_sha256 = Some(sha256_hex(b"A2"));
        std::fs::write(&jp, serde_json::to_vec(&j2).unwrap()).unwrap();
        recover(profile.path(), &mut |_| {
            panic!("a rolled-back change reached the ledger")
        })
        .unwrap();
        assert_eq!(listing(&root_path), vec![("a.txt".into(), "A".into())]);
    }
}
