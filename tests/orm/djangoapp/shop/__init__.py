"""The shop app: models covering the field types whose storage differs between backends."""
