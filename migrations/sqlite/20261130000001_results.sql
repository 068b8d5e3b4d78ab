-- One table for every job's result rows: a JSON document per (family, index). Replaces the
-- per-kind tables, whose rows move over unchanged (bound checks get their index in the list of
-- bounds: arpit2019, exact_tail, chernoff).
CREATE TABLE results (
    job_id  TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    family  TEXT    NOT NULL,        -- layer | bound_check | sweep_point
    idx     INTEGER NOT NULL,
    data    TEXT    NOT NULL,
    PRIMARY KEY (job_id, family, idx)
);

INSERT INTO results (job_id, family, idx, data)
    SELECT job_id, 'layer', layer, data FROM layer_stats;
INSERT INTO results (job_id, family, idx, data)
    SELECT job_id, 'bound_check',
           CASE bound WHEN 'arpit2019' THEN 0 WHEN 'exact_tail' THEN 1 WHEN 'chernoff' THEN 2 ELSE 3 END,
           data
    FROM bound_checks;
INSERT INTO results (job_id, family, idx, data)
    SELECT job_id, 'sweep_point', point, data FROM sweep_points;

DROP TABLE layer_stats;
DROP TABLE bound_checks;
DROP TABLE sweep_points;
