-- A persistent view of a published snapshot over one Parquet dataset (absolute glob), keeping
-- only the parts of files this snapshot's `files` calls ingested (parts renamed in after the
-- snapshot are not seen: frames agree with files). The guard is sql/snapshot_guard.sql.
CREATE OR REPLACE VIEW {view} AS
SELECT * FROM read_parquet({glob}, hive_partitioning = true, hive_types = {'program': INTEGER}, union_by_name = {union_by_name})
WHERE {guard}
  AND file_name IN (SELECT file_name FROM files WHERE status = 'ingested')
