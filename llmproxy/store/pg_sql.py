"""Small pieces every PostgreSQL store class uses: numbered query parameters, and the row count of
a command's status ("UPDATE 3")."""

from __future__ import annotations

from typing import Any


class Params:
    """Values of one query, each named by its position ($1, $2, ...) as it is added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def affected(status: str) -> int:
    """The number of rows a command touched, from asyncpg's status string ("DELETE 12" -> 12)."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0
