-- One fingerprint of the archive-wide analysis products (analysis_state).
SELECT value FROM analysis_state WHERE key = $key
