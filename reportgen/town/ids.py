"""Where new ids come from.

Upstream mints ``crypto.randomUUID()``. A replay or a simulation must mint the
same ids every time, so the engine takes an id source: a counter in the
format upstream's golden runs used, or UUIDs derived from a namespace and a
persisted counter (so a replay that starts from a checkpoint continues the
same sequence).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Protocol


class IdSource(Protocol):
    def new_id(self) -> str:
        """Return a fresh 36-character id."""
        ...


class CounterIds:
    """``00000000-0000-4000-8000-<n as 12 hex digits>``, counting from ``start``."""

    def __init__(self, start: int = 1) -> None:
        self.next = start

    def new_id(self) -> str:
        n = self.next
        self.next += 1
        return f"00000000-0000-4000-8000-{n:012x}"


class DerivedIds:
    """Version-4-shaped UUIDs derived from ``sha256(namespace:n)``: random-looking, reproducible.

    The whole state is ``(namespace, next)``, which the town stores, so a run
    resumed from a checkpoint mints exactly the ids the original run minted.
    """

    def __init__(self, namespace: str, start: int = 0) -> None:
        self.namespace = namespace
        self.next = start

    def new_id(self) -> str:
        digest = hashlib.sha256(f"{self.namespace}:{self.next}".encode()).digest()
        self.next += 1
        return str(uuid.UUID(bytes=digest[:16], version=4))
