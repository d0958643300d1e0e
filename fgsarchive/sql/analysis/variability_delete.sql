-- Variability ranks are recomputed for all guide stars at once.
DELETE FROM variability
