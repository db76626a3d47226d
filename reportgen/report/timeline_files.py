"""A town's timeline as files: chunks of at most :data:`CHUNK_BYTES` plus an index.

The files sit in ``towns/<dir>/timeline/`` and are ``<script>`` files (so the
viewer loads them from ``file://``, where a page may not fetch JSON): each is
one line of JavaScript around one line of JSON::

    (window.reportgenTimeline = window.reportgenTimeline || []).push(
    {...}
    );

The JSON is the town's tick twin (read it by dropping the first and last
lines). ``index.js`` holds the chunks' time ranges and row counts, the shared
tables (entities with labels and hrefs, episodes) and the facets with counts
(actions, events, sources, invariants, entities, findings) and the file
the town was loaded from (``replay_db``, what ``reportgen replay --db`` takes to
show a tick in full when its row had to leave items out); each
``chunk-<n>.js`` holds its rows, packed (:func:`~reportgen.report.timeline.unpack`
reads them back), and its own string table. The town page shows
a static summary of the same (:class:`TimelineSummary`) for readers without
JavaScript, with links to these files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reportgen.diagnose.episodes import to_ms
from reportgen.report.format import clean, fmt_time, script_json
from reportgen.report.timeline import (
    HISTORY,
    IDLE,
    MAX_ITEMS,
    TICK,
    Encoder,
    Href,
    Packer,
    Source,
    Strings,
    Tables,
    row_types,
    sources,
)
from reportgen.report.town_data import TownData
from reportgen.report.views_shared import town_dir

#: A chunk's budget in bytes (the site's rule is at most 500 KB per file: this leaves room).
CHUNK_BYTES = 400_000
#: The folder of a town's timeline files, beside its page.
FOLDER = "timeline"
#: How a timeline file starts and ends around its one line of JSON.
#: Bytes of a chunk file besides its rows and strings (prefix, keys, suffix).
OVERHEAD = 200
PREFIX = "(window.reportgenTimeline = window.reportgenTimeline || []).push(\n"
SUFFIX = "\n);\n"


@dataclass(frozen=True)
class TypeCount:
    """One facet value of the timeline and how often it occurs."""

    name: str
    count: int


@dataclass(frozen=True)
class TimelineFile:
    """One data file of the timeline (site-relative ``href``) and its size."""

    href: str
    label: str
    bytes: int


@dataclass(frozen=True)
class TimelineSummary:
    """The timeline in numbers: what the town page shows without JavaScript."""

    rows: int
    ticks: int
    active_ticks: int
    quiet_rows: int
    history_rows: int
    first_label: str
    last_label: str
    actions: list[TypeCount]
    events: list[TypeCount]
    history: list[TypeCount]
    #: ``timeline/index.js`` first, then the chunks.
    files: list[TimelineFile]

    @property
    def index_href(self) -> str:
        return self.files[0].href if self.files else ""


@dataclass(frozen=True)
class Timeline:
    """The timeline's files (``(site path, text)``) and their summary."""

    files: list[tuple[str, str]]
    summary: TimelineSummary


def script_file(payload: Mapping[str, Any]) -> str:
    """A timeline file's text: the JSON (safe inside ``<script>``) pushed to the viewer."""
    return PREFIX + script_json(payload) + SUFFIX


def _chunks(data: TownData, tables: Tables, budget: int) -> list[dict[str, Any]]:
    """The rows cut into chunks whose files stay under ``budget`` bytes: each chunk's
    ``rows`` as encoded (for the index and facets), ``packed`` and ``t0`` as written."""
    chunks: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    packed: list[list[Any]] = []
    strings, size, pack = Strings(), OVERHEAD, Packer()
    for src in sources(data):
        known = len(strings.table)
        row, grown = _encode(data, tables, strings, src, budget - OVERHEAD, pack)
        if rows and size + grown > budget:
            strings.undo(known)  # its strings go with it, or this chunk would outgrow its budget
            chunks.append({"t0": pack.t0, "s": strings.table, "rows": rows, "packed": packed})
            strings, rows, packed, size, pack = Strings(), [], [], OVERHEAD, Packer()
            row, grown = _encode(data, tables, strings, src, budget - OVERHEAD, pack)
        rows.append(row)
        packed.append(pack(row))
        size += grown
    if rows:
        chunks.append({"t0": pack.t0, "s": strings.table, "rows": rows, "packed": packed})
    return chunks


def _encode(
    data: TownData, tables: Tables, strings: Strings, src: Source, room: int, pack: Packer
) -> tuple[list[Any], int]:
    """A row and the bytes it adds to its chunk, packed by ``pack``, within ``room``
    (a chunk of its own).

    A tick that holds too much for a chunk even at :data:`MAX_ITEMS` per kind keeps
    half as many, and so on: its row says how many of each it left out.
    """
    known, mark, limit = len(strings.table), tables.mark(), MAX_ITEMS
    while True:
        row = Encoder(data, tables, strings, limit).row(src)
        grown = _grown(pack.peek(row), strings, known)
        if grown <= room or limit == 0:
            return row, grown
        strings.undo(known)
        tables.undo(mark)
        limit //= 2


def _grown(row: list[Any], strings: Strings, known: int) -> int:
    """Bytes a row adds to its chunk's file: itself and the strings it added to the table."""
    added = strings.table[known:]
    return len(script_json(row).encode()) + sum(len(script_json(t).encode()) + 1 for t in added) + 1


def _span(row: list[Any]) -> tuple[int, int]:
    """The first and last epoch ms a row covers (a quiet run covers its ticks)."""
    return (row[1], row[2]) if row[0] == IDLE else (row[1], row[1])


def _facets(data: TownData, srcs: list[Source], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Facet values with counts, for the viewer's filters (and the summary)."""
    counts: Counter[tuple[str, str]] = Counter()
    for src in srcs:
        counts.update(row_types(src, data.run.ticks))
    invariants: Counter[int] = Counter()
    entities: Counter[int] = Counter()
    for chunk in chunks:
        for row in chunk["rows"]:
            invariants.update(_row_invariants(row))
            entities.update(_row_entities(row))
    facet = {
        name: sorted([v, n] for (f, v), n in counts.items() if f == name)
        for name in ("action", "event", "source")
    }
    return {
        **facet,
        "invariant": sorted([k, n] for k, n in invariants.items()),
        "entity": sorted([k, n] for k, n in entities.items()),
    }


def _row_invariants(row: list[Any]) -> set[int]:
    if row[0] == TICK:
        return {v[0] for v in row[5]} | {n for n, _ in _left(row)[3]}
    return set(row[4]) if row[0] == IDLE else set()


def _left(row: list[Any]) -> list[list[list[int]]]:
    """What a tick's row left out (see :mod:`reportgen.report.timeline`): nothing, mostly."""
    return row[7] if len(row) > 7 else [[], [], [], []]


def _row_entities(row: list[Any]) -> set[int]:
    """The entities a row names (events, action fields, effects, violations, history)."""
    if row[0] == IDLE:
        return set()
    if row[0] == HISTORY:
        return set(row[4])
    found = {e for ev in row[2] for e in ev[3]}
    found |= {-1 - v for a in row[3] for v in a[2][1::2] if v < 0}
    found |= {e for o in row[4][3] for e in o[3]}
    found |= {e for v in row[5] for e in v[3]}
    return found


def _findings(data: TownData, tables: Tables) -> list[list[Any]]:
    """The town's findings as the finding filter offers them: rows of its subject in its span."""
    out: list[list[Any]] = []
    for f in (data.run.diagnosis or {}).get("findings") or ():
        subject = f.get("subject") or {}
        entity = -1
        if subject.get("id"):
            entity = tables.entity(data.entities.link(str(subject["kind"]), str(subject["id"])))
        label = f"{clean(str(f.get('kind')))}: {clean(str(f.get('subject_name') or ''))}"
        first, last = f.get("first_at"), f.get("last_at")
        span = [to_ms(first) if first else 0, to_ms(last) if last else 0]
        out.append([clean(str(f.get("id"))), label, *span, entity])
    return out


def build_timeline(
    data: TownData, href: Href = lambda h: h, *, chunk_bytes: int | None = None
) -> Timeline:
    """The town's timeline files and summary (``href`` maps links for the page that shows it)."""
    tables = Tables(href)
    srcs = sources(data)
    chunks = _chunks(data, tables, chunk_bytes or CHUNK_BYTES)
    folder = f"{town_dir(data.run.town_id)}/{FOLDER}"
    files: list[tuple[str, str]] = []
    meta: list[dict[str, Any]] = []
    for n, chunk in enumerate(chunks, start=1):
        payload = {"part": "chunk", "n": n, "t0": chunk["t0"], "s": chunk["s"]}
        text = script_file({**payload, "rows": chunk["packed"]})
        files.append((f"{folder}/chunk-{n}.js", text))
        first, last = _span(chunk["rows"][0])[0], max(_span(r)[1] for r in chunk["rows"])
        meta.append(
            {"href": f"chunk-{n}.js", "from": first, "to": last, "rows": len(chunk["rows"])}
        )
    facets = _facets(data, srcs, chunks)
    index = {
        "part": "index",
        "town_id": clean(data.run.town_id),
        "window": [data.run.window_from, data.run.window_to],
        "rows": len(srcs),
        "ticks": len(data.run.ticks),
        "chunks": meta,
        "facets": facets,
        "findings": _findings(data, tables),
        # what a row too big to keep whole points to: `reportgen replay` over its tick
        "replay_db": clean(data.run.replay_db or data.run.source),
        "entities": tables.entities,
        "episodes": tables.episodes,
    }
    files.insert(0, (f"{folder}/index.js", script_file(index)))
    return Timeline(files, _summary(data, srcs, facets, files))


def _summary(
    data: TownData, srcs: list[Source], facets: dict[str, Any], files: list[tuple[str, str]]
) -> TimelineSummary:
    """The static summary of the timeline the town page shows."""
    ticks = data.run.ticks
    first = fmt_time(str(ticks[0]["at"])) if ticks else "no ticks"
    last = fmt_time(str(ticks[-1]["at"])) if ticks else "no ticks"
    return TimelineSummary(
        rows=len(srcs),
        ticks=len(ticks),
        active_ticks=sum(1 for s in srcs if s.kind == TICK),
        quiet_rows=sum(1 for s in srcs if s.kind == IDLE),
        history_rows=sum(1 for s in srcs if s.kind == HISTORY),
        first_label=first,
        last_label=last,
        actions=[TypeCount(clean(v), n) for v, n in facets["action"]],
        events=[TypeCount(clean(v), n) for v, n in facets["event"]],
        history=[TypeCount(clean(v), n) for v, n in facets["source"]],
        files=[
            TimelineFile(path, path.rsplit("/", 1)[-1], len(text.encode("utf-8")))
            for path, text in files
        ],
    )
