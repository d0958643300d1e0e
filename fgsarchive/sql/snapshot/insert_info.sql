-- The snapshot's record: $keys and $values, two lists of one length.
INSERT INTO archive_info SELECT unnest($keys::VARCHAR[]), unnest($values::VARCHAR[])
