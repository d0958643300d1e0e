-- Order-independent checksum of the files table (everything but the ingest timestamp and paths).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(file_name, status, error, program, observation, visit, product, segment,
                             gs_id, data_start_mjd, data_end_mjd, n_frames, n_pointing, n_centroids,
                             file_bytes, header)), 0) AS checksum
FROM files
