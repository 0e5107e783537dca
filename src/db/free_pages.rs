//! Zeroing the database's free pages in place, for the privacy deletes that
//! free pages by the ten thousand (`history.purge {all}`).
//!
//! `PRAGMA secure_delete = ON` zeroes every page a delete frees, and a
//! zeroed page is a changed page: it is written to the WAL, then copied
//! into the database by the truncating checkpoint. At a million visits
//! that is about 26,700 pages (107 MB) written twice, most of what emptying
//! the history costs. [`crate::privacy::purge_in_bulk`] instead deletes with
//! `secure_delete = FAST` (deleted cells on pages that stay are still
//! zeroed; freed pages are left as they were, which costs no write) and,
//! still holding the writer, truncates the WAL and then overwrites the
//! free pages with zeros directly in the database file:
//!
//! - After a truncating checkpoint the file holds the whole database and no
//!   reader holds an older snapshot, so the free pages are exactly those
//!   the freelist names (SQLite file format, section 1.5: a chain of trunk
//!   pages, each holding a next-trunk number, a leaf count and leaf page
//!   numbers), and no connection reads them. The chain is checked against
//!   the header's free-page count and the database size before anything is
//!   written; a chain that does not add up is never written to.
//! - Leaves are zeroed whole; a trunk page keeps its next pointer, count
//!   and leaf numbers, and the rest of it (the old content of the page it
//!   was) is zeroed. Then the file is fsynced.
//! - The writer's page cache may still hold those pages as they were, and
//!   SQLite reuses a cached trunk as it is (a write to it would carry the
//!   old bytes back), so the cache is dropped (`PRAGMA shrink_memory`)
//!   before the writer is released. (The tests did not catch a leak with
//!   this step removed on SQLite 3.54.1; it is kept rather than relying on
//!   when SQLite resets its cache.)
//!
//! A marker file next to the database ([`MARKER_SUFFIX`]) is created and
//! fsynced before such a delete starts and removed once the free pages hold
//! no old content. While it exists, nothing else writes: the delete holds
//! the writer throughout. Should the truncating checkpoint not complete
//! in time (a reader outside the library holds an old snapshot), the free
//! pages are overwritten through SQLite instead ([`overwrite_through_sqlite`]:
//! a table of zero blobs takes every free page and is dropped with
//! `secure_delete = ON`), which is what `secure_delete` would have written,
//! and the rest of the erasure is the ordinary pending one. A crash with
//! the marker present is finished by the next open before anything else
//! writes ([`super::Db::open`]).
//!
//! The database file is opened once, for the life of the [`super::Db`],
//! and closed after every SQLite connection: closing a second descriptor of
//! a file releases every POSIX lock the process holds on it, SQLite's too.

use super::snapshot::{checkpoint_truncate_within, truncate_until, ATTEMPT_WAIT};
use crate::error::{Error, Result};
use rusqlite::Connection;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The marker's name is the database file's name plus this.
pub const MARKER_SUFFIX: &str = "-free-pages";

/// The free pages of one database file (module docs).
pub(super) struct FreePages {
    file: File,
    marker: PathBuf,
    armed: AtomicBool,
}

/// How many pages one zeroing write covers at most (1 MiB at 4 KiB pages).
const PAGES_PER_WRITE: usize = 256;

impl FreePages {
    /// Opens the database file at `db_path` (it exists: the writer created
    /// it) and notes whether a marker was left by an earlier session.
    pub(super) fn open(db_path: &Path) -> Result<FreePages> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(db_path)?;
        let mut marker = db_path.as_os_str().to_owned();
        marker.push(MARKER_SUFFIX);
        let marker = PathBuf::from(marker);
        let armed = AtomicBool::new(marker.exists());
        Ok(FreePages {
            file,
            marker,
            armed,
        })
    }

    /// True while free pages may hold deleted content in the file.
    pub(super) fn armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Creates the marker, durably, before a delete that leaves its freed
    /// pages unzeroed.
    pub(super) fn arm(&self) -> Result<()> {
        let mut file = File::create(&self.marker)?;
        std::io::Write::write_all(
            &mut file,
            b"hydra_core: free pages of the database may hold deleted data; the next open zeroes them.\n",
        )?;
        file.sync_all()?;
        crate::fsutil::sync_dir(crate::fsutil::parent_dir(&self.marker))?;
        self.armed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Removes the marker once the free pages hold no old content. (A
    /// removal lost to a crash only makes the next open zero them again.)
    pub(super) fn disarm(&self) -> Result<()> {
        match std::fs::remove_file(&self.marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.armed.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Completes the erasure of a delete that left its freed pages unzeroed
    /// (module docs), with the writer `conn` held and readers drained:
    /// truncates the WAL (trying until `deadline`, holding the writer, so
    /// that no write reuses a free page before it is zeroed), zeroes the
    /// free pages in the file and drops the writer's page cache. If the WAL
    /// cannot be truncated in time (or the freelist does not check out),
    /// the free pages are overwritten through SQLite instead. Either way the
    /// marker is removed. True when erased: the WAL is empty and every free
    /// page in the file is zeros.
    pub(super) fn finish(&self, conn: &Connection, deadline: Instant) -> Result<bool> {
        let truncated = truncate_until(|| conn, ATTEMPT_WAIT, deadline)?;
        if truncated && self.zero_in_place().is_ok() {
            conn.execute_batch("PRAGMA shrink_memory")?;
            self.disarm()?;
            return Ok(true);
        }
        overwrite_through_sqlite(conn)?;
        self.disarm()?;
        Ok(checkpoint_truncate_within(conn, ATTEMPT_WAIT)?.truncated())
    }

    /// Overwrites every free page in the file with zeros (a trunk keeps its
    /// list) and fsyncs it; returns how many pages are free. Only valid
    /// with the writer held and the WAL just truncated (module docs).
    pub(super) fn zero_in_place(&self) -> Result<u64> {
        let list = FreeList::read(&self.file)?;
        let page_size = list.page_size as u64;
        let zeros = vec![0u8; list.page_size * PAGES_PER_WRITE];
        for &(trunk, leaves) in &list.trunks {
            let kept = 8 + 4 * leaves;
            self.file.write_all_at(
                &zeros[..list.page_size - kept],
                (u64::from(trunk) - 1) * page_size + kept as u64,
            )?;
        }
        let mut rest = &list.leaves[..];
        while let Some(&first) = rest.first() {
            let run = rest
                .iter()
                .zip(first..)
                .take(PAGES_PER_WRITE)
                .take_while(|(page, expected)| **page == *expected)
                .count();
            self.file.write_all_at(
                &zeros[..run * list.page_size],
                (u64::from(first) - 1) * page_size,
            )?;
            rest = &rest[run..];
        }
        self.file.sync_data()?;
        Ok((list.trunks.len() + list.leaves.len()) as u64)
    }
}

/// The freelist as the database file holds it, checked.
struct FreeList {
    page_size: usize,
    /// Trunk pages with how many leaf numbers each holds.
    trunks: Vec<(u32, usize)>,
    /// Leaf pages, ascending.
    leaves: Vec<u32>,
}

impl FreeList {
    fn read(file: &File) -> Result<FreeList> {
        let corrupt = |what: &str| Error::internal(format!("freelist: {what}"));
        let mut header = [0u8; 100];
        file.read_exact_at(&mut header, 0)?;
        let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65_536,
            n => usize::from(n),
        };
        if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(corrupt("page size"));
        }
        // Reserved bytes belong to an extension (checksums, encryption)
        // whose content zeros would break: not this library's files.
        if header[20] != 0 {
            return Err(corrupt("reserved bytes per page"));
        }
        // The header's page count is valid when written by the same
        // change as its change counter (file format, 1.3.7).
        if be32(&header, 92) != be32(&header, 24) {
            return Err(corrupt("stale page count"));
        }
        let db_pages = be32(&header, 28);
        let file_pages = file.metadata()?.len() / page_size as u64;
        if u64::from(db_pages) > file_pages {
            return Err(corrupt("page count beyond the file"));
        }
        let total = be32(&header, 36) as usize;
        let max_leaves = page_size / 4 - 2;
        let mut trunks = Vec::new();
        let mut leaves = Vec::with_capacity(total);
        let mut page = vec![0u8; page_size];
        let mut trunk = be32(&header, 32);
        let valid = |n: u32| n >= 2 && n <= db_pages;
        while trunk != 0 {
            if !valid(trunk) || trunks.len() + leaves.len() >= total {
                return Err(corrupt("trunk chain"));
            }
            file.read_exact_at(&mut page, (u64::from(trunk) - 1) * page_size as u64)?;
            let count = be32(&page, 4) as usize;
            if count > max_leaves || trunks.len() + 1 + leaves.len() + count > total {
                return Err(corrupt("leaf count"));
            }
            for i in 0..count {
                let leaf = be32(&page, 8 + 4 * i);
                if !valid(leaf) {
                    return Err(corrupt("leaf page number"));
                }
                leaves.push(leaf);
            }
            trunks.push((trunk, count));
            trunk = be32(&page, 0);
        }
        if trunks.len() + leaves.len() != total {
            return Err(corrupt("free page count"));
        }
        let mut all: Vec<u32> = trunks.iter().map(|t| t.0).chain(leaves.iter().copied()).collect();
        all.sort_unstable();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(corrupt("a page listed twice"));
        }
        leaves.sort_unstable();
        Ok(FreeList {
            page_size,
            trunks,
            leaves,
        })
    }
}

/// Overwrites the free pages through SQLite, on the writer (with
/// `secure_delete = ON`, outside any transaction): a table of zero blobs
/// takes every free page, then is dropped, which zeroes each page it held.
/// Writes every free page twice through the WAL; the fallback when the
/// file cannot be written in place (module docs).
fn overwrite_through_sqlite(conn: &Connection) -> Result<()> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE hydra_free_page_fill (b BLOB NOT NULL)")?;
    let free_count = || -> Result<i64> {
        Ok(tx.query_row("PRAGMA freelist_count", [], |r| r.get(0))?)
    };
    // SQLite takes new pages from the freelist while it has any, so each
    // blob shrinks it; the bound only guards against a loop.
    let rounds = free_count()? / PAGES_PER_WRITE as i64 + 16;
    for _ in 0..rounds {
        let free = free_count()?;
        if free == 0 {
            break;
        }
        // Each blob takes `free` pages or more (overflow pages hold a
        // little less than a page), at most 256 at a time.
        tx.execute(
            "INSERT INTO hydra_free_page_fill (b) VALUES (zeroblob(?1))",
            [free.min(PAGES_PER_WRITE as i64) * page_size],
        )?;
    }
    if free_count()? != 0 {
        return Err(Error::internal("free pages left after overwriting them"));
    }
    tx.execute_batch("DROP TABLE hydra_free_page_fill")?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"marmot-sierra-4417";

    /// A database (rollback journal: the file is the whole database) whose
    /// freed pages still hold the secret: a delete with `FAST`.
    fn freed_with_secret(dir: &Path) -> PathBuf {
        let path = dir.join("db.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA secure_delete = FAST; CREATE TABLE t (v TEXT); CREATE TABLE keep (v TEXT);
             INSERT INTO keep VALUES ('kept row');",
        )
        .unwrap();
        let text = format!("{} {}", String::from_utf8_lossy(SECRET), "x".repeat(300));
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..30_000 {
            conn.execute("INSERT INTO t VALUES (?1)", [&text]).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        conn.execute_batch("DELETE FROM t").unwrap();
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        assert!(free > 2_000, "{free} free pages: several trunks");
        path
    }

    fn contains_secret(path: &Path) -> bool {
        std::fs::read(path)
            .unwrap()
            .windows(SECRET.len())
            .any(|w| w == SECRET)
    }

    #[test]
    fn zeroes_every_free_page_and_keeps_the_database_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = freed_with_secret(dir.path());
        assert!(contains_secret(&path));
        let free_pages = FreePages::open(&path).unwrap();
        let zeroed = free_pages.zero_in_place().unwrap();
        assert!(!contains_secret(&path));
        let conn = Connection::open(&path).unwrap();
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        assert_eq!(zeroed, free as u64);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let kept: String = conn.query_row("SELECT v FROM keep", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, "kept row");
    }

    #[test]
    fn a_freelist_that_does_not_add_up_is_never_written_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = freed_with_secret(dir.path());
        let original = std::fs::read(&path).unwrap();
        let mut header_edits: Vec<(usize, u32)> = vec![
            (36, u32::from_be_bytes(original[36..40].try_into().unwrap()) + 1),
            (36, u32::from_be_bytes(original[36..40].try_into().unwrap()) - 1),
            (32, u32::from_be_bytes(original[28..32].try_into().unwrap()) + 1),
            (32, 1),
        ];
        // A trunk that points back at itself.
        let trunk = u32::from_be_bytes(original[32..36].try_into().unwrap());
        header_edits.push((
            (trunk as usize - 1) * 4096,
            trunk,
        ));
        for (at, value) in header_edits {
            let mut bytes = original.clone();
            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let free_pages = FreePages::open(&path).unwrap();
            assert!(free_pages.zero_in_place().is_err(), "edit at {at}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "edit at {at}");
        }
    }
}
