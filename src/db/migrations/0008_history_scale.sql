-- Issue 9 (scale): history text search leaves the write path.
--
-- The trigram FTS5 index `history_fts` was kept row by row, with
-- `secure-delete`, inside every visit's transaction: each visit paid for ~100
-- trigram postings, and each deleted row edited pages of doclists a million
-- entries long (~4 ms per row). History text search is now answered by an
-- in-memory index of the distinct url/title texts (`src/search/substring.rs`,
-- rebuilt in the background from this table at open; nothing of it is ever
-- on disk) plus an exact scan of what it does not cover yet. Dropping the
-- table frees its pages, which `secure_delete` zeroes.
DROP TRIGGER IF EXISTS history_fts_after_insert;
DROP TRIGGER IF EXISTS history_fts_after_delete;
DROP TRIGGER IF EXISTS history_fts_after_update;
DROP TABLE IF EXISTS history_fts;
