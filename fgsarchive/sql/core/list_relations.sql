SELECT table_name AS name FROM duckdb_tables() WHERE NOT internal
UNION
SELECT view_name AS name FROM duckdb_views() WHERE NOT internal
ORDER BY name
