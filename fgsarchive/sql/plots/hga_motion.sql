-- The HGA_motion flag of the pointing table for the given fine-guide files, in time order
-- (the events plot draws the spans where it says the antenna was moving).
SELECT time_mjd, hga_motion FROM pointing WHERE list_contains($files, file_name)
ORDER BY time_mjd
