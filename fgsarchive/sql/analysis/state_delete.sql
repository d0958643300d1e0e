-- Forget one fingerprint of the archive-wide analysis products (they are recomputed next time).
DELETE FROM analysis_state WHERE key = $key
