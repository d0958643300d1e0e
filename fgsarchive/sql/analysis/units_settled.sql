-- The archive-wide products (lines, labels, variability ranks) now include every stored unit.
UPDATE analysis_units SET pending = false WHERE pending
