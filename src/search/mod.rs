//! The search engines the domains share (a service layer: it knows tables
//! only through the queries its callers hand it; each domain feeds its
//! index from its own rows).
//!
//! - [`substring`]: case-folded substring search over an in-memory text
//!   arena (history's url and title).
//! - [`text`]: the tokenizer and BM25 relevance.
//! - [`vectors`]: exact cosine top-k over stored f32 embeddings, with
//!   compact in-memory codes to find the candidates.

pub mod substring;
pub mod text;
pub mod vectors;
