-- The preset a job was submitted from (null for a plain spec).
ALTER TABLE jobs ADD COLUMN preset TEXT;
