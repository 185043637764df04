"""The app as deployed on SQLite (release 1): only its first migration.

`migrations/` is the app's history at release 2, which adds a migration that drops the
named constraints; release 1 is that history cut before it (MIGRATION_MODULES in run.py).
"""
