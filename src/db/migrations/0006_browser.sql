-- Browser history, its full-text index, and bookmarks (spec §5). Tabs came
-- earlier (0002) because chat binds them.

-- One row per visit. `id` is the visit id callers see and also the insertion
-- order that breaks ties between visits of the same `visited_at`.
-- `url` is kept as the caller gave it (validated to be absolute); the same
-- `(url, visited_at)` is stored once (dedupe of visits.record, imports and
-- bundles).
CREATE TABLE history (
    id           INTEGER PRIMARY KEY,
    url          TEXT NOT NULL,
    host         TEXT,           -- lower-cased host (IDN in punycode); null for host-less URLs
    rev_host     TEXT,           -- host reversed plus '.', e.g. 'moc.elpmaxe.': a host and all
                                 -- its subdomains are one index range, without LIKE
    title        TEXT,
    visited_at   INTEGER NOT NULL,
    tab_id       TEXT,           -- not a foreign key: tabs.close detaches rows itself
    referrer     TEXT,
    status_code  INTEGER,
    content_type TEXT,
    transition   TEXT,
    duration_ms  INTEGER,
    -- Dedupe, and (by its `url` prefix) the url index behind history.visited.
    UNIQUE (url, visited_at)
) STRICT;

-- history.list newest first, and time-bounded purges.
CREATE INDEX history_by_time ON history (visited_at, id);
-- history.list / history.purge by host (exact, or a subdomain range), newest first.
CREATE INDEX history_by_host ON history (rev_host, visited_at, id);
-- history.list by tab, the "is this the tab's newest visit" check, tabs.close.
CREATE INDEX history_by_tab ON history (tab_id, visited_at, id) WHERE tab_id IS NOT NULL;

-- Substring search over url and title (history.list `query`). The trigram
-- tokenizer makes a quoted phrase match any substring of 3+ characters,
-- case-insensitively. External content: the text itself lives only in
-- `history`; the index is kept in sync by the triggers below, inside the
-- same transaction as every change to `history`.
CREATE VIRTUAL TABLE history_fts USING fts5(
    url, title, content = 'history', content_rowid = 'id', tokenize = 'trigram'
);
-- A deleted row's tokens leave the index segments at once (see privacy.rs).
INSERT INTO history_fts (history_fts, rank) VALUES ('secure-delete', 1);

CREATE TRIGGER history_fts_after_insert AFTER INSERT ON history BEGIN
    INSERT INTO history_fts (rowid, url, title) VALUES (new.id, new.url, new.title);
END;
CREATE TRIGGER history_fts_after_delete AFTER DELETE ON history BEGIN
    INSERT INTO history_fts (history_fts, rowid, url, title)
    VALUES ('delete', old.id, old.url, old.title);
END;
CREATE TRIGGER history_fts_after_update AFTER UPDATE OF url, title ON history BEGIN
    INSERT INTO history_fts (history_fts, rowid, url, title)
    VALUES ('delete', old.id, old.url, old.title);
    INSERT INTO history_fts (rowid, url, title) VALUES (new.id, new.url, new.title);
END;

-- Bookmark folders form a tree; deleting one deletes its subfolders (and,
-- through bookmarks.folder_id, their bookmarks).
CREATE TABLE bookmark_folders (
    id         INTEGER PRIMARY KEY,  -- folder id; also insertion order
    name       TEXT NOT NULL,
    parent_id  INTEGER REFERENCES bookmark_folders (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX bookmark_folders_by_parent ON bookmark_folders (parent_id);

-- Bookmarks; duplicates are allowed. `tags` is a JSON array kept in order.
CREATE TABLE bookmarks (
    id         INTEGER PRIMARY KEY,  -- bookmark id; also insertion order
    url        TEXT NOT NULL,
    title      TEXT,
    folder_id  INTEGER REFERENCES bookmark_folders (id) ON DELETE CASCADE,
    tags       TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
-- bookmarks.list newest first, over everything or one folder.
CREATE INDEX bookmarks_by_created ON bookmarks (created_at, id);
CREATE INDEX bookmarks_by_folder ON bookmarks (folder_id, created_at, id);
