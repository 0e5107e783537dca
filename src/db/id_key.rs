//! The 64-bit key a message id is found by (migration 0014).
//!
//! `id_key(id)` is the first 8 bytes of SHA-256 of the UTF-8 id, read as a
//! big-endian signed 64-bit integer. Rows store it, so this definition is
//! fixed forever: changing it would need a migration that recomputes every
//! stored key. It is a hash, not an identity: two ids may share a key, so
//! every lookup names both (`WHERE id_key = ?key AND id = ?id`).
//!
//! The same function is registered on the library's connections as the
//! deterministic SQL function `hydra_id_key(text)` (the migration fills the
//! column with it; tests and benches that write rows in SQL use it too).

use crate::error::Result;
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// The key of `id`: SHA-256 of its UTF-8 bytes, first 8 bytes, big-endian.
pub fn id_key(id: &str) -> i64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Registers `hydra_id_key(id)` on `conn`: [`id_key`] of a text value, NULL
/// for NULL; any other type is an error (ids are text).
pub fn register(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        "hydra_id_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Null => Ok(None),
            rusqlite::types::ValueRef::Text(text) => {
                let text = std::str::from_utf8(text)
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                Ok(Some(id_key(text)))
            }
            _ => Err(rusqlite::Error::UserFunctionError(
                "hydra_id_key takes a text id".into(),
            )),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_first_eight_bytes_of_sha256_big_endian() {
        // SHA-256("abc") = ba7816bf8f01cfea 414140de5dae2223 ...
        assert_eq!(id_key("abc"), 0xba78_16bf_8f01_cfea_u64 as i64);
        // SHA-256("") = e3b0c44298fc1c14 ...
        assert_eq!(id_key(""), 0xe3b0_c442_98fc_1c14_u64 as i64);
    }

    #[test]
    fn the_sql_function_agrees_with_rust() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        for id in ["abc", "m-1", "0123456789abcdef0123456789abcdef", "é:x"] {
            let k: i64 = conn
                .query_row("SELECT hydra_id_key(?1)", [id], |r| r.get(0))
                .unwrap();
            assert_eq!(k, id_key(id), "{id}");
        }
        let null: Option<i64> = conn
            .query_row("SELECT hydra_id_key(NULL)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(null, None);
        assert!(conn
            .query_row("SELECT hydra_id_key(1)", [], |r| r.get::<_, i64>(0))
            .is_err());
    }
}
