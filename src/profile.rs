//! A profile: one directory, one user, one open handle at a time.
//!
//! Opening takes an exclusive advisory lock on `<dir>/.lock` (held for the
//! life of the handle, so a second open in this or any other process gets
//! `profile_locked`), refuses a database it must not touch (`corrupt`,
//! `incompatible_version`) before writing anything, then opens and migrates
//! `<dir>/hydra.sqlite3`, then runs what the layers above registered (see
//! [`Domain`]: recovery steps, storage roots whose temp files a killed write
//! left, per-profile state such as the jobs runtime and the text indexes,
//! start and close hooks). A [`Profile`] is a cheap, cloneable, `Send + Sync`
//! handle: any thread may call any operation at any time.
//!
//! This is the core: it never imports a domain or a service. The list of
//! [`Domain`]s is assembled by the registry (`ops`) and handed to
//! [`Profile::open_with`].
//!
//! Closing stops new calls at once, except those made by a job that is still
//! running on its own thread (so a job close waits for can report progress),
//! then lets the jobs service drain (see [`CloseOptions`]), completes any
//! pending privacy erasure (bounded, reported in [`Closed`]), checkpoints
//! the WAL and releases the lock.

use crate::db::{self, Db, Synchronous};
use crate::error::{Error, ErrorCode, Result};
use crate::types::{Bounded, ClockScope, Embedder, HostJsonFn, HostTextFn, HostVectorsFn};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::any::{Any, TypeId};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The database file inside a profile directory.
pub const DB_FILE_NAME: &str = "hydra.sqlite3";

/// The lock file inside a profile directory.
pub const LOCK_FILE_NAME: &str = ".lock";

/// The `overview` label of the profile directory itself; no
/// `storage_roots` entry may take it.
pub const PROFILE_ROOT_LABEL: &str = "profile";

/// How often the background eraser retries a pending erasure (see
/// `privacy`).
pub const ERASER_INTERVAL: Duration = Duration::from_millis(20);

/// Per-profile state a layer above the core keeps in the profile (the jobs
/// runtime, the in-memory text indexes), found again by its type with
/// [`Profile::extension`].
pub(crate) type Extension = Box<dyn Any + Send + Sync>;

/// What a layer above the core needs from [`Profile::open_with`] and
/// [`Profile::close`]. The registry lists one per domain or service; the
/// profile runs each step for every entry, in list order:
///
/// 1. `recover` (right after the database opens and migrates, before
///    anything else writes: e.g. finishing a patch whose swaps were
///    durable),
/// 2. the pending erasure an earlier session left, then the `.hydra-tmp-*`
///    files of every `temp_dirs` folder are removed,
/// 3. `repair` (fixes of stored data, the jobs ledger's crash recovery),
/// 4. `state` builds the entry's [`Extension`], then `start` runs with the
///    profile built (workers start),
/// 5. at close, `close` (jobs drain or are cancelled) before the WAL is
///    checkpointed.
#[derive(Clone, Copy)]
pub(crate) struct Domain {
    /// The layer's name (`Debug`).
    pub name: &'static str,
    pub recover: Option<fn(&Path, &Db) -> Result<()>>,
    /// Folders of the profile directory (relative) holding temp files of
    /// atomic writes.
    pub temp_dirs: &'static [&'static str],
    pub repair: Option<fn(&Db) -> Result<()>>,
    pub state: Option<fn(&OpenOptions) -> Extension>,
    pub start: Option<fn(&Profile) -> Result<()>>,
    pub close: Option<fn(&Profile, &CloseOptions)>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("name", &self.name)
            .field("temp_dirs", &self.temp_dirs)
            .finish_non_exhaustive()
    }
}

impl Domain {
    /// An entry that asks for nothing (fill in what it needs).
    pub const NONE: Domain = Domain {
        name: "",
        recover: None,
        temp_dirs: &[],
        repair: None,
        state: None,
        start: None,
        close: None,
    };
}

thread_local! {
    /// True while this thread runs work a closing profile waits for (a job
    /// on a worker, or a caller running one inline).
    static SERVES_WHILE_CLOSING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread, until dropped, as running work that close
/// waits for: [`Profile::ensure_open`] still serves it while closing, so
/// such work can report progress.
pub(crate) struct ClosingExemption(bool);

impl ClosingExemption {
    pub(crate) fn enter() -> ClosingExemption {
        ClosingExemption(SERVES_WHILE_CLOSING.with(|c| c.replace(true)))
    }
}

impl Drop for ClosingExemption {
    fn drop(&mut self) {
        SERVES_WHILE_CLOSING.with(|c| c.set(self.0));
    }
}

/// Options of `hydra_open` / [`Profile::open`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenOptions {
    /// The profile directory; created with its parents if missing.
    pub profile_dir: PathBuf,
    /// Job worker threads (1..64, default 2).
    #[serde(default = "default_workers")]
    pub workers: Bounded<2, 64>,
    /// `PRAGMA synchronous`: `"normal"` (default) or `"full"`.
    #[serde(default)]
    pub synchronous: Synchronous,
    /// Extra folders counted by `overview` (label -> path).
    #[serde(default)]
    pub storage_roots: BTreeMap<String, PathBuf>,
    /// Tests only: the clock every time of this profile is read from
    /// (default: the system clock). Not part of the JSON options.
    #[cfg(feature = "testing")]
    #[serde(skip)]
    pub clock: Option<crate::types::ManualClock>,
}

fn default_workers() -> Bounded<2, 64> {
    Bounded::default()
}

impl OpenOptions {
    /// Options for `dir` with every default.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OpenOptions {
            profile_dir: dir.into(),
            workers: default_workers(),
            synchronous: Synchronous::default(),
            storage_roots: BTreeMap::new(),
            #[cfg(feature = "testing")]
            clock: None,
        }
    }

    /// Tests only: these options with `clock` as the profile's clock.
    #[cfg(feature = "testing")]
    pub fn with_clock(mut self, clock: &crate::types::ManualClock) -> Self {
        self.clock = Some(clock.clone());
        self
    }

    /// The clock set for tests, if any.
    fn manual_clock(&self) -> Option<&crate::types::ManualClock> {
        #[cfg(feature = "testing")]
        return self.clock.as_ref();
        #[cfg(not(feature = "testing"))]
        None
    }
}

/// Options of `hydra_close` / [`Profile::close`]. Queued jobs always stay
/// queued in the ledger and run after the next open.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloseOptions {
    /// Cancel running jobs instead of waiting for them (default false:
    /// close waits for running jobs without limit).
    #[serde(default)]
    pub cancel_running: bool,
    /// With `cancel_running`: how long close waits for running jobs to stop
    /// (0..=600,000 ms, default 5,000). A job still running then (a host
    /// handler that never returns) is recorded `cancelled` and abandoned;
    /// whatever it returns later is not written.
    #[serde(default = "default_cancel_timeout_ms")]
    pub cancel_timeout_ms: u64,
}

/// The largest `cancel_timeout_ms` (10 minutes).
pub const MAX_CANCEL_TIMEOUT_MS: u64 = 600_000;

fn default_cancel_timeout_ms() -> u64 {
    5_000
}

impl Default for CloseOptions {
    fn default() -> Self {
        CloseOptions {
            cancel_running: false,
            cancel_timeout_ms: default_cancel_timeout_ms(),
        }
    }
}

/// What `hydra_close` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub closed: bool,
    /// False when a privacy delete's erasure was still pending and could
    /// not be completed within [`CLOSE_ERASE_WAIT`] (a reader outside the
    /// library still held old pages); the next open retries it.
    pub erased: bool,
}

/// How long close tries to complete a pending erasure.
pub const CLOSE_ERASE_WAIT: Duration = Duration::from_secs(1);

/// How long open tries to truncate a WAL an earlier session left behind.
const OPEN_ERASE_WAIT: Duration = Duration::from_millis(200);

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

/// An open profile. Clones share the same connections, lock and workers.
#[derive(Clone)]
pub struct Profile {
    inner: Arc<ProfileInner>,
}

struct ProfileInner {
    dir: PathBuf,
    options: OpenOptions,
    db: Db,
    /// The flock on `<dir>/.lock`; `None` once closed.
    lock: parking_lot::Mutex<Option<File>>,
    /// [`OPEN`], [`CLOSING`] or [`CLOSED`].
    state: AtomicU8,
    /// What the layers above registered, in order.
    domains: &'static [Domain],
    /// Their per-profile state, by type.
    extensions: Vec<(TypeId, Extension)>,
    /// The host's chat model (`hydra_register_model`), if one is registered.
    model: parking_lot::RwLock<Option<HostJsonFn>>,
    /// The host's embedder (`hydra_register_embedder`), if one is registered.
    embedder: parking_lot::RwLock<Option<Embedder>>,
}

/// Per profile directory, a number bumped by every change that alters file
/// sizes in a way the overview storage cache must not hide (privacy
/// deletes, imports, patches). Kept for the process, not the handle, so a
/// walk cached by an earlier handle of the same profile is never taken for
/// current.
static STORAGE_EPOCHS: Lazy<Mutex<HashMap<PathBuf, u64>>> =
    Lazy::new(|| Mutex::new(HashMap::new()));

/// The storage cache generation of the profile in `dir`: a cached walk is
/// valid only while this number is unchanged.
pub fn storage_epoch(dir: &Path) -> u64 {
    STORAGE_EPOCHS.lock().get(dir).copied().unwrap_or(0)
}

impl Profile {
    /// Opens (creating or migrating) the profile in `options.profile_dir`,
    /// doing at open and close what `domains` ask (see [`Domain`]).
    pub(crate) fn open_with(options: OpenOptions, domains: &'static [Domain]) -> Result<Profile> {
        if options.profile_dir.as_os_str().is_empty() {
            return Err(Error::invalid("profile_dir", "must not be empty"));
        }
        for label in options.storage_roots.keys() {
            if label.is_empty() || label == PROFILE_ROOT_LABEL {
                return Err(Error::invalid(
                    format!("storage_roots.{label}"),
                    "labels are non-empty and `profile` is the profile directory's own",
                ));
            }
        }
        std::fs::create_dir_all(&options.profile_dir)?;
        let dir = options.profile_dir.canonicalize()?;
        let found = FoundFiles::note(&dir);
        let lock = lock_profile_dir(&dir)?;
        let opened = Self::open_locked(dir, options, domains, lock.try_clone()?);
        if opened.is_err() {
            // Still holding the lock: no other open sees the removal.
            found.remove_created();
        }
        opened
    }

    /// The rest of [`Profile::open`], once the directory is locked.
    fn open_locked(
        dir: PathBuf,
        options: OpenOptions,
        domains: &'static [Domain],
        lock: File,
    ) -> Result<Profile> {
        let _clock = ClockScope::enter(options.manual_clock());
        let db_path = dir.join(DB_FILE_NAME);
        db::probe_existing(&db_path)?;
        let db = Db::open(&db_path, options.synchronous)?;
        // Recovery first: a patch whose swaps were durable finishes its job
        // as succeeded before the jobs ledger fails the rest as interrupted.
        for recover in domains.iter().filter_map(|d| d.recover) {
            recover(&dir, &db)?;
        }
        // A WAL left by an earlier session may hold the pages of a privacy
        // delete whose erasure was pending when it ended: finish it first.
        let leftover_erasure = !db.erase_pending(Instant::now() + OPEN_ERASE_WAIT)?;
        remove_leftover_temp_files(&dir, domains)?;
        for repair in domains.iter().filter_map(|d| d.repair) {
            repair(&db)?;
        }
        let extensions = domains
            .iter()
            .filter_map(|d| d.state)
            .map(|state| {
                let extension = state(&options);
                ((*extension).type_id(), extension)
            })
            .collect();
        let profile = Profile {
            inner: Arc::new(ProfileInner {
                dir,
                options,
                db,
                lock: parking_lot::Mutex::new(Some(lock)),
                state: AtomicU8::new(OPEN),
                domains,
                extensions,
                model: parking_lot::RwLock::new(None),
                embedder: parking_lot::RwLock::new(None),
            }),
        };
        for start in domains.iter().filter_map(|d| d.start) {
            start(&profile)?;
        }
        if leftover_erasure && profile.db().erasure().add_pending(crate::types::now_ms()) {
            profile.start_eraser();
        }
        Ok(profile)
    }

    /// Starts the background eraser: a thread that retries the pending
    /// erasure every [`ERASER_INTERVAL`] (taking the writer
    /// only for one short checkpoint attempt) until it succeeds or the
    /// profile closes (close then makes its own bounded attempt).
    pub(crate) fn start_eraser(&self) {
        let weak = self.downgrade();
        let spawned = std::thread::Builder::new()
            .name("hydra-eraser".to_owned())
            .spawn(move || loop {
                std::thread::sleep(ERASER_INTERVAL);
                let Some(profile) = weak.upgrade() else {
                    return;
                };
                let db = profile.db();
                if profile.ensure_open().is_err() || db.erasure().pending().is_none() {
                    return;
                }
                if db.retry_erasure(Duration::from_millis(5)).unwrap_or(false) {
                    return;
                }
            });
        // Without a thread the erasure stays pending until the next purge
        // or close completes it; nothing else depends on the thread.
        drop(spawned);
    }

    /// Stops accepting calls, lets running jobs finish (or cancels them, per
    /// `options`; queued jobs stay queued for the next open), completes a
    /// pending privacy erasure (waiting at most [`CLOSE_ERASE_WAIT`]),
    /// checkpoints the WAL into the database and releases the profile lock.
    /// Closing twice is `closed`; invalid options are refused before
    /// anything stops.
    pub fn close(&self, options: CloseOptions) -> Result<Closed> {
        let _clock = self.clock_scope();
        if options.cancel_timeout_ms > MAX_CANCEL_TIMEOUT_MS {
            return Err(Error::invalid(
                "cancel_timeout_ms",
                format!("must be 0..{MAX_CANCEL_TIMEOUT_MS}"),
            ));
        }
        if self
            .inner
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(closed());
        }
        for close in self.inner.domains.iter().filter_map(|d| d.close) {
            close(self, &options);
        }
        self.inner.state.store(CLOSED, Ordering::SeqCst);
        self.inner.db.drop_idle_readers();
        self.inner.db.stop_background_checkpoints();
        let db = &self.inner.db;
        let was_pending = db.erasure().pending().is_some();
        let deadline = Instant::now()
            + if was_pending {
                CLOSE_ERASE_WAIT
            } else {
                OPEN_ERASE_WAIT
            };
        let truncated = db.erase_pending(deadline);
        if let Some(lock) = self.inner.lock.lock().take() {
            let _ = lock.unlock();
        }
        Ok(Closed {
            closed: true,
            erased: truncated? || !was_pending,
        })
    }

    /// `profile.info`'s `pending_erasure`: privacy deletes whose erasure has
    /// not completed yet, or `None`.
    pub fn pending_erasure(&self) -> Option<crate::db::PendingErasure> {
        self.inner.db.erasure().pending()
    }

    /// Starts serving one call: `closed` unless open (see
    /// [`Profile::ensure_open`]); while the returned scope lives, times on
    /// this thread are read from the profile's clock.
    pub(crate) fn enter(&self) -> Result<ClockScope> {
        self.ensure_open()?;
        Ok(self.clock_scope())
    }

    /// While the returned scope lives, times on this thread are read from
    /// the profile's clock (see [`crate::types::now_ms`]).
    pub(crate) fn clock_scope(&self) -> ClockScope {
        ClockScope::enter(self.inner.options.manual_clock())
    }

    /// Now, by the profile's clock.
    pub fn now(&self) -> crate::types::Millis {
        let _clock = self.clock_scope();
        crate::types::now_ms()
    }

    /// `closed` once [`Profile::close`] has started, except for calls made
    /// by a job still running on its own thread while close waits for it.
    pub fn ensure_open(&self) -> Result<()> {
        match self.inner.state.load(Ordering::Acquire) {
            OPEN => Ok(()),
            CLOSING if SERVES_WHILE_CLOSING.with(Cell::get) => Ok(()),
            _ => Err(closed()),
        }
    }

    /// The per-profile state of type `T` a [`Domain`] registered. Every
    /// profile is opened with the registry's full list, so a missing one is
    /// a bug of that list (a panic, caught at the C boundary).
    pub(crate) fn extension<T: Any>(&self) -> &T {
        let wanted = TypeId::of::<T>();
        self.inner
            .extensions
            .iter()
            .find(|(id, _)| *id == wanted)
            .and_then(|(_, extension)| extension.downcast_ref())
            .unwrap_or_else(|| panic!("no domain registered {}", std::any::type_name::<T>()))
    }

    /// A handle that does not keep the profile alive (held by job workers).
    pub fn downgrade(&self) -> WeakProfile {
        WeakProfile(Arc::downgrade(&self.inner))
    }

    /// The canonical profile directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the profile was opened with.
    pub fn options(&self) -> &OpenOptions {
        &self.inner.options
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Marks cached storage sizes as stale.
    pub fn invalidate_storage_cache(&self) {
        *STORAGE_EPOCHS
            .lock()
            .entry(self.inner.dir.clone())
            .or_insert(0) += 1;
    }

    /// Registers the chat model `chat` calls when a turn has no `reply`
    /// (replacing any previous one); `None` unregisters it.
    pub fn set_model(&self, model: Option<HostJsonFn>) {
        *self.inner.model.write() = model;
    }

    /// The registered chat model, if any.
    pub fn model(&self) -> Option<HostJsonFn> {
        self.inner.model.read().clone()
    }

    /// Registers the embedder `documents_embed` jobs call (replacing any
    /// previous one); `None` unregisters it. Rust callers may pass any
    /// closure; the C ABI wraps `hydra_register_embedder`'s function.
    pub fn set_embedder(&self, embedder: Option<HostJsonFn>) {
        *self.inner.embedder.write() = embedder.map(Embedder::Json);
    }

    /// [`Profile::set_embedder`] for an embedder that replies with JSON
    /// text (what `hydra_register_embedder` registers): the job parses its
    /// vectors straight into f32.
    pub fn set_embedder_text(&self, embedder: Option<HostTextFn>) {
        *self.inner.embedder.write() = embedder.map(Embedder::Text);
    }

    /// [`Profile::set_embedder`] for a Rust embedder that returns f32
    /// vectors directly (`(model, texts) -> one vector per text`); its
    /// replies are checked by the same rules as a JSON reply's.
    pub fn set_embedder_vectors(&self, embedder: Option<HostVectorsFn>) {
        *self.inner.embedder.write() = embedder.map(Embedder::Vectors);
    }

    /// The registered embedder, if any.
    pub fn embedder(&self) -> Option<Embedder> {
        self.inner.embedder.read().clone()
    }
}

/// A non-owning reference to a profile ([`Profile::downgrade`]).
#[derive(Clone)]
pub struct WeakProfile(Weak<ProfileInner>);

impl WeakProfile {
    /// The profile, if some handle still holds it.
    pub fn upgrade(&self) -> Option<Profile> {
        self.0.upgrade().map(|inner| Profile { inner })
    }
}

/// Removes the temporary files (`.hydra-tmp-*`) a killed export or patch
/// apply left in the profile's own folders. Runs after the repo journal's
/// recovery, which needs only the journals themselves (a journal's temp
/// file was never renamed into place, so no recovery refers to it); the
/// temp files staged inside repositories are the journal's to clean.
fn remove_leftover_temp_files(dir: &Path, domains: &[Domain]) -> Result<()> {
    for folder in domains.iter().flat_map(|d| d.temp_dirs) {
        crate::fsutil::remove_temp_files(&dir.join(folder))?;
    }
    Ok(())
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "the profile handle is closed")
}

/// The files an open may create beside the database, and which of them
/// existed before it: a failed open removes the ones it created, so the
/// directory is left as it was found (contract: a profile that fails to
/// open is untouched).
struct FoundFiles {
    created_if_missing: Vec<(PathBuf, bool)>,
}

impl FoundFiles {
    /// The lock file, and the WAL and shared-memory index SQLite creates
    /// beside the database.
    fn note(dir: &Path) -> FoundFiles {
        let db = DB_FILE_NAME;
        let names = [
            LOCK_FILE_NAME.to_owned(),
            format!("{db}-wal"),
            format!("{db}-shm"),
        ];
        FoundFiles {
            created_if_missing: names
                .iter()
                .map(|name| {
                    let path = dir.join(name);
                    let existed = path.symlink_metadata().is_ok();
                    (path, existed)
                })
                .collect(),
        }
    }

    /// Removes what the failed open created (best effort). A WAL is removed
    /// only while empty: one holding frames holds committed pages. No
    /// connection is open by then, so the `-shm` index is only a cache.
    fn remove_created(&self) {
        for (path, existed) in &self.created_if_missing {
            if *existed {
                continue;
            }
            let is_wal = path.to_string_lossy().ends_with("-wal");
            let empty = path.metadata().is_ok_and(|m| m.len() == 0);
            if !is_wal || empty {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Takes the exclusive lock of a profile directory, or `profile_locked`.
fn lock_profile_dir(dir: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE_NAME))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            ErrorCode::ProfileLocked,
            "another process or handle has this profile open; close it first",
        )),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_in_process_is_locked_until_close() {
        let dir = tempfile::tempdir().unwrap();
        let first = Profile::open(OpenOptions::new(dir.path())).unwrap();
        let err = Profile::open(OpenOptions::new(dir.path())).err().unwrap();
        assert_eq!(err.code(), ErrorCode::ProfileLocked);
        first.close(CloseOptions::default()).unwrap();
        let again = Profile::open(OpenOptions::new(dir.path())).unwrap();
        again.close(CloseOptions::default()).unwrap();
    }

    #[test]
    fn closed_profile_refuses_calls() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile::open(OpenOptions::new(dir.path())).unwrap();
        p.close(CloseOptions::default()).unwrap();
        assert_eq!(p.ensure_open().unwrap_err().code(), ErrorCode::Closed);
        assert_eq!(
            p.close(CloseOptions::default()).unwrap_err().code(),
            ErrorCode::Closed
        );
    }
}
