//! URL and host rules shared by visits, bookmarks, history lists and purges.
//!
//! Visits and bookmarks accept absolute URLs only (parsed with the `url`
//! crate, never by hand). The stored host is lower-cased, with IDN hosts in
//! their ASCII (punycode) form, and also kept reversed (`rev_host`) so that
//! "this host or any subdomain" is one index range: matching is by whole
//! labels, never by substring, and never through `LIKE` (so `%` or `_` in a
//! filter are plain characters that match no host).

use crate::error::{Error, Result};

/// The facts the library stores about a valid URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFacts {
    /// Lower-cased host (punycode for IDN), `None` for host-less URLs
    /// (`about:blank`, `mailto:`, `file:///`).
    pub host: Option<String>,
}

impl UrlFacts {
    /// The host reversed plus a final dot (`"moc.elpmaxe."`), as stored in
    /// `history.rev_host`.
    pub fn rev_host(&self) -> Option<String> {
        self.host.as_deref().map(reverse_host)
    }
}

/// Validates `text` as an absolute URL for `field`: a scheme, and for http(s)
/// a host written after `//`. The text itself is stored as given; only the
/// host is derived from the parse.
pub fn parse_url(field: &str, text: &str) -> Result<UrlFacts> {
    let bad = |reason: &str| Error::invalid(field, reason);
    if text.trim() != text || text.is_empty() {
        return Err(bad("must be an absolute URL without surrounding spaces"));
    }
    let url = url::Url::parse(text).map_err(|_| bad("must be an absolute URL"))?;
    let host = match url.host_str().and_then(normal_host) {
        // `file://localhost/x` (and `file://localhost./x`) names the same
        // file as `file:///x`.
        Some(h) if url.scheme() == "file" && h == "localhost" => None,
        other => other,
    };
    if matches!(url.scheme(), "http" | "https") {
        // The url crate forgives `http:example.com` and `http:///example.com`
        // (it skips missing or extra slashes); the contract wants an
        // absolute URL, so the authority must really be there, right after
        // `//`.
        let after_scheme = &text[url.scheme().len() + 1..];
        let authority = after_scheme.strip_prefix("//").unwrap_or("");
        if authority.is_empty() || authority.starts_with(['/', '\\']) || host.is_none() {
            return Err(bad("http(s) URLs need a host"));
        }
    }
    Ok(UrlFacts { host })
}

/// The one normal form of a host, for stored hosts and host filters alike:
/// lower-case, IDN labels in punycode, without the trailing dot of a fully
/// qualified name (`Example.COM.` is `example.com`, and so is
/// `example.com..`). `None` for no host.
pub fn normal_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    if host.contains('%') {
        // The url crate leaves the host of a scheme it does not know
        // (`sftp://Bücher.de/`) percent-encoded (`b%c3%bccher.de`): decoded,
        // a domain takes the same form as under http (`xn--bcher-kva.de`).
        let decoded = percent_encoding::percent_decode_str(host).decode_utf8();
        // (`Host::parse` refuses `%`, so this never comes back here.)
        if let Ok(Ok(url::Host::Domain(domain))) = decoded.map(|d| url::Host::parse(&d)) {
            return normal_host(&domain);
        }
    }
    Some(if host.is_ascii() {
        host.to_ascii_lowercase()
    } else {
        match url::Host::parse(host) {
            Ok(parsed) => parsed.to_string(),
            Err(_) => host.to_lowercase(),
        }
    })
}

/// Puts the hosts stored before [`normal_host`] decoded percent-encoded
/// hosts (`sftp://Bücher.de/` stored `b%c3%bccher.de`) in normal form,
/// recomputed from each url. Runs at open while migration 0015's marker
/// (`profile_meta` key `hosts_to_decode`) is there, and removes it in the
/// same transaction, so each profile pays the scan once. Returns how many
/// rows it fixed.
pub fn repair_percent_encoded_hosts(conn: &rusqlite::Connection) -> Result<usize> {
    let marked = conn
        .query_row(
            "SELECT 1 FROM profile_meta WHERE key = 'hosts_to_decode'",
            [],
            |_| Ok(()),
        )
        .is_ok();
    if !marked {
        return Ok(0);
    }
    let mut fixed = 0;
    for (table, key) in [("places", "place_id"), ("documents", "seq")] {
        let rows: Vec<(i64, String)> = conn
            .prepare(&format!(
                "SELECT {key}, url FROM {table} WHERE host LIKE '%\\%%' ESCAPE '\\'"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (row, url) in rows {
            let host = parse_url("url", &url).ok().and_then(|f| f.host);
            let rev_host = host.as_deref().map(reverse_host);
            fixed += conn.execute(
                &format!("UPDATE {table} SET host = ?1, rev_host = ?2 WHERE {key} = ?3"),
                rusqlite::params![host, rev_host, row],
            )?;
        }
    }
    conn.execute("DELETE FROM profile_meta WHERE key = 'hosts_to_decode'", [])?;
    Ok(fixed)
}

/// Drops the trailing dots from hosts stored before [`normal_host`] did
/// (`example.com.` escaped a purge of `example.com`). Idempotent and cheap
/// (one index range of `rev_host`: a trailing-dot host reverses to a
/// leading dot), so it runs at every open instead of as a migration; the
/// reversed form of `example.com.` is `.moc.elpmaxe.`, and dropping its
/// first character gives `moc.elpmaxe.`, the one of `example.com`.
/// Returns how many rows it fixed.
pub fn repair_trailing_dot_hosts(conn: &rusqlite::Connection) -> Result<usize> {
    // Every trailing dot goes (`example.com..` too); a host of dots only
    // is no host. Places (history) and documents store hosts alike.
    let mut fixed = 0;
    for table in ["places", "documents"] {
        fixed += conn.execute(
            &format!(
                "UPDATE {table}
                    SET host = nullif(rtrim(host, '.'), ''),
                        rev_host = CASE WHEN rtrim(host, '.') = '' THEN NULL
                                        ELSE ltrim(rev_host, '.') END
                  WHERE rev_host >= '.' AND rev_host < '/'"
            ),
            [],
        )?;
    }
    Ok(fixed)
}

/// `"example.com"` -> `"moc.elpmaxe."`.
pub fn reverse_host(host: &str) -> String {
    let mut out: String = host.chars().rev().collect();
    out.push('.');
    out
}

/// A host filter of `history.list` / `history.purge`: the host itself, and
/// with `include_subdomains` any host ending in `.` + host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMatch {
    /// The filter host, normalized like stored hosts.
    pub host: String,
    pub include_subdomains: bool,
}

impl HostMatch {
    /// Normalizes a caller's host filter like a stored host (trimmed, then
    /// [`normal_host`]). Text that is no host at all is kept lower-cased:
    /// it simply matches nothing.
    pub fn new(host: &str, include_subdomains: bool) -> Result<HostMatch> {
        let Some(host) = normal_host(host.trim()) else {
            return Err(Error::invalid("host", "must not be empty"));
        };
        Ok(HostMatch {
            host,
            include_subdomains,
        })
    }

    /// The exact `rev_host` value of the host itself.
    pub fn rev_exact(&self) -> String {
        reverse_host(&self.host)
    }

    /// The half-open `rev_host` range `[low, high)` holding the host and
    /// every subdomain: `"moc.elpmaxe."` .. `"moc.elpmaxe/"` (`/` follows
    /// `.` in byte order).
    pub fn rev_range(&self) -> (String, String) {
        let low = self.rev_exact();
        let mut high = low.clone();
        high.pop();
        high.push('/');
        (low, high)
    }

    /// True when a stored `rev_host` matches (used by tests and by callers
    /// that already hold a row).
    pub fn matches_rev(&self, rev_host: &str) -> bool {
        let (low, high) = self.rev_range();
        if self.include_subdomains {
            rev_host >= low.as_str() && rev_host < high.as_str()
        } else {
            rev_host == low
        }
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern and wraps
/// the text in `%` for a substring match.
pub fn like_substring(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls_only() {
        assert_eq!(
            parse_url("url", "https://WWW.Example.COM/a?b#c")
                .unwrap()
                .host,
            Some("www.example.com".into())
        );
        assert_eq!(parse_url("url", "about:blank").unwrap().host, None);
        assert_eq!(parse_url("url", "mailto:a@b.c").unwrap().host, None);
        assert_eq!(parse_url("url", "file:///tmp/x").unwrap().host, None);
        for bad in [
            "",
            "example.com/a",
            "/a/b",
            "http:example.com",
            "http:///example.com",
            "https:////example.com",
            "https://",
            " https://example.com",
            "no scheme",
        ] {
            assert!(parse_url("url", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn idn_hosts_are_stored_in_punycode() {
        let facts = parse_url("url", "https://Bücher.example/").unwrap();
        assert_eq!(facts.host.as_deref(), Some("xn--bcher-kva.example"));
        let m = HostMatch::new("BÜCHER.example", false).unwrap();
        assert_eq!(m.host, "xn--bcher-kva.example");
        assert!(m.matches_rev(&facts.rev_host().unwrap()));
        // Schemes the url crate does not know get a percent-encoded host
        // from it; stored, it is the same host as under https.
        for url in [
            "sftp://Bücher.example/",
            "git://BÜCHER.example./r",
            "ws://bücher.example/",
        ] {
            let facts = parse_url("url", url).unwrap();
            assert_eq!(
                facts.host.as_deref(),
                Some("xn--bcher-kva.example"),
                "{url}"
            );
        }
        // Percent-encoded text that is no domain stays as it was.
        assert_eq!(
            parse_url("url", "sftp://a%20b.example/")
                .unwrap()
                .host
                .as_deref(),
            Some("a%20b.example")
        );
    }

    #[test]
    fn hosts_match_by_whole_labels() {
        let m = HostMatch::new("Example.com", true).unwrap();
        let yes = ["example.com", "www.example.com", "a.b.example.com"];
        let no = [
            "notexample.com",
            "example.com.evil.org",
            "example.co",
            "other.org",
        ];
        for h in yes {
            assert!(m.matches_rev(&reverse_host(h)), "{h}");
        }
        for h in no {
            assert!(!m.matches_rev(&reverse_host(h)), "{h}");
        }
        let exact = HostMatch::new("example.com", false).unwrap();
        assert!(exact.matches_rev(&reverse_host("example.com")));
        assert!(!exact.matches_rev(&reverse_host("www.example.com")));
        assert!(HostMatch::new("  ", true).is_err());
    }

    #[test]
    fn every_spelling_of_a_host_has_one_normal_form() {
        for url in [
            "https://example.com/",
            "https://EXAMPLE.com./a",
            "https://user:pw@Example.Com:8443/x",
            "http://example.com.:80/",
        ] {
            assert_eq!(
                parse_url("url", url).unwrap().host.as_deref(),
                Some("example.com"),
                "{url}"
            );
        }
        assert_eq!(
            parse_url("url", "https://BÜCHER.example./").unwrap().host,
            Some("xn--bcher-kva.example".into())
        );
        for url in [
            "file:///etc/hosts",
            "file://localhost/etc/hosts",
            "file://LOCALHOST/x",
            "file://localhost./etc/hosts",
            "file://LOCALHOST./x",
        ] {
            assert_eq!(parse_url("url", url).unwrap().host, None, "{url}");
        }
        assert_eq!(
            HostMatch::new(" Example.COM. ", true).unwrap().host,
            "example.com"
        );
        assert!(HostMatch::new(".", true).is_err());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_substring("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
