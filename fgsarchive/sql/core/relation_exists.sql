-- Whether a table or view named $name exists on this connection.
SELECT count(*) > 0
FROM (
    SELECT table_name AS name FROM duckdb_tables()
    UNION ALL
    SELECT view_name AS name FROM duckdb_views()
)
WHERE name = $name
