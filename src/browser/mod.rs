//! Browser state: tabs (and, as the domain grows, visits, history and
//! bookmarks).

pub mod tabs;
