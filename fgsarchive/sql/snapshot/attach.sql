-- Attach a new snapshot file for writing under an alias (snapshot.publish); the path is a quoted
-- literal filled by fgsarchive/snapshot.py.
ATTACH {path} AS {alias}
