"""Persistent state behind one interface; SQLite is the embedded default."""
