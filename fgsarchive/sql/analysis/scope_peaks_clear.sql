-- A program with no stored analysis unit: its visit peaks go before its units are stored.
DELETE FROM periodogram_peaks
WHERE grouped_by = 'visit' AND ($program IS NULL OR program = $program)
