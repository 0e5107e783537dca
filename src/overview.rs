//! `overview` (`spec/OPERATIONS.md` §6): the counts and storage sizes a
//! shell shows on its dashboard, in one call.
//!
//! Counts come from one read snapshot of the `row_counts` table, which
//! triggers keep exact in every writing transaction (migration 0009), so
//! an overview does not count the rows of large tables.
//!
//! Storage sizes come from walking each storage root (the profile directory as `profile`, plus the roots given at
//! open): symlinks are not followed, a hard-linked file counts once per root,
//! unreadable entries are skipped. Walks are cached in process for 300 s,
//! keyed by the set of resolved root paths; concurrent callers share one
//! walk; the deletes of the privacy rule and other size-changing operations
//! invalidate the cache (`Profile::invalidate_storage_cache`), and
//! `refresh_storage: true` forces a walk.

use crate::db::ConnExt;
use crate::error::Result;
use crate::profile::{storage_epoch, Profile};
use crate::types::{now_ms, Millis};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How long a storage walk stays valid.
pub const STORAGE_CACHE_TTL_MS: Millis = 300_000;

/// The label of the profile directory among the storage roots.
pub use crate::profile::PROFILE_ROOT_LABEL;

/// Request of `overview`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewRequest {
    /// Walk the storage roots now instead of using a cached walk.
    #[serde(default)]
    pub refresh_storage: bool,
}

/// Response of `overview`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Overview {
    pub browser: BrowserCounts,
    pub llm: LlmCounts,
    pub tasks: StatusCounts,
    pub jobs: JobCounts,
    pub knowledge: KnowledgeCounts,
    pub storage: Storage,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BrowserCounts {
    pub tabs: TabCounts,
    pub history: HistoryCounts,
    pub bookmarks: Total,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TabCounts {
    pub total: i64,
    /// Tabs bound to a thread.
    pub linked: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct HistoryCounts {
    pub entries: i64,
    pub last_visit_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Total {
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LlmCounts {
    pub threads: Total,
    pub messages: Total,
    pub memories: Total,
}

/// A total and a count per status; every status of the contract is listed,
/// with 0 where no row has it, so the shape does not depend on the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct StatusCounts {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct JobCounts {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    /// Job types present in the ledger.
    pub by_type: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct KnowledgeCounts {
    /// Stored documents (spec §10).
    pub documents: i64,
    /// Their chunks.
    pub chunks: i64,
    /// Chunks with at least one embedding.
    pub embedded_chunks: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Storage {
    pub roots: BTreeMap<String, RootUsage>,
    /// Current size of the database file.
    pub db_bytes: u64,
    /// Current size of its WAL.
    pub wal_bytes: u64,
    /// When the walk behind `roots` ran.
    pub computed_at: Millis,
    /// True when `roots` came from the cache.
    pub cached: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RootUsage {
    pub path: String,
    pub bytes: u64,
    pub files: u64,
}

const TASK_STATUSES: &[&str] = &[
    "pending",
    "in_progress",
    "blocked",
    "completed",
    "failed",
    "cancelled",
];

/// `overview`.
pub fn overview(profile: &Profile, req: OverviewRequest) -> Result<Overview> {
    // One read: one snapshot for every count.
    let (counts, knowledge) = profile
        .db()
        .read(|conn| Ok((read_counts(conn)?, knowledge_counts(conn)?)))?;
    let storage = storage(profile, req.refresh_storage)?;
    Ok(Overview {
        browser: counts.browser,
        llm: counts.llm,
        tasks: counts.tasks,
        jobs: counts.jobs,
        knowledge,
        storage,
    })
}

/// The knowledge store's counts (documents, chunks, embedded chunks).
fn knowledge_counts(conn: &Connection) -> Result<KnowledgeCounts> {
    Ok(KnowledgeCounts {
        documents: conn.query_i64("SELECT count(*) FROM documents", [])?,
        chunks: conn.query_i64("SELECT count(*) FROM document_chunks", [])?,
        embedded_chunks: conn
            .query_i64("SELECT count(DISTINCT chunk_seq) FROM chunk_embeddings", [])?,
    })
}

struct Counts {
    browser: BrowserCounts,
    llm: LlmCounts,
    tasks: StatusCounts,
    jobs: JobCounts,
}

/// Reads the counts from `row_counts` (kept by triggers in every writing
/// transaction, see migration 0009) and the newest visit time (an index
/// seek on `visits_by_time`): at most a bounded tail of rows is visited,
/// so the cost does not grow with the profile.
fn read_counts(conn: &Connection) -> Result<Counts> {
    // `history` and `llm_messages` count their rows up to a mark; the few
    // rows above it (at most 4096) are counted here by key range.
    let stored: HashMap<String, i64> = conn
        .query_all(
            "SELECT name, n + CASE name
                 WHEN 'history' THEN (SELECT count(*) FROM visits WHERE id > upto)
                 WHEN 'llm_messages' THEN (SELECT count(*) FROM llm_messages WHERE seq > upto)
                 ELSE 0 END
             FROM row_counts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    let count = |name: &str| stored.get(name).copied().unwrap_or(0);
    let last_visit_at: Option<Millis> = conn
        .query_opt("SELECT max(visited_at) FROM visits", [], |r| r.get(0))?
        .flatten();
    let tasks_by_status = by_value(&stored, "tasks.status:", TASK_STATUSES);
    let job_statuses = crate::jobs::JobStatus::ALL.map(crate::jobs::JobStatus::as_str);
    let jobs_by_status = by_value(&stored, "jobs.status:", &job_statuses);
    Ok(Counts {
        browser: BrowserCounts {
            tabs: TabCounts {
                total: count("tabs"),
                linked: count("tabs.linked"),
            },
            history: HistoryCounts {
                entries: count("history"),
                last_visit_at,
            },
            bookmarks: Total {
                total: count("bookmarks"),
            },
        },
        llm: LlmCounts {
            threads: Total {
                total: count("llm_threads"),
            },
            messages: Total {
                total: count("llm_messages"),
            },
            memories: Total {
                total: count("memories"),
            },
        },
        tasks: StatusCounts {
            total: tasks_by_status.values().sum(),
            by_status: tasks_by_status,
        },
        jobs: JobCounts {
            total: jobs_by_status.values().sum(),
            by_status: jobs_by_status,
            by_type: by_value(&stored, "jobs.type:", &[]),
        },
    })
}

/// `value -> count` from the counters named `<prefix><value>`: every value
/// of `always` present (0 when none), any other value only while it counts
/// at least one row.
fn by_value(stored: &HashMap<String, i64>, prefix: &str, always: &[&str]) -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = always.iter().map(|s| (s.to_string(), 0)).collect();
    for (name, &n) in stored {
        if let Some(value) = name.strip_prefix(prefix) {
            if n > 0 || always.contains(&value) {
                counts.insert(value.to_owned(), n);
            }
        }
    }
    counts
}

/// A finished walk of a set of roots.
#[derive(Clone)]
struct Walk {
    roots: BTreeMap<String, RootUsage>,
    computed_at: Millis,
    epoch: u64,
}

/// The resolved storage roots of a profile, `(label, path)` sorted.
type RootSet = Vec<(String, PathBuf)>;

/// Walks by resolved root set. The mutex is held for the whole walk, so
/// concurrent callers wait for the walk in progress and then share it.
static WALKS: Lazy<Mutex<HashMap<RootSet, Walk>>> = Lazy::new(|| Mutex::new(HashMap::new()));

fn storage(profile: &Profile, refresh: bool) -> Result<Storage> {
    let roots = resolved_roots(profile);
    let walk = {
        let mut walks = WALKS.lock();
        let epoch = storage_epoch(profile.dir());
        let now = now_ms();
        match walks.get(&roots) {
            Some(w)
                if !refresh && w.epoch == epoch && now - w.computed_at < STORAGE_CACHE_TTL_MS =>
            {
                (w.clone(), true)
            }
            _ => {
                let fresh = Walk {
                    roots: roots
                        .iter()
                        .map(|(label, path)| (label.clone(), measure(path)))
                        .collect(),
                    computed_at: now,
                    epoch,
                };
                walks.insert(roots, fresh.clone());
                (fresh, false)
            }
        }
    };
    let db = profile.db().path();
    Ok(Storage {
        roots: walk.0.roots,
        db_bytes: file_len(db),
        wal_bytes: file_len(&crate::meta::wal_path(db)),
        computed_at: walk.0.computed_at,
        cached: walk.1,
    })
}

/// The profile directory and the configured roots, each resolved (symlinks
/// and `..` removed; a root that does not resolve keeps its given path).
fn resolved_roots(profile: &Profile) -> RootSet {
    let mut roots = vec![(PROFILE_ROOT_LABEL.to_owned(), profile.dir().to_owned())];
    for (label, path) in &profile.options().storage_roots {
        roots.push((
            label.clone(),
            path.canonicalize().unwrap_or_else(|_| path.clone()),
        ));
    }
    roots.sort();
    roots
}

/// Bytes and files under `root`: symlinks are not followed, a file with
/// several hard links under the root counts once, unreadable entries are
/// skipped.
fn measure(root: &Path) -> RootUsage {
    let mut seen_links = HashSet::new();
    let (mut bytes, mut files) = (0u64, 0u64);
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.nlink() > 1 && !seen_links.insert((meta.dev(), meta.ino())) {
            continue;
        }
        bytes += meta.len();
        files += 1;
    }
    RootUsage {
        path: root.to_string_lossy().into_owned(),
        bytes,
        files,
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_not_followed_and_hard_links_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 10_000]).unwrap();
        std::fs::write(dir.path().join("a"), b"12345").unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("a-link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), b"123").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("big"), dir.path().join("big-link"))
            .unwrap();
        let usage = measure(dir.path());
        assert_eq!((usage.bytes, usage.files), (8, 2));
    }

    #[test]
    fn a_missing_root_is_empty() {
        let usage = measure(Path::new("/definitely/not/here"));
        assert_eq!((usage.bytes, usage.files), (0, 0));
    }
}
