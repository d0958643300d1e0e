-- Order-independent checksum of the centroids dataset (every column, hive program included): equal
-- archives have equal checksums (fgsarchive.maintenance.archive_checksums, scripts/killresume.py).
SELECT count(*) AS n_rows, coalesce(bit_xor(hash(t)), 0) AS checksum
FROM centroids AS t
