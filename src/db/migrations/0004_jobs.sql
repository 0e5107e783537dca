-- The jobs ledger: the source of truth for every long operation (bundle
-- export/import, patch apply, checks, history import, the shell's focused
-- crawl). A row is written `queued` before a worker sees it, moves to
-- `running`, and ends `succeeded`, `failed` or `cancelled`; the worker pool
-- only executes what this table says. `thread_id` / `task_id` are plain
-- links, not foreign keys: deleting a thread or task detaches its jobs itself
-- and counts them.
CREATE TABLE jobs (
    seq           INTEGER PRIMARY KEY,  -- insertion order: breaks ties in lists
    id            TEXT NOT NULL UNIQUE,
    type          TEXT NOT NULL,
    status        TEXT NOT NULL
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    payload       TEXT NOT NULL,        -- JSON: the request that queued the job
    result        TEXT,                 -- JSON, set when the job succeeded
    error_code    TEXT,                 -- set when the job failed or was cancelled
    error_message TEXT,
    thread_id     TEXT,
    task_id       TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER
) STRICT;

-- jobs.list pages newest first (created_at, seq). A page is merged from
-- one ordered index range per status (or per status and type), so two
-- indexes serve every filter, and each status change updates only these two.
CREATE INDEX jobs_by_status ON jobs (status, created_at, seq);
CREATE INDEX jobs_by_type ON jobs (type, status, created_at, seq);
-- threads.delete / task deletes detach their jobs.
CREATE INDEX jobs_by_thread ON jobs (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX jobs_by_task ON jobs (task_id) WHERE task_id IS NOT NULL;

-- The latest progress report of a job (jobs.progress). Kept apart from
-- `jobs` so that frequent progress updates rewrite a small row, and a job
-- that never reports progress costs no row at all.
CREATE TABLE job_status (
    job_seq         INTEGER PRIMARY KEY REFERENCES jobs (seq) ON DELETE CASCADE,
    phase           TEXT,
    steps_total     INTEGER,
    steps_completed INTEGER,
    message         TEXT,
    eta_s           REAL,
    updated_at      INTEGER NOT NULL
) STRICT;
