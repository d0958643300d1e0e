-- Order-independent checksum of the variability ranks (key columns; floats rounded).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(gs_id, n_frames, n_visits, rank, round(score, 6),
                             round(rms_ppm, 3))), 0) AS checksum
FROM variability
