//! Errors: one rich internal type, one small set of stable public codes.
//!
//! Inside the library every failure is an [`Error`]. It keeps the source
//! (`rusqlite::Error`, `std::io::Error`) for logs and tests. At the edge it is
//! turned into a [`PublicError`] (`code`, `message`, `details`) at exactly one
//! point, [`Error::to_public`]; the C ABI, the CLI and the bindings only ever
//! see that shape. Messages never carry user data (URLs, titles, message or
//! memory text): constructors take field names and reasons, not values.

use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! error_codes {
    ($($variant:ident => $text:ident,)*) => {
        /// The stable error codes of the contract (`docs/CONTRACT.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// Every code, in contract order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in an envelope (`"not_found"`).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => stringify!($text),)* }
            }

            /// The code named `text`, if it is one of the contract's.
            pub fn parse(text: &str) -> Option<ErrorCode> {
                match text { $(stringify!($text) => Some(ErrorCode::$variant),)* _ => None }
            }
        }

        /// Every code under its envelope name, so that the registry lists an
        /// operation's errors as they appear on the wire
        /// (`errors[not_found, conflict]` in `ops.rs`).
        #[allow(non_upper_case_globals)]
        pub mod code {
            use super::ErrorCode;
            $(
                #[doc = concat!("`", stringify!($text), "`")]
                pub const $text: ErrorCode = ErrorCode::$variant;
            )*
        }
    };
}

error_codes! {
    InvalidJson => invalid_json,
    InvalidArgument => invalid_argument,
    PayloadTooLarge => payload_too_large,
    UnknownOperation => unknown_operation,
    NotFound => not_found,
    Conflict => conflict,
    FilterRequired => filter_required,
    Forbidden => forbidden,
    PathEscape => path_escape,
    BudgetExceeded => budget_exceeded,
    CommandNotAllowed => command_not_allowed,
    NoCheckCommand => no_check_command,
    NoHandler => no_handler,
    Timeout => timeout,
    Cancelled => cancelled,
    Interrupted => interrupted,
    CheckFailed => check_failed,
    Closed => closed,
    ProfileLocked => profile_locked,
    IncompatibleVersion => incompatible_version,
    Corrupt => corrupt,
    Io => io,
    Busy => busy,
    Internal => internal,
}

impl ErrorCode {
    /// The codes any operation may return, whatever it does: they come from
    /// the envelope, the request decoding, the handle and the storage, so
    /// the registry does not repeat them on every entry.
    pub const UNIVERSAL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::InvalidArgument,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Closed,
        ErrorCode::Internal,
        ErrorCode::Io,
        ErrorCode::Busy,
    ];
}

impl schemars::JsonSchema for ErrorCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The failure of an operation, as the library sees it.
#[derive(Debug)]
pub enum Error {
    /// A rule of the contract refused the call (bad field, missing object,
    /// conflict, permission, ...). `details` may name the field at fault.
    Rule {
        code: ErrorCode,
        message: String,
        details: Map<String, Value>,
    },
    /// SQLite failed; mapped to `busy`, `corrupt`, `io` or `internal`, with
    /// SQLite's extended code and message in `details`.
    Sqlite(rusqlite::Error),
    /// The file system failed; mapped to `io`.
    Io(std::io::Error),
    /// A `Sqlite` or `Io` failure with details added on the way up
    /// ([`Error::with_detail`]); the added entries win over the source's.
    Detailed {
        source: Box<Error>,
        details: Map<String, Value>,
    },
}

impl Error {
    /// A refusal with a code and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Rule {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds one entry to `details`, whatever the kind of failure.
    pub fn with_detail(self, key: &str, value: impl Into<Value>) -> Self {
        match self {
            Error::Rule {
                code,
                message,
                mut details,
            } => {
                details.insert(key.to_owned(), value.into());
                Error::Rule {
                    code,
                    message,
                    details,
                }
            }
            Error::Detailed {
                source,
                mut details,
            } => {
                details.insert(key.to_owned(), value.into());
                Error::Detailed { source, details }
            }
            source @ (Error::Sqlite(_) | Error::Io(_)) => {
                let mut details = Map::new();
                details.insert(key.to_owned(), value.into());
                Error::Detailed {
                    source: Box::new(source),
                    details,
                }
            }
        }
    }

    /// `invalid_argument` naming the field at fault (`details.field`).
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        let field = field.into();
        Error::new(ErrorCode::InvalidArgument, format!("{field}: {reason}"))
            .with_detail("field", field)
    }

    /// The same error for a field nested in `parent`: `details.field`
    /// `embedding.vector` becomes `retrieve.embedding.vector` (and the
    /// message's field prefix with it). Errors without a field are unchanged.
    pub fn within(self, parent: &str) -> Self {
        match self {
            Error::Rule {
                code,
                mut message,
                mut details,
            } => {
                if let Some(field) = details.get("field").and_then(Value::as_str) {
                    let nested = format!("{parent}.{field}");
                    if let Some(rest) = message.strip_prefix(&format!("{field}:")) {
                        message = format!("{nested}:{rest}");
                    }
                    details.insert("field".into(), nested.into());
                }
                Error::Rule {
                    code,
                    message,
                    details,
                }
            }
            other => other,
        }
    }

    /// `not_found` for an object of kind `what` (`"thread"`) addressed by `field`.
    pub fn not_found(what: &str, field: &str) -> Self {
        Error::new(ErrorCode::NotFound, format!("{what} not found")).with_detail("field", field)
    }

    /// `conflict` with a reason.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Error::new(ErrorCode::Conflict, reason)
    }

    /// `internal`: a broken invariant of the library itself.
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, reason)
    }

    /// The stable public code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Rule { code, .. } => *code,
            Error::Sqlite(e) => sqlite_code(e),
            Error::Io(_) => ErrorCode::Io,
            Error::Detailed { source, .. } => source.code(),
        }
    }

    /// The one conversion from the internal error to the public shape.
    pub fn to_public(&self) -> PublicError {
        match self {
            Error::Rule {
                code,
                message,
                details,
            } => PublicError {
                code: *code,
                message: message.clone(),
                details: details.clone(),
            },
            Error::Sqlite(e) => sqlite_public(e),
            Error::Io(e) => PublicError {
                code: ErrorCode::Io,
                message: format!("i/o error: {}", e.kind()),
                details: Map::new(),
            },
            Error::Detailed { source, details } => {
                let mut public = source.to_public();
                for (key, value) in details {
                    public.details.insert(key.clone(), value.clone());
                }
                public
            }
        }
    }
}

fn sqlite_code(e: &rusqlite::Error) -> ErrorCode {
    use rusqlite::ErrorCode as S;
    match e.sqlite_error_code() {
        Some(S::DatabaseBusy) | Some(S::DatabaseLocked) => ErrorCode::Busy,
        Some(S::DatabaseCorrupt) | Some(S::NotADatabase) => ErrorCode::Corrupt,
        Some(S::DiskFull) | Some(S::SystemIoFailure) | Some(S::CannotOpen) => ErrorCode::Io,
        _ => ErrorCode::Internal,
    }
}

/// The public shape of a SQLite failure: SQLite's extended result code
/// (`details.sqlite_code`, e.g. 2067 for a UNIQUE constraint) and its message
/// (`details.sqlite_message`). SQLite's messages name tables, columns and
/// SQL tokens, never bound values, except where a bound value is parsed as
/// a query: an FTS5 `MATCH` error quotes the query (`syntax error near
/// "..."`) or names a word of it (`no such column: word`, `unknown special
/// query: word`). So every quoted span becomes `?` and so does the word
/// after those two; no message carries a value. Driver-side failures
/// (type conversions) keep only the name of their kind: their texts may
/// quote a stored value.
fn sqlite_public(e: &rusqlite::Error) -> PublicError {
    let mut details = Map::new();
    let text = match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            details.insert("sqlite_code".into(), failure.extended_code.into());
            let text = message.clone().unwrap_or_else(|| failure.to_string());
            let text: String = without_quoted_spans(&text).chars().take(300).collect();
            details.insert("sqlite_message".into(), text.clone().into());
            text
        }
        other => {
            let debug = format!("{other:?}");
            let kind = debug
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or_default();
            kind.to_owned()
        }
    };
    PublicError {
        code: sqlite_code(e),
        message: format!("database error: {text}"),
        details,
    }
}

/// `text` with the inside of every `"..."` and `'...'` span, and the word
/// after `no such column: ` or `unknown special query: `, replaced by `?`.
fn without_quoted_spans(text: &str) -> String {
    const NAMES_A_WORD: [&str; 2] = ["no such column: ", "unknown special query: "];
    for prefix in NAMES_A_WORD {
        if let Some(at) = text.find(prefix) {
            return format!("{}{prefix}?", without_quoted_spans(&text[..at]));
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(quote) if c == quote => {
                out.push('?');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '\'' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('?');
    }
    out
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.to_public();
        write!(f, "{}: {}", public.code, public.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sqlite(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Detailed { source, .. } => Some(source.as_ref()),
            Error::Rule { .. } => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// An error as callers see it: the `error` object of a failure envelope.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PublicError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_contract_names() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), 24);
        assert!(names.contains(&"profile_locked"));
        assert!(names.contains(&"filter_required"));
    }

    #[test]
    fn invalid_names_the_field() {
        let e = Error::invalid("limit", "must be 1..500").to_public();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.details["field"], "limit");
    }

    #[test]
    fn with_detail_keeps_details_on_every_variant() {
        let io = Error::from(std::io::Error::other("x")).with_detail("path_label", "bundles");
        let sqlite = Error::from(rusqlite::Error::QueryReturnedNoRows).with_detail("table", "t");
        let rule = Error::conflict("c").with_detail("a", 1).with_detail("b", 2);
        assert_eq!(io.code(), ErrorCode::Io);
        assert_eq!(io.to_public().details["path_label"], "bundles");
        assert_eq!(sqlite.to_public().details["table"], "t");
        assert_eq!(sqlite.code(), ErrorCode::Internal);
        let rule = rule.to_public();
        assert_eq!(
            (rule.details["a"].as_i64(), rule.details["b"].as_i64()),
            (Some(1), Some(2))
        );
        let twice = Error::from(std::io::Error::other("x"))
            .with_detail("a", 1)
            .with_detail("b", 2)
            .to_public();
        assert_eq!(twice.details.len(), 2);
    }

    #[test]
    fn sqlite_failures_keep_extended_code_and_message() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY); INSERT INTO t VALUES ('private-value');",
        )
        .unwrap();
        let e: Error = conn
            .execute("INSERT INTO t VALUES (?1)", ["private-value"])
            .unwrap_err()
            .into();
        let public = e.to_public();
        assert_eq!(public.code, ErrorCode::Internal);
        assert_eq!(public.details["sqlite_code"], 1555); // SQLITE_CONSTRAINT_PRIMARYKEY
        assert_eq!(
            public.details["sqlite_message"],
            "UNIQUE constraint failed: t.id"
        );
        assert!(public.message.contains("UNIQUE constraint failed: t.id"));
        assert!(!format!("{public:?}").contains("private-value"));
    }

    #[test]
    fn sqlite_messages_that_quote_caller_text_are_redacted() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE f USING fts5(body);")
            .unwrap();
        for query in [
            "secret words)\"more",
            "secret:words",
            "* secret",
            "AND secret",
        ] {
            let e: Error = conn
                .query_row("SELECT count(*) FROM f WHERE f MATCH ?1", [query], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap_err()
                .into();
            let public = e.to_public();
            assert!(public.details["sqlite_code"].is_i64());
            let text = format!("{public:?}");
            assert!(!text.contains("secret") && !text.contains("more"), "{text}");
        }
        assert_eq!(
            without_quoted_spans("no such column: secret"),
            "no such column: ?"
        );
        assert_eq!(
            without_quoted_spans(r#"near "abc": x 'y'"#),
            r#"near "?": x '?'"#
        );
    }

    #[test]
    fn busy_sqlite_maps_to_busy() {
        let e = Error::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert_eq!(e.code(), ErrorCode::Busy);
    }
}
