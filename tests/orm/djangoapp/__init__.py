"""A minimal Django project (settings in code, see `run.py`) with one app, `shop`."""
