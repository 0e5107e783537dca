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

/// Where the next catch-up read of an in-memory index starts: the index
/// follows its table by reading the rows with `after < key <= until` (key:
/// the row's id or sequence) of one snapshot, in key order.
#[derive(Debug, Clone, Copy)]
pub struct CatchUp {
    /// The index's removal epoch when the read began: a removal since then
    /// voids the read.
    pub(crate) epoch: u64,
    pub after: i64,
    /// The end of the table, or a hold set by a test.
    pub until: i64,
}

impl CatchUp {
    /// The read an index needs, given what it covers (`watermark`), its
    /// removal `epoch` and test `hold_at`; `None` while a removal is in
    /// progress or the index has reached the hold.
    pub(crate) fn next(
        removing: bool,
        epoch: u64,
        watermark: i64,
        hold_at: Option<i64>,
    ) -> Option<CatchUp> {
        let until = hold_at.unwrap_or(i64::MAX);
        (!removing && watermark < until).then_some(CatchUp {
            epoch,
            after: watermark,
            until,
        })
    }
}
