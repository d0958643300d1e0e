-- The frames view of a published snapshot: pixels typed FLOAT[64] (row-major 8x8; SQL index
-- pixels[8*y + x + 1]); as sql/snapshot_parquet_view.sql otherwise.
CREATE OR REPLACE VIEW {view} AS
SELECT * REPLACE (pixels::FLOAT[64] AS pixels)
FROM read_parquet({glob}, hive_partitioning = true, hive_types = {'program': INTEGER}, union_by_name = {union_by_name})
WHERE {guard}
  AND file_name IN (SELECT file_name FROM files WHERE status = 'ingested')
