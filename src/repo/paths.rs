//! The path rule of `spec/OPERATIONS.md` §7: the one function that decides
//! whether a patch may touch a path, and the symlink-safe walk that finds
//! (and, for an apply, creates) the directory a target lives in.
//!
//! [`validate`] is the rule, used by propose and apply on every entry
//! before anything is touched. A path is checked twice over: first as text
//! (`check_text`: relative, non-empty, no NUL, backslash, `:`, empty, `.`
//! or `..` component, no `.git` component in any case), then against the tree (`locate`): every
//! existing component is looked at without following symlinks, from a
//! descriptor of the canonical root, so nothing can lead outside it. The
//! apply engine walks the same way with [`walk_parent`], opening each
//! directory with `O_NOFOLLOW`, so a symlink swapped in after the check
//! makes the write fail instead of escaping.
//!
//! Decisions beyond the contract's text (documented for callers):
//! - every refusal of the path rule is `path_escape` except `.git`, which is
//!   `forbidden`; overlong paths (over 4,096 bytes, or a component over 255
//!   bytes) are refused as `path_escape` too;
//! - a `.git` look-alike that some file systems treat as `.git` (trailing
//!   dots or spaces, the 8.3 name `git~1`) is `forbidden` as well;
//! - a target inside the profile directory (when the root contains it) is
//!   `forbidden`: an agent must never rewrite the library's own database;
//! - a parent component that exists but is not a directory, or a target that
//!   is a directory or a special file, is `invalid_argument`.

use crate::error::{Error, ErrorCode, Result};
use crate::sys::os::{Dir, EntryKind};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Longest path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest component accepted, in bytes (`NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// A path that passed the textual rule: its components, each a plain name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoPath {
    text: String,
}

impl RepoPath {
    /// The path as the caller wrote it (already known to be well formed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The components, first to last (never empty).
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.text.split('/')
    }

    /// The directory components (all but the last).
    pub fn parent_components(&self) -> Vec<&str> {
        let mut parts: Vec<&str> = self.components().collect();
        parts.pop();
        parts
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.components().next_back().unwrap_or_default()
    }

    /// The directory part as text (`""` for a file at the root).
    pub fn parent_text(&self) -> &str {
        self.text.rsplit_once('/').map(|p| p.0).unwrap_or("")
    }
}

fn escape(index: usize, reason: &str) -> Error {
    Error::new(
        ErrorCode::PathEscape,
        format!("files[{index}].path: {reason}"),
    )
    .with_detail("index", index)
    .with_detail("field", format!("files[{index}].path"))
}

fn forbidden_git(index: usize) -> Error {
    Error::new(
        ErrorCode::Forbidden,
        format!("files[{index}].path: paths inside .git may not be patched"),
    )
    .with_detail("index", index)
    .with_detail("field", format!("files[{index}].path"))
}

fn bad_target(index: usize, reason: &str) -> Error {
    Error::invalid(format!("files[{index}].path"), reason).with_detail("index", index)
}

/// True for `.git` in any case and for names some file systems read as
/// `.git` (`.git.`, `.git `, `git~1`).
fn is_git_dir_name(name: &str) -> bool {
    let trimmed = name.trim_end_matches(['.', ' ']);
    trimmed.eq_ignore_ascii_case(".git") || name.eq_ignore_ascii_case("git~1")
}

/// A path that passed the whole rule, with what is there now.
#[derive(Debug)]
pub struct Checked {
    pub path: RepoPath,
    pub found: Found,
    /// The open parent directory when it exists and is not the root.
    pub parent: Option<Dir>,
}

/// **The path rule** (`spec/OPERATIONS.md` §7): the one function every
/// patch entry passes, in propose and apply, before any file is touched.
/// `raw` is the entry's `path`, `index` its position in the payload
/// (reported in `details.index`); `root` is the descriptor from
/// [`open_root`] of the canonical `root_path`. Checks the text, then the
/// tree without following any symlink.
pub fn validate(
    root: &Dir,
    root_path: &Path,
    profile_dir: &Path,
    index: usize,
    raw: &str,
) -> Result<Checked> {
    let path = check_text(index, raw)?;
    let (found, parent) = locate(root, root_path, profile_dir, index, &path)?;
    Ok(Checked {
        path,
        found,
        parent,
    })
}

/// The textual half of the path rule (see [`validate`]).
pub(super) fn check_text(index: usize, path: &str) -> Result<RepoPath> {
    if path.is_empty() {
        return Err(escape(index, "the path is empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(escape(index, "the path is too long"));
    }
    if path.contains('\0') {
        return Err(escape(index, "the path contains NUL"));
    }
    if path.contains('\\') {
        return Err(escape(index, "backslashes are not allowed"));
    }
    if path.contains(':') {
        return Err(escape(index, "drive prefixes and ':' are not allowed"));
    }
    if path.starts_with('/') {
        return Err(escape(index, "the path must be relative"));
    }
    for name in path.split('/') {
        match name {
            "" => return Err(escape(index, "empty path component")),
            "." | ".." => return Err(escape(index, "'.' and '..' components are not allowed")),
            _ if name.len() > MAX_NAME_BYTES => {
                return Err(escape(index, "a path component is too long"))
            }
            _ => {}
        }
    }
    if path.split('/').any(is_git_dir_name) {
        return Err(forbidden_git(index));
    }
    Ok(RepoPath {
        text: path.to_owned(),
    })
}

/// Opens the canonical repository root without following a symlink, and
/// checks that the descriptor really is that directory (a root replaced by
/// a link, or moved, is `path_escape`; a missing one is `io`).
pub fn open_root(root: &Path) -> Result<Dir> {
    let dir = Dir::open(root).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => root_moved(),
        _ => Error::Io(e),
    })?;
    let actual = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .or_else(|_| root.canonicalize())?;
    if actual != root {
        return Err(root_moved());
    }
    Ok(dir)
}

fn root_moved() -> Error {
    Error::new(
        ErrorCode::PathEscape,
        "the repository root is no longer the registered directory; register it again",
    )
    .with_detail("field", "root_path")
}

/// What is at a validated path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A regular file with these permission bits and owner.
    File { mode: u32, uid: u32, gid: u32 },
    /// Nothing (some parent directories may be missing too).
    Missing,
}

/// The tree half of the path rule (see [`validate`]): walks `path` from the root without
/// following symlinks and says what is there. Refuses a symlink anywhere
/// along the path (`path_escape`), a target inside the profile directory
/// (`forbidden`), a non-directory parent or a target that is not a regular
/// file (`invalid_argument`). Returns the open parent directory when it
/// exists, so the caller can read the file through it.
fn locate(
    root: &Dir,
    root_path: &Path,
    profile_dir: &Path,
    index: usize,
    path: &RepoPath,
) -> Result<(Found, Option<Dir>)> {
    let full = root_path.join(path.as_str());
    if full.starts_with(profile_dir) {
        return Err(Error::new(
            ErrorCode::Forbidden,
            format!("files[{index}].path: the profile directory may not be patched"),
        )
        .with_detail("index", index)
        .with_detail("field", format!("files[{index}].path")));
    }
    let mut current: Option<Dir> = None;
    for name in path.parent_components() {
        let dir = current.as_ref().unwrap_or(root);
        match dir.stat(name)?.map(|s| s.kind) {
            None => return Ok((Found::Missing, None)),
            Some(EntryKind::Symlink) => return Err(escape(index, "a symlink is on the path")),
            Some(EntryKind::Dir) => {}
            Some(_) => return Err(bad_target(index, "a parent component is not a directory")),
        }
        let next = dir.open_dir(name).map_err(|e| walk_error(index, e))?;
        current = Some(next);
    }
    let dir = current.as_ref().unwrap_or(root);
    let found = match dir.stat(path.file_name())? {
        None => Found::Missing,
        Some(s) => match s.kind {
            EntryKind::File => Found::File {
                mode: s.mode,
                uid: s.uid,
                gid: s.gid,
            },
            EntryKind::Symlink => return Err(escape(index, "the target is a symlink")),
            EntryKind::Dir => return Err(bad_target(index, "the target is a directory")),
            EntryKind::Other => return Err(bad_target(index, "the target is not a regular file")),
        },
    };
    Ok((found, current))
}

/// A failure to open a directory while walking: a component that turned
/// into a symlink or non-directory since it was looked at is an escape
/// attempt, anything else is `io`.
fn walk_error(index: usize, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => escape(index, "a symlink is on the path"),
        _ => Error::Io(e),
    }
}

/// Opens (creating missing ones with mode 0755 when `created` is given) the
/// parent directory of `path`, each component with `O_NOFOLLOW`. Returns
/// `None` for a file at the root (use the root itself). Directories it
/// creates are pushed to `created` as paths relative to the root.
pub fn walk_parent(
    root: &Dir,
    index: usize,
    path: &RepoPath,
    mut created: Option<&mut Vec<String>>,
) -> Result<Option<Dir>> {
    let mut current: Option<Dir> = None;
    let mut so_far = PathBuf::new();
    for name in path.parent_components() {
        so_far.push(name);
        let dir = current.as_ref().unwrap_or(root);
        let opened = match dir.open_dir(name) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match created.as_deref_mut() {
                Some(list) => {
                    dir.mkdir(name, 0o755)?;
                    list.push(so_far.to_string_lossy().into_owned());
                    dir.open_dir(name)
                }
                None => Err(e),
            },
            other => other,
        };
        current = Some(opened.map_err(|e| walk_error(index, e))?);
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(index: usize, p: &str) -> &'static str {
        match check_text(index, p) {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        }
    }

    #[test]
    fn textual_rule() {
        for ok in [
            "a",
            "a/b.txt",
            "src/.gitignore",
            ".github/x",
            "a.git/b",
            "x..y",
        ] {
            assert_eq!(code(0, ok), "ok", "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/..",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "C:",
            "c:x",
            "a\0b",
        ] {
            assert_eq!(code(0, bad), "path_escape", "{bad:?}");
        }
        for git in [
            ".git",
            ".GIT/config",
            "a/.Git/hooks/x",
            "a/b/.git",
            ".git./x",
            "GIT~1/x",
        ] {
            assert_eq!(code(0, git), "forbidden", "{git}");
        }
        assert_eq!(code(0, &"a".repeat(256)), "path_escape");
        assert_eq!(code(0, &"a/".repeat(2100)), "path_escape");
        let e = check_text(7, "../x").unwrap_err().to_public();
        assert_eq!(e.details["index"], 7);
    }

    #[test]
    fn components_and_parent() {
        let p = check_text(0, "a/b/c.txt").unwrap();
        assert_eq!(p.parent_components(), vec!["a", "b"]);
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.parent_text(), "a/b");
        assert_eq!(check_text(0, "c").unwrap().parent_text(), "");
    }
}
