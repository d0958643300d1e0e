-- First incremental analyse of a program (or all): variability bins without unit fingerprints go.
DELETE FROM variability_bins WHERE $program IS NULL OR program = $program
