SELECT value FROM schema_info WHERE key = $key
