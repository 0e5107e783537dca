//! Words and relevance for text search: the tokenizer and Okapi BM25, the
//! same for every domain that ranks text (and for the brute-force
//! references in the tests).
//!
//! A token is a maximal run of alphanumeric characters (Unicode), lower-
//! cased (Unicode), so matching is case-insensitive and punctuation never
//! joins or splits words differently for the query and the text.

/// BM25's term-frequency saturation.
pub const K1: f64 = 1.2;
/// BM25's length normalisation.
pub const B: f64 = 0.75;

/// Calls `each` with every token of `text`.
pub fn for_each_token(text: &str, mut each: impl FnMut(&str)) {
    let mut word = String::new();
    for c in text.chars() {
        if c.is_ascii() {
            // The same answers as the general case below, without its
            // Unicode tables (most text of most pages).
            if c.is_ascii_alphanumeric() {
                word.push(c.to_ascii_lowercase());
            } else if !word.is_empty() {
                each(&word);
                word.clear();
            }
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            each(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        each(&word);
    }
}

/// The distinct tokens of a query, in first-seen order.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for_each_token(text, |t| {
        if !terms.iter().any(|x| x == t) {
            terms.push(t.to_owned());
        }
    });
    terms
}

/// The inverse document frequency of a term found in `df` of `n` units.
pub fn idf(n: u64, df: u64) -> f64 {
    (1.0 + (n as f64 - df as f64 + 0.5) / (df as f64 + 0.5)).ln()
}

/// One term's BM25 contribution for a unit of `len` tokens holding it `tf`
/// times, when units average `avg_len` tokens.
pub fn term_score(idf: f64, tf: u32, len: u32, avg_len: f64) -> f64 {
    let tf = tf as f64;
    let norm = if avg_len > 0.0 {
        1.0 - B + B * len as f64 / avg_len
    } else {
        1.0
    };
    idf * tf * (K1 + 1.0) / (tf + K1 * norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercased_alphanumeric_runs() {
        let mut out = Vec::new();
        for_each_token("Hello, WORLD! Straße 42-x ÉCOLE", |t| {
            out.push(t.to_owned())
        });
        assert_eq!(out, ["hello", "world", "straße", "42", "x", "école"]);
        assert_eq!(query_terms("a A b"), ["a", "b"]);
    }

    #[test]
    fn rarer_terms_and_more_occurrences_score_higher() {
        assert!(idf(100, 1) > idf(100, 50));
        assert!(idf(100, 100) > 0.0);
        assert!(term_score(1.0, 3, 10, 10.0) > term_score(1.0, 1, 10, 10.0));
        assert!(term_score(1.0, 1, 5, 10.0) > term_score(1.0, 1, 50, 10.0));
    }
}
