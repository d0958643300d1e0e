-- A single-analysis command replaced results of one program (or all): its units are no longer
-- what `fgsarchive analyse` stored, so the next analyse recomputes them.
DELETE FROM analysis_units WHERE $program IS NULL OR program = $program
