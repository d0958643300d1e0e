-- Order-independent checksum of the derived events (scripts/killresume.py: the whole chain).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(kind, start_mjd, end_mjd, program, file_name, detail)), 0) AS checksum
FROM events
