//! Shapes shared by every operation (`spec/OPERATIONS.md` §2): ids, times,
//! list limits and cursors, metadata objects and tri-state update fields.
//!
//! Each type validates itself while it is deserialized, so a request that
//! reaches a handler already obeys the common rules and the error names the
//! JSON path of the bad field.

use crate::error::{Error, Result};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;

/// A function the host registers (a job handler, the chat model): takes a
/// JSON value, returns one or an error. C function pointers are wrapped into
/// this by the FFI layer; Rust callers may register closures directly.
pub type HostJsonFn = std::sync::Arc<dyn Fn(&Value) -> Result<Value> + Send + Sync>;

/// A host function that returns its reply as JSON text for the caller to
/// parse into the type it needs (the C ABI's embedder: its vectors are read
/// straight into f32, with no `Value` tree of every number).
pub type HostTextFn = std::sync::Arc<dyn Fn(&Value) -> Result<Vec<u8>> + Send + Sync>;

/// A Rust embedder that takes the model and the texts of a batch and returns
/// one f32 vector per text, in order: no JSON either way.
pub type HostVectorsFn =
    std::sync::Arc<dyn Fn(&str, &[&str]) -> Result<Vec<Vec<f32>>> + Send + Sync>;

/// The registered embedder (`documents.embed`): a closure returning a JSON
/// value (Rust callers), JSON text (the C ABI, `hydra_register_embedder`),
/// or the vectors themselves (Rust callers holding f32 already).
#[derive(Clone)]
pub enum Embedder {
    Json(HostJsonFn),
    Text(HostTextFn),
    Vectors(HostVectorsFn),
}

/// A function the host registers to receive events (`job.updated`).
pub type HostEventFn = std::sync::Arc<dyn Fn(&Value) + Send + Sync>;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Now, in milliseconds since the Unix epoch: the clock of the profile
/// whose call this thread is serving (see [`ClockScope`]), which is the
/// system clock unless a test opened the profile with a [`ManualClock`].
pub fn now_ms() -> Millis {
    CLOCK
        .with(|c| c.borrow().as_ref().map(ManualClock::now))
        .unwrap_or_else(system_now_ms)
}

fn system_now_ms() -> Millis {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_millis() as Millis
}

/// A clock a test moves by hand, so that tests never sleep to let time
/// pass. A profile opened with one (`OpenOptions::clock`, only with the
/// `testing` feature) reads every time from it. Clones share the time.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Millis) -> ManualClock {
        ManualClock(std::sync::Arc::new(start.into()))
    }

    /// A clock showing the system time now (then moving only by hand).
    pub fn starting_now() -> ManualClock {
        ManualClock::new(system_now_ms())
    }

    /// The time it shows.
    pub fn now(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves it forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets it to `at`.
    pub fn set(&self, at: Millis) {
        self.0.store(at, std::sync::atomic::Ordering::SeqCst);
    }
}

thread_local! {
    /// The clock of the profile this thread serves now, if not the system's.
    static CLOCK: std::cell::RefCell<Option<ManualClock>> = const { std::cell::RefCell::new(None) };
}

/// While alive, [`now_ms`] on this thread reads `clock` (the system clock
/// for `None`); the previous clock comes back when it is dropped. The
/// profile opens one around every call and every job it runs.
pub(crate) struct ClockScope(Option<ManualClock>);

impl ClockScope {
    pub(crate) fn enter(clock: Option<&ManualClock>) -> ClockScope {
        ClockScope(CLOCK.with(|c| c.replace(clock.cloned())))
    }
}

impl Drop for ClockScope {
    fn drop(&mut self) {
        CLOCK.with(|c| *c.borrow_mut() = self.0.take());
    }
}

/// A fresh id: 32 lowercase hex characters from the operating system's CSPRNG.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // The OS generator does not fail on supported platforms; fall back to
        // hashing time and a counter rather than panicking across the ABI.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let digest = Sha256::digest(format!("{:?}{n}", std::time::SystemTime::now()));
        bytes.copy_from_slice(&digest[..16]);
    }
    hex(&bytes)
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// True when `s` obeys the id rule: 1..128 characters of `[A-Za-z0-9_.:-]`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A string id (thread, message, task, memory, job, tab, ...) that obeys the
/// id rule. Deserializing anything else fails with the field's path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// Validates a string as an id.
    pub fn parse(s: impl Into<String>) -> Result<Id> {
        let s = s.into();
        if is_valid_id(&s) {
            Ok(Id(s))
        } else {
            Err(Error::invalid(
                "id",
                "ids are 1..128 characters of [A-Za-z0-9_.:-]",
            ))
        }
    }

    /// A freshly generated id.
    pub fn generate() -> Id {
        Id(new_id())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_valid_id(&s) {
            Ok(Id(s))
        } else {
            Err(de::Error::custom(
                "ids are 1..128 characters of [A-Za-z0-9_.:-]",
            ))
        }
    }
}

impl JsonSchema for Id {
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^[A-Za-z0-9_.:-]{1,128}$",
            "description": "An id: 1..128 characters of [A-Za-z0-9_.:-]."
        })
    }
}

/// A timestamp in a request: a non-negative integer of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub Millis);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v < 0 {
            return Err(de::Error::custom("times are non-negative milliseconds"));
        }
        Ok(Timestamp(v))
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "description": "Milliseconds since the Unix epoch, UTC."
        })
    }
}

/// A message's token count in a request: 0..=i64::MAX, as stored (a larger
/// count is refused, never clamped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenCount(pub i64);

impl<'de> Deserialize<'de> for TokenCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match i64::deserialize(d) {
            Ok(n) if n >= 0 => Ok(TokenCount(n)),
            _ => Err(de::Error::custom(
                "token counts are integers 0..9223372036854775807",
            )),
        }
    }
}

impl JsonSchema for TokenCount {
    fn schema_name() -> Cow<'static, str> {
        "TokenCount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "maximum": i64::MAX,
            "description": "A message's token count."
        })
    }
}

/// A count with its default and inclusive maximum (minimum 1): list
/// `limit`s, worker counts. Out-of-range values are rejected, never clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Bounded<const DEFAULT: u32, const MAX: u32>(u32);

impl<const DEFAULT: u32, const MAX: u32> Bounded<DEFAULT, MAX> {
    /// The count.
    pub fn get(self) -> usize {
        self.0 as usize
    }

    /// A count of `n` (must be in range; `field` names it in the error).
    pub fn new(field: &str, n: u32) -> Result<Self> {
        if (1..=MAX).contains(&n) {
            Ok(Bounded(n))
        } else {
            Err(Error::invalid(field, format!("must be 1..{MAX}")))
        }
    }
}

impl<const DEFAULT: u32, const MAX: u32> Default for Bounded<DEFAULT, MAX> {
    fn default() -> Self {
        Bounded(DEFAULT)
    }
}

impl<'de, const DEFAULT: u32, const MAX: u32> Deserialize<'de> for Bounded<DEFAULT, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if (1..=MAX as i64).contains(&v) {
            Ok(Bounded(v as u32))
        } else {
            Err(de::Error::custom(format!("must be 1..{MAX}")))
        }
    }
}

impl<const DEFAULT: u32, const MAX: u32> JsonSchema for Bounded<DEFAULT, MAX> {
    // Inlined: each instance has its own range, so no shared definition.
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Bounded_{DEFAULT}_{MAX}").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "uint32",
            "minimum": 1,
            "maximum": MAX,
            "default": DEFAULT
        })
    }
}

/// The default list limit of the contract: 50, range 1..500.
pub type ListLimit = Bounded<50, 500>;

/// A `metadata` field: always a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Metadata(pub Map<String, Value>);

impl Metadata {
    /// The object as JSON text for storage.
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

/// A field of an update request: left alone when omitted, cleared by an
/// explicit `null`, set by a value. Use with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    /// The field was not in the request: leave the stored value alone.
    #[default]
    Absent,
    /// The field was `null`: clear the stored value.
    Null,
    /// The field was given: store it.
    Value(T),
}

impl<T> Patch<T> {
    /// True when the request named the field (as a value or as `null`).
    pub fn is_present(&self) -> bool {
        !matches!(self, Patch::Absent)
    }

    /// The new value when the field was named: `Some(None)` clears.
    pub fn into_update(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(v)),
        }
    }

    /// The value, if one was given.
    pub fn as_value(&self) -> Option<&T> {
        match self {
            Patch::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Documented as the value's schema or `null`; that the field may also be
/// left out is said by it not being required.
impl<T: JsonSchema> JsonSchema for Patch<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        <Option<T>>::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <Option<T>>::json_schema(generator)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

/// One page of a list: `{items, next_cursor}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A keyset position in a list: the sort key and the insertion sequence of
/// the last row returned. Its text form carries a fingerprint of the list's
/// filters and order, so a cursor used with other filters is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub seq: i64,
}

impl Cursor {
    /// Encodes this position for the list whose filters and order are
    /// described by `scope` (any stable text, e.g. `"threads.list|origin=chat"`).
    pub fn encode(&self, scope: &str) -> String {
        format!("{}.{}.{}", scope_tag(scope), self.key, self.seq)
    }

    /// Decodes a cursor given by a caller for the list described by `scope`.
    pub fn decode(text: &str, scope: &str) -> Result<Cursor> {
        let bad = || Error::invalid("cursor", "not a cursor of this list with these filters");
        let mut parts = text.split('.');
        let (Some(tag), Some(key), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if tag != scope_tag(scope) {
            return Err(bad());
        }
        let key = key.parse::<i64>().map_err(|_| bad())?;
        let seq = seq.parse::<i64>().map_err(|_| bad())?;
        Ok(Cursor { key, seq })
    }
}

fn scope_tag(scope: &str) -> String {
    hex(&Sha256::digest(scope.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Update {
        #[serde(default)]
        title: Patch<String>,
        #[serde(default)]
        limit: ListLimit,
    }

    #[test]
    fn patch_tells_absent_null_and_value_apart() {
        let u: Update = serde_json::from_str("{}").unwrap();
        assert_eq!(u.title, Patch::Absent);
        let u: Update = serde_json::from_str(r#"{"title":null}"#).unwrap();
        assert_eq!(u.title, Patch::Null);
        let u: Update = serde_json::from_str(r#"{"title":"x"}"#).unwrap();
        assert_eq!(u.title, Patch::Value("x".into()));
    }

    #[test]
    fn limits_are_rejected_not_clamped() {
        assert!(serde_json::from_str::<Update>(r#"{"limit":0}"#).is_err());
        assert!(serde_json::from_str::<Update>(r#"{"limit":501}"#).is_err());
        assert!(serde_json::from_str::<Update>(r#"{"limit":2.5}"#).is_err());
        let u: Update = serde_json::from_str(r#"{"limit":500}"#).unwrap();
        assert_eq!(u.limit.get(), 500);
        assert_eq!(
            serde_json::from_str::<Update>("{}").unwrap().limit.get(),
            50
        );
    }

    #[test]
    fn ids_follow_the_rule() {
        assert!(is_valid_id("a-b_c.d:e9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"x".repeat(129)));
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(new_id(), id);
    }

    #[test]
    fn cursors_are_bound_to_their_list() {
        let c = Cursor { key: 5, seq: 9 };
        let text = c.encode("threads.list|");
        assert_eq!(Cursor::decode(&text, "threads.list|").unwrap(), c);
        assert!(Cursor::decode(&text, "threads.list|origin=chat").is_err());
        assert!(Cursor::decode("garbage", "threads.list|").is_err());
        assert!(Cursor::decode("", "threads.list|").is_err());
    }

    #[test]
    fn negative_times_are_refused() {
        assert!(serde_json::from_str::<Timestamp>("-1").is_err());
        assert!(serde_json::from_str::<Timestamp>("1.5").is_err());
        assert_eq!(
            serde_json::from_str::<Timestamp>("7").unwrap(),
            Timestamp(7)
        );
    }
}
