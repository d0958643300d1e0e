-- Drop a snapshot's record from a database that is becoming a writer database (migrate).
DROP TABLE IF EXISTS archive_info
