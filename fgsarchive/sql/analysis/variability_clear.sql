-- Drop every variability row (the table is rewritten, re-ranked, whole).
DELETE FROM variability
