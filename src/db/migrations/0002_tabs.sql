-- Browser tabs. A tab is named by the caller (`id`), may be bound to a chat
-- thread, and caches its current visit so the shell draws it without a join.
-- `thread_id` is not a foreign key: threads.delete detaches tabs itself and
-- counts them (`stats.tabs_detached`).
CREATE TABLE tabs (
    seq                INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id                 TEXT NOT NULL UNIQUE,
    thread_id          TEXT,
    current_history_id INTEGER,              -- history row of the current visit
    current_url        TEXT,
    current_title      TEXT,
    last_visited_at    INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX tabs_by_updated ON tabs (updated_at, seq);
CREATE INDEX tabs_by_thread ON tabs (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX tabs_by_history ON tabs (current_history_id) WHERE current_history_id IS NOT NULL;
