-- Tables and views visible on a connection (TEMP Parquet views included).
SELECT table_name AS name FROM duckdb_tables()
UNION
SELECT view_name AS name FROM duckdb_views() WHERE NOT internal
