-- Chat threads (HydraFlow). Created before the rest of HydraFlow's tables
-- because tabs and jobs refer to threads by id (not by foreign key: a thread
-- delete detaches them itself and reports how many it detached).
CREATE TABLE llm_threads (
    seq                       INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id                        TEXT NOT NULL UNIQUE,
    title                     TEXT,
    description               TEXT,
    origin                    TEXT,
    metadata                  TEXT NOT NULL DEFAULT '{}',  -- JSON object
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    last_user_message_at      INTEGER,
    last_assistant_message_at INTEGER
) STRICT;

-- threads.list: newest updated_at first, optionally by origin.
CREATE INDEX llm_threads_by_updated ON llm_threads (updated_at, seq);
CREATE INDEX llm_threads_by_origin ON llm_threads (origin, updated_at, seq);
