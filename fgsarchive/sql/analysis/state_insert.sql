-- Record one fingerprint of the archive-wide analysis products (after state_delete).
INSERT INTO analysis_state VALUES ($key, $value)
