-- True when the snapshot is read at the place it was published for, else a one-line error:
-- a moved or copied archive must not read Parquet parts of another place. The paths and the message
-- are quoted literals filled by fgsarchive/snapshot.py.
(SELECT CASE WHEN count(*) > 0 THEN true ELSE error({message}) END
 FROM duckdb_databases() WHERE path IN ({paths}))
