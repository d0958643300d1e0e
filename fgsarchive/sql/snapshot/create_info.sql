-- The record of a published snapshot (fgsarchive/snapshot.py): schema_version, archive_id, the
-- absolute path it was published for (path, realpath), its parts folder, published_at.
CREATE TABLE archive_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)
