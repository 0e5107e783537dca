//! Cutting a document's text into chunks (spec §10).
//!
//! Offsets are Unicode scalar values, so a chunk's `start`/`end` index the
//! text the way every binding's string type can (never inside a UTF-8
//! sequence). A text of at most `chunk_chars` characters is one chunk.
//! Longer texts are cut window by window: a window holds the next
//! `chunk_chars` characters, and the cut falls at the latest paragraph
//! break (a blank line) inside it, else the latest line break, else the
//! latest sentence end, else the latest whitespace, else at the window's
//! end. The next chunk starts exactly where the previous one ended: the
//! contract allows an overlap of up to `chunk_chars / 5`; this cutter uses
//! none, so every character is in exactly one chunk (see DECISIONS.md).

/// A chunk's span in Unicode-scalar offsets: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// The cut points of `text` for windows of `chunk_chars` characters
/// (`chunk_chars >= 1`). Empty text gives no chunk.
pub fn spans(text: &str, chunk_chars: usize) -> Vec<Span> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let window = chunk_chars.max(1);
    let mut out = Vec::with_capacity(n / window + 1);
    let mut start = 0;
    while start < n {
        let end = if n - start <= window {
            n
        } else {
            cut(&chars, start, start + window)
        };
        out.push(Span { start, end });
        start = end;
    }
    out
}

/// The cut inside the window `chars[start..limit]` (`limit < chars.len()`):
/// a position in `start + 1..=limit`, after the latest break of the best
/// kind.
fn cut(chars: &[char], start: usize, limit: usize) -> usize {
    let candidates = (start + 1..=limit).rev();
    let is_space = |c: char| c.is_whitespace() && c != '\n';
    // A paragraph break: '\n', optional blanks, '\n'; the cut follows it.
    let paragraph = candidates.clone().find(|&e| {
        if chars[e - 1] != '\n' {
            return false;
        }
        let mut i = e - 1;
        while i > start {
            i -= 1;
            match chars[i] {
                '\n' => return true,
                c if is_space(c) => continue,
                _ => return false,
            }
        }
        false
    });
    if let Some(e) = paragraph {
        return e;
    }
    if let Some(e) = candidates.clone().find(|&e| chars[e - 1] == '\n') {
        return e;
    }
    // A sentence end: terminal punctuation followed by whitespace; the cut
    // follows the whitespace.
    let sentence = candidates
        .clone()
        .find(|&e| e >= start + 2 && chars[e - 1].is_whitespace() && is_sentence_end(chars[e - 2]));
    if let Some(e) = sentence {
        return e;
    }
    if let Some(e) = candidates.clone().find(|&e| chars[e - 1].is_whitespace()) {
        return e;
    }
    limit
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…')
}

/// The text of each span, sliced from `text` (byte offsets are computed
/// once for the whole text).
pub fn slice<'t>(text: &'t str, spans: &[Span]) -> Vec<&'t str> {
    let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    bytes.push(text.len());
    spans
        .iter()
        .map(|s| &text[bytes[s.start]..bytes[s.end]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cut_texts(text: &str, chunk_chars: usize) -> Vec<String> {
        let spans = spans(text, chunk_chars);
        slice(text, &spans).into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(spans("héllo", 200), vec![Span { start: 0, end: 5 }]);
        assert_eq!(spans(&"é".repeat(200), 200).len(), 1);
        assert!(spans("", 200).is_empty());
    }

    #[test]
    fn cuts_prefer_paragraph_then_line_then_sentence_then_space() {
        let para = format!(
            "{}\n\n{}\nxx {}",
            "a".repeat(5),
            "b".repeat(3),
            "c".repeat(30)
        );
        // Window of 14: "aaaaa\n\nbbb\nxx " holds a paragraph break at 7
        // and a line break at 11: the paragraph wins.
        assert_eq!(spans(&para, 14)[0], Span { start: 0, end: 7 });
        let line = format!(
            "{}\n{}. {} {}",
            "a".repeat(3),
            "b".repeat(3),
            "c",
            "d".repeat(30)
        );
        assert_eq!(spans(&line, 12)[0], Span { start: 0, end: 4 });
        let sentence = format!("Hi there. Next one {}", "d".repeat(30));
        // Window 16: "Hi there. Next o": sentence end after ". " (10).
        assert_eq!(spans(&sentence, 16)[0], Span { start: 0, end: 10 });
        let words = format!("one two three {}", "d".repeat(30));
        assert_eq!(spans(&words, 12)[0], Span { start: 0, end: 8 });
        let none = "x".repeat(25);
        assert_eq!(
            spans(&none, 10),
            vec![
                Span { start: 0, end: 10 },
                Span { start: 10, end: 20 },
                Span { start: 20, end: 25 }
            ]
        );
    }

    #[test]
    fn offsets_count_unicode_scalars() {
        let text = "日本語のテキスト。次の文です。".repeat(30);
        let chunks = cut_texts(&text, 200);
        assert_eq!(chunks.concat(), text);
        assert!(chunks.iter().all(|c| c.chars().count() <= 200));
        // Cut after a sentence end (no whitespace follows `。`, so the
        // fallback is anywhere: exactly the window).
        assert_eq!(chunks[0].chars().count(), 200);
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-z]{1,12}",
            2 => Just(" ".to_owned()),
            1 => Just("\n".to_owned()),
            1 => Just("\n\n".to_owned()),
            1 => Just(". ".to_owned()),
            1 => "[éßñ日本語😀]{1,6}",
            1 => "[^\\n ]{1,40}",
        ];
        prop_oneof![
            prop::collection::vec(piece, 0..400).prop_map(|v| v.concat()),
            // Texts without any break at all.
            "[a-zé日😀]{0,3000}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn chunks_follow_the_contract(text in text_strategy(), chunk_chars in 1usize..400) {
            let n = text.chars().count();
            let spans = spans(&text, chunk_chars);
            if n == 0 {
                prop_assert!(spans.is_empty());
                return Ok(());
            }
            if n <= chunk_chars {
                prop_assert_eq!(spans.len(), 1);
            }
            prop_assert_eq!(spans[0].start, 0);
            prop_assert_eq!(spans.last().unwrap().end, n);
            for s in &spans {
                prop_assert!(s.end > s.start && s.end - s.start <= chunk_chars);
            }
            for pair in spans.windows(2) {
                prop_assert!(pair[1].start <= pair[0].end);
                prop_assert!(pair[0].end - pair[1].start <= chunk_chars / 5);
                prop_assert!(pair[1].end > pair[0].end);
            }
            let chars: Vec<char> = text.chars().collect();
            let sliced = slice(&text, &spans);
            for (s, t) in spans.iter().zip(&sliced) {
                let expected: String = chars[s.start..s.end].iter().collect();
                prop_assert_eq!(&expected, t);
            }
        }

        #[test]
        fn no_later_break_of_a_better_kind_was_skipped(text in text_strategy(), chunk_chars in 2usize..200) {
            let chars: Vec<char> = text.chars().collect();
            let spans = spans(&text, chunk_chars);
            for s in spans.iter().take(spans.len().saturating_sub(1)) {
                let limit = s.start + chunk_chars;
                let after_newline = |e: usize| chars[e - 1] == '\n';
                // No line break after the cut inside the window unless the
                // cut is a paragraph break.
                let cut_is_paragraph = after_newline(s.end)
                    && chars[s.start..s.end - 1]
                        .iter()
                        .rev()
                        .take_while(|c| c.is_whitespace())
                        .any(|&c| c == '\n');
                if !cut_is_paragraph {
                    prop_assert!(
                        !(s.end + 1..=limit).any(after_newline),
                        "a later line break was skipped"
                    );
                }
                if chars[s.start..s.end].iter().all(|c| !c.is_whitespace()) {
                    prop_assert_eq!(s.end, limit);
                }
            }
        }
    }
}
