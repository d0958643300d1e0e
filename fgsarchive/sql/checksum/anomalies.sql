-- Order-independent checksum of the anomalies (key columns; floats rounded so float noise cannot differ).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(program, observation, visit, file_name, gs_id, kind,
                             round(start_mjd, 9), round(end_mjd, 9), parameters,
                             round(amplitude, 6), round(significance, 3))), 0) AS checksum
FROM anomalies
