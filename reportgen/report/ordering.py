"""The order every list of episodes and findings has on the site: open ones first, then newest.

What someone opening a report wants first is what is still wrong, and among
the rest what happened last. Every page lists episodes this way (the index,
a town's groups, an entity's episodes, the single-file bundle), and the
index's lists of resolved and not-rebuilt episodes newest first. Findings
keep their severity first (a town's worst finding is its verdict's reason
and heads the list), then open ones, then newest. Ties fall back on ids, so
the order is total and builds stay byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from reportgen.report.verdicts import FindingRow, severity_rank
from reportgen.town import clock


class Dated(Protocol):
    """An episode as the index's history lists know it: when it began and was last seen."""

    @property
    def id(self) -> str: ...

    @property
    def first_at(self) -> str: ...

    @property
    def last_at(self) -> str: ...


class Episodic(Dated, Protocol):
    """An episode row: also whether it was still open at the window's end."""

    @property
    def open_at_end(self) -> bool: ...


E = TypeVar("E", bound=Episodic)
D = TypeVar("D", bound=Dated)


def _newest(first_at: str, last_at: str) -> tuple[float, float]:
    """A sort key putting the latest start first, then the latest end (bad times last)."""
    first, last = clock.try_ms(first_at), clock.try_ms(last_at)
    return (-first if first == first else float("inf"), -last if last == last else float("inf"))


def open_then_newest(rows: Iterable[E]) -> list[E]:
    """Episodes open at the window's end first, then the newest first (by start, then end)."""
    return sorted(rows, key=lambda r: (not r.open_at_end, *_newest(r.first_at, r.last_at), r.id))


def newest_first(rows: Iterable[D]) -> list[D]:
    """Episodes known only from the history (resolved, not rebuilt): the newest first."""
    return sorted(rows, key=lambda r: (*_newest(r.first_at, r.last_at), r.id))


def findings_order(rows: Iterable[FindingRow]) -> list[FindingRow]:
    """Findings that count first, by severity, then open ones, then the newest first."""
    return sorted(
        rows,
        key=lambda f: (
            f.expected,
            severity_rank(f.severity),
            not f.open_at_end,
            *_newest(f.first_at, f.last_at),
            f.kind,
            f.id,
        ),
    )
