"""The simulation's agenda: a priority queue of things that happen at a simulated time.

Users, agent processes, the container and GitHub all act *between* ticks by
scheduling callables here. Ties are broken by insertion order (``seq``), so a
run never depends on comparing callables or on hash order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

Task = Callable[[int], None]
"""Something that happens at simulated time ``ms`` (it receives that time)."""


class Agenda:
    """A min-heap of ``(time_ms, seq, task)``."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Task]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, ms: int, task: Task) -> None:
        """Schedule ``task`` to run at ``ms``."""
        self._seq += 1
        heapq.heappush(self._heap, (ms, self._seq, task))

    def next_ms(self) -> int | None:
        """Time of the earliest pending task, or ``None`` when nothing is scheduled."""
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[int, Task]:
        ms, _, task = heapq.heappop(self._heap)
        return ms, task
