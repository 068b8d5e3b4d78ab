-- Where a running job stands beyond its counter (a search's current bracket), as JSON.
ALTER TABLE jobs ADD COLUMN progress_detail TEXT;
