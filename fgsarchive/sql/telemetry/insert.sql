-- Add EDB records (new_rows) not stored yet; a record seen twice is stored once, and is a bracket
-- record only if every reply had it as one.
INSERT INTO telemetry (mnemonic, time_mjd, value, value_text, is_bracket)
SELECT n.mnemonic, n.time_mjd, n.value, n.value_text, n.is_bracket
FROM (
    SELECT mnemonic, time_mjd, any_value(value) AS value, any_value(value_text) AS value_text,
        bool_and(is_bracket) AS is_bracket
    FROM new_rows
    GROUP BY mnemonic, time_mjd
) AS n
ANTI JOIN (
    SELECT mnemonic, time_mjd FROM telemetry
    WHERE mnemonic IN (SELECT DISTINCT mnemonic FROM new_rows)
        AND time_mjd BETWEEN (SELECT min(time_mjd) FROM new_rows) AND (SELECT max(time_mjd) FROM new_rows)
) AS t ON t.mnemonic = n.mnemonic AND t.time_mjd = n.time_mjd
