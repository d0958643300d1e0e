-- The frames view: pixels typed FLOAT[64] (row-major 8x8; SQL index pixels[8*y + x + 1]).
-- {glob} is filled by db.py with a quoted path literal (DDL cannot take bound parameters);
-- {union_by_name} with true or false (true only when the parts do not all share one schema).
CREATE OR REPLACE TEMP VIEW {view} AS
SELECT * REPLACE (pixels::FLOAT[64] AS pixels)
FROM read_parquet({glob}, hive_partitioning = true, hive_types = {'program': INTEGER}, union_by_name = {union_by_name})
