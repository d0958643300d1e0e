INSERT INTO schema_info SELECT $key, $value WHERE NOT EXISTS (SELECT 1 FROM schema_info WHERE key = $key)
