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
mod embed_reply;
pub mod forget;
pub mod search;
pub mod text_index;

pub use documents::{Chunk, Document, Source};

use crate::profile::{Extension, OpenOptions, Profile};
use text_index::ChunkTextIndex;

/// The knowledge entry in the registry's domain list (see
/// [`crate::profile::Domain`]): the in-memory text index of document
/// chunks, empty at open, nothing of it on disk.
pub(crate) const DOMAIN: crate::profile::Domain = crate::profile::Domain {
    name: "knowledge",
    state: Some(state),
    ..crate::profile::Domain::NONE
};

fn state(_options: &OpenOptions) -> Extension {
    Box::<ChunkTextIndex>::default()
}

impl Profile {
    /// The in-memory text index of document chunks (see [`text_index`]).
    pub fn chunk_text_index(&self) -> &ChunkTextIndex {
        self.extension()
    }
}
