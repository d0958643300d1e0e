-- Attach the public snapshot read-only to a fresh in-memory instance (db._connect), so each open
-- reads the file's current inode; the path is a quoted literal.
ATTACH {path} AS {alias} (READ_ONLY)
