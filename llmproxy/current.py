"""A value the gateway swaps while it runs, held in one small object that its one owner sets.

The registry (swapped by scheduler.RegistryUpdater after a refresh, a rollback or a file change)
and the settings carrying the vault's provider keys (swapped by access.Access after a reload) are
the only such values. Everything else the Gateway holds is built once and never replaced. A reader
takes `.current` at the moment it needs the value: a swap is one assignment, so a request sees
either the old value or the new one, never a mix.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Current(Generic[T]):
    """The value in use now; `set` replaces it (its owner only)."""

    __slots__ = ("current",)

    def __init__(self, value: T) -> None:
        self.current = value

    def get(self) -> T:
        return self.current

    def set(self, value: T) -> None:
        self.current = value

    def __repr__(self) -> str:
        return f"Current({self.current!r})"
