-- HydraFlow: messages, tasks with their events, memories with embeddings,
-- the memory audit trail and the full-text indexes over messages and
-- memories. `llm_threads` already exists (0003_threads.sql).
--
-- Relations between HydraFlow rows are foreign keys (RESTRICT by default),
-- so a delete that forgot a child fails instead of leaving an orphan that
-- still holds private text. The FTS5 indexes are external-content tables
-- kept in sync by triggers (same transaction as the row change) and created
-- with `secure-delete`, so deleting a row removes its tokens from the index
-- at once (see src/privacy.rs).

-- Chat messages: one row per message, never a JSON blob per thread, so the
-- latest N of a thread of any size are one index seek away.
CREATE TABLE llm_messages (
    seq        INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id         TEXT NOT NULL UNIQUE,
    thread_id  TEXT NOT NULL REFERENCES llm_threads (id),
    parent_id  TEXT,                 -- a message id as given; may outlive that message
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content    TEXT NOT NULL,
    tokens     INTEGER,
    created_at INTEGER NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}'  -- JSON object
) STRICT;

-- messages.list (asc and desc), the chat context and the thread delete.
CREATE INDEX llm_messages_by_thread ON llm_messages (thread_id, created_at, seq);

-- Tasks, optionally tied to a thread.
CREATE TABLE tasks (
    seq         INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id          TEXT NOT NULL UNIQUE,
    thread_id   TEXT REFERENCES llm_threads (id),
    title       TEXT NOT NULL,
    description TEXT,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'blocked', 'completed', 'failed', 'cancelled')),
    priority    INTEGER,
    due_at      INTEGER,
    owner       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    closed_at   INTEGER,              -- set while status is completed, failed or cancelled
    metadata    TEXT NOT NULL DEFAULT '{}',  -- JSON object
    result      TEXT                  -- JSON value or NULL
) STRICT;

-- tasks.list (newest updated_at first) by every filter combination, and
-- hydraflow.context's open tasks of a thread.
CREATE INDEX tasks_by_updated ON tasks (updated_at, seq);
CREATE INDEX tasks_by_status ON tasks (status, updated_at, seq);
CREATE INDEX tasks_by_thread ON tasks (thread_id, updated_at, seq) WHERE thread_id IS NOT NULL;
CREATE INDEX tasks_by_thread_status ON tasks (thread_id, status, updated_at, seq) WHERE thread_id IS NOT NULL;

-- The history of a task: `created`, `status_changed` {from, to}, and any
-- event the caller adds. Events go with their task.
CREATE TABLE task_events (
    seq        INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id         TEXT NOT NULL UNIQUE,
    task_id    TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    payload    TEXT,                 -- JSON value or NULL
    created_at INTEGER NOT NULL
) STRICT;

-- tasks.events (oldest first) and the cascade from tasks.
CREATE INDEX task_events_by_task ON task_events (task_id, created_at, seq);

-- Memories: facts the assistant keeps, by scope, optionally tied to a
-- thread, a task and the message they came from.
CREATE TABLE memories (
    seq               INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id                TEXT NOT NULL UNIQUE,
    scope             TEXT NOT NULL CHECK (scope IN ('global', 'user', 'thread', 'task', 'doc')),
    scope_ref         TEXT,
    key               TEXT,
    value             TEXT NOT NULL,
    metadata          TEXT NOT NULL DEFAULT '{}',  -- JSON object
    strength          REAL NOT NULL CHECK (strength BETWEEN 0 AND 1),
    thread_id         TEXT REFERENCES llm_threads (id),
    task_id           TEXT REFERENCES tasks (id) ON DELETE SET NULL,
    source_message_id TEXT,                 -- a message id as given; may outlive that message
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_accessed_at  INTEGER
) STRICT;

-- memory.list (newest created_at first) by its filters, memory.delete by
-- filters, the thread delete, chat's thread memories and the task cascade.
CREATE INDEX memories_by_created ON memories (created_at, seq);
CREATE INDEX memories_by_scope ON memories (scope, scope_ref, created_at, seq);
CREATE INDEX memories_by_scope_ref ON memories (scope_ref, created_at, seq) WHERE scope_ref IS NOT NULL;
CREATE INDEX memories_by_thread ON memories (thread_id, created_at, seq) WHERE thread_id IS NOT NULL;
CREATE INDEX memories_by_task ON memories (task_id) WHERE task_id IS NOT NULL;

-- One embedding per memory: little-endian f32 `vector` of `dim` numbers
-- from `model`. Kept apart from `memories` so that a vector scan reads only
-- vectors and a listing never reads them.
CREATE TABLE memory_embeddings (
    memory_seq INTEGER PRIMARY KEY REFERENCES memories (seq) ON DELETE CASCADE,
    model      TEXT NOT NULL,
    dim        INTEGER NOT NULL CHECK (dim BETWEEN 1 AND 4096),
    vector     BLOB NOT NULL CHECK (length(vector) = 4 * dim)
) STRICT;

-- memory.search by embedding reads the vectors of one model and dimension.
CREATE INDEX memory_embeddings_by_model ON memory_embeddings (model, dim, memory_seq);

-- What happened to a memory and when: action and time, never its text.
-- Entries go with their memory.
CREATE TABLE memory_audit (
    seq        INTEGER PRIMARY KEY,
    memory_seq INTEGER NOT NULL REFERENCES memories (seq) ON DELETE CASCADE,
    action     TEXT NOT NULL CHECK (action IN ('created', 'updated')),
    at         INTEGER NOT NULL
) STRICT;

CREATE INDEX memory_audit_by_memory ON memory_audit (memory_seq);

-- A token that changes in every transaction that changes stored vectors,
-- so an in-memory copy of the vectors (see hydraflow/vectors.rs) knows
-- whether it is still the database's, whichever handle or process wrote.
CREATE TABLE memory_vectors_version (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    token INTEGER NOT NULL
) STRICT;

INSERT INTO memory_vectors_version (id, token) VALUES (1, random());

CREATE TRIGGER memory_embeddings_inserted AFTER INSERT ON memory_embeddings BEGIN
    UPDATE memory_vectors_version SET token = random() WHERE id = 1;
END;
CREATE TRIGGER memory_embeddings_updated AFTER UPDATE ON memory_embeddings BEGIN
    UPDATE memory_vectors_version SET token = random() WHERE id = 1;
END;
CREATE TRIGGER memory_embeddings_deleted AFTER DELETE ON memory_embeddings BEGIN
    UPDATE memory_vectors_version SET token = random() WHERE id = 1;
END;

-- Full-text index over message content (for a later search). Every append
-- flushes a small FTS5 segment in its transaction; `columnsize = 0` drops
-- the per-row size table (one page write less per message; bm25 then
-- measures a message from its text when a search ranks it).
CREATE VIRTUAL TABLE llm_messages_fts USING fts5 (
    content, content = 'llm_messages', content_rowid = 'seq', columnsize = 0
);
INSERT INTO llm_messages_fts (llm_messages_fts, rank) VALUES ('secure-delete', 1);

CREATE TRIGGER llm_messages_fts_insert AFTER INSERT ON llm_messages BEGIN
    INSERT INTO llm_messages_fts (rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER llm_messages_fts_delete AFTER DELETE ON llm_messages BEGIN
    INSERT INTO llm_messages_fts (llm_messages_fts, rowid, content)
    VALUES ('delete', old.seq, old.content);
END;
CREATE TRIGGER llm_messages_fts_update AFTER UPDATE OF content ON llm_messages BEGIN
    INSERT INTO llm_messages_fts (llm_messages_fts, rowid, content)
    VALUES ('delete', old.seq, old.content);
    INSERT INTO llm_messages_fts (rowid, content) VALUES (new.seq, new.content);
END;

-- Full-text index over memory key and value (memory.search with `query`).
CREATE VIRTUAL TABLE memories_fts USING fts5 (
    key, value, content = 'memories', content_rowid = 'seq'
);
INSERT INTO memories_fts (memories_fts, rank) VALUES ('secure-delete', 1);

CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, key, value) VALUES (new.seq, new.key, new.value);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, key, value)
    VALUES ('delete', old.seq, old.key, old.value);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF key, value ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, key, value)
    VALUES ('delete', old.seq, old.key, old.value);
    INSERT INTO memories_fts (rowid, key, value) VALUES (new.seq, new.key, new.value);
END;
