-- Issue 9 (scale), history size and write path: one row per URL ("place",
-- as in Firefox's places) and small visit rows that point at it.
--
-- At 1M visits over ~275,000 urls the single `history` table stored each
-- url, host and reversed host once per visit and indexed the url (dedupe)
-- and the reversed host (host filters) once per visit: 287 MB, most of it
-- the two text indexes. Now the url, host and reversed host live once per
-- url in `places`, with their two indexes over ~275,000 rows, and a visit
-- is a few integers plus its own title and details; its indexes hold
-- integers only. Every visit keeps its own title (the contract shows the
-- title recorded with each visit, not the url's latest one).
--
-- A place without visits is deleted in the same transaction as its last
-- visit (src/browser/history.rs): no url of a deleted visit is left behind.
-- `place_id` is named the same in both tables so that `visits JOIN places
-- USING (place_id)` leaves every other column name unambiguous.
CREATE TABLE places (
    place_id INTEGER PRIMARY KEY,
    url      TEXT NOT NULL UNIQUE,  -- as the caller gave it (validated absolute)
    host     TEXT,                  -- lower-cased host (IDN in punycode); null for host-less URLs
    rev_host TEXT                   -- host reversed plus '.', e.g. 'moc.elpmaxe.': a host and all
                                    -- its subdomains are one index range
) STRICT;

-- One row per visit. `id` is the visit id callers see (the old history id,
-- kept) and the insertion order that breaks ties of the same `visited_at`.
CREATE TABLE visits (
    id           INTEGER PRIMARY KEY,
    place_id     INTEGER NOT NULL,  -- places.place_id (kept by the code, no FK check per insert)
    visited_at   INTEGER NOT NULL,
    title        TEXT,
    tab_id       TEXT,              -- not a foreign key: tabs.close detaches rows itself
    referrer     TEXT,
    status_code  INTEGER,
    content_type TEXT,
    transition   TEXT,
    duration_ms  INTEGER
) STRICT;

INSERT INTO places (url, host, rev_host)
    SELECT url, max(host), max(rev_host) FROM history GROUP BY url ORDER BY min(id);
INSERT INTO visits (id, place_id, visited_at, title, tab_id, referrer, status_code,
                    content_type, transition, duration_ms)
    SELECT h.id, p.place_id, h.visited_at, h.title, h.tab_id, h.referrer, h.status_code,
           h.content_type, h.transition, h.duration_ms
    FROM history h JOIN places p ON p.url = h.url
    ORDER BY h.id;

-- The old table's pages are freed (and zeroed: `secure_delete`) with it;
-- its indexes and counter triggers go with it.
DROP TABLE history;

-- Dedupe of (url, visited_at), and a url's visits (history.visited, purges
-- by host: places of the host, then their visits).
CREATE UNIQUE INDEX visits_by_place ON visits (place_id, visited_at);
-- history.list newest first, time-bounded purges (rowid = id is implied).
CREATE INDEX visits_by_time ON visits (visited_at);
-- history.list by tab, the "is this the tab's newest visit" check, tabs.close.
CREATE INDEX visits_by_tab ON visits (tab_id, visited_at) WHERE tab_id IS NOT NULL;
-- Host filters: a host, or a host and its subdomains, is one range.
CREATE INDEX places_by_host ON places (rev_host);

-- The visits with their url as the contract shows them, for reads that
-- need not know the split (exports, the text index builder, tests). Writes
-- by the library go to the tables; the triggers below only keep raw SQL
-- against the old table name working (tests and tools), row by row.
CREATE VIEW history AS
    SELECT visits.id AS id, url, host, rev_host, title, visited_at, tab_id, referrer,
           status_code, content_type, transition, duration_ms
    FROM visits JOIN places USING (place_id);

CREATE TRIGGER history_insert INSTEAD OF INSERT ON history BEGIN
    INSERT INTO places (url, host, rev_host) VALUES (new.url, new.host, new.rev_host)
        ON CONFLICT (url) DO NOTHING;
    INSERT INTO visits (id, place_id, visited_at, title, tab_id, referrer, status_code,
                        content_type, transition, duration_ms)
    VALUES (new.id, (SELECT place_id FROM places WHERE url = new.url), new.visited_at,
            new.title, new.tab_id, new.referrer, new.status_code, new.content_type,
            new.transition, new.duration_ms);
END;
CREATE TRIGGER history_delete INSTEAD OF DELETE ON history BEGIN
    DELETE FROM visits WHERE id = old.id;
    DELETE FROM places WHERE url = old.url
        AND NOT EXISTS (SELECT 1 FROM visits WHERE visits.place_id = places.place_id);
END;

-- Row counts (0009): `history` now counts visits, by the same mark scheme.
CREATE TRIGGER visits_count_insert AFTER INSERT ON visits BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'history' AND new.id <= upto;
    UPDATE row_counts
    SET n = n + (SELECT count(*) FROM visits WHERE id > row_counts.upto AND id <= new.id),
        upto = new.id
    WHERE name = 'history' AND new.id - upto >= 4096;
END;
CREATE TRIGGER visits_count_delete AFTER DELETE ON visits BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'history' AND old.id <= upto;
END;
