//! Browser state: tabs, visits and history (with its in-memory text index
//! and privacy purges), bookmarks, and history imports from other browsers.

pub mod bookmarks;
pub mod history;
pub mod history_index;
pub mod import;
pub mod tabs;
pub mod urls;
pub mod visits;
