"""Persistent state: one store class per component behind a Protocol (protocols.py), the records
they exchange (records.py), and the SQLite implementations, the embedded default."""
