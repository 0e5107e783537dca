-- Repositories an agent may read, patch or check (`repo.*`). The root is
-- stored canonical so every later path check starts from the real directory.
-- `allowed_ops` (JSON array of "read" | "write" | "run_checks") gates each
-- operation; `check_command` is the one argv `repo.run_checks` may run.
CREATE TABLE repos (
    seq           INTEGER PRIMARY KEY,  -- insertion order: `repo.list` order
    id            TEXT NOT NULL UNIQUE,
    root_path     TEXT NOT NULL,
    allowed_ops   TEXT NOT NULL,        -- JSON array
    check_command TEXT,                 -- JSON array of strings, or NULL
    max_files     INTEGER NOT NULL,
    max_lines     INTEGER NOT NULL,
    max_bytes     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- The change ledger (`repo.changes`): one row per applied patch or check
-- run, so a user can see what an agent did to a tree and when. `repo_id` is
-- not a foreign key: `repo.unregister` deletes the rows itself.
CREATE TABLE repo_changes (
    seq        INTEGER PRIMARY KEY,     -- insertion order: breaks ties
    id         TEXT NOT NULL UNIQUE,
    repo_id    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('apply_patch', 'run_checks')),
    job_id     TEXT NOT NULL,
    summary    TEXT,
    files      TEXT NOT NULL,           -- JSON array
    stats      TEXT NOT NULL,           -- JSON object
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX repo_changes_by_repo ON repo_changes (repo_id, created_at, seq);
