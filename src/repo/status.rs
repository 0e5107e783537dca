//! `repo.status`: the version-control state of a repo's tree, read from
//! `git status --porcelain=v2 --branch -z` (a format git keeps stable for
//! scripts). Outside a git work tree every field is null and `vcs` is null.
//!
//! git runs with `GIT_OPTIONAL_LOCKS=0` so that a read-only operation never
//! rewrites the index, with `LC_ALL=C`, with `core.fsmonitor` off (a
//! repository's config could otherwise make `git status` run a program),
//! and without the host's `GIT_DIR`-style variables. Paths are relative to the top of
//! the work tree. A change's `status` is one word: `modified`, `added`,
//! `deleted`, `renamed`, `copied`, `type_changed`, `untracked` or
//! `conflicted` (the index side wins when both sides changed).

use super::registry::{self, Permission};
use crate::error::{Error, ErrorCode, Result};
use crate::profile::Profile;
use crate::types::Id;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Command, Stdio};

/// Request of `repo.status`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub id: Id,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PathChange {
    pub path: String,
    pub status: String,
}

/// Response of `repo.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RepoStatus {
    /// `"git"`, or null outside a git work tree (then every field is null).
    pub vcs: Option<String>,
    /// The branch; null when detached.
    pub branch: Option<String>,
    pub upstream: Option<String>,
    pub ahead: Option<u64>,
    pub behind: Option<u64>,
    pub dirty: Option<bool>,
    pub changes: Option<Vec<PathChange>>,
}

/// `repo.status` (needs `read`).
pub fn status(profile: &Profile, req: StatusRequest) -> Result<RepoStatus> {
    let repo = registry::load_for(profile, &req.id, Permission::Read)?;
    super::paths::open_root(&repo.root_path)?;
    git_status(&repo.root_path)
}

/// Variables of the host's environment that would point git at another
/// repository, work tree or index than the root's own.
const GIT_LOCATION_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
];

/// Runs git in `root` and parses its status.
pub fn git_status(root: &Path) -> Result<RepoStatus> {
    let mut command = Command::new("git");
    for var in GIT_LOCATION_VARS {
        command.env_remove(var);
    }
    let output = command
        // A repo's own config must not make a status run a program.
        .args(["-c", "core.fsmonitor=false"])
        .args(["status", "--porcelain=v2", "--branch", "-z"])
        .current_dir(root)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(ErrorCode::Io, format!("git could not run: {}", e.kind())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("not a git repository") {
            return Ok(RepoStatus::default());
        }
        return Err(Error::new(
            ErrorCode::Io,
            "git status failed in the repo root",
        ));
    }
    Ok(parse_porcelain_v2(&output.stdout))
}

fn change_word(code: u8) -> Option<&'static str> {
    Some(match code {
        b'M' => "modified",
        b'A' => "added",
        b'D' => "deleted",
        b'R' => "renamed",
        b'C' => "copied",
        b'T' => "type_changed",
        _ => return None,
    })
}

/// Parses NUL-separated `git status --porcelain=v2 --branch -z` output.
pub fn parse_porcelain_v2(out: &[u8]) -> RepoStatus {
    let mut st = RepoStatus {
        vcs: Some("git".to_owned()),
        ahead: Some(0),
        behind: Some(0),
        ..Default::default()
    };
    let mut changes = Vec::new();
    let mut records = out
        .split(|b| *b == 0)
        .map(|r| String::from_utf8_lossy(r).into_owned());
    while let Some(rec) = records.next() {
        if let Some(header) = rec.strip_prefix("# ") {
            let (key, value) = header.split_once(' ').unwrap_or((header, ""));
            match key {
                "branch.head" if value != "(detached)" => st.branch = Some(value.to_owned()),
                "branch.upstream" => st.upstream = Some(value.to_owned()),
                "branch.ab" => {
                    for part in value.split(' ') {
                        if let Some(n) = part.strip_prefix('+') {
                            st.ahead = n.parse().ok();
                        } else if let Some(n) = part.strip_prefix('-') {
                            st.behind = n.parse().ok();
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        let fields: Vec<&str> = rec.splitn(11, ' ').collect();
        let (path, status) = match fields.first().copied() {
            Some("1") if fields.len() >= 9 => {
                let rest = rec.splitn(9, ' ').nth(8).unwrap_or_default().to_owned();
                (rest, xy_word(fields[1]))
            }
            Some("2") if fields.len() >= 10 => {
                let rest = rec.splitn(10, ' ').nth(9).unwrap_or_default().to_owned();
                records.next(); // the original path of the rename or copy
                (rest, xy_word(fields[1]))
            }
            Some("u") if fields.len() >= 11 => {
                let rest = rec.splitn(11, ' ').nth(10).unwrap_or_default().to_owned();
                (rest, "conflicted")
            }
            Some("?") => (rec.get(2..).unwrap_or_default().to_owned(), "untracked"),
            _ => continue,
        };
        changes.push(PathChange {
            path,
            status: status.to_owned(),
        });
    }
    if st.upstream.is_none() {
        // Without an upstream git prints no `branch.ab`: nothing to compare.
        st.ahead = None;
        st.behind = None;
    }
    st.dirty = Some(!changes.is_empty());
    st.changes = Some(changes);
    st
}

fn xy_word(xy: &str) -> &'static str {
    let b = xy.as_bytes();
    b.first()
        .and_then(|x| change_word(*x))
        .or_else(|| b.get(1).and_then(|y| change_word(*y)))
        .unwrap_or("modified")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_branch_counts_and_every_record_kind() {
        let out = b"# branch.oid 1234\0# branch.head main\0# branch.upstream origin/main\0# branch.ab +2 -1\0\
1 .M N... 100644 100644 100644 aaa bbb src/a file.rs\0\
1 A. N... 000000 100644 100644 000 ccc new.txt\0\
2 R. N... 100644 100644 100644 aaa aaa R100 to.txt\0from.txt\0\
u UU N... 100644 100644 100644 100644 a b c both.txt\0\
? untracked.txt\0";
        let st = parse_porcelain_v2(out);
        assert_eq!(st.branch.as_deref(), Some("main"));
        assert_eq!(st.upstream.as_deref(), Some("origin/main"));
        assert_eq!(
            (st.ahead, st.behind, st.dirty),
            (Some(2), Some(1), Some(true))
        );
        let got: Vec<(&str, &str)> = st
            .changes
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.path.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("src/a file.rs", "modified"),
                ("new.txt", "added"),
                ("to.txt", "renamed"),
                ("both.txt", "conflicted"),
                ("untracked.txt", "untracked"),
            ]
        );
    }

    #[test]
    fn detached_head_without_upstream() {
        let st = parse_porcelain_v2(b"# branch.oid abc\0# branch.head (detached)\0");
        assert_eq!(
            (st.branch, st.upstream, st.ahead, st.dirty),
            (None, None, None, Some(false))
        );
    }
}
