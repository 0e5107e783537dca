//! Bundles: a profile's records exported to one verifiable file and
//! imported back (`spec/OPERATIONS.md` §8).
//!
//! Both directions run as jobs (`bundle_export`, `bundle_import`). The call
//! checks only the request's shape; everything about the file (its
//! manifest, every line, every checksum) is verified inside the job, before
//! anything is written. Export reads one snapshot and streams; import is one
//! transaction, so a bad bundle imports nothing.

mod components;
pub mod format;

pub use format::{Component, Manifest};

use crate::error::{Error, Result};
use crate::jobs::{Channel, JobContext, JobLinks, ProgressMeter};
use crate::profile::Profile;
use crate::types::{new_id, Id, Millis};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The job type of `bundle.export`.
pub const EXPORT_JOB: &str = "bundle_export";
/// The job type of `bundle.import`.
pub const IMPORT_JOB: &str = "bundle_import";

/// The folder of a profile that holds its bundles.
pub const BUNDLES_DIR: &str = "bundles";

/// Request of `bundle.export`; stored as the job's payload with `path`
/// resolved.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Components to export (default: all).
    #[serde(default)]
    pub components: Option<Vec<Component>>,
    /// Absolute path of the bundle to write (default:
    /// `<profile>/bundles/bundle-<created_at>-<random>.hydra`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Wait for the job and return its result beside `job_id`.
    #[serde(default)]
    pub wait: bool,
    #[serde(default)]
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub task_id: Option<Id>,
}

/// What to do with a record whose id (or natural key) is already stored.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Keep the row with the later `updated_at` (or `created_at`); an equal
    /// time counts as skipped.
    #[default]
    NewerWins,
    /// Never touch a stored row.
    SkipExisting,
}

/// Request of `bundle.import`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub path: PathBuf,
    /// Components to import (default: every component of the bundle).
    #[serde(default)]
    pub components: Option<Vec<Component>>,
    #[serde(default)]
    pub policy: Policy,
    /// Verify and report what the import would do, writing nothing.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub wait: bool,
    #[serde(default)]
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub task_id: Option<Id>,
}

/// Response of `bundle.export` / `bundle.import`: the job, plus (with
/// `wait: true`) the job's result fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct JobSubmitted {
    pub job_id: String,
    #[serde(flatten)]
    pub result: Map<String, Value>,
}

/// Request of `bundle.list` (no fields).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {}

/// One bundle of the profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BundleInfo {
    pub path: String,
    pub manifest: Manifest,
}

/// Response of `bundle.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BundleList {
    pub items: Vec<BundleInfo>,
}

/// Counts of one component's import.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportCounts {
    pub inserted: u64,
    pub updated: u64,
    pub skipped: u64,
}

/// What importing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Inserted,
    Updated,
    Skipped,
}

/// The selected components, deduplicated, in import order; `None` is all.
fn selected(components: Option<&[Component]>, field: &str) -> Result<Vec<Component>> {
    match components {
        None => Ok(Component::ALL.to_vec()),
        Some([]) => Err(Error::invalid(
            field,
            "must not be empty; omit it for every component",
        )),
        Some(list) => Ok(Component::ALL
            .into_iter()
            .filter(|c| list.contains(c))
            .collect()),
    }
}

/// Submits a job whose payload `payload` makes from the job's
/// `created_at`; with `wait`, waits and flattens its result.
fn submit<T: Serialize>(
    profile: &Profile,
    job_type: &str,
    payload: impl FnOnce(Millis) -> T + Send + 'static,
    links: JobLinks,
    wait: bool,
) -> Result<JobSubmitted> {
    let payload = move |created_at| {
        serde_json::to_value(payload(created_at))
            .map_err(|_| Error::internal("request encoding failed"))
    };
    let (job_id, result) = profile
        .jobs()
        .submit_request_with::<Map<String, Value>>(job_type, payload, links, wait)?;
    Ok(JobSubmitted {
        job_id,
        result: result.unwrap_or_default(),
    })
}

/// `bundle.export`. The default path names the job's `created_at`, which
/// the job writes into the manifest (one value for both).
pub fn export(profile: &Profile, mut request: ExportRequest) -> Result<JobSubmitted> {
    selected(request.components.as_deref(), "components")?;
    if let Some(path) = &request.path {
        if !path.is_absolute() {
            return Err(Error::invalid("path", "must be an absolute path"));
        }
        if !crate::fsutil::parent_dir(path).is_dir() {
            return Err(Error::invalid("path", "its directory must exist"));
        }
    }
    let bundles = profile.dir().join(BUNDLES_DIR);
    let links = JobLinks::of(&request.thread_id, &request.task_id);
    let wait = request.wait;
    let payload = move |created_at: Millis| {
        request.path.get_or_insert_with(|| {
            bundles.join(format!("bundle-{created_at}-{}.hydra", &new_id()[..8]))
        });
        request
    };
    submit(profile, EXPORT_JOB, payload, links, wait)
}

/// `bundle.import`.
pub fn import(profile: &Profile, request: ImportRequest) -> Result<JobSubmitted> {
    selected(request.components.as_deref(), "components")?;
    let links = JobLinks::of(&request.thread_id, &request.task_id);
    let wait = request.wait;
    submit(profile, IMPORT_JOB, move |_| request, links, wait)
}

/// `bundle.list`: every readable bundle in `<profile>/bundles`, by name.
pub fn list(profile: &Profile, _: ListRequest) -> Result<BundleList> {
    let dir = profile.dir().join(BUNDLES_DIR);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    paths.sort();
    let items = paths
        .into_iter()
        .filter_map(|path| {
            let manifest = format::read_manifest(&path).ok()?;
            Some(BundleInfo {
                path: path.to_string_lossy().into_owned(),
                manifest,
            })
        })
        .collect();
    Ok(BundleList { items })
}

fn job_request<T: serde::de::DeserializeOwned>(ctx: &JobContext) -> Result<T> {
    serde_json::from_value(ctx.payload().clone())
        .map_err(|_| Error::internal("job payload is not a bundle request"))
}

/// How often a running export may be overtaken by privacy deletes and
/// start over before it gives up (`conflict`: run it again later).
const MAX_EXPORT_RESTARTS: u32 = 100;

/// The `bundle_export` job: one read snapshot, streamed to a temp file,
/// renamed into place. Result: `{path, manifest, restarts}`; the
/// manifest's `created_at` is the job's (which the default path names).
///
/// A privacy delete that commits while the export runs wins: the export
/// notices (the privacy epoch, see [`crate::db::snapshot`]) between two
/// records or before its rename, drops its snapshot and partial file, and
/// starts again on a fresh snapshot; `restarts` counts how often. Progress
/// (phase `export`) counts records, out of the rows counted in the snapshot
/// first; it is reported without waiting for the writer while the snapshot
/// is held.
pub fn run_export(ctx: &JobContext) -> Result<Value> {
    let request: ExportRequest = job_request(ctx)?;
    let components = selected(request.components.as_deref(), "components")?;
    let path = request
        .path
        .ok_or_else(|| Error::internal("export job without a path"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let profile = ctx.profile();
    let created_at = ctx.job().created_at;
    let mut restarts = 0;
    let (manifest, meter) = loop {
        let attempt = profile.db().read_snapshot(|snapshot| {
            export_snapshot(ctx, snapshot, &components, &path, created_at)
        });
        match attempt {
            Ok(Some(done)) => break done,
            Ok(None) if restarts < MAX_EXPORT_RESTARTS => restarts += 1,
            Ok(None) => {
                return Err(Error::conflict(
                    "privacy deletes kept overtaking the export; run it again",
                ))
            }
            Err(e) => return Err(e),
        }
    };
    meter.finish(Channel::Direct)?;
    profile.invalidate_storage_cache();
    Ok(serde_json::json!({
        "path": path.to_string_lossy(),
        "manifest": manifest,
        "restarts": restarts,
    }))
}

/// One export attempt on `snapshot`: the manifest and the meter (to report
/// the end once the snapshot is let go); `None` when a privacy delete
/// overtook it (nothing was published; the partial file is gone with the
/// writer). A delete that commits interrupts the statement the snapshot is
/// running (see [`crate::db::snapshot`]): any error once overtaken means
/// start over.
fn export_snapshot<'c>(
    ctx: &'c JobContext,
    snapshot: &crate::db::Snapshot<'_>,
    components: &[Component],
    path: &std::path::Path,
    created_at: Millis,
) -> Result<Option<(Manifest, ProgressMeter<'c>)>> {
    match export_records(ctx, snapshot, components, path, created_at) {
        Err(_) if snapshot.overtaken() => Ok(None),
        other => other,
    }
}

fn export_records<'c>(
    ctx: &'c JobContext,
    snapshot: &crate::db::Snapshot<'_>,
    components: &[Component],
    path: &std::path::Path,
    created_at: Millis,
) -> Result<Option<(Manifest, ProgressMeter<'c>)>> {
    let total = components
        .iter()
        .map(|c| components::count(snapshot.conn(), *c))
        .sum::<Result<u64>>()?;
    let mut meter = ProgressMeter::start(ctx, "export", total, Channel::Queued)?;
    let overtaken = || snapshot.overtaken();
    let mut written = || meter.advance(1);
    let mut writer = format::BundleWriter::new(crate::fsutil::parent_dir(path))?
        .stop_when(&overtaken)
        .on_record(&mut written);
    for component in components {
        writer.begin(*component);
        match components::export(snapshot.conn(), *component, &mut writer) {
            Err(_) if snapshot.overtaken() => return Ok(None),
            other => other?,
        }
    }
    snapshot.end_reading()?;
    let (manifest, staged) = writer.stage(path, created_at)?;
    Ok(snapshot
        .publish_unless_overtaken(|| staged.commit())?
        .map(|()| (manifest, meter)))
}

/// The page cache of the writer while an import runs, in KiB. One import is
/// one transaction of any size; with the default 2 MiB the pages it dirties
/// are spilled into the WAL mid-transaction, then read back and written
/// again (measured: spills and re-reads took about a fifth of an import of
/// 200,000 records). Restored when the import's writes are done.
const IMPORT_CACHE_KIB: i64 = 64 * 1024;

/// Runs `f` with the writer's page cache raised to [`IMPORT_CACHE_KIB`].
fn with_import_cache<T>(conn: &rusqlite::Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let previous: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))?;
    let outcome = f();
    conn.execute_batch(&format!("PRAGMA cache_size = {previous}"))?;
    outcome
}

/// `e` naming the component of the record that caused it.
fn with_component(e: Error, component: Component) -> Error {
    e.with_detail("component", component.name())
}

/// The `bundle_import` job: verify everything (learning what the import
/// must know before it writes in the same pass, see
/// [`components::ImportState::learn`]), then one transaction (rolled back
/// for `dry_run`) that imports the records component by component, in
/// [`Component::ALL`] order, each component's records in file order
/// ([`format::Layout`]): the outcome does not depend on how the bundle
/// orders its components' lines. Result: `{imported: {<component>:
/// counts}, dry_run}`. Progress: phases `verify` then `import`, each
/// counting the bytes of the file read.
pub fn run_import(ctx: &JobContext) -> Result<Value> {
    let request: ImportRequest = job_request(ctx)?;
    let wanted = selected(request.components.as_deref(), "components")?;
    let size = match std::fs::metadata(&request.path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found("bundle", "path"))
        }
        Err(e) => return Err(e.into()),
    };
    let mut verifying = ProgressMeter::start(ctx, "verify", size, Channel::Direct)?;
    let mut state = components::ImportState::default();
    let (manifest, layout) = format::verify_with(&request.path, |component, line, read| {
        verifying.advance_to(read)?;
        if !components::ImportState::learns_from(component) || !wanted.contains(&component) {
            return Ok(());
        }
        match format::record_json(line) {
            Some(record) => state
                .learn(component, record)
                .map_err(|e| with_component(e, component)),
            None => Ok(()),
        }
    })?;
    let mut imported: BTreeMap<Component, ImportCounts> = wanted
        .iter()
        .filter(|c| manifest.components.contains_key(c))
        .map(|c| (*c, ImportCounts::default()))
        .collect();
    verifying.finish(Channel::Direct)?;
    // The import pass holds the writer: its reports never wait for it. They
    // are live at once (`jobs.get` and events show them, see `jobs::live`)
    // and reach the ledger after its transaction.
    let mut importing = ProgressMeter::start(ctx, "import", size, Channel::Queued)?;
    let profile = ctx.profile();
    // Imported documents may replace indexed chunks: the chunk text index
    // starts over (the next search rebuilds it; see knowledge::text_index).
    let chunk_removal = crate::knowledge::text_index::ChunkRemoval::new(profile);
    if imported.contains_key(&Component::Documents) && !request.dry_run {
        chunk_removal.remove_all();
    }
    let wanted_here: Vec<Component> = imported.keys().copied().collect();
    let mut apply = |tx: &rusqlite::Connection| -> Result<()> {
        with_import_cache(tx, || {
            // Records are read and parsed on a second thread while this
            // one writes; a record of a component left out is not parsed.
            let parse = |component: Component, record: &RawValue| {
                wanted_here
                    .contains(&component)
                    .then(|| components::parse_record(component, record))
            };
            let mut counter = components::MessageCounter::new(tx)?;
            let mut checks = components::TypedChecks::new(tx)?;
            let conn = components::ImportConn::new(tx);
            format::for_each_parsed(
                &request.path,
                &layout,
                parse,
                |line, component, parsed, read| {
                    importing.advance_to(read)?;
                    let (Some(counts), Some(parsed)) = (imported.get_mut(&component), parsed)
                    else {
                        return Ok(());
                    };
                    counter.enter(component)?;
                    checks.enter(component)?;
                    let outcome = parsed
                        .and_then(|p| {
                            components::import(&conn, &mut state, component, p, request.policy)
                        })
                        .map_err(|e| with_component(e, component).with_detail("line", line))?;
                    match outcome {
                        Outcome::Inserted => counts.inserted += 1,
                        Outcome::Updated => counts.updated += 1,
                        Outcome::Skipped => counts.skipped += 1,
                    }
                    Ok(())
                },
            )?;
            checks.finish()?;
            counter.finish()
        })
    };
    if request.dry_run {
        let mut conn = profile.db().writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        apply(&tx)?;
        tx.rollback()?;
    } else {
        profile.db().write(|tx| apply(tx))?;
        profile.invalidate_storage_cache();
        chunk_removal.confirm();
    }
    importing.finish(Channel::Direct)?;
    Ok(serde_json::json!({ "imported": imported, "dry_run": request.dry_run }))
}

#[cfg(test)]
mod tests {
    use crate::jobs::ledger::ProgressPatch;
    use crate::ops::call_ok as call;
    use crate::profile::{CloseOptions, OpenOptions, Profile};
    use crate::types::ManualClock;
    use serde_json::json;
    use std::sync::Arc;

    /// The default path `bundle-<created_at>-<random>.hydra` and the
    /// manifest's `created_at` are one value, the job's, however long the
    /// export runs (here the clock moves at every progress report).
    #[test]
    fn the_default_path_names_the_manifests_created_at() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_796_218_447_709);
        let profile = Profile::open(OpenOptions::new(dir.path()).with_clock(&clock)).unwrap();
        call(&profile, "threads.create", json!({"id": "th1"}));
        let ticking = clock.clone();
        profile
            .jobs()
            .set_progress_hook(Some(Arc::new(move |_: &str, _: &ProgressPatch| {
                ticking.advance(3)
            })));
        let out = call(&profile, "bundle.export", json!({"wait": true}));
        profile.jobs().set_progress_hook(None);
        let created_at = out["manifest"]["created_at"].as_i64().unwrap();
        let path = std::path::PathBuf::from(out["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("bundle-{created_at}-")) && name.ends_with(".hydra"),
            "{name} vs {created_at}"
        );
        let job = call(&profile, "jobs.get", json!({"id": out["job_id"]}));
        assert_eq!(job["job"]["created_at"], json!(created_at));
        assert!(clock.now() > created_at, "time passed during the export");
        assert_eq!(path.parent().unwrap(), dir.path().join(super::BUNDLES_DIR));
        // The payload holds the path as resolved (the request with its
        // defaults filled in).
        assert_eq!(job["job"]["payload"]["path"], out["path"]);
        profile.close(CloseOptions::default()).unwrap();
    }
}
