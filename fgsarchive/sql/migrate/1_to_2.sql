-- Migration step 1 -> 2 (fgsarchive.migrate): each fine-guide file's pixel noise model
-- var = noise_a + noise_b * max(signal, 0) [(DN/s)^2] and its source (err, frames, none), used to
-- weight the fits. Old rows get NULL: the fit then models the noise from the file's frames
-- (re-ingest with --force to take it from ERR). FIT_VERSION 2 refits their frames.
ALTER TABLE IF EXISTS files ADD COLUMN IF NOT EXISTS noise_a DOUBLE;
ALTER TABLE IF EXISTS files ADD COLUMN IF NOT EXISTS noise_b DOUBLE;
ALTER TABLE IF EXISTS files ADD COLUMN IF NOT EXISTS noise_source VARCHAR;
