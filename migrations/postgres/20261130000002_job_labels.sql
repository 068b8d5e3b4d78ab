-- A job's labels (as SQLite's 20261130000007): its name and its tags (a JSON array of strings,
-- each [A-Za-z0-9_.-]{1,40}), given at submission.
ALTER TABLE jobs ADD COLUMN name TEXT;
ALTER TABLE jobs ADD COLUMN tags TEXT;
