//! Knowledge (`spec/OPERATIONS.md` §10): the pages a user reads and the
//! host's crawler fetches, kept as text cut into chunks, searched by words
//! and by embeddings, handed to chat as context, and forgotten on request.
//!
//! - [`chunker`]: cutting a text into chunks (Unicode-scalar offsets).
//! - [`documents`]: `documents.upsert/get/list/delete` and the stored shapes.
//! - [`search`]: `documents.search` (BM25 text, exact cosine, rank fusion).
//! - [`embed`]: `documents.embed`, the `documents_embed` job that feeds
//!   chunks to the host's embedder.
//! - [`text_index`]: the in-memory inverted index text search ranks with
//!   (rebuilt by the first search after an open, kept exact by deletes).
//! - [`forget`] holds `privacy.forget_site`.
//!
//! Storage is the migration `0010_knowledge.sql`: `documents`,
//! `document_chunks`, `chunk_embeddings`. Deletes go through
//! [`crate::privacy::purge`]; there is no full-text table on disk (see
//! DECISIONS.md), so a delete has nothing to scrub beyond the rows.

pub mod chunker;
pub mod documents;
pub mod embed;
pub mod forget;
pub mod search;
pub mod text_index;

pub use documents::{Chunk, Document, Source};
