-- Result rows are stored without compression: the large ones (a unit's raw ratios, base64 of
-- doubles) do not compress, and PostgreSQL's attempt to compress each one cost the database about
-- as much CPU as the rest of the unit's writes (bench/README.md, "Scale-out"). Out-of-line
-- storage (TOAST) is kept.
ALTER TABLE results ALTER COLUMN data SET STORAGE EXTERNAL;
