//! The embedder's JSON reply read straight into f32 vectors.
//!
//! Nearly every reply has one shape, `{"vectors":[[number, ...], ...]}`
//! with any JSON whitespace, and nearly all of its bytes are numbers: a
//! 384-dimension vector is 4-8 KB of decimals, a batch of 64 a few hundred
//! KB. [`read_vectors`] scans that one shape and gathers each number's
//! digits as it goes, so nearly every number costs one f64 operation (the
//! rest go to std's parser); a large reply is read in two halves on two
//! threads. Anything else (another key, an `error`, a string, an escape, a
//! duplicate key) is not this shape: it answers `None` and the caller
//! reads the reply with serde_json, which accepts any JSON. So the scanner
//! only has to be exact on what it accepts: the JSON grammar of numbers,
//! nothing looser (no `+1`, `.5`, `1.`, `01`, `NaN`).

/// From this size a reply is read in two halves on two threads (a thread
/// costs tens of microseconds; a half this size takes about a hundred).
const SPLIT_FROM: usize = 64 * 1024;

/// The vectors of a reply of exactly the shape `{"vectors":[[n,..],..]}`,
/// each number read as the `Value` path reads it: the nearest f64, rounded
/// to f32 (infinite past f32's range, which the caller's checks refuse);
/// `None` for any other text.
pub fn read_vectors(reply: &[u8]) -> Option<Vec<Vec<f32>>> {
    match split_point(reply) {
        Some((head_end, tail_start)) => {
            let tail = || read_tail(&reply[tail_start..]);
            let (head, tail) = std::thread::scope(|scope| {
                // Without a thread (the OS refused one), the tail is read
                // here after the head.
                let spawned = std::thread::Builder::new().spawn_scoped(scope, tail);
                let head = read_head(&reply[..head_end]);
                let tail = match spawned {
                    Ok(thread) => thread.join().ok().flatten(),
                    Err(_) => tail(),
                };
                (head, tail)
            });
            let mut vectors = head?;
            vectors.extend(tail?);
            Some(vectors)
        }
        None => {
            let mut scan = Scanner { text: reply, at: 0 };
            if !scan.open() {
                return None;
            }
            let mut vectors = Vec::new();
            if !scan.eat(b']') {
                scan.vectors(&mut vectors)?;
                if !scan.eat(b']') {
                    return None;
                }
            }
            scan.close().then_some(vectors)
        }
    }
}

/// [`read_vectors`] one vector at a time, in order, on the calling thread:
/// hands each vector to `each` as soon as it is read (for a caller that
/// stores vectors while the rest of the reply is still being read) and
/// answers whether the whole reply is the one shape. It reads exactly what
/// [`read_vectors`] reads: on a reply that `read_vectors` answers `Some`
/// for, `each` gets those vectors and the answer is true (unless `each`
/// answered false, which stops the scan); on any other text the answer is
/// false, possibly after some vectors were handed over. A large reply is
/// not split here: beside the store that consumes the vectors, a second
/// reader thread only competed for the two cores (measured 8-9% slower).
pub fn for_each_vector(reply: &[u8], mut each: impl FnMut(Vec<f32>) -> bool) -> bool {
    let mut scan = Scanner { text: reply, at: 0 };
    if !scan.open() {
        return false;
    }
    // `]` at once (no vectors), or vectors and then `]`.
    if !(scan.eat(b']') || (scan.each_vector(&mut each) && scan.eat(b']'))) {
        return false;
    }
    scan.close()
}

/// Where a large reply splits between two vectors: the end of the head
/// (after the `]` closing the first vector ending past the middle) and the
/// start of the tail (after the `,` that follows). In a reply of the one
/// shape, the first `]` past the middle closes a vector or the outer array
/// (then there is no `,` and no split); the head read as the opening and
/// its vectors, the tail as vectors and the closing, hold exactly the
/// reply's vectors. In any other text one of them fails.
fn split_point(reply: &[u8]) -> Option<(usize, usize)> {
    if reply.len() < SPLIT_FROM {
        return None;
    }
    let middle = reply.len() / 2;
    let head_end = middle + reply[middle..].iter().position(|&b| b == b']')? + 1;
    let mut scan = Scanner {
        text: reply,
        at: head_end,
    };
    scan.eat(b',').then_some((head_end, scan.at))
}

/// `{"vectors":[` and one or more vectors, to the end of `head`.
fn read_head(head: &[u8]) -> Option<Vec<Vec<f32>>> {
    let mut scan = Scanner { text: head, at: 0 };
    let mut vectors = Vec::new();
    if !scan.open() {
        return None;
    }
    scan.vectors(&mut vectors)?;
    scan.skip_whitespace();
    (scan.at == head.len()).then_some(vectors)
}

/// One or more vectors, then `]}`, to the end of `tail`.
fn read_tail(tail: &[u8]) -> Option<Vec<Vec<f32>>> {
    let mut scan = Scanner { text: tail, at: 0 };
    let mut vectors = Vec::new();
    scan.vectors(&mut vectors)?;
    (scan.eat(b']') && scan.close()).then_some(vectors)
}

struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn eat_key(&mut self, key: &[u8]) -> bool {
        self.skip_whitespace();
        let found = self.text[self.at..].starts_with(key);
        if found {
            self.at += key.len();
        }
        found
    }

    /// `{"vectors":[`
    fn open(&mut self) -> bool {
        self.eat(b'{') && self.eat_key(b"\"vectors\"") && self.eat(b':') && self.eat(b'[')
    }

    /// `}` and nothing but whitespace after it.
    fn close(&mut self) -> bool {
        let closed = self.eat(b'}');
        self.skip_whitespace();
        closed && self.at == self.text.len()
    }

    /// One or more vectors separated by commas, up to (not including) what
    /// follows the last one.
    fn vectors(&mut self, into: &mut Vec<Vec<f32>>) -> Option<()> {
        loop {
            into.push(self.vector(into.first().map_or(0, Vec::len))?);
            if !self.eat(b',') {
                return Some(());
            }
        }
    }

    /// [`Scanner::vectors`], handing each vector to `each` as it is read;
    /// false when one is malformed or `each` answers false.
    fn each_vector(&mut self, each: &mut impl FnMut(Vec<f32>) -> bool) -> bool {
        let mut capacity = None;
        loop {
            let Some(vector) = self.vector(capacity.unwrap_or(0)) else {
                return false;
            };
            capacity.get_or_insert(vector.len());
            if !each(vector) {
                return false;
            }
            if !self.eat(b',') {
                return true;
            }
        }
    }

    /// `[n, ...]` (possibly empty).
    fn vector(&mut self, capacity: usize) -> Option<Vec<f32>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut vector = Vec::with_capacity(capacity);
        if self.eat(b']') {
            return Some(vector);
        }
        loop {
            vector.push(self.number()?);
            if self.eat(b']') {
                return Some(vector);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// One JSON number, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`,
    /// as the nearest f64 rounded to f32. Its digits are gathered while
    /// scanning, so f64 arithmetic settles nearly every number
    /// ([`Digits::to_f32`]); the rest go to std's parser.
    fn number(&mut self) -> Option<f32> {
        self.skip_whitespace();
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let mut digits = Digits::default();
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits(&mut digits);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let whole = digits.count;
            if self.digits(&mut digits) == 0 {
                return None;
            }
            digits.scale -= (digits.count - whole) as i64;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let negative_exponent = self.peek() == Some(b'-');
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            let mut exponent = Digits::default();
            if self.digits(&mut exponent) == 0 {
                return None;
            }
            let exponent = if exponent.overflow {
                i64::MAX / 2
            } else {
                exponent.value as i64
            };
            digits.scale += if negative_exponent {
                -exponent
            } else {
                exponent
            };
        }
        let magnitude = match digits.to_f32() {
            Some(x) => x,
            None => std::str::from_utf8(&self.text[start..self.at])
                .ok()?
                .parse::<f64>()
                .ok()
                .map(|x| x.abs() as f32)?,
        };
        Some(if negative { -magnitude } else { magnitude })
    }

    /// Skips `[0-9]*` and gathers them into `into`; returns how many.
    /// Eight digits at a time while they fit (most of a number's digits).
    fn digits(&mut self, into: &mut Digits) -> usize {
        let start = self.at;
        while let Some(eight) = self.text.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(eight.try_into().unwrap_or_default());
            if !(is_eight_digits(word) && into.push_eight(word)) {
                break;
            }
            self.at += 8;
        }
        while let Some(d @ b'0'..=b'9') = self.peek() {
            into.push(d - b'0');
            self.at += 1;
        }
        self.at - start
    }
}

/// The digits of a number as an integer and a power of ten.
#[derive(Default)]
struct Digits {
    value: u64,
    /// Digits pushed (integer and fraction).
    count: usize,
    /// More digits than `value` holds (past 19): only std's parser is
    /// exact then.
    overflow: bool,
    /// The number is `value * 10^scale`.
    scale: i64,
}

impl Digits {
    /// Below this, ten times the value plus a digit still fits in a u64.
    const ROOM: u64 = 1_000_000_000_000_000_000;

    fn push(&mut self, digit: u8) {
        self.count += 1;
        if self.value < Self::ROOM {
            self.value = self.value * 10 + u64::from(digit);
        } else {
            self.overflow = true;
        }
    }

    /// Pushes the eight ASCII digits of `word` (little-endian) when they
    /// fit; otherwise changes nothing and answers false.
    fn push_eight(&mut self, word: u64) -> bool {
        if self.overflow || self.value >= Self::ROOM / 10_000_000 {
            return false;
        }
        self.value = self.value * 100_000_000 + eight_digits_value(word);
        self.count += 8;
        true
    }

    /// `value * 10^scale` read as the nearest f64 rounded to f32, when f64
    /// arithmetic settles it; `None` sends the number to std's parser.
    ///
    /// One multiplication, by the power of ten or by its reciprocal (a
    /// division took a fifth of the scan's time), lands within 4 f64 units
    /// of the nearest f64: the value as f64 (exact under 2^53, else within
    /// half a unit), the power (exact up to 10^22) or reciprocal (within
    /// half a unit) and the product's rounding err by at most 3.5 units
    /// together. Both then round to the same f32 unless an f32 rounding
    /// midpoint (an f64 whose low 29 mantissa bits are `1 << 28`) lies
    /// within those units: that case, and anything outside f32's normal
    /// range, goes to std.
    fn to_f32(&self) -> Option<f32> {
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        const RECIPROCALS: [f64; 23] = [
            1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13,
            1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
        ];
        if self.overflow {
            return None;
        }
        if self.value == 0 {
            return Some(0.0);
        }
        let index = usize::try_from(self.scale.unsigned_abs()).ok()?;
        let factor = if self.scale >= 0 {
            *POWERS.get(index)?
        } else {
            *RECIPROCALS.get(index)?
        };
        let x = self.value as f64 * factor;
        const MIDPOINT: i64 = 1 << 28;
        let low = (x.to_bits() & ((1 << 29) - 1)) as i64;
        let normal = (f64::from(f32::MIN_POSITIVE) * 2.0..f64::from(f32::MAX) / 2.0).contains(&x);
        (normal && (low - MIDPOINT).abs() > 16).then_some(x as f32)
    }
}

/// Whether the eight bytes of `word` are all ASCII digits (the SWAR test
/// of Lemire's fast_float, as in std's float parser).
fn is_eight_digits(word: u64) -> bool {
    let high = word & 0xF0F0_F0F0_F0F0_F0F0;
    let carried = word.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0;
    (high | carried >> 4) == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits read little-endian (first digit in the
/// low byte), in three multiplications.
fn eight_digits_value(word: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064; // 100 + (1_000_000 << 32)
    const MUL2: u64 = 0x0000_2710_0000_0001; // 1 + (10_000 << 32)
    let word = word.wrapping_sub(0x3030_3030_3030_3030);
    let word = word.wrapping_mul(10).wrapping_add(word >> 8);
    let low = (word & MASK).wrapping_mul(MUL1);
    let high = ((word >> 16) & MASK).wrapping_mul(MUL2);
    (low.wrapping_add(high) >> 32) & 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::read_vectors;
    use proptest::prelude::*;

    #[test]
    fn reads_the_one_shape_and_leaves_the_rest_to_serde() {
        let read = |s: &str| read_vectors(s.as_bytes());
        assert_eq!(
            read(" {\n\"vectors\" : [ [1, -0.5 ,2e-3, 0, -0, 1E+2] ,[3]]}\t"),
            Some(vec![vec![1.0, -0.5, 0.002, 0.0, -0.0, 100.0], vec![3.0]])
        );
        assert_eq!(read(r#"{"vectors":[]}"#), Some(vec![]));
        assert_eq!(read(r#"{"vectors":[[]]}"#), Some(vec![vec![]]));
        assert_eq!(
            read(r#"{"vectors":[[1e39]]}"#),
            Some(vec![vec![f32::INFINITY]])
        );
        for other in [
            r#"{"vectors":[[1]],"model":"m"}"#,
            r#"{"model":"m","vectors":[[1]]}"#,
            r#"{"vectors":[[1]],"vectors":[[2]]}"#,
            r#"{"error":{"code":"x","message":"y"}}"#,
            r#"{"vectors":[[+1]]}"#,
            r#"{"vectors":[[.5]]}"#,
            r#"{"vectors":[[1.]]}"#,
            r#"{"vectors":[[01]]}"#,
            r#"{"vectors":[[1e]]}"#,
            r#"{"vectors":[[-]]}"#,
            r#"{"vectors":[[NaN]]}"#,
            r#"{"vectors":[["1"]]}"#,
            r#"{"vectors":[[null]]}"#,
            r#"{"vectors":[[1,]]}"#,
            r#"{"vectors":[[1],]}"#,
            r#"{"vectors":[[1]]"#,
            r#"{"vectors":[[1]]} x"#,
            r#"{"vectors":[[1] [2]]}"#,
            r#"{"vect\u006frs":[[1]]}"#,
            "",
            "[]",
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    /// A reply past `SPLIT_FROM` is read in two halves, exactly as one;
    /// text that is not the one shape fails in either half.
    #[test]
    fn a_large_reply_reads_the_same_in_two_halves() {
        let vectors: Vec<Vec<f64>> = (0..40)
            .map(|v| {
                (0..384)
                    .map(|i| f64::from((v * 384 + i) as f32 / 7.0 - 999.0))
                    .collect()
            })
            .collect();
        let reply = serde_json::to_string(&serde_json::json!({ "vectors": vectors })).unwrap();
        assert!(reply.len() > 2 * super::SPLIT_FROM);
        assert!(super::split_point(reply.as_bytes()).is_some());
        let expected: Vec<Vec<f32>> = vectors
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        assert_eq!(read_vectors(reply.as_bytes()), Some(expected.clone()));
        let spaced = reply
            .replace(',', " ,\n ")
            .replace('[', "[ ")
            .replace(']', " ]");
        assert_eq!(read_vectors(spaced.as_bytes()), Some(expected));
        let body = &reply[..reply.len() - 1];
        for (case, other) in [
            format!("{body},\"model\":\"m\"}}"),
            format!("{reply}}}"),
            format!("{}]]}}", &reply[..reply.len() - 3]).replacen("],[", "],,[", 30),
            reply.replacen("1", "\"1\"", 1),
            reply.replace(",-", ",+"),
        ]
        .iter()
        .enumerate()
        {
            assert!(read_vectors(other.as_bytes()).is_none(), "case {case}");
        }
        // Two vectors, the second holding the middle: no split point past
        // the last vector's `]`, read whole.
        let lopsided = serde_json::to_string(&serde_json::json!({
            "vectors": [vec![1.5f64; 3], vec![2.5f64; 30_000]]
        }))
        .unwrap();
        assert!(super::split_point(lopsided.as_bytes()).is_none());
        assert_eq!(read_vectors(lopsided.as_bytes()).map(|v| v.len()), Some(2));
    }

    /// All that `read_vectors` collects, one vector at a time.
    fn streamed(reply: &[u8]) -> (Vec<Vec<f32>>, bool) {
        let mut vectors = Vec::new();
        let whole = super::for_each_vector(reply, |v| {
            vectors.push(v);
            true
        });
        (vectors, whole)
    }

    proptest! {
        /// `for_each_vector` hands over exactly the vectors `read_vectors`
        /// reads (the large replies it splits included) and accepts exactly
        /// what it accepts, on replies mangled anywhere.
        #[test]
        fn streaming_reads_what_read_vectors_reads(
            vectors in prop::collection::vec(prop::collection::vec(-1e6f32..1e6, 0..40), 0..12),
            big in any::<bool>(),
            cut in any::<prop::sample::Index>(),
            mangle in prop::sample::select(vec!["", "x", ",", "]", "[", "}", " ", "-", "1e", "\"", "0"]),
            mode in 0..3u8,
        ) {
            let vectors: Vec<Vec<f64>> = if big {
                (0..60).map(|v| (0..300).map(|i| f64::from((v * 300 + i) as f32 / 3.0)).collect()).collect()
            } else {
                vectors.iter().map(|v| v.iter().map(|&x| f64::from(x)).collect()).collect()
            };
            let mut reply = serde_json::to_string(&serde_json::json!({ "vectors": vectors })).unwrap();
            let at = cut.index(reply.len() + 1);
            match mode {
                0 => {}
                1 => reply.insert_str(at, mangle),
                _ => reply.truncate(at),
            }
            let (got, whole) = streamed(reply.as_bytes());
            match read_vectors(reply.as_bytes()) {
                Some(expected) => {
                    prop_assert!(whole);
                    prop_assert_eq!(got, expected);
                }
                None => prop_assert!(!whole),
            }
        }

        /// Every f32 and f64 (as JSON writes them), and decimals of any
        /// length, read as their nearest f64 rounded to f32, whether the
        /// fast path or std's parser reads them.
        #[test]
        fn numbers_read_as_their_nearest_f32(
            floats in prop::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..40),
            doubles in prop::collection::vec(-1e30f64..1e30, 1..40),
            decimals in prop::collection::vec("-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,2})?", 1..40),
        ) {
            let numbers: Vec<String> = floats
                .iter()
                .map(|x| serde_json::to_string(x).unwrap())
                // As Python and JavaScript print an f32 model output: the
                // f64 of the same value, 17-19 digits.
                .chain(floats.iter().map(|&x| serde_json::to_string(&f64::from(x)).unwrap()))
                .chain(doubles.iter().map(|x| serde_json::to_string(x).unwrap()))
                .chain(decimals)
                .collect();
            let reply = format!("{{\"vectors\":[[{}]]}}", numbers.join(","));
            let read = read_vectors(reply.as_bytes()).expect("the one shape");
            prop_assert_eq!(read[0].len(), numbers.len());
            for (number, got) in numbers.iter().zip(&read[0]) {
                let nearest = number.parse::<f64>().unwrap() as f32;
                prop_assert_eq!(got.to_bits(), nearest.to_bits(), "{}", number);
                // serde_json reads into f64 (last place approximate without
                // `float_roundtrip`); rounded to f32 it lands within one f32
                // step of the nearest f32.
                let via_serde = serde_json::from_str::<f64>(number).unwrap() as f32;
                if got.is_finite() && via_serde.is_finite() {
                    let steps = (got.to_bits() as i64 - via_serde.to_bits() as i64).abs();
                    prop_assert!(steps <= 1, "{} {} {}", number, got, via_serde);
                }
            }
            for (i, x) in floats.iter().enumerate() {
                // An f32 comes back exact, written in its own shortest
                // form or as an f64.
                prop_assert_eq!(read[0][i], *x);
                prop_assert_eq!(read[0][floats.len() + i], *x);
            }
        }
    }
}
