-- What the derived events are computed from (telemetry.derive_events): the EDB records and the
-- files, counted and hashed, so `analyse` re-derives them only when one of these changed.
SELECT
    (SELECT count(*)::VARCHAR || ':' || coalesce(sum(hash(mnemonic, time_mjd, value, value_text, is_bracket)), 0)::VARCHAR
     FROM telemetry)
    || '|' ||
    (SELECT count(*)::VARCHAR || ':' || coalesce(sum(hash(file_name, program, observation, visit, exp_type, gs_id,
                                                          guide_period, data_start_mjd, data_end_mjd)), 0)::VARCHAR
     FROM files)
