-- Drop one view publishing added (migrate restores a snapshot as the writer database).
DROP VIEW {view}
