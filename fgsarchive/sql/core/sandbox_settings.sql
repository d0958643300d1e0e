-- The sandbox settings in force on this connection's DuckDB instance (db.Database._sandbox).
SELECT current_setting('enable_external_access') AS external_access,
       current_setting('allowed_directories') AS allowed_directories
