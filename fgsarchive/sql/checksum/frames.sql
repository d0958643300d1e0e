-- Order-independent checksum of every archived frame.
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(file_name, frame, time_mjd, flux, pixels)), 0) AS checksum
FROM frames
