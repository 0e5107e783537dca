-- HydraFlow at scale (issue 9): no message index on the write path, and the
-- row counts `overview` shows kept in the writing transaction.

-- 1. Messages are not searched by any operation of the contract, so their
-- FTS5 index (written on every append, merged on every delete) goes. The
-- pages it held are zeroed as they are freed (`secure_delete`).
DROP TRIGGER llm_messages_fts_insert;
DROP TRIGGER llm_messages_fts_delete;
DROP TRIGGER llm_messages_fts_update;
DROP TABLE llm_messages_fts;

-- 2. Row counts for `overview` (src/overview.rs), one row per counter.
-- Triggers below keep them in the same transaction as the rows they count,
-- so they are exact after every write path (operations, imports, bundle
-- imports, purges, cascades) and after a crash: a transaction lost to a
-- crash loses its count changes with its rows.
--
-- Names: a table name (`history`, `llm_messages`, ...) counts its rows;
-- `<table>.<column>:<value>` counts the rows holding that value
-- (`tasks.status:pending`, `jobs.type:bundle_export`); `tabs.linked` counts
-- tabs bound to a thread. A count may be 0 (a row is never deleted).
--
-- To count another table (e.g. the knowledge tables): in a new migration,
-- seed `INSERT INTO row_counts (name, n) SELECT 'documents', count(*) FROM
-- documents;`, add AFTER INSERT / AFTER DELETE triggers that run
-- `UPDATE row_counts SET n = n + 1 WHERE name = 'documents'` (and `- 1`),
-- and read the row in src/overview.rs. Fixed names are seeded and then
-- only updated (cheaper than an upsert on hot paths); names that depend on
-- a value use an upsert.
--
-- The two tables written one row per call at high rates (`history` by
-- `visits.record`, `llm_messages` by `messages.append`) are counted without
-- writing the counter on each insert, since one more page in every commit
-- is what such a call costs most: their row has `upto` set, and `n` counts
-- only the rows whose integer key is <= `upto`. A reader adds the rows
-- above `upto` (a rowid range scan of at most 4096 rows). The insert
-- trigger writes the counter only to count a reused key at or below
-- `upto`, or once every 4096 rows to fold the tail into `n`; deletes at or
-- below `upto` decrement `n`. Their keys are never updated.
CREATE TABLE row_counts (
    name TEXT PRIMARY KEY,
    n    INTEGER NOT NULL,
    upto INTEGER            -- NULL: `n` counts every row
) STRICT, WITHOUT ROWID;

INSERT INTO row_counts (name, n, upto)
    SELECT 'history', count(*), coalesce(max(id), 0) FROM history;
INSERT INTO row_counts (name, n, upto)
    SELECT 'llm_messages', count(*), coalesce(max(seq), 0) FROM llm_messages;
INSERT INTO row_counts (name, n) SELECT 'bookmarks', count(*) FROM bookmarks;
INSERT INTO row_counts (name, n) SELECT 'tabs', count(*) FROM tabs;
INSERT INTO row_counts (name, n) SELECT 'tabs.linked', count(*) FROM tabs WHERE thread_id IS NOT NULL;
INSERT INTO row_counts (name, n) SELECT 'llm_threads', count(*) FROM llm_threads;
INSERT INTO row_counts (name, n) SELECT 'memories', count(*) FROM memories;
INSERT INTO row_counts (name, n)
    SELECT 'tasks.status:' || status, count(*) FROM tasks GROUP BY status;
INSERT INTO row_counts (name, n)
    SELECT 'jobs.status:' || status, count(*) FROM jobs GROUP BY status;
INSERT INTO row_counts (name, n)
    SELECT 'jobs.type:' || type, count(*) FROM jobs GROUP BY type;

-- Tables counted up to a mark, plus their tail (see above).
CREATE TRIGGER history_count_insert AFTER INSERT ON history BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'history' AND new.id <= upto;
    UPDATE row_counts
    SET n = n + (SELECT count(*) FROM history WHERE id > row_counts.upto AND id <= new.id),
        upto = new.id
    WHERE name = 'history' AND new.id - upto >= 4096;
END;
CREATE TRIGGER history_count_delete AFTER DELETE ON history BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'history' AND old.id <= upto;
END;
CREATE TRIGGER llm_messages_count_insert AFTER INSERT ON llm_messages BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'llm_messages' AND new.seq <= upto;
    UPDATE row_counts
    SET n = n + (SELECT count(*) FROM llm_messages WHERE seq > row_counts.upto AND seq <= new.seq),
        upto = new.seq
    WHERE name = 'llm_messages' AND new.seq - upto >= 4096;
END;
CREATE TRIGGER llm_messages_count_delete AFTER DELETE ON llm_messages BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'llm_messages' AND old.seq <= upto;
END;

-- Tables counted by one fixed name.
CREATE TRIGGER bookmarks_count_insert AFTER INSERT ON bookmarks BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'bookmarks';
END;
CREATE TRIGGER bookmarks_count_delete AFTER DELETE ON bookmarks BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'bookmarks';
END;
CREATE TRIGGER llm_threads_count_insert AFTER INSERT ON llm_threads BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'llm_threads';
END;
CREATE TRIGGER llm_threads_count_delete AFTER DELETE ON llm_threads BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'llm_threads';
END;
CREATE TRIGGER memories_count_insert AFTER INSERT ON memories BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'memories';
END;
CREATE TRIGGER memories_count_delete AFTER DELETE ON memories BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'memories';
END;

-- Tabs: all of them, and those bound to a thread.
CREATE TRIGGER tabs_count_insert AFTER INSERT ON tabs BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'tabs';
    UPDATE row_counts SET n = n + 1 WHERE name = 'tabs.linked' AND new.thread_id IS NOT NULL;
END;
CREATE TRIGGER tabs_count_delete AFTER DELETE ON tabs BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'tabs';
    UPDATE row_counts SET n = n - 1 WHERE name = 'tabs.linked' AND old.thread_id IS NOT NULL;
END;
CREATE TRIGGER tabs_count_link AFTER UPDATE OF thread_id ON tabs
WHEN (old.thread_id IS NULL) <> (new.thread_id IS NULL) BEGIN
    UPDATE row_counts SET n = n + iif(new.thread_id IS NULL, -1, 1) WHERE name = 'tabs.linked';
END;

-- Tasks by status.
CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO row_counts (name, n) VALUES ('tasks.status:' || new.status, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'tasks.status:' || old.status;
END;
CREATE TRIGGER tasks_count_status AFTER UPDATE OF status ON tasks
WHEN old.status IS NOT new.status BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'tasks.status:' || old.status;
    INSERT INTO row_counts (name, n) VALUES ('tasks.status:' || new.status, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;

-- Jobs by status and by type.
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO row_counts (name, n) VALUES ('jobs.status:' || new.status, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
    INSERT INTO row_counts (name, n) VALUES ('jobs.type:' || new.type, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'jobs.status:' || old.status;
    UPDATE row_counts SET n = n - 1 WHERE name = 'jobs.type:' || old.type;
END;
CREATE TRIGGER jobs_count_status AFTER UPDATE OF status ON jobs
WHEN old.status IS NOT new.status BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'jobs.status:' || old.status;
    INSERT INTO row_counts (name, n) VALUES ('jobs.status:' || new.status, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_type AFTER UPDATE OF type ON jobs
WHEN old.type IS NOT new.type BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'jobs.type:' || old.type;
    INSERT INTO row_counts (name, n) VALUES ('jobs.type:' || new.type, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;
