-- Remove the derived events of these kinds before deriving them again.
DELETE FROM events WHERE list_contains($kinds, kind)
