"""End-to-end proofs: databases that real ORMs wrote, migrated, then run by the same ORM."""
