-- Order-independent checksum of the stored EDB records.
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(mnemonic, time_mjd, value, value_text, is_bracket)), 0) AS checksum
FROM telemetry
