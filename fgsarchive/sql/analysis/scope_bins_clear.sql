-- A program with no stored analysis unit: its variability bins go before its units are stored.
DELETE FROM variability_bins WHERE $program IS NULL OR program = $program
