//! The bundle file format (`spec/OPERATIONS.md` §8).
//!
//! NDJSON: line 1 is the [`Manifest`]; every following line is
//! `{"c": <component>, "r": <record>}`. Each component's lines are written
//! together, and its manifest entry carries their count and the SHA-256 of
//! their exact bytes (newlines included), so a reader can verify a whole
//! bundle before it imports anything.
//!
//! Writing streams: lines go to a body file in the destination directory
//! while they are hashed, then the manifest and the body are copied into the
//! final file through [`crate::fsutil::write_atomic_with`] (temp file, fsync,
//! rename). Reading streams too: one pass verifies (and learns where each
//! component's lines lie, a [`Layout`]), a second yields the records
//! component by component, each component's lines in file order.

use crate::error::{Error, ErrorCode, Result};
use crate::fsutil::Staged;
use crate::types::{hex, Millis};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

/// The `format` of every bundle manifest.
pub const FORMAT: &str = "hydra-bundle";

/// The bundle schema this library writes and reads.
pub const BUNDLE_SCHEMA_VERSION: u32 = 1;

/// The longest line a reader accepts (a record with a 4096-dim embedding is
/// far below this).
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// The parts of a profile a bundle can carry, in the order they are written
/// and imported (referenced records before the records that refer to them).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Threads,
    Messages,
    Tasks,
    TaskEvents,
    Memories,
    BrowserHistory,
    Bookmarks,
    Tabs,
    Documents,
}

impl Component {
    /// The component's name in bundles and requests.
    pub fn name(self) -> &'static str {
        match self {
            Component::Threads => "threads",
            Component::Messages => "messages",
            Component::Tasks => "tasks",
            Component::TaskEvents => "task_events",
            Component::Memories => "memories",
            Component::BrowserHistory => "browser_history",
            Component::Bookmarks => "bookmarks",
            Component::Tabs => "tabs",
            Component::Documents => "documents",
        }
    }

    /// Every component, in write and import order.
    pub const ALL: [Component; 9] = [
        Component::Threads,
        Component::Messages,
        Component::Tasks,
        Component::TaskEvents,
        Component::Memories,
        Component::BrowserHistory,
        Component::Bookmarks,
        Component::Tabs,
        Component::Documents,
    ];
}

/// One component's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComponentSummary {
    pub count: u64,
    /// Lowercase hex SHA-256 of the component's lines, newlines included.
    pub sha256: String,
}

/// Line 1 of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    pub format: String,
    pub schema_version: u32,
    pub created_at: Millis,
    pub library_version: String,
    pub components: BTreeMap<Component, ComponentSummary>,
}

#[derive(Serialize)]
struct LineOut<'a, T> {
    c: Component,
    r: &'a T,
}

/// A record line as read: the component, and the record's exact JSON
/// (checked to be well-formed, not yet parsed into anything).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    c: Component,
    #[serde(borrow)]
    r: &'a RawValue,
}

/// Streams records into a new bundle.
pub struct BundleWriter<'a> {
    body: BufWriter<File>,
    summaries: BTreeMap<Component, ComponentSummary>,
    current: Option<(Component, Sha256, u64)>,
    /// Checked before every record: when it says stop, writing fails (an
    /// export overtaken by a privacy delete drops what it wrote).
    stop: Option<&'a dyn Fn() -> bool>,
    /// Called after every record written (progress); its error stops the
    /// writing.
    written: Option<&'a mut dyn FnMut() -> Result<()>>,
}

impl<'a> BundleWriter<'a> {
    /// A writer whose body is an anonymous temporary file in `dir` (the
    /// destination's directory, so the data never leaves its file system,
    /// and a killed export leaves no named file behind).
    pub fn new(dir: &Path) -> Result<BundleWriter<'a>> {
        Ok(BundleWriter {
            body: BufWriter::new(tempfile::tempfile_in(dir)?),
            summaries: BTreeMap::new(),
            current: None,
            stop: None,
            written: None,
        })
    }

    /// Makes every later [`BundleWriter::record`] fail with `conflict` once
    /// `stop` returns true.
    pub fn stop_when(mut self, stop: &'a dyn Fn() -> bool) -> BundleWriter<'a> {
        self.stop = Some(stop);
        self
    }

    /// Calls `written` after every record (a failure fails that record).
    pub fn on_record(mut self, written: &'a mut dyn FnMut() -> Result<()>) -> BundleWriter<'a> {
        self.written = Some(written);
        self
    }

    /// Starts the lines of `component` (listed in the manifest even if no
    /// record follows).
    pub fn begin(&mut self, component: Component) {
        self.end_component();
        self.current = Some((component, Sha256::new(), 0));
    }

    /// Writes one record of the current component.
    pub fn record<T: Serialize>(&mut self, record: &T) -> Result<()> {
        if self.stop.is_some_and(|stop| stop()) {
            return Err(Error::conflict(
                "the export was overtaken by a privacy delete",
            ));
        }
        let (component, hasher, count) = self
            .current
            .as_mut()
            .ok_or_else(|| Error::internal("bundle record written before its component"))?;
        let mut line = serde_json::to_vec(&LineOut {
            c: *component,
            r: record,
        })
        .map_err(|e| Error::internal(format!("bundle record encoding: {e}")))?;
        line.push(b'\n');
        hasher.update(&line);
        *count += 1;
        self.body.write_all(&line)?;
        match &mut self.written {
            Some(written) => written(),
            None => Ok(()),
        }
    }

    fn end_component(&mut self) {
        if let Some((component, hasher, count)) = self.current.take() {
            self.summaries.insert(
                component,
                ComponentSummary {
                    count,
                    sha256: hex(&hasher.finalize()),
                },
            );
        }
    }

    /// Writes the bundle to `path` atomically: the manifest line, then the
    /// body. Returns the manifest.
    pub fn finish(self, path: &Path, created_at: Millis) -> Result<Manifest> {
        let (manifest, staged) = self.stage(path, created_at)?;
        staged.commit()?;
        Ok(manifest)
    }

    /// Writes the whole bundle to a temporary file beside `path`, ready to
    /// be renamed into place by [`Staged::commit`] (dropped, it is removed).
    pub fn stage<'p>(
        mut self,
        path: &'p Path,
        created_at: Millis,
    ) -> Result<(Manifest, Staged<'p>)> {
        self.end_component();
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            schema_version: BUNDLE_SCHEMA_VERSION,
            created_at,
            library_version: crate::meta::VERSION.to_owned(),
            components: self.summaries,
        };
        let mut body = self
            .body
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?;
        body.rewind()?;
        let mut header =
            serde_json::to_vec(&manifest).map_err(|e| Error::internal(e.to_string()))?;
        header.push(b'\n');
        let staged = crate::fsutil::stage(path, |out| {
            out.write_all(&header)?;
            std::io::copy(&mut body, out)?;
            Ok(())
        })?;
        Ok((manifest, staged))
    }
}

fn corrupt(reason: &str, line: u64) -> Error {
    Error::new(
        ErrorCode::Corrupt,
        format!("the bundle is damaged: {reason}"),
    )
    .with_detail("line", line)
}

/// Reads the next line (newline included) into `buf`; false at the end.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, line_no: u64) -> Result<bool> {
    buf.clear();
    append_line(reader, buf, line_no)
}

/// Appends the next line (newline included) to `text`; false at the end.
/// A line without its newline is cut short, one over [`MAX_LINE_BYTES`]
/// too long: both `corrupt` at `line_no`.
fn append_line(reader: &mut impl BufRead, text: &mut Vec<u8>, line_no: u64) -> Result<bool> {
    let start = text.len();
    let read = reader
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', text)?;
    if read == 0 {
        return Ok(false);
    }
    if text.last() != Some(&b'\n') {
        let reason = if (text.len() - start) as u64 > MAX_LINE_BYTES {
            "a line is too long"
        } else {
            "the last line is cut short"
        };
        return Err(corrupt(reason, line_no));
    }
    Ok(true)
}

/// The bundle at `path` open after its manifest line: the reader, the
/// manifest, and the bytes read so far (the manifest line's).
fn open_with_manifest(path: &Path) -> Result<(BufReader<File>, Manifest, u64)> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found("bundle", "path"),
        _ => Error::Io(e),
    })?;
    // Large reads: a bundle is read twice, start to end.
    let mut reader = BufReader::with_capacity(1 << 18, file);
    let mut buf = Vec::new();
    if !next_line(&mut reader, &mut buf, 1)? {
        return Err(corrupt("the file is empty", 1));
    }
    let manifest: Manifest =
        serde_json::from_slice(&buf).map_err(|_| corrupt("the manifest is not readable", 1))?;
    if manifest.format != FORMAT {
        return Err(corrupt("not a hydra bundle", 1));
    }
    if manifest.schema_version != BUNDLE_SCHEMA_VERSION {
        return Err(Error::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "bundle schema version {} is not {BUNDLE_SCHEMA_VERSION}",
                manifest.schema_version
            ),
        ));
    }
    let read = buf.len() as u64;
    Ok((reader, manifest, read))
}

/// The manifest of a bundle, checked for format and version only.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    open_with_manifest(path).map(|(_, m, _)| m)
}

/// Reads the whole bundle once: every line must parse, name a component of
/// the manifest, and each component's count and checksum must match.
/// Nothing is written.
pub fn verify(path: &Path) -> Result<Manifest> {
    verify_with(path, |_, _, _| Ok(())).map(|(manifest, _)| manifest)
}

/// [`verify`], also showing `look` every record line as it passes (its
/// component, its exact bytes, and the bytes of the file read through it,
/// for progress): an importer learns what it must know before it writes in
/// this same pass ([`record_json`] reads a line's record). Returns the
/// manifest and the bundle's [`Layout`], for [`for_each_parsed`].
///
/// The pass runs on two threads: a reading thread reads the lines and
/// hashes each into its component's checksum, while the calling thread
/// checks that every line is a well-formed record of a component of the
/// manifest and calls `look`, in file order; when the calling thread falls
/// behind, the reading thread checks some batches of lines itself. Every
/// line is checked exactly as by one thread: the first failure in file
/// order is the one reported, with its `line`, and the checksums are
/// compared once every line has passed.
pub fn verify_with(
    path: &Path,
    mut look: impl FnMut(Component, &[u8], u64) -> Result<()>,
) -> Result<(Manifest, Layout)> {
    let (reader, manifest, read) = open_with_manifest(path)?;
    let mut layout = Layout {
        manifest_bytes: read,
        runs: Vec::new(),
    };
    let (sender, receiver) =
        crossbeam_channel::bounded::<Result<VerifyBatch>>(VERIFY_BATCHES_AHEAD);
    let mut seen = std::thread::scope(|scope| -> Result<ComponentHashes> {
        let hashing = std::thread::Builder::new()
            .name("hydra-bundle-verify".to_owned())
            .spawn_scoped(scope, move || read_and_hash(reader, read, &sender))?;
        // Dropping `receiver` on the way out (an error) stops the reading
        // thread at its next batch.
        check_lines(receiver, &manifest, &mut layout, &mut look)?;
        hashing
            .join()
            .map_err(|_| Error::internal("the bundle verifying thread panicked"))
    })?;
    for (component, summary) in &manifest.components {
        let (sha256, count) = match seen.take(*component) {
            Some((hasher, count)) => (hex(&hasher.finalize()), count),
            None => (hex(&Sha256::digest(b"")), 0),
        };
        if count != summary.count || sha256 != summary.sha256 {
            return Err(Error::new(
                ErrorCode::Corrupt,
                "the bundle is damaged: a component's checksum or count does not match its manifest",
            )
            .with_detail("component", serde_json::to_value(component).unwrap_or_default()));
        }
    }
    Ok((manifest, layout))
}

/// Where the lines of a verified bundle lie: its runs of consecutive lines
/// of one component, in file order. A bundle the library wrote has one run
/// per component; a hand-made one may interleave its components (any line
/// order is valid), at worst one run per line (32 bytes each, less
/// than the lines themselves).
///
/// [`for_each_parsed`] reads the runs component by component, in
/// [`Component::ALL`] order, each component's runs in file order: an
/// import then sees every record after the records it may refer to
/// (threads before messages, tasks before task events, history before
/// tabs), whatever the order of the lines, and each component's records in
/// file order (which keeps tie order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of the manifest line (the first run starts there).
    manifest_bytes: u64,
    runs: Vec<Run>,
}

/// Consecutive lines of one component: bytes `start..end` of the file,
/// the first of them line number `first_line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    component: Component,
    start: u64,
    end: u64,
    first_line: u64,
}

impl Layout {
    /// Notes line `line_no` of `component`, bytes `start..end`.
    fn note(&mut self, component: Component, line_no: u64, start: u64, end: u64) {
        match self.runs.last_mut() {
            Some(run) if run.component == component && run.end == start => run.end = end,
            _ => self.runs.push(Run {
                component,
                start,
                end,
                first_line: line_no,
            }),
        }
    }

    /// The runs in reading order: by component (in [`Component::ALL`]
    /// order), then by place in the file.
    fn reading_order(&self) -> Vec<Run> {
        let mut runs = self.runs.clone();
        runs.sort_by_key(|run| (run.component, run.start));
        runs
    }
}

/// The record of a line of a verified bundle (`None` if the line is not a
/// bundle record).
pub fn record_json(line: &[u8]) -> Option<&RawValue> {
    serde_json::from_slice::<LineIn>(line)
        .ok()
        .map(|line| line.r)
}

/// A batch of [`verify_with`]'s reading thread holds at most this many
/// lines or about this many bytes, and at most [`VERIFY_BATCHES_AHEAD`]
/// batches wait: memory stays bounded whatever the bundle.
const VERIFY_BATCH_LINES: usize = 1024;
const VERIFY_BATCH_BYTES: usize = 1 << 20;
const VERIFY_BATCHES_AHEAD: usize = 4;

/// Lines as [`verify_with`]'s reading thread hands them over.
struct VerifyBatch {
    /// The lines back to back, newlines included.
    text: Vec<u8>,
    /// Per line: where it ends in `text`, and its component as the
    /// reading thread hashed it (`None`: the line does not parse, so it
    /// was not hashed).
    lines: Vec<(usize, Option<Component>)>,
    /// The number of the first line.
    first: u64,
    /// Bytes of the file before the first line.
    read: u64,
    /// Whether the reading thread parsed every line (then `None` means the
    /// line is not a bundle record); otherwise the calling thread parses
    /// each line, and a component was read from the line's start.
    checked: bool,
}

/// Each component's checksum so far and its number of lines.
#[derive(Default)]
struct ComponentHashes([Option<(Sha256, u64)>; Component::ALL.len()]);

impl ComponentHashes {
    fn add(&mut self, component: Component, line: &[u8]) {
        let (hasher, count) = self.0[component as usize].get_or_insert_with(|| (Sha256::new(), 0));
        hasher.update(line);
        *count += 1;
    }

    fn take(&mut self, component: Component) -> Option<(Sha256, u64)> {
        self.0[component as usize].take()
    }
}

/// The reading thread of [`verify_with`]: reads every line after the
/// manifest (`read` bytes in), hashes it into its component's checksum,
/// and sends the lines on in batches; a reading error is sent in its
/// place. Returns the checksums (complete only if no error was sent).
fn read_and_hash(
    mut reader: BufReader<File>,
    mut read: u64,
    sender: &crossbeam_channel::Sender<Result<VerifyBatch>>,
) -> ComponentHashes {
    let mut seen = ComponentHashes::default();
    let mut line_no = 2;
    loop {
        let mut batch = VerifyBatch {
            text: Vec::with_capacity(VERIFY_BATCH_BYTES + (64 << 10)),
            lines: Vec::with_capacity(VERIFY_BATCH_LINES),
            first: line_no,
            read,
            checked: reading_thread_checks(sender),
        };
        let mut failure = None;
        let mut end = false;
        while batch.lines.len() < VERIFY_BATCH_LINES && batch.text.len() < VERIFY_BATCH_BYTES {
            let start = batch.text.len();
            match append_line(&mut reader, &mut batch.text, line_no) {
                Ok(true) => {}
                Ok(false) => {
                    end = true;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            let line = &batch.text[start..];
            let component = if batch.checked {
                serde_json::from_slice::<LineIn>(line).ok().map(|l| l.c)
            } else {
                component_of(line)
            };
            if let Some(component) = component {
                seen.add(component, line);
            }
            read += line.len() as u64;
            line_no += 1;
            batch.lines.push((batch.text.len(), component));
        }
        let last = end || failure.is_some();
        // A failed send: the calling thread stopped (on an error of its
        // own), so reading stops too.
        if sender.send(Ok(batch)).is_err() {
            return seen;
        }
        if let Some(e) = failure {
            let _ = sender.send(Err(e));
        }
        if last {
            return seen;
        }
    }
}

/// Whether the reading thread checks the next batch itself: only when the
/// calling thread has two batches or more waiting (it is behind, and the
/// reading thread would otherwise wait for it). One waiting batch is the
/// one just sent, which the calling thread may not have woken up for yet.
fn reading_thread_checks(sender: &crossbeam_channel::Sender<Result<VerifyBatch>>) -> bool {
    #[cfg(test)]
    match tests::CHECKS_ON_READER.load(std::sync::atomic::Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    sender.len() >= 2
}

/// The component a line is hashed under: read from the line's start when
/// it has the shape every writer gives it (`{"c":"<name>",`), otherwise
/// from the parsed line. A line that parses has the component its start
/// names (a second `c` would make it fail), so the calling thread's full
/// parse of the line confirms it.
fn component_of(line: &[u8]) -> Option<Component> {
    let named = line.strip_prefix(br#"{"c":""#).and_then(|rest| {
        let end = rest.iter().position(|&b| b == b'"')?;
        (rest.get(end + 1) == Some(&b','))
            .then(|| {
                Component::ALL
                    .into_iter()
                    .find(|c| c.name().as_bytes() == &rest[..end])
            })
            .flatten()
    });
    named.or_else(|| serde_json::from_slice::<LineIn>(line).ok().map(|l| l.c))
}

/// The calling side of [`verify_with`]: every line, in file order, must be
/// a bundle record of a component of the manifest; `look` sees it, and
/// `layout` notes where it lies.
fn check_lines(
    receiver: crossbeam_channel::Receiver<Result<VerifyBatch>>,
    manifest: &Manifest,
    layout: &mut Layout,
    look: &mut impl FnMut(Component, &[u8], u64) -> Result<()>,
) -> Result<()> {
    for batch in receiver {
        let batch = batch?;
        let mut start = 0;
        let mut read = batch.read;
        for (i, &(end, hashed)) in batch.lines.iter().enumerate() {
            let line_no = batch.first + i as u64;
            let line = &batch.text[start..end];
            start = end;
            read += line.len() as u64;
            let component = if batch.checked {
                hashed
            } else {
                serde_json::from_slice::<LineIn>(line).ok().map(|l| l.c)
            };
            let Some(component) = component else {
                return Err(corrupt("a line is not a bundle record", line_no));
            };
            if hashed != Some(component) {
                return Err(Error::internal(
                    "a bundle line was hashed under another component",
                ));
            }
            if !manifest.components.contains_key(&component) {
                return Err(corrupt(
                    "a record's component is not in the manifest",
                    line_no,
                ));
            }
            look(component, line, read).map_err(|e| e.with_detail("line", line_no))?;
            layout.note(component, line_no, read - line.len() as u64, read);
        }
    }
    Ok(())
}

/// A batch the reading thread of [`for_each_parsed`] hands over holds at
/// most this many records or about this many bytes of lines (a document
/// record can be megabytes), and at most [`PARSED_BATCHES_AHEAD`] batches
/// wait: the memory held ahead of the writer stays bounded.
const PARSED_BATCH_RECORDS: usize = 512;
const PARSED_BATCH_BYTES: usize = 1 << 20;
const PARSED_BATCHES_AHEAD: usize = 8;

/// One record as [`for_each_parsed`] hands it over: line number,
/// component, what `parse` made of it, bytes of the file read so far.
type ParsedLine<T> = (u64, Component, T, u64);

/// Calls `f` for every record of the bundle at `path`, as `layout` (from
/// [`verify_with`] on the same file) places them: component by component
/// in [`Component::ALL`] order, each component's records in file order
/// (see [`Layout`]). `f` gets the record's line number, its component,
/// what `parse` made of its exact JSON, and the bytes of the file read so
/// far (manifest included; the file's size after the last record, for
/// progress). Reading and `parse` run on a second thread, while `f`
/// consumes the records already parsed, in that order, on the calling
/// thread. A bulk import then costs about the larger of parsing and
/// writing instead of their sum. A reading error (a damaged line, I/O, a
/// file changed since it was verified) reaches the caller in its place,
/// after `f` saw every record before it; when `f` fails, the reading
/// thread stops.
pub fn for_each_parsed<T: Send>(
    path: &Path,
    layout: &Layout,
    mut parse: impl FnMut(Component, &RawValue) -> T + Send,
    mut f: impl FnMut(u64, Component, T, u64) -> Result<()>,
) -> Result<()> {
    let (reader, _, read) = open_with_manifest(path)?;
    if read != layout.manifest_bytes {
        return Err(changed(1));
    }
    let runs = layout.reading_order();
    let (sender, receiver) =
        crossbeam_channel::bounded::<Result<Vec<ParsedLine<T>>>>(PARSED_BATCHES_AHEAD);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("hydra-bundle-read".to_owned())
            .spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(PARSED_BATCH_RECORDS);
                let mut bytes = 0;
                let outcome = each_line(reader, read, &runs, |line_no, text, line, read| {
                    batch.push((line_no, line.c, parse(line.c, line.r), read));
                    bytes += text.len();
                    if batch.len() == PARSED_BATCH_RECORDS || bytes >= PARSED_BATCH_BYTES {
                        let full =
                            std::mem::replace(&mut batch, Vec::with_capacity(PARSED_BATCH_RECORDS));
                        bytes = 0;
                        // A failed send: the consumer stopped (its own
                        // error ends the import), so reading stops too.
                        sender
                            .send(Ok(full))
                            .map_err(|_| Error::internal("the bundle reader was let go"))?;
                    }
                    Ok(())
                });
                let _ = sender.send(Ok(batch));
                if let Err(e) = outcome {
                    let _ = sender.send(Err(e));
                }
            })?;
        consume(receiver, &mut f)
    })
}

/// The calling side of [`for_each_parsed`]; dropping `receiver` when it
/// returns unblocks the reading thread, so the scope can join it.
fn consume<T>(
    receiver: crossbeam_channel::Receiver<Result<Vec<ParsedLine<T>>>>,
    f: &mut impl FnMut(u64, Component, T, u64) -> Result<()>,
) -> Result<()> {
    for batch in receiver {
        for (line_no, component, parsed, read) in batch? {
            f(line_no, component, parsed, read)?;
        }
    }
    Ok(())
}

/// The file no longer holds what [`verify_with`] saw at line `line_no`.
fn changed(line_no: u64) -> Error {
    corrupt("the file changed after it was verified", line_no)
}

/// Calls `f` with every record line of `runs`, run after run (`reader`
/// just after the manifest, `read` bytes in): its number, its exact bytes
/// (newline included), its parsed form, and the bytes read so far. Moving
/// to a run's start seeks only when it is not in the reader's buffer, so
/// runs of a component spread among others' lines cost a read of the
/// stretch of file they span, not a seek per run.
fn each_line(
    mut reader: BufReader<File>,
    mut read: u64,
    runs: &[Run],
    mut f: impl FnMut(u64, &[u8], LineIn<'_>, u64) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    // Where `reader` is in the file.
    let mut at = read;
    for run in runs {
        if run.start != at {
            reader.seek_relative(run.start as i64 - at as i64)?;
            at = run.start;
        }
        let mut line_no = run.first_line;
        while at < run.end {
            if !next_line(&mut reader, &mut buf, line_no)? {
                return Err(changed(line_no));
            }
            at += buf.len() as u64;
            let line: LineIn = serde_json::from_slice(&buf)
                .map_err(|_| corrupt("a line is not a bundle record", line_no))?;
            if line.c != run.component || at > run.end {
                return Err(changed(line_no));
            }
            read += buf.len() as u64;
            f(line_no, &buf, line, read)?;
            line_no += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Which thread checks lines in [`verify_with`]: 0 as in use (the
    /// reading thread when the calling one is behind), 1 always the
    /// reading thread, 2 always the calling thread. Every mode must give
    /// the same answers.
    pub(super) static CHECKS_ON_READER: AtomicU8 = AtomicU8::new(0);

    /// A bundle of exactly `lines` after a manifest whose checksums and
    /// counts are those of `hashed`: (component, line) pairs.
    fn bundle_of(dir: &Path, lines: &[String], hashed: &[(Component, usize)]) -> PathBuf {
        let mut components: BTreeMap<Component, (Sha256, u64)> = BTreeMap::new();
        for &(component, at) in hashed {
            let (hasher, count) = components.entry(component).or_default();
            hasher.update(lines[at].as_bytes());
            hasher.update(b"\n");
            *count += 1;
        }
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            schema_version: BUNDLE_SCHEMA_VERSION,
            created_at: 1,
            library_version: "test".to_owned(),
            components: components
                .into_iter()
                .map(|(c, (h, count))| {
                    let sha256 = hex(&h.finalize());
                    (c, ComponentSummary { count, sha256 })
                })
                .collect(),
        };
        let mut text = serde_json::to_string(&manifest).unwrap() + "\n";
        for line in lines {
            text += line;
            text += "\n";
        }
        let path = dir.join("hand.hydra");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// 2,500 thread lines then 2,500 tab lines (several batches).
    fn many_lines() -> (Vec<String>, Vec<(Component, usize)>) {
        let mut lines = Vec::new();
        let mut hashed = Vec::new();
        for i in 0..5000 {
            let component = if i < 2500 {
                Component::Threads
            } else {
                Component::Tabs
            };
            let c = component.name();
            lines.push(format!(
                r#"{{"c":"{c}","r":{{"id":"r{i}","n":[{i},"x"]}}}}"#
            ));
            hashed.push((component, i));
        }
        (lines, hashed)
    }

    /// `verify_with` in every mode: the same manifest and layout or error
    /// code and `line`, and the same lines shown to `look`.
    fn verify_all_modes(path: &Path) -> std::result::Result<(Manifest, u64), (ErrorCode, Value)> {
        let mut answers = Vec::new();
        for mode in [1, 2, 0] {
            CHECKS_ON_READER.store(mode, Ordering::Relaxed);
            let mut looked = 0;
            let answer = verify_with(path, |_, line, _| {
                assert!(record_json(line).is_some());
                looked += 1;
                Ok(())
            })
            .map(|(m, layout)| (m, looked, layout))
            .map_err(|e| {
                let public = e.to_public();
                (
                    public.code,
                    public.details.get("line").cloned().unwrap_or(Value::Null),
                )
            });
            answers.push(answer);
        }
        CHECKS_ON_READER.store(0, Ordering::Relaxed);
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0], answers[2]);
        answers
            .pop()
            .unwrap()
            .map(|(manifest, looked, _)| (manifest, looked))
    }

    #[test]
    fn component_names_are_their_serde_names() {
        for c in Component::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.name()));
        }
    }

    #[test]
    fn verify_checks_every_line_on_either_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (lines, hashed) = many_lines();
        let (manifest, looked) = verify_all_modes(&bundle_of(dir.path(), &lines, &hashed)).unwrap();
        assert_eq!(manifest.components[&Component::Tabs].count, 2500);
        assert_eq!(looked, 5000);

        // Keys in another order, spaces: still a record of its component.
        let mut odd = lines.clone();
        odd[10] = r#"{"r":{"id":"x"},"c":"threads"}"#.to_owned();
        odd[3000] = r#" { "c" : "tabs" , "r" : {} } "#.to_owned();
        let (manifest, _) = verify_all_modes(&bundle_of(dir.path(), &odd, &hashed)).unwrap();
        assert_eq!(manifest.components[&Component::Threads].count, 2500);

        // The first bad line in file order is reported, with its number
        // (line 1 is the manifest).
        let mut bad = lines.clone();
        bad[4321].push('x');
        bad[4500] = "{".to_owned();
        let err = verify_all_modes(&bundle_of(dir.path(), &bad, &hashed)).unwrap_err();
        assert_eq!(err, (ErrorCode::Corrupt, json!(4323)));

        // A second `c` makes a line no record, whatever its start says.
        let mut twice = lines.clone();
        twice[2600] = r#"{"c":"tabs","c":"threads","r":{}}"#.to_owned();
        let err = verify_all_modes(&bundle_of(dir.path(), &twice, &hashed)).unwrap_err();
        assert_eq!(err, (ErrorCode::Corrupt, json!(2602)));

        // A component the manifest does not list.
        let mut foreign = lines.clone();
        foreign[1234] = r#"{"c":"memories","r":{}}"#.to_owned();
        let err = verify_all_modes(&bundle_of(dir.path(), &foreign, &hashed)).unwrap_err();
        assert_eq!(err, (ErrorCode::Corrupt, json!(1236)));

        // A line moved to the other component: the checksums say so.
        let mut moved = lines.clone();
        moved[2499] = moved[2499].replace(r#""c":"threads""#, r#""c":"tabs""#);
        let err = verify_all_modes(&bundle_of(dir.path(), &moved, &hashed)).unwrap_err();
        assert_eq!(err, (ErrorCode::Corrupt, Value::Null));

        // A cut last line.
        let path = bundle_of(dir.path(), &lines, &hashed);
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 1]).unwrap();
        let err = verify_all_modes(&path).unwrap_err();
        assert_eq!(err, (ErrorCode::Corrupt, json!(5001)));
    }

    fn write_sample(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("b.hydra");
        let mut w = BundleWriter::new(dir).unwrap();
        w.begin(Component::Threads);
        w.record(&json!({"id": "t1"})).unwrap();
        w.record(&json!({"id": "t2"})).unwrap();
        w.begin(Component::Tabs);
        w.finish(&path, 7).unwrap();
        path
    }

    #[test]
    fn round_trip_keeps_order_counts_and_empty_components() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_sample(dir.path());
        let (manifest, layout) = verify_with(&path, |_, _, _| Ok(())).unwrap();
        assert_eq!(manifest.components[&Component::Threads].count, 2);
        assert_eq!(manifest.components[&Component::Tabs].count, 0);
        assert_eq!(manifest.created_at, 7);
        let mut ids = Vec::new();
        let raw = |_, r: &RawValue| r.get().to_owned();
        for_each_parsed(&path, &layout, raw, |_, c, r, _| {
            assert_eq!(c, Component::Threads);
            let r: serde_json::Value = serde_json::from_str(&r).unwrap();
            ids.push(r["id"].as_str().unwrap().to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(ids, ["t1", "t2"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(r#"{"c":"threads","r":"#));
        // No temporary file is left beside the bundle.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Records of interleaved components: read component by component in
    /// import order, each in file order, with their own line numbers; the
    /// bytes read end at the file's size.
    #[test]
    fn records_are_read_by_component_whatever_the_line_order() {
        let dir = tempfile::tempdir().unwrap();
        let spec = [
            (Component::Tabs, "tab1"),
            (Component::Messages, "m1"),
            (Component::Threads, "t1"),
            (Component::Messages, "m2"),
            (Component::Messages, "m3"),
            (Component::Threads, "t2"),
            (Component::Tabs, "tab2"),
        ];
        let lines: Vec<String> = spec
            .iter()
            .map(|(c, id)| format!(r#"{{"c":"{}","r":{{"id":"{id}"}}}}"#, c.name()))
            .collect();
        let hashed: Vec<(Component, usize)> =
            spec.iter().enumerate().map(|(i, (c, _))| (*c, i)).collect();
        let path = bundle_of(dir.path(), &lines, &hashed);
        let (_, layout) = verify_with(&path, |_, _, _| Ok(())).unwrap();
        assert_eq!(layout.runs.len(), 6, "m2 and m3 are one run");
        let mut seen = Vec::new();
        let mut last_read = 0;
        let raw = |_, r: &RawValue| r.get().to_owned();
        for_each_parsed(&path, &layout, raw, |line, c, r, read| {
            let r: Value = serde_json::from_str(&r).unwrap();
            seen.push((line, c, r["id"].as_str().unwrap().to_owned()));
            assert!(read > last_read);
            last_read = read;
            Ok(())
        })
        .unwrap();
        let expected: Vec<(u64, Component, String)> = [
            (4, Component::Threads, "t1"),
            (7, Component::Threads, "t2"),
            (3, Component::Messages, "m1"),
            (5, Component::Messages, "m2"),
            (6, Component::Messages, "m3"),
            (2, Component::Tabs, "tab1"),
            (8, Component::Tabs, "tab2"),
        ]
        .into_iter()
        .map(|(line, c, id)| (line, c, id.to_owned()))
        .collect();
        assert_eq!(seen, expected);
        assert_eq!(last_read, std::fs::metadata(&path).unwrap().len());

        // A file changed after its verification is refused, not misread.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(r#""id":"m2""#, r#""id":"m22""#)).unwrap();
        let err = for_each_parsed(&path, &layout, raw, |_, _, _, _| Ok(())).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Corrupt);
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_sample(dir.path());
        let good = std::fs::read(&path).unwrap();
        let first_record = good.iter().position(|&b| b == b'\n').unwrap() + 1;
        for at in first_record..good.len() - 1 {
            let mut bad = good.clone();
            bad[at] = if bad[at] == b'1' { b'9' } else { b'1' };
            std::fs::write(&path, &bad).unwrap();
            let err = verify(&path).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Corrupt, "byte {at}");
        }
        // A truncated file and a dropped line are detected too.
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert_eq!(verify(&path).unwrap_err().code(), ErrorCode::Corrupt);
        let text = String::from_utf8(good).unwrap();
        let without_last: Vec<&str> = text.lines().take(2).collect();
        std::fs::write(&path, without_last.join("\n") + "\n").unwrap();
        assert_eq!(verify(&path).unwrap_err().code(), ErrorCode::Corrupt);
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(verify(&path).unwrap_err().code(), ErrorCode::Corrupt);
        std::fs::write(&path, b"{\"format\":\"zip\"}\n").unwrap();
        assert_eq!(verify(&path).unwrap_err().code(), ErrorCode::Corrupt);
        assert_eq!(
            verify(&dir.path().join("missing")).unwrap_err().code(),
            ErrorCode::NotFound
        );
    }
}
