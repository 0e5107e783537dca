//! The text and vector index engines the domains share. Nothing here knows a
//! table: each domain feeds its index from its own rows.

pub mod substring;
