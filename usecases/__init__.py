"""What users and the fleet do, one function each (upload, ask, cancel, answer, ingest, ...),
with the rules they follow; routes and actors only translate to and from these."""
