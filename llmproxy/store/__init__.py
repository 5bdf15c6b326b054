"""Persistent state: one store class per component behind a Protocol (protocols.py), the records
they exchange (records.py), the SQLite implementations (the embedded default) and the PostgreSQL
ones (several processes); backends.py picks one from the settings."""
