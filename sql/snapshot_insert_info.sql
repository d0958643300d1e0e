INSERT INTO archive_info VALUES ($key, $value)
