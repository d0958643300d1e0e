-- Instrumental lines learned from the periodogram peaks of all guide stars.
SELECT line_id, frequency_hz, period_s, n_stars, n_peaks, frequency_min_hz, frequency_max_hz, median_power
FROM instrumental_lines
ORDER BY n_stars DESC, frequency_hz
