-- Profile-wide facts: when the profile was created and by which library.
-- Later domains add their own migrations; this one only marks the file as a
-- hydra profile so that a foreign SQLite file is never adopted silently.
PRAGMA application_id = 1213809746; -- 0x48594452, "HYDR"

CREATE TABLE profile_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

INSERT INTO profile_meta (key, value)
VALUES ('created_at', CAST(CAST(unixepoch('subsec') * 1000 AS INTEGER) AS TEXT));
