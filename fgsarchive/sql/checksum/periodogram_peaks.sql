-- Order-independent checksum of the periodogram peaks (key columns; floats rounded).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(program, observation, visit, gs_id, grouped_by, parameter, rank,
                             round(frequency_hz, 9), round(power, 6), instrumental)), 0) AS checksum
FROM periodogram_peaks
