//! A few helpers on `rusqlite::Connection` (in the spirit of
//! application-services' `ConnExt`) so that handlers read as SQL plus intent
//! rather than statement plumbing.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension, Params, Row};

/// Small conveniences over a connection or transaction.
pub trait ConnExt {
    /// The connection these helpers run on.
    fn conn(&self) -> &Connection;

    /// The first row mapped by `map`, or `None` when there is no row.
    fn query_opt<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        Ok(stmt.query_row(params, map).optional()?)
    }

    /// Every row mapped by `map`.
    fn query_all<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        let rows = stmt.query_map(params, map)?;
        Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
    }

    /// Calls `each` with every row mapped by `map`, streaming (rows are not
    /// collected first).
    fn for_each_row<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
        mut each: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            each(map(row)?)?;
        }
        Ok(())
    }

    /// A single integer (a `count(*)`, a rowid, ...).
    fn query_i64<P: Params>(&self, sql: &str, params: P) -> Result<i64> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        Ok(stmt.query_row(params, |r| r.get(0))?)
    }

    /// True when the query returns at least one row.
    fn exists<P: Params>(&self, sql: &str, params: P) -> Result<bool> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        Ok(stmt.exists(params)?)
    }

    /// `not_found` (naming the object `what` and the request `field`) unless
    /// `table` holds a row with this `id`. `table` is a constant of the
    /// caller, never request text.
    fn require_id(&self, table: &str, id: &str, what: &str, field: &str) -> Result<()> {
        if self.exists(&format!("SELECT 1 FROM {table} WHERE id = ?1"), [id])? {
            Ok(())
        } else {
            Err(crate::error::Error::not_found(what, field))
        }
    }

    /// Runs one statement through the statement cache; returns rows changed.
    fn run<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        Ok(stmt.execute(params)?)
    }
}

impl ConnExt for Connection {
    fn conn(&self) -> &Connection {
        self
    }
}

impl ConnExt for rusqlite::Transaction<'_> {
    fn conn(&self) -> &Connection {
        self
    }
}
