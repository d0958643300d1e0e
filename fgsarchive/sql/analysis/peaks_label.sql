-- Label every peak with the instrumental line it sits on (Arrow table labels: frequency_hz,
-- line_id, one row per line with its [lo_hz, hi_hz] window), else NULL / false; a peak the
-- pointing explains (column pointing) is instrumental too.
UPDATE periodogram_peaks AS p
SET line_id = (
        SELECT l.line_id FROM labels AS l
        WHERE p.frequency_hz BETWEEN l.lo_hz AND l.hi_hz
        ORDER BY abs(p.frequency_hz - l.frequency_hz)
        LIMIT 1
    ),
    instrumental = coalesce(p.pointing, false) OR EXISTS (
        SELECT 1 FROM labels AS l WHERE p.frequency_hz BETWEEN l.lo_hz AND l.hi_hz
    )
