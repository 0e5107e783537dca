//! The one case fold of every text search (`history.list` and
//! `bookmarks.list` `query`), in Rust and as the SQL function
//! `hydra_folded_contains(haystack, folded_needle)`.
//!
//! Why one function: SQLite's `LIKE` folds ASCII only and FTS5's trigram
//! tokenizer folds Unicode; the old code used one or the other depending on
//! the query's length, so `"é"` and `"éte"` disagreed. Now the stored text
//! and the query are both folded with Rust's `str::to_lowercase` (Unicode's
//! default full lowercase mapping, the same for every query length) and
//! compared byte for byte. No character is special: `%`, `_`, `\` and NUL
//! match themselves.

use crate::error::Result;
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use std::borrow::Cow;

/// `text` case-folded for substring matching (see the module docs).
pub fn fold_case(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| !b.is_ascii_uppercase() && b.is_ascii())
    {
        Cow::Borrowed(text)
    } else if text.is_ascii() {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// Whether `haystack`, case-folded, contains `folded_needle` (already
/// folded with [`fold_case`]).
pub fn folded_contains(haystack: &str, folded_needle: &str) -> bool {
    memchr::memmem::find(fold_case(haystack).as_bytes(), folded_needle.as_bytes()).is_some()
}

/// Registers `hydra_folded_contains(haystack, folded_needle)` on `conn`: 1
/// when the folded haystack contains the needle, 0 otherwise (also for a
/// NULL haystack).
pub fn register(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        "hydra_folded_contains",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let haystack = ctx.get_raw(0);
            let needle = ctx.get_raw(1);
            let (Ok(haystack), Ok(needle)) = (haystack.as_str_or_null(), needle.as_str_or_null())
            else {
                return Ok(false);
            };
            Ok(match (haystack, needle) {
                (Some(h), Some(n)) => folded_contains(h, n),
                _ => false,
            })
        },
    )?;
    Ok(())
}

/// The SQL condition "url or title contains the folded text bound as `p`".
pub fn url_or_title_contains(p: &str) -> String {
    format!("(hydra_folded_contains(url, {p}) OR hydra_folded_contains(title, {p}))")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_is_unicode_and_the_same_for_every_length() {
        assert_eq!(fold_case("ÉTÉ"), "été");
        assert_eq!(fold_case("ABC"), "abc");
        assert!(folded_contains("Café Été", &fold_case("É")));
        assert!(folded_contains("Café Été", &fold_case("ÉTÉ")));
        assert!(folded_contains("a%b_c\\d\0e", "%b_c\\d\0"));
        assert!(!folded_contains("abc", "abd"));
    }

    #[test]
    fn sql_function_matches_rust() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let hit: bool = conn
            .query_row(
                "SELECT hydra_folded_contains('Straße X', ?1)",
                ["sse x"],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            !hit,
            "ß is not folded to ss: lowercase mapping, not case folding"
        );
        let hit: bool = conn
            .query_row(
                "SELECT hydra_folded_contains('Straße X', ?1)",
                ["ße x"],
                |r| r.get(0),
            )
            .unwrap();
        assert!(hit);
        let null: bool = conn
            .query_row("SELECT hydra_folded_contains(NULL, 'a')", [], |r| r.get(0))
            .unwrap();
        assert!(!null);
    }
}
