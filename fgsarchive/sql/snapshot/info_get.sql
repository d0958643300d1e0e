-- The snapshot's record (archive id, published path, schema version) as key/value rows.
SELECT key, value FROM archive_info
