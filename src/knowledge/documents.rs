//! Documents and their chunks: `documents.upsert`, `documents.get`,
//! `documents.list`, `documents.delete` (spec §10).
//!
//! One document per exact url. An upsert whose text (by SHA-256), title and
//! `chunk_chars` are unchanged, without caller chunks, writes nothing; one
//! that changes only metadata fields updates the row and keeps the chunks;
//! anything else replaces the text, title, chunks and their embeddings in
//! the same transaction. Deletes are privacy deletes
//! ([`crate::privacy::purge`]).

use super::chunker;
use super::text_index::ChunkRemoval;
use crate::browser::urls::{parse_url, HostMatch};
use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::search::vectors::{vector_blob, EmbeddingInput};
use crate::types::{now_ms, Id, ListLimit, Metadata, Millis, Page, Patch, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Where a document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Crawl,
    Visit,
    Import,
    User,
}

impl Source {
    /// The stored (and JSON) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Crawl => "crawl",
            Source::Visit => "visit",
            Source::Import => "import",
            Source::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        [Source::Crawl, Source::Visit, Source::Import, Source::User]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A document as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Document {
    pub id: String,
    pub url: String,
    pub host: Option<String>,
    pub title: Option<String>,
    pub source: Source,
    pub content_type: Option<String>,
    pub text_chars: i64,
    pub content_sha256: String,
    pub chunks: i64,
    pub embedded_chunks: i64,
    pub fetched_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub metadata: Map<String, Value>,
    pub job_id: Option<String>,
    pub thread_id: Option<String>,
}

/// The columns [`Document::from_row`] reads from `documents d`, then
/// `updated_at` and `seq` for paging.
pub(crate) const COLUMNS: &str = "d.id, d.url, d.host, d.title, d.source, d.content_type, \
     d.text_chars, d.content_sha256, \
     (SELECT count(*) FROM document_chunks c WHERE c.document_seq = d.seq), \
     (SELECT count(*) FROM document_chunks c WHERE c.document_seq = d.seq \
        AND EXISTS (SELECT 1 FROM chunk_embeddings e WHERE e.chunk_seq = c.seq)), \
     d.fetched_at, d.created_at, d.updated_at, d.metadata, d.job_id, d.thread_id, \
     d.updated_at, d.seq";

impl Document {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Document> {
        let source = r.get_ref(4)?.as_str()?;
        Ok(Document {
            id: r.get(0)?,
            url: r.get(1)?,
            host: r.get(2)?,
            title: r.get(3)?,
            source: Source::parse(source).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(4, "source".into(), rusqlite::types::Type::Text)
            })?,
            content_type: r.get(5)?,
            text_chars: r.get(6)?,
            content_sha256: r.get(7)?,
            chunks: r.get(8)?,
            embedded_chunks: r.get(9)?,
            fetched_at: r.get(10)?,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
            metadata: metadata_of(&r.get::<_, String>(13)?),
            job_id: r.get(14)?,
            thread_id: r.get(15)?,
        })
    }
}

fn metadata_of(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A model and dimension a chunk is embedded with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChunkEmbedding {
    pub model: String,
    pub dim: u32,
}

/// A chunk as the contract shows it (never with its vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Chunk {
    pub document_id: String,
    pub index: i64,
    pub text: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub embeddings: Vec<ChunkEmbedding>,
}

/// The document with `url` or `id` (the column is a constant of the caller).
fn load_by(conn: &Connection, column: &str, value: &str) -> Result<Option<(Document, i64)>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM documents d WHERE d.{column} = ?1"),
        [value],
        |r| Ok((Document::from_row(r)?, r.get(17)?)),
    )
}

/// The chunks of the document `seq`, in order, with their embedding models.
pub(crate) fn chunks_of(conn: &Connection, seq: i64, document_id: &str) -> Result<Vec<Chunk>> {
    conn.query_all(
        "SELECT c.idx, c.text, c.start, c.end,
                (SELECT json_group_array(json_object('model', e.model, 'dim', e.dim))
                 FROM (SELECT model, dim FROM chunk_embeddings WHERE chunk_seq = c.seq
                       ORDER BY seq) e)
         FROM document_chunks c WHERE c.document_seq = ?1 ORDER BY c.idx",
        [seq],
        |r| {
            let embeddings: String = r.get(4)?;
            Ok(Chunk {
                document_id: document_id.to_owned(),
                index: r.get(0)?,
                text: r.get(1)?,
                start: r.get(2)?,
                end: r.get(3)?,
                embeddings: serde_json::from_str(&embeddings).unwrap_or_default(),
            })
        },
    )
}

/// `chunk_chars`: the cutting window, 200..8000 characters (default 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ChunkChars(u32);

impl ChunkChars {
    pub const MIN: u32 = 200;
    pub const MAX: u32 = 8000;

    /// The window in characters.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl Default for ChunkChars {
    fn default() -> Self {
        ChunkChars(1000)
    }
}

impl<'de> Deserialize<'de> for ChunkChars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if (Self::MIN as i64..=Self::MAX as i64).contains(&v) {
            Ok(ChunkChars(v as u32))
        } else {
            Err(de::Error::custom("must be 200..8000"))
        }
    }
}

/// A chunk the caller cut itself.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkInput {
    pub text: String,
    #[serde(default)]
    pub embedding: Option<EmbeddingInput>,
}

/// The longest document text, in characters.
pub const MAX_TEXT_CHARS: usize = 8_000_000;
/// The most caller chunks per document.
pub const MAX_CHUNKS: usize = 10_000;
/// The longest caller chunk, in characters.
pub const MAX_CHUNK_CHARS: usize = 32_000;

/// Request of `documents.upsert`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub url: String,
    pub text: String,
    /// The id of a new document (generated when omitted).
    #[serde(default)]
    pub id: Option<Id>,
    /// Replaced on every upsert (omitted: none).
    #[serde(default)]
    pub title: Option<String>,
    /// Default "user"; every omitted field takes its default (an upsert
    /// describes the whole document).
    #[serde(default)]
    pub source: Patch<Source>,
    #[serde(default)]
    pub content_type: Patch<String>,
    #[serde(default)]
    pub fetched_at: Patch<Timestamp>,
    #[serde(default)]
    pub metadata: Patch<Metadata>,
    #[serde(default)]
    pub job_id: Patch<Id>,
    #[serde(default)]
    pub thread_id: Patch<Id>,
    #[serde(default)]
    pub chunk_chars: Option<ChunkChars>,
    #[serde(default)]
    pub chunks: Option<Vec<ChunkInput>>,
}

/// Response of `documents.upsert`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpsertResponse {
    pub document: Document,
    pub created: bool,
    pub changed: bool,
}

/// A chunk ready to store: its text, span, and embedding (model, f32).
pub(crate) struct NewChunk {
    pub text: String,
    pub span: Option<chunker::Span>,
    pub embedding: Option<(String, Vec<f32>)>,
}

/// The fields an upsert sets besides text, title and chunks (`None`:
/// keep the stored value; `documents.upsert` sets every one).
struct Extra {
    source: Option<Source>,
    content_type: Option<Option<String>>,
    fetched_at: Option<Option<Millis>>,
    metadata: Option<String>,
    job_id: Option<Option<String>>,
    thread_id: Option<Option<String>>,
}

fn refuse_null<T>(field: &str, patch: Patch<T>) -> Result<Option<T>> {
    match patch {
        Patch::Absent => Ok(None),
        Patch::Null => Err(Error::invalid(field, "cannot be null")),
        Patch::Value(v) => Ok(Some(v)),
    }
}

/// Validates caller chunks (count, lengths, embeddings, one dimension per
/// model within the request).
fn caller_chunks(chunks: Vec<ChunkInput>) -> Result<Vec<NewChunk>> {
    if !(1..=MAX_CHUNKS).contains(&chunks.len()) {
        return Err(Error::invalid("chunks", "must have 1..10000 items"));
    }
    let mut dims: std::collections::HashMap<String, usize> = Default::default();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let n = c.text.chars().count();
            if !(1..=MAX_CHUNK_CHARS).contains(&n) {
                return Err(Error::invalid(
                    format!("chunks[{i}].text"),
                    "must have 1..32000 characters",
                )
                .with_detail("index", i as u64));
            }
            let embedding = match c.embedding {
                None => None,
                Some(e) => {
                    let field = format!("chunks[{i}].embedding");
                    let vector = e.to_f32(&field)?;
                    let dim = *dims.entry(e.model.clone()).or_insert(vector.len());
                    if dim != vector.len() {
                        return Err(Error::invalid(
                            format!("{field}.vector"),
                            "one dimension per model",
                        ));
                    }
                    Some((e.model, vector))
                }
            };
            Ok(NewChunk {
                text: c.text,
                span: None,
                embedding,
            })
        })
        .collect()
}

/// `documents.upsert`.
pub fn upsert(profile: &Profile, req: UpsertRequest) -> Result<UpsertResponse> {
    let facts = parse_url("url", &req.url)?;
    let text_chars = req.text.chars().count();
    if !(1..=MAX_TEXT_CHARS).contains(&text_chars) {
        return Err(Error::invalid("text", "must have 1..8000000 characters"));
    }
    // An upsert describes the whole document: an omitted field takes its
    // default (`source` "user", `metadata` {}, the others null), as the
    // title does; only the upserts of spec §2 keep omitted fields.
    let extra = Extra {
        source: Some(refuse_null("source", req.source)?.unwrap_or(Source::User)),
        content_type: Some(req.content_type.into_update().flatten()),
        fetched_at: Some(req.fetched_at.into_update().flatten().map(|t| t.0)),
        metadata: Some(
            refuse_null("metadata", req.metadata)?.map_or_else(|| "{}".to_owned(), |m| m.to_json()),
        ),
        job_id: Some(req.job_id.into_update().flatten().map(Id::into_string)),
        thread_id: Some(req.thread_id.into_update().flatten().map(Id::into_string)),
    };
    let caller_chunks = req.chunks.map(caller_chunks).transpose()?;
    let chunk_chars = req.chunk_chars.unwrap_or_default();
    let sha = crate::types::hex(&Sha256::digest(req.text.as_bytes()));
    let stored_chunk_chars = caller_chunks.is_none().then_some(chunk_chars.get() as i64);
    let content = Content {
        url: &req.url,
        host: facts.host.clone(),
        rev_host: facts.rev_host(),
        title: req.title.clone(),
        text: &req.text,
        text_chars: text_chars as i64,
        sha: &sha,
        chunk_chars: stored_chunk_chars,
    };
    // Cut outside the write lock: the chunker is the costly part.
    let existing_id = |conn: &Connection| -> Result<Option<StoredRow>> {
        conn.query_opt(
            "SELECT seq, id, content_sha256, title, chunk_chars FROM documents WHERE url = ?1",
            [&req.url],
            |r| {
                Ok(StoredRow {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    sha: r.get(2)?,
                    title: r.get(3)?,
                    chunk_chars: r.get(4)?,
                })
            },
        )
    };
    let before = profile.db().read(existing_id)?;
    let same_content = |row: &StoredRow| {
        caller_chunks.is_none()
            && row.sha == sha
            && row.title == req.title
            && row.chunk_chars == stored_chunk_chars
    };
    let precut = match (&caller_chunks, &before) {
        (None, Some(row)) if same_content(row) => None,
        (None, _) => Some(cut(&req.text, chunk_chars.get())),
        _ => None,
    };
    let new_id = req.id.clone();
    let removal = ChunkRemoval::new(profile);
    // The response is read inside the write: after the commit, another
    // call may already have replaced or deleted the document.
    let (document, created, changed) = profile.db().write(|tx| {
        check_links(tx, &extra)?;
        let now = now_ms();
        let (seq, created, changed) = match existing_id(tx)? {
            None => {
                let id = match &new_id {
                    Some(id) => {
                        if tx.exists("SELECT 1 FROM documents WHERE id = ?1", [id.as_str()])? {
                            return Err(Error::conflict("a document with this id exists"));
                        }
                        id.as_str().to_owned()
                    }
                    None => crate::types::new_id(),
                };
                let seq = insert_document(tx, &id, &content, &extra, now)?;
                let spans = spans_to_store(&caller_chunks, &precut, &req.text, chunk_chars);
                store_chunks(tx, seq, owned_chunks(&caller_chunks, &spans, &req.text))?;
                (seq, true, true)
            }
            Some(row) => {
                if let Some(id) = &new_id {
                    if id.as_str() != row.id {
                        return Err(Error::conflict(
                            "the url is stored under another document id",
                        ));
                    }
                }
                let seq = row.seq;
                if same_content(&row) {
                    (seq, false, update_extra(tx, seq, &extra, now)?)
                } else {
                    replace_content(tx, &removal, seq, &content, &extra, now)?;
                    let spans = spans_to_store(&caller_chunks, &precut, &req.text, chunk_chars);
                    store_chunks(tx, seq, owned_chunks(&caller_chunks, &spans, &req.text))?;
                    (seq, false, true)
                }
            }
        };
        let document = tx.query_row(
            &format!("SELECT {COLUMNS} FROM documents d WHERE d.seq = ?1"),
            [seq],
            Document::from_row,
        )?;
        Ok((document, created, changed))
    })?;
    removal.confirm();
    Ok(UpsertResponse {
        document,
        created,
        changed,
    })
}

/// What an upsert compares with the stored document of its url.
struct StoredRow {
    seq: i64,
    id: String,
    sha: String,
    title: Option<String>,
    chunk_chars: Option<i64>,
}

/// The stored form of a document's content fields.
struct Content<'a> {
    url: &'a str,
    host: Option<String>,
    rev_host: Option<String>,
    title: Option<String>,
    text: &'a str,
    text_chars: i64,
    sha: &'a str,
    chunk_chars: Option<i64>,
}

fn cut(text: &str, chunk_chars: usize) -> Vec<chunker::Span> {
    chunker::spans(text, chunk_chars)
}

/// The spans to store when the library cuts: those cut before the
/// transaction, or (when the stored row changed in between) cut now.
fn spans_to_store(
    caller: &Option<Vec<NewChunk>>,
    precut: &Option<Vec<chunker::Span>>,
    text: &str,
    chunk_chars: ChunkChars,
) -> Option<Vec<chunker::Span>> {
    match (caller, precut) {
        (Some(_), _) => None,
        (None, Some(spans)) => Some(spans.clone()),
        (None, None) => Some(cut(text, chunk_chars.get())),
    }
}

/// The chunks to store: the caller's, or the text cut along `spans`.
fn owned_chunks<'a>(
    caller: &'a Option<Vec<NewChunk>>,
    spans: &'a Option<Vec<chunker::Span>>,
    text: &'a str,
) -> Vec<ChunkRef<'a>> {
    match (caller, spans) {
        (Some(chunks), _) => chunks
            .iter()
            .map(|c| ChunkRef {
                text: &c.text,
                span: c.span,
                embedding: c
                    .embedding
                    .as_ref()
                    .map(|(m, v)| (m.as_str(), v.as_slice())),
            })
            .collect(),
        (None, Some(spans)) => chunker::slice(text, spans)
            .into_iter()
            .zip(spans)
            .map(|(t, s)| ChunkRef {
                text: t,
                span: Some(*s),
                embedding: None,
            })
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// A chunk to store, borrowed.
pub(crate) struct ChunkRef<'a> {
    pub text: &'a str,
    pub span: Option<chunker::Span>,
    pub embedding: Option<(&'a str, &'a [f32])>,
}

/// `not_found` unless the linked job and thread exist.
fn check_links(conn: &Connection, extra: &Extra) -> Result<()> {
    if let Some(Some(job)) = &extra.job_id {
        conn.require_id("jobs", job, "job", "job_id")?;
    }
    if let Some(Some(thread)) = &extra.thread_id {
        conn.require_id("llm_threads", thread, "thread", "thread_id")?;
    }
    Ok(())
}

fn insert_document(
    conn: &Connection,
    id: &str,
    c: &Content<'_>,
    extra: &Extra,
    now: Millis,
) -> Result<i64> {
    conn.run(
        "INSERT INTO documents (id, url, host, rev_host, title, source, content_type, text,
             text_chars, content_sha256, chunk_chars, fetched_at, metadata, job_id, thread_id,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
        params![
            id,
            c.url,
            c.host,
            c.rev_host,
            c.title,
            extra.source.unwrap_or(Source::User).as_str(),
            extra.content_type.clone().flatten(),
            c.text,
            c.text_chars,
            c.sha,
            c.chunk_chars,
            extra.fetched_at.flatten(),
            extra.metadata.clone().unwrap_or_else(|| "{}".to_owned()),
            extra.job_id.clone().flatten(),
            extra.thread_id.clone().flatten(),
            now,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Replaces the content fields (and the given extra fields) of `seq` and
/// drops its chunks (their embeddings go with them).
fn replace_content(
    conn: &Connection,
    removal: &ChunkRemoval<'_>,
    seq: i64,
    c: &Content<'_>,
    extra: &Extra,
    now: Millis,
) -> Result<()> {
    removal.remove_documents(conn, "d.seq = ?1", &[seq.into()])?;
    conn.run("DELETE FROM document_chunks WHERE document_seq = ?1", [seq])?;
    conn.run(
        "UPDATE documents SET title = ?2, text = ?3, text_chars = ?4, content_sha256 = ?5,
             chunk_chars = ?6, updated_at = ?7 WHERE seq = ?1",
        params![
            seq,
            c.title,
            c.text,
            c.text_chars,
            c.sha,
            c.chunk_chars,
            now
        ],
    )?;
    update_extra(conn, seq, extra, now)?;
    Ok(())
}

/// Sets the extra fields that differ from the stored ones; returns whether
/// any did (then `updated_at` is now).
fn update_extra(conn: &Connection, seq: i64, extra: &Extra, now: Millis) -> Result<bool> {
    let mut sets = Vec::new();
    let mut values: Vec<SqlValue> = vec![seq.into()];
    let mut push = |column: &str, value: SqlValue| {
        values.push(value);
        sets.push((column.to_owned(), values.len()));
    };
    if let Some(s) = extra.source {
        push("source", s.as_str().to_owned().into());
    }
    if let Some(v) = &extra.content_type {
        push("content_type", v.clone().into());
    }
    if let Some(v) = extra.fetched_at {
        push("fetched_at", v.into());
    }
    if let Some(v) = &extra.metadata {
        push("metadata", v.clone().into());
    }
    if let Some(v) = &extra.job_id {
        push("job_id", v.clone().into());
    }
    if let Some(v) = &extra.thread_id {
        push("thread_id", v.clone().into());
    }
    if sets.is_empty() {
        return Ok(false);
    }
    let assignments: Vec<String> = sets.iter().map(|(c, i)| format!("{c} = ?{i}")).collect();
    let differs: Vec<String> = sets
        .iter()
        .map(|(c, i)| format!("{c} IS NOT ?{i}"))
        .collect();
    values.push(now.into());
    let sql = format!(
        "UPDATE documents SET {}, updated_at = ?{} WHERE seq = ?1 AND ({})",
        assignments.join(", "),
        values.len(),
        differs.join(" OR ")
    );
    Ok(conn.run(&sql, params_from_iter(values.iter()))? > 0)
}

/// Inserts `chunks` (index 0..) of document `seq` with their embeddings;
/// refuses an embedding whose model is stored with another dimension.
pub(crate) fn store_chunks(conn: &Connection, seq: i64, chunks: Vec<ChunkRef<'_>>) -> Result<()> {
    let mut checked: std::collections::HashSet<&str> = Default::default();
    let mut embedded = false;
    for (i, c) in chunks.into_iter().enumerate() {
        let span = c.span.map(|s| (s.start as i64, s.end as i64));
        let chunk_seq = insert_chunk(conn, seq, i as i64, c.text, span)?;
        if let Some((model, vector)) = c.embedding {
            if checked.insert(model) {
                require_dimension(
                    conn,
                    model,
                    vector.len(),
                    &format!("chunks[{i}].embedding.vector"),
                )?;
            }
            store_embedding(conn, chunk_seq, model, vector)?;
            embedded = true;
        }
    }
    if embedded {
        bump_vectors_version(conn)?;
    }
    Ok(())
}

/// Inserts chunk `idx` of document `seq` (with its `(start, end)` span when
/// the library cut it); returns the chunk's `seq`.
pub(crate) fn insert_chunk(
    conn: &Connection,
    seq: i64,
    idx: i64,
    text: &str,
    span: Option<(i64, i64)>,
) -> Result<i64> {
    conn.run(
        "INSERT INTO document_chunks (document_seq, idx, text, start, end)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![seq, idx, text, span.map(|s| s.0), span.map(|s| s.1)],
    )?;
    Ok(conn.last_insert_rowid())
}

/// `invalid_argument` (naming `field`) when `model` is stored for chunks
/// with another dimension than `dim`.
pub(crate) fn require_dimension(
    conn: &Connection,
    model: &str,
    dim: usize,
    field: &str,
) -> Result<()> {
    const OTHER_DIMENSION: &str =
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM chunk_embeddings WHERE model = ?1 AND dim < ?2)
                     OR EXISTS (SELECT 1 FROM chunk_embeddings WHERE model = ?1 AND dim > ?2)";
    crate::search::vectors::require_dimension(conn, OTHER_DIMENSION, model, dim, field)
}

/// Marks the chunk vectors as changed (cached vector codes are then
/// rebuilt). Every transaction that stores chunk embeddings
/// ([`store_embedding`]) calls it once (migration 0013 replaced the per-row
/// trigger); deletes still bump through their trigger.
pub(crate) fn bump_vectors_version(conn: &Connection) -> Result<()> {
    conn.run(
        "UPDATE chunk_vectors_version SET token = random() WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// Stores (or replaces) the embedding of `model` for chunk `chunk_seq`;
/// returns whether it stored (a chunk deleted meanwhile, which the embed
/// job may meet, gets none). The caller bumps the vectors' version
/// ([`bump_vectors_version`]) in the same transaction.
pub(crate) fn store_embedding(
    conn: &Connection,
    chunk_seq: i64,
    model: &str,
    vector: &[f32],
) -> Result<bool> {
    EmbeddingWriter::new(conn)?.store(chunk_seq, model, vector)
}

/// [`store_embedding`] for many rows of one transaction: its two
/// statements are looked up once, not once per row.
pub(crate) struct EmbeddingWriter<'c> {
    exists: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
}

impl<'c> EmbeddingWriter<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Result<EmbeddingWriter<'c>> {
        // The chunk's existence is checked apart: `INSERT ... SELECT ..
        // WHERE EXISTS` is a multi-row insert to SQLite, which then keeps a
        // statement journal (a copy of every page the row touches, several
        // KB per embedding); a one-row `VALUES` insert needs none.
        Ok(EmbeddingWriter {
            exists: conn.prepare_cached("SELECT 1 FROM document_chunks WHERE seq = ?1")?,
            insert: conn.prepare_cached(
                "INSERT INTO chunk_embeddings (chunk_seq, model, dim, vector) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (chunk_seq, model) DO UPDATE SET dim = excluded.dim, vector = excluded.vector",
            )?,
        })
    }

    /// [`store_embedding`].
    pub(crate) fn store(&mut self, chunk_seq: i64, model: &str, vector: &[f32]) -> Result<bool> {
        if !self.exists.exists([chunk_seq])? {
            return Ok(false);
        }
        let blob = vector_blob(vector);
        Ok(self
            .insert
            .execute(params![chunk_seq, model, vector.len() as i64, blob])?
            > 0)
    }
}

/// Request of `documents.get`: exactly one of `id` and `url`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRequest {
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub include_chunks: bool,
}

/// Response of `documents.get`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetResponse {
    pub document: Document,
    pub text: String,
    pub chunks: Option<Vec<Chunk>>,
}

/// `documents.get`.
pub fn get(profile: &Profile, req: GetRequest) -> Result<GetResponse> {
    let (column, value, field) = match (&req.id, &req.url) {
        (Some(id), None) => ("id", id.as_str(), "id"),
        (None, Some(url)) => ("url", url.as_str(), "url"),
        // Neither: the first address is missing; both: the second one is
        // one too many (as `documents.delete` names it).
        (None, None) => return Err(Error::invalid("id", "give exactly one of id and url")),
        (Some(_), Some(_)) => return Err(Error::invalid("url", "give exactly one of id and url")),
    };
    profile.db().read(|conn| {
        let (document, seq) =
            load_by(conn, column, value)?.ok_or_else(|| Error::not_found("document", field))?;
        let text: String =
            conn.query_row("SELECT text FROM documents WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })?;
        let chunks = if req.include_chunks {
            Some(chunks_of(conn, seq, &document.id)?)
        } else {
            None
        };
        Ok(GetResponse {
            document,
            text,
            chunks,
        })
    })
}

/// A host filter of documents (`host` + `include_subdomains`), as a SQL
/// condition on `d.rev_host` with its values.
pub(crate) fn host_condition(
    host: Option<&str>,
    include_subdomains: Option<bool>,
    first: usize,
) -> Result<(String, Vec<SqlValue>)> {
    let Some(host) = host else {
        return Ok(("1".to_owned(), Vec::new()));
    };
    let m = HostMatch::new(host, include_subdomains.unwrap_or(true))?;
    if m.include_subdomains {
        let (low, high) = m.rev_range();
        Ok((
            format!("d.rev_host >= ?{first} AND d.rev_host < ?{}", first + 1),
            vec![low.into(), high.into()],
        ))
    } else {
        Ok((format!("d.rev_host = ?{first}"), vec![m.rev_exact().into()]))
    }
}

/// Request of `documents.list`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub limit: ListLimit,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `documents.list`: newest `updated_at` first, ties by reverse insertion.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Document>> {
    // The host as it matches (normalized), so every spelling of one filter
    // shares its cursors, as `history.list`'s do.
    let host = req
        .host
        .as_deref()
        .map(|h| HostMatch::new(h, true).map(|m| m.host))
        .transpose()?;
    let scope = format!(
        "documents.list|host={:?}|sub={:?}|source={:?}",
        host,
        req.include_subdomains.unwrap_or(true),
        req.source.map(Source::as_str)
    );
    let keyset = Keyset::new(scope, Order::Desc, req.limit.get(), req.cursor.as_deref())?;
    let (host_sql, mut values) = host_condition(req.host.as_deref(), req.include_subdomains, 1)?;
    values.push(req.source.map(|s| s.as_str().to_owned()).into());
    let source_param = values.len();
    let (key, seq) = keyset.bounds();
    values.push(key.into());
    values.push(seq.into());
    let sql = format!(
        "SELECT {COLUMNS} FROM documents d
         WHERE {host_sql} AND (?{source_param} IS NULL OR d.source = ?{source_param}) AND {}
         {}",
        keyset.condition("d.updated_at", "d.seq", values.len() - 1),
        keyset.order_and_limit("d.updated_at", "d.seq"),
    );
    let rows = profile.db().read(|conn| {
        conn.query_all(&sql, params_from_iter(values.iter()), |r| {
            Ok((Document::from_row(r)?, r.get(16)?, r.get(17)?))
        })
    })?;
    Ok(keyset.finish(rows))
}

/// Request of `documents.delete`: exactly one of `id`, `url`, `host`,
/// `all: true`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub all: Option<bool>,
}

/// Response of `documents.delete`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct DeleteResponse {
    pub deleted: u64,
    pub chunks_deleted: u64,
}

/// `documents.delete`. An unknown `id` or `url` is `not_found`; a host
/// matching nothing deletes 0.
pub fn delete(profile: &Profile, req: DeleteRequest) -> Result<Purged<DeleteResponse>> {
    let all = req.all == Some(true);
    let named: Vec<&str> = [
        ("id", req.id.is_some()),
        ("url", req.url.is_some()),
        ("host", req.host.is_some()),
        ("all", all),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    if named.is_empty() {
        return Err(Error::new(
            ErrorCode::FilterRequired,
            "name an id, url or host, or pass all: true to delete every document",
        ));
    }
    if named.len() > 1 {
        // The selector that is one too many: `all` whenever it is given
        // (as `history.purge` names it), else the second of the others.
        let field = if all { "all" } else { named[1] };
        return Err(Error::invalid(
            field,
            "give exactly one of id, url, host and all",
        ));
    }
    let (condition, values, must_exist) = if let Some(id) = &req.id {
        (
            "d.id = ?1".to_owned(),
            vec![SqlValue::from(id.as_str().to_owned())],
            Some("id"),
        )
    } else if let Some(url) = &req.url {
        (
            "d.url = ?1".to_owned(),
            vec![SqlValue::from(url.clone())],
            Some("url"),
        )
    } else if all {
        ("1".to_owned(), Vec::new(), None)
    } else {
        let (sql, values) = host_condition(req.host.as_deref(), req.include_subdomains, 1)?;
        (sql, values, None)
    };
    let removal = ChunkRemoval::new(profile);
    let response = crate::privacy::purge(profile, |tx| {
        let (deleted, chunks_deleted) = delete_where(tx, &removal, &condition, &values)?;
        if deleted == 0 {
            if let Some(field) = must_exist {
                return Err(Error::not_found("document", field));
            }
        }
        Ok(DeleteResponse {
            deleted,
            chunks_deleted,
        })
    })?;
    removal.confirm();
    Ok(response)
}

/// Deletes the documents of `documents d` matching `condition` (with their
/// chunks and embeddings); returns `(documents, chunks)` deleted.
pub(crate) fn delete_where(
    conn: &Connection,
    removal: &ChunkRemoval<'_>,
    condition: &str,
    values: &[SqlValue],
) -> Result<(u64, u64)> {
    let chunks = conn.query_i64(
        &format!(
            "SELECT count(*) FROM document_chunks WHERE document_seq IN
               (SELECT d.seq FROM documents d WHERE {condition})"
        ),
        params_from_iter(values.iter()),
    )? as u64;
    removal.remove_documents(conn, condition, values)?;
    let deleted = conn.run(
        &format!(
            "DELETE FROM documents WHERE seq IN (SELECT d.seq FROM documents d WHERE {condition})"
        ),
        params_from_iter(values.iter()),
    )? as u64;
    Ok((deleted, chunks))
}
