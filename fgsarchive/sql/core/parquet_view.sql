-- Template for the view over one Parquet dataset; {view} and {glob} are filled by db.py with a
-- validated identifier and a quoted path literal (DDL cannot take bound parameters);
-- {union_by_name} with true or false (true only when the parts do not all share one schema).
CREATE OR REPLACE TEMP VIEW {view} AS
SELECT * FROM read_parquet({glob}, hive_partitioning = true, hive_types = {'program': INTEGER}, union_by_name = {union_by_name})
