"""Shared state for a deployment of several gateway processes: Redis behind small classes."""
