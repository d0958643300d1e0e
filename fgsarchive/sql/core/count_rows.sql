-- Template: {relation} is a validated identifier filled in by db.py (identifiers cannot be bound).
SELECT count(*) FROM {relation}
