-- Writes of chunk embeddings bump `chunk_vectors_version` once per
-- transaction in the library's code (knowledge::documents::
-- bump_vectors_version: documents.upsert, the documents_embed job, bundle
-- import) instead of once per row: the per-row trigger ran an UPDATE and a
-- statement journal for every vector of a batch (issue 14, the embed job's
-- overhead). Deletes keep their trigger: they come from cascades
-- (documents.delete, privacy.forget_site, a re-upsert's old chunks) that
-- the library does not see row by row.
DROP TRIGGER chunk_embeddings_inserted;
DROP TRIGGER chunk_embeddings_updated;
