"""Reading a town's timeline files back (``towns/<dir>/timeline/*.js``) as the viewer would.

Each file is one line of JavaScript around one line of JSON; these helpers
drop the wrapper, decode the rows' interned strings and give every row's
time span, for the link checker (a ``#tick-<ms>`` permalink must land on a
row) and for tests that compare the timeline with the run's ticks.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from reportgen.report.timeline import unpack
from reportgen.report.timeline_files import PREFIX, SUFFIX

TICK, IDLE, HISTORY = 0, 1, 2


def parse(text: str) -> dict[str, Any]:
    """The JSON of one timeline file's text (checking its wrapper), a chunk's rows unpacked
    as the viewer unpacks them."""
    assert text.startswith(PREFIX) and text.endswith(SUFFIX), text[:80]
    data: dict[str, Any] = json.loads(text[len(PREFIX) : -len(SUFFIX)])
    return unpacked(data)


def unpacked(part: dict[str, Any]) -> dict[str, Any]:
    """A timeline file's JSON, a chunk's rows unpacked as the viewer unpacks them."""
    if part.get("part") == "chunk":
        part["rows"] = unpack(part["t0"], part["rows"])
    return part


def read_part(path: Path) -> dict[str, Any]:
    """The JSON of one timeline file (a chunk's rows unpacked)."""
    return parse(path.read_text(encoding="utf-8"))


def index_of(folder: Path) -> dict[str, Any]:
    return read_part(folder / "index.js")


def chunks_of(folder: Path) -> list[dict[str, Any]]:
    """Every chunk of the timeline in ``folder``, in order."""
    return [read_part(folder / c["href"]) for c in index_of(folder)["chunks"]]


def span(row: list[Any]) -> tuple[int, int]:
    """The epoch ms a row covers: a quiet run its ticks, any other row its time."""
    return (row[1], row[2]) if row[0] == IDLE else (row[1], row[1])


@lru_cache(maxsize=64)
def spans(folder: Path) -> tuple[tuple[int, int], ...]:
    """Every row's span, in order (cached: the link checker asks once per link)."""
    return tuple(span(r) for chunk in chunks_of(folder) for r in chunk["rows"])


def lands(folder: Path, ms: int) -> bool:
    """Whether a ``#tick-<ms>`` permalink lands on a row of the timeline in ``folder``."""
    return any(a <= ms <= b for a, b in spans(folder))


def actions(chunk: dict[str, Any], row: list[Any]) -> list[str]:
    """The action types of a tick row."""
    return [chunk["s"][a[0]] for a in row[3]] if row[0] == TICK else []


def inline_parts(html: str) -> list[dict[str, Any]]:
    """The timeline files a single-file bundle holds inline (index first)."""
    parts = []
    start = html.find("<script>" + PREFIX)
    while start >= 0:
        body = start + len("<script>" + PREFIX)
        end = html.index(SUFFIX + "</script>", body)
        parts.append(unpacked(json.loads(html[body:end])))
        start = html.find("<script>" + PREFIX, end)
    return parts


def inline_lands(html: str, ms: int) -> bool:
    """Whether ``#tick-<ms>`` lands on a row of the bundle's inline timeline."""
    rows = [r for p in inline_parts(html) if p["part"] == "chunk" for r in p["rows"]]
    return any(a <= ms <= b for a, b in map(span, rows))
