-- A job's labels: its name and its tags (a JSON array of strings, each [A-Za-z0-9_.-]{1,40}),
-- given at submission; null for jobs from before labels.
ALTER TABLE jobs ADD COLUMN name TEXT;
ALTER TABLE jobs ADD COLUMN tags TEXT;
