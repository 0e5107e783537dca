-- Issue 9, `threads.delete`: message ids are found through a 64-bit key,
-- not through a UNIQUE index on the 32-character text id.
--
-- Message ids are random, so the id index is in no order a thread shares:
-- deleting a 10,000-message thread from a 1M-message profile rewrote most
-- of the ~9,000 leaves of `sqlite_autoindex_llm_messages_1` (about 90% of
-- the pages the delete wrote). The index now holds `id_key` and the rowid,
-- about 13 bytes an entry instead of about 40: fewer leaves, fewer of them
-- touched by a delete, and a smaller index for every append.
--
-- `id_key` is the first 8 bytes of SHA-256 of the UTF-8 id, read as a
-- big-endian signed 64-bit integer (`hydra_id_key(id)`, registered by the
-- library on its connections: src/db/id_key.rs). That definition is
-- stable forever: rows store it. Any two ids may share a key (it is a
-- hash), so every lookup by id is `WHERE id_key = ?key AND id = ?id`, and
-- ids sharing a prefix or a suffix spread over the whole key space.
-- Uniqueness of `id` is kept by the library: the writer looks the id up by
-- its key before every insert (one index seek) and answers `conflict`.
--
-- The old table is renamed, a new one created and filled with the same
-- `seq` values (the `overview` counter's mark refers to them), and the old
-- one dropped with its index and triggers: its pages are freed and zeroed
-- (`secure_delete`). The indexes are built after the copy (sorted, so
-- their leaves are full), then the counter triggers of 0009 come back
-- unchanged.
ALTER TABLE llm_messages RENAME TO llm_messages_before_0014;

CREATE TABLE llm_messages (
    seq        INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id         TEXT NOT NULL,        -- unique: the writer looks it up by id_key first
    id_key     INTEGER NOT NULL,     -- hydra_id_key(id): SHA-256 of id, first 8 bytes, big-endian
    thread_id  TEXT NOT NULL REFERENCES llm_threads (id),
    parent_id  TEXT,                 -- a message id as given; may outlive that message
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content    TEXT NOT NULL,
    tokens     INTEGER,
    created_at INTEGER NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}'  -- JSON object
) STRICT;

INSERT INTO llm_messages (seq, id, id_key, thread_id, parent_id, role, content, tokens,
                          created_at, metadata)
    SELECT seq, id, hydra_id_key(id), thread_id, parent_id, role, content, tokens,
           created_at, metadata
    FROM llm_messages_before_0014 ORDER BY seq;

DROP TABLE llm_messages_before_0014;

-- messages.list (asc and desc), the chat context and the thread delete.
CREATE INDEX llm_messages_by_thread ON llm_messages (thread_id, created_at, seq);
-- Every lookup by message id (get, delete, the uniqueness check, bundle
-- import's dedupe): `WHERE id_key = ?key AND id = ?id`.
CREATE INDEX llm_messages_by_id_key ON llm_messages (id_key);

-- The row counter of 0009 (see there), unchanged.
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
