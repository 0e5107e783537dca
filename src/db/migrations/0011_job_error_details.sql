-- A failed job keeps its error whole: the `details` of the error it ended
-- with (e.g. `{"field": "path"}`), as a JSON object; NULL when it had none.
ALTER TABLE jobs ADD COLUMN error_details TEXT;
