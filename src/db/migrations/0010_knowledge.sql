-- The knowledge store (spec §10): documents, their chunks, and chunk
-- embeddings. There is deliberately no full-text table: text search runs
-- over `document_chunks` itself (see src/knowledge/text_index.rs), so a
-- privacy delete has no index segment to scrub and nothing of a deleted
-- page survives in any other table.

-- One row per exact url. `seq` is the insertion order that breaks search
-- and list ties; an upsert of an existing url keeps its row (and `seq`).
CREATE TABLE documents (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    url            TEXT NOT NULL UNIQUE,
    host           TEXT,            -- as history.host (lower-cased, punycode)
    rev_host       TEXT,            -- as history.rev_host: host filters are one range
    title          TEXT,
    source         TEXT NOT NULL CHECK (source IN ('crawl', 'visit', 'import', 'user')),
    content_type   TEXT,
    text           TEXT NOT NULL,
    text_chars     INTEGER NOT NULL,
    content_sha256 TEXT NOT NULL,
    chunk_chars    INTEGER,         -- the window the library cut with; null for caller chunks
    fetched_at     INTEGER,
    metadata       TEXT NOT NULL DEFAULT '{}',
    job_id         TEXT,            -- plain links: the triggers below detach them
    thread_id      TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- documents.list newest updated first; host filters and deletes.
CREATE INDEX documents_by_updated ON documents (updated_at, seq);
CREATE INDEX documents_by_host ON documents (rev_host, seq);
CREATE INDEX documents_by_thread ON documents (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX documents_by_job ON documents (job_id) WHERE job_id IS NOT NULL;

-- Deleting a thread or pruning a job leaves its documents, unlinked.
CREATE TRIGGER documents_detach_thread AFTER DELETE ON llm_threads BEGIN
    UPDATE documents SET thread_id = NULL WHERE thread_id = old.id;
END;
CREATE TRIGGER documents_detach_job AFTER DELETE ON jobs BEGIN
    UPDATE documents SET job_id = NULL WHERE job_id = old.id;
END;

-- The chunks of a document, in order. `start`/`end` are Unicode-scalar
-- offsets into the document text, null for chunks the caller supplied.
CREATE TABLE document_chunks (
    seq          INTEGER PRIMARY KEY,
    document_seq INTEGER NOT NULL REFERENCES documents (seq) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    text         TEXT NOT NULL,
    start        INTEGER,
    end          INTEGER,
    UNIQUE (document_seq, idx)
) STRICT;

-- One embedding per chunk and model (little-endian f32, `dim` numbers).
CREATE TABLE chunk_embeddings (
    seq       INTEGER PRIMARY KEY,
    chunk_seq INTEGER NOT NULL REFERENCES document_chunks (seq) ON DELETE CASCADE,
    model     TEXT NOT NULL,
    dim       INTEGER NOT NULL CHECK (dim BETWEEN 1 AND 4096),
    vector    BLOB NOT NULL CHECK (length(vector) = 4 * dim),
    UNIQUE (chunk_seq, model)
) STRICT;

-- Vector search reads one model's vectors in insertion order.
CREATE INDEX chunk_embeddings_by_model ON chunk_embeddings (model, dim, seq);

-- Changes whenever chunk embeddings change, so cached vector codes are
-- used only while they match the database (as memory_vectors_version).
CREATE TABLE chunk_vectors_version (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    token INTEGER NOT NULL
) STRICT;
INSERT INTO chunk_vectors_version (id, token) VALUES (1, random());

CREATE TRIGGER chunk_embeddings_inserted AFTER INSERT ON chunk_embeddings BEGIN
    UPDATE chunk_vectors_version SET token = random() WHERE id = 1;
END;
CREATE TRIGGER chunk_embeddings_updated AFTER UPDATE ON chunk_embeddings BEGIN
    UPDATE chunk_vectors_version SET token = random() WHERE id = 1;
END;
CREATE TRIGGER chunk_embeddings_deleted AFTER DELETE ON chunk_embeddings BEGIN
    UPDATE chunk_vectors_version SET token = random() WHERE id = 1;
END;
