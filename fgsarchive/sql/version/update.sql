-- Set a schema_info value that already exists (fgsarchive.migrate records each step's version).
UPDATE schema_info SET value = $value WHERE key = $key
