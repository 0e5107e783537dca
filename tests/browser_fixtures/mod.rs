//! Browser history files of every schema era, built from the browsers'
//! published `CREATE TABLE` statements (Chromium's `history_database.cc`,
//! `url_database.cc`, `visit_database.cc` and their migration steps; Firefox's
//! `nsPlacesTables.h` of each release), so the importer is tested against the
//! column sets real files have, not one idealised layout.
//!
//! Every fixture holds the same four visits, written in that era's columns:
//! a typed visit, a link with a non-ASCII URL and title, a hidden subframe
//! (or embed) visit and a redirect visit. [`expected_visits`] says what an
//! import of each must store.
#![allow(dead_code)]

use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

/// Microseconds between 1601-01-01 and 1970-01-01 (Chrome's epoch).
pub const CHROME_OFFSET_US: i64 = 11_644_473_600_000_000;

/// A Chrome `History` schema era: its `meta.version` and the tables the
/// importer reads, as that version created them.
pub struct ChromeEra {
    pub version: u32,
    pub urls: &'static str,
    pub visits: &'static str,
}

const CHROME_URLS_OLD: &str = "CREATE TABLE urls(id INTEGER PRIMARY KEY,url LONGVARCHAR,\
    title LONGVARCHAR,visit_count INTEGER DEFAULT 0 NOT NULL,typed_count INTEGER DEFAULT 0 NOT NULL,\
    last_visit_time INTEGER NOT NULL,hidden INTEGER DEFAULT 0 NOT NULL,\
    favicon_id INTEGER DEFAULT 0 NOT NULL)";
const CHROME_URLS_NEW: &str = "CREATE TABLE urls(id INTEGER PRIMARY KEY AUTOINCREMENT,\
    url LONGVARCHAR,title LONGVARCHAR,visit_count INTEGER DEFAULT 0 NOT NULL,\
    typed_count INTEGER DEFAULT 0 NOT NULL,last_visit_time INTEGER NOT NULL,\
    hidden INTEGER DEFAULT 0 NOT NULL)";

/// Chrome schema eras, oldest first. 16 and 20 predate `visit_duration`
/// (added by the migration to 21); 43 is the era of `publicly_routable`;
/// the last one is the current layout.
pub const CHROME_ERAS: &[ChromeEra] = &[
    ChromeEra {
        version: 16,
        urls: CHROME_URLS_OLD,
        visits: "CREATE TABLE visits(id INTEGER PRIMARY KEY,url INTEGER NOT NULL,\
            visit_time INTEGER NOT NULL,from_visit INTEGER,transition INTEGER DEFAULT 0 NOT NULL,\
            segment_id INTEGER,is_indexed BOOLEAN)",
    },
    ChromeEra {
        version: 20,
        urls: CHROME_URLS_OLD,
        visits: "CREATE TABLE visits(id INTEGER PRIMARY KEY,url INTEGER NOT NULL,\
            visit_time INTEGER NOT NULL,from_visit INTEGER,transition INTEGER DEFAULT 0 NOT NULL,\
            segment_id INTEGER,is_indexed BOOLEAN)",
    },
    ChromeEra {
        version: 28,
        urls: CHROME_URLS_OLD,
        visits: "CREATE TABLE visits(id INTEGER PRIMARY KEY,url INTEGER NOT NULL,\
            visit_time INTEGER NOT NULL,from_visit INTEGER,transition INTEGER DEFAULT 0 NOT NULL,\
            segment_id INTEGER,visit_duration INTEGER DEFAULT 0 NOT NULL)",
    },
    ChromeEra {
        version: 36,
        urls: CHROME_URLS_NEW,
        visits: "CREATE TABLE visits(id INTEGER PRIMARY KEY,url INTEGER NOT NULL,\
            visit_time INTEGER NOT NULL,from_visit INTEGER,transition INTEGER DEFAULT 0 NOT NULL,\
            segment_id INTEGER,visit_duration INTEGER DEFAULT 0 NOT NULL,\
            incremented_omnibox_typed_score BOOLEAN DEFAULT FALSE NOT NULL)",
    },
    ChromeEra {
        version: 43,
        urls: CHROME_URLS_NEW,
        visits: "CREATE TABLE visits(id INTEGER PRIMARY KEY,url INTEGER NOT NULL,\
            visit_time INTEGER NOT NULL,from_visit INTEGER,transition INTEGER DEFAULT 0 NOT NULL,\
            segment_id INTEGER,visit_duration INTEGER DEFAULT 0 NOT NULL,\
            incremented_omnibox_typed_score BOOLEAN DEFAULT FALSE NOT NULL,\
            publicly_routable BOOLEAN DEFAULT FALSE NOT NULL)",
    },
    ChromeEra {
        version: 66,
        urls: CHROME_URLS_NEW,
        visits: "CREATE TABLE visits(id INTEGER PRIMARY KEY AUTOINCREMENT,url INTEGER NOT NULL,\
            visit_time INTEGER NOT NULL,from_visit INTEGER,external_referrer_url TEXT,\
            transition INTEGER DEFAULT 0 NOT NULL,segment_id INTEGER,\
            visit_duration INTEGER DEFAULT 0 NOT NULL,\
            incremented_omnibox_typed_score BOOLEAN DEFAULT FALSE NOT NULL,opener_visit INTEGER,\
            originator_cache_guid TEXT,originator_visit_id INTEGER,originator_from_visit INTEGER,\
            originator_opener_visit INTEGER,is_known_to_sync BOOLEAN DEFAULT FALSE NOT NULL,\
            consider_for_ntp_most_visited BOOLEAN DEFAULT FALSE NOT NULL,\
            visited_link_id INTEGER DEFAULT 0 NOT NULL, app_id TEXT)",
    },
];

/// A Firefox `places.sqlite` era: its `user_version`, tables, and whether
/// the browser ran it in WAL mode (Firefox 4 and later) or with a rollback
/// journal.
pub struct FirefoxEra {
    pub version: u32,
    pub places: &'static str,
    pub visits: &'static str,
    pub wal: bool,
}

const FIREFOX_VISITS_OLD: &str = "CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, \
    from_visit INTEGER, place_id INTEGER, visit_date INTEGER, visit_type INTEGER, session INTEGER)";

/// Firefox places eras: Firefox 3.5/3.6 (schema 8, before Places v10 and
/// before WAL), Firefox 52 (schema 35) and the current layout.
pub const FIREFOX_ERAS: &[FirefoxEra] = &[
    FirefoxEra {
        version: 8,
        places: "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url LONGVARCHAR, \
            title LONGVARCHAR, rev_host LONGVARCHAR, visit_count INTEGER DEFAULT 0, \
            hidden INTEGER DEFAULT 0 NOT NULL, typed INTEGER DEFAULT 0 NOT NULL, \
            favicon_id INTEGER, frecency INTEGER DEFAULT -1 NOT NULL, last_visit_date INTEGER)",
        visits: FIREFOX_VISITS_OLD,
        wal: false,
    },
    FirefoxEra {
        version: 35,
        places: "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url LONGVARCHAR, \
            title LONGVARCHAR, rev_host LONGVARCHAR, visit_count INTEGER DEFAULT 0, \
            hidden INTEGER DEFAULT 0 NOT NULL, typed INTEGER DEFAULT 0 NOT NULL, \
            favicon_id INTEGER, frecency INTEGER DEFAULT -1 NOT NULL, last_visit_date INTEGER , \
            guid TEXT, foreign_count INTEGER DEFAULT 0 NOT NULL, \
            url_hash INTEGER DEFAULT 0 NOT NULL)",
        visits: FIREFOX_VISITS_OLD,
        wal: true,
    },
    FirefoxEra {
        version: 77,
        places: "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url LONGVARCHAR, \
            title LONGVARCHAR, rev_host LONGVARCHAR, visit_count INTEGER DEFAULT 0, \
            hidden INTEGER DEFAULT 0 NOT NULL, typed INTEGER DEFAULT 0 NOT NULL, \
            frecency INTEGER DEFAULT -1 NOT NULL, last_visit_date INTEGER , guid TEXT, \
            foreign_count INTEGER DEFAULT 0 NOT NULL, url_hash INTEGER DEFAULT 0 NOT NULL , \
            description TEXT, preview_image_url TEXT, site_name TEXT, \
            origin_id INTEGER REFERENCES moz_origins(id), \
            recalc_frecency INTEGER NOT NULL DEFAULT 0, alt_frecency INTEGER, \
            recalc_alt_frecency INTEGER NOT NULL DEFAULT 0)",
        visits: "CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, from_visit INTEGER, \
            place_id INTEGER, visit_date INTEGER, visit_type INTEGER, session INTEGER, \
            source INTEGER DEFAULT 0 NOT NULL, triggeringPlaceId INTEGER)",
        wal: true,
    },
];

/// One visit every fixture holds, as the contract says it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub url: &'static str,
    pub title: Option<&'static str>,
    pub visited_at: i64,
    pub transition: &'static str,
    /// Chrome files that record durations; `None` otherwise.
    pub duration_ms: Option<i64>,
}

/// `(url, title, hidden, ms, chrome transition, firefox visit_type,
/// duration µs)` of the four fixture visits. The times carry sub-ms
/// microseconds (`+ 789`) that the import truncates.
type FixtureVisit = (&'static str, Option<&'static str>, bool, i64, i64, i64, i64);
const VISITS: [FixtureVisit; 4] = [
    (
        "https://example.com/start",
        Some("Start page"),
        false,
        1_600_000_000_000,
        1,
        2,
        4_000_000,
    ),
    (
        "https://例え.テスト/パス?q=ü",
        Some("Ünïcödé — 日本語のタイトル 🚀"),
        false,
        1_600_000_060_000,
        0x3000_0000,
        1,
        1_500_000,
    ),
    // Hidden: an ad frame (Chrome auto_subframe, Firefox embed).
    (
        "https://ads.example.net/frame",
        None,
        true,
        1_600_000_061_000,
        3,
        4,
        0,
    ),
    // A server redirect that ends a chain (Chrome link + qualifiers,
    // Firefox permanent redirect).
    (
        "http://example.com/old",
        Some("Moved"),
        false,
        1_600_000_120_000,
        0xA000_0000,
        5,
        0,
    ),
];

/// What importing any fixture of `browser` stores, oldest first.
pub fn expected_visits(chrome: bool, has_duration: bool) -> Vec<Expected> {
    VISITS
        .iter()
        .map(
            |&(url, title, _, ms, chrome_t, firefox_t, dur_us)| Expected {
                url,
                title,
                visited_at: ms,
                transition: if chrome {
                    match chrome_t & 0xFF {
                        0 => "link",
                        1 => "typed",
                        3 => "auto_subframe",
                        _ => unreachable!(),
                    }
                } else {
                    match firefox_t {
                        1 => "link",
                        2 => "typed",
                        4 => "embed",
                        5 => "redirect_permanent",
                        _ => unreachable!(),
                    }
                },
                duration_ms: (chrome && has_duration).then_some(dur_us / 1000),
            },
        )
        .collect()
}

/// Writes a Chrome `History` of `era` into `dir`.
pub fn chrome_history(dir: &Path, era: &ChromeEra) -> PathBuf {
    let path = dir.join(format!("History-v{}", era.version));
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR);
         INSERT INTO meta VALUES ('version', '{v}'), ('last_compatible_version', '{v}');
         {};
         {};
         CREATE INDEX visits_url_index ON visits (url);
         CREATE INDEX visits_time_index ON visits (visit_time);",
        era.urls,
        era.visits,
        v = era.version
    ))
    .unwrap();
    let has_duration = era.visits.contains("visit_duration");
    for (i, &(url, title, hidden, ms, transition, _, dur_us)) in VISITS.iter().enumerate() {
        let id = i as i64 + 1;
        let time = ms * 1000 + 789 + CHROME_OFFSET_US;
        conn.execute(
            "INSERT INTO urls (id, url, title, visit_count, last_visit_time, hidden)
             VALUES (?1, ?2, ?3, 1, ?4, ?5)",
            params![id, url, title.unwrap_or(""), time, hidden],
        )
        .unwrap();
        let sql = if has_duration {
            "INSERT INTO visits (url, visit_time, from_visit, transition, visit_duration)
             VALUES (?1, ?2, 0, ?3, ?4)"
        } else {
            "INSERT INTO visits (url, visit_time, from_visit, transition) VALUES (?1, ?2, 0, ?3)"
        };
        if has_duration {
            conn.execute(sql, params![id, time, transition, dur_us])
        } else {
            conn.execute(sql, params![id, time, transition])
        }
        .unwrap();
    }
    path
}

/// Writes a Firefox `places.sqlite` of `era` into `dir`. WAL eras keep the
/// visits in the `-wal` (as a running browser does) while the returned
/// connection lives.
pub fn firefox_places(dir: &Path, era: &FirefoxEra) -> (PathBuf, Connection) {
    let path = dir.join(format!("places-v{}.sqlite", era.version));
    let conn = Connection::open(&path).unwrap();
    let mode = if era.wal {
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;"
    } else {
        "PRAGMA journal_mode = DELETE;"
    };
    conn.execute_batch(&format!(
        "{mode} PRAGMA user_version = {}; {}; {};
         CREATE INDEX moz_historyvisits_dateindex ON moz_historyvisits (visit_date);",
        era.version,
        era.places.replace("REFERENCES moz_origins(id)", ""),
        era.visits
    ))
    .unwrap();
    for (i, &(url, title, hidden, ms, _, visit_type, _)) in VISITS.iter().enumerate() {
        let id = i as i64 + 1;
        let time = ms * 1000 + 789;
        conn.execute(
            "INSERT INTO moz_places (id, url, title, rev_host, visit_count, hidden, last_visit_date)
             VALUES (?1, ?2, ?3, NULL, 1, ?4, ?5)",
            params![id, url, title, hidden, time],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO moz_historyvisits (from_visit, place_id, visit_date, visit_type, session)
             VALUES (0, ?1, ?2, ?3, 0)",
            params![id, time, visit_type],
        )
        .unwrap();
    }
    (path, conn)
}
