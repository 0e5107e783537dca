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
    ($($variant:ident => $text:literal,)*) => {
        /// The stable error codes of the contract (`spec/OPERATIONS.md` §1).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// Every code, in contract order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in an envelope (`"not_found"`).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)* }
            }

            /// The code named `text`, if it is one of the contract's.
            pub fn parse(text: &str) -> Option<ErrorCode> {
                match text { $($text => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid_json",
    InvalidArgument => "invalid_argument",
    PayloadTooLarge => "payload_too_large",
    UnknownOperation => "unknown_operation",
    NotFound => "not_found",
    Conflict => "conflict",
    FilterRequired => "filter_required",
    Forbidden => "forbidden",
    PathEscape => "path_escape",
    BudgetExceeded => "budget_exceeded",
    CommandNotAllowed => "command_not_allowed",
    NoCheckCommand => "no_check_command",
    NoHandler => "no_handler",
    Timeout => "timeout",
    Cancelled => "cancelled",
    Interrupted => "interrupted",
    CheckFailed => "check_failed",
    Closed => "closed",
    ProfileLocked => "profile_locked",
    IncompatibleVersion => "incompatible_version",
    Corrupt => "corrupt",
    Io => "io",
    Busy => "busy",
    Internal => "internal",
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
    /// SQLite failed; mapped to `busy`, `corrupt` or `internal`.
    Sqlite(rusqlite::Error),
    /// The file system failed; mapped to `io`.
    Io(std::io::Error),
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

    /// Adds one entry to `details`.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Error::Rule { details, .. } = &mut self {
            details.insert(key.to_owned(), value.into());
        }
        self
    }

    /// `invalid_argument` naming the field at fault (`details.field`).
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        let field = field.into();
        Error::new(ErrorCode::InvalidArgument, format!("{field}: {reason}"))
            .with_detail("field", field)
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
            // SQLite and io messages name no user data (SQL text and paths of
            // the profile only), so they are kept for the person reading them.
            Error::Sqlite(e) => PublicError {
                code: sqlite_code(e),
                message: format!("database error: {}", sqlite_message(e)),
                details: Map::new(),
            },
            Error::Io(e) => PublicError {
                code: ErrorCode::Io,
                message: format!("i/o error: {}", e.kind()),
                details: Map::new(),
            },
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

/// The SQLite error text without any bound values (rusqlite never includes
/// them; constraint messages name tables and columns only).
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => format!("{:?}", f.code),
        other => {
            let text = other.to_string();
            text.chars().take(200).collect()
        }
    }
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
    fn busy_sqlite_maps_to_busy() {
        let e = Error::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert_eq!(e.code(), ErrorCode::Busy);
    }
}
