-- Whether the open database has fgsarchive's schema_info table (0 for a new, empty file).
SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_info' AND NOT internal
