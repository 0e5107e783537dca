//! Keyset paging shared by every list operation.
//!
//! A list is ordered by `(sort key, seq)` where `seq` is the row's insertion
//! sequence (its INTEGER PRIMARY KEY), so ties break by insertion order and
//! `desc` is the exact reverse of `asc`. The cursor is the last row's
//! `(key, seq)`, bound to the list's filters by [`Cursor`]'s scope tag; a row
//! value comparison against it lets SQLite seek straight into the index.

use crate::error::Result;
use crate::types::{Cursor, Page};

/// The direction of a list.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// One page request of one list.
#[derive(Debug, Clone)]
pub struct Keyset {
    scope: String,
    order: Order,
    limit: usize,
    after: Option<Cursor>,
}

impl Keyset {
    /// A page of `limit` rows in `order`, after the caller's `cursor` (if
    /// any). `scope` names the list and its filters (e.g.
    /// `"tasks.list|status=pending|thread="`); a cursor made for another
    /// scope is `invalid_argument`.
    pub fn new(
        scope: impl Into<String>,
        order: Order,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Keyset> {
        let scope = scope.into();
        let after = cursor.map(|c| Cursor::decode(c, &scope)).transpose()?;
        Ok(Keyset {
            scope,
            order,
            limit,
            after,
        })
    }

    /// The WHERE condition that starts the page after the cursor, with its
    /// two values bound as `?{first}` and `?{first+1}` (see [`Keyset::bounds`]).
    pub fn condition(&self, key_col: &str, seq_col: &str, first: usize) -> String {
        let op = match self.order {
            Order::Asc => ">",
            Order::Desc => "<",
        };
        format!("({key_col}, {seq_col}) {op} (?{first}, ?{})", first + 1)
    }

    /// The values for [`Keyset::condition`]: the cursor, or a bound before
    /// every row when there is none.
    pub fn bounds(&self) -> (i64, i64) {
        match (self.after, self.order) {
            (Some(c), _) => (c.key, c.seq),
            (None, Order::Asc) => (i64::MIN, i64::MIN),
            (None, Order::Desc) => (i64::MAX, i64::MAX),
        }
    }

    /// `ORDER BY ... LIMIT ...` for the page (one extra row tells whether
    /// another page follows).
    pub fn order_and_limit(&self, key_col: &str, seq_col: &str) -> String {
        let dir = match self.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        format!(
            "ORDER BY {key_col} {dir}, {seq_col} {dir} LIMIT {}",
            self.limit + 1
        )
    }

    /// How many rows [`Keyset::order_and_limit`] fetches (the page plus one).
    pub fn order_and_limit_rows(&self) -> usize {
        self.limit + 1
    }

    /// Builds the page from rows fetched with [`Keyset::order_and_limit`],
    /// each with its `(key, seq)`.
    pub fn finish<T>(&self, mut rows: Vec<(T, i64, i64)>) -> Page<T> {
        let next_cursor = if rows.len() > self.limit {
            rows.truncate(self.limit);
            rows.last().map(|(_, key, seq)| {
                Cursor {
                    key: *key,
                    seq: *seq,
                }
                .encode(&self.scope)
            })
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(|(item, _, _)| item).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn page(conn: &Connection, ks: &Keyset) -> Page<i64> {
        let sql = format!(
            "SELECT seq, t, seq FROM rows WHERE {} {}",
            ks.condition("t", "seq", 1),
            ks.order_and_limit("t", "seq")
        );
        let (k, s) = ks.bounds();
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt
            .query_map([k, s], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        ks.finish(rows)
    }

    #[test]
    fn pages_ties_without_skips_or_repeats_both_ways() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE rows (seq INTEGER PRIMARY KEY, t INTEGER)")
            .unwrap();
        for i in 0..25 {
            conn.execute("INSERT INTO rows (t) VALUES (?1)", [i / 10])
                .unwrap();
        }
        for order in [Order::Asc, Order::Desc] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let ks = Keyset::new("rows", order, 7, cursor.as_deref()).unwrap();
                let p = page(&conn, &ks);
                seen.extend(p.items);
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let mut expected: Vec<i64> = (1..=25).collect();
            if order == Order::Desc {
                expected.reverse();
            }
            assert_eq!(seen, expected);
        }
    }

    #[test]
    fn foreign_cursor_is_refused() {
        let ks = Keyset::new("a", Order::Asc, 1, None).unwrap();
        let p = ks.finish(vec![(1, 1, 1), (2, 2, 2)]);
        let cursor = p.next_cursor.unwrap();
        assert!(Keyset::new("b", Order::Asc, 1, Some(&cursor)).is_err());
        assert!(Keyset::new("a", Order::Asc, 1, Some(&cursor)).is_ok());
    }
}
