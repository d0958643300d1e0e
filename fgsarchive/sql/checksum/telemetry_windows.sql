-- Order-independent checksum of the EDB windows fetched (everything but the fetch time).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(mnemonic, round(start_mjd, 8), round(end_mjd, 8), n_rows)), 0) AS checksum
FROM telemetry_windows
