-- The persistent views of the open database (a published snapshot has them; a writer database not).
SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary AND database_name = current_database()
