"""A window of a source with no journal (an upstream dump): its own history, not ticks.

An upstream dump keeps no record of the reconciler's ticks, so a window of it
shows what the file does hold (:func:`history_window_state`), in time order:

* each ``bead_events`` row created in the window (status changes, hooks, …)
  at its ``created_at``;
* each ``town_events`` row created in the window, once, at its ``created_at``,
  saying when it was processed (or that it was not when the dump was taken);
* one ``dry_run`` entry at the window's end: what the reconciler would do on
  the stored state (:func:`reportgen.replay.commands.dry_run_report`),
  labelled as such: it did not happen.

Ticks on the stored state are only ever simulated when asked for
(``--ticks simulate``, :mod:`reportgen.replay.window`). Entries follow the
contract of :attr:`reportgen.town_run.TownRun.history`: plain JSON and small
(every stored value in ``detail`` is cut to :data:`DETAIL_CHARS`).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

from reportgen import jsonio
from reportgen.replay.commands import dry_run_report
from reportgen.replay.entities import bead_events_in, collect_entities, entity_refs, town_name_of
from reportgen.replay.fidelity import APPROXIMATE, HISTORY_CAVEAT
from reportgen.replay.source import Source, Window, check_window
from reportgen.replay.state import noncanonical_events
from reportgen.town import clock
from reportgen.town.schema import table_exists
from reportgen.town_run import TownRun

#: The longest stored value an entry's ``detail`` keeps (longer ones end in "…").
DETAIL_CHARS = 240
#: The longest value a label quotes.
LABEL_CHARS = 80
#: The dry-run's actions kept in its ``detail`` (the count says how many there were).
DRY_RUN_ACTIONS = 20

_NAMES = """LEFT JOIN beads b ON b.bead_id = e.bead_id
            LEFT JOIN beads ab ON ab.bead_id = e.agent_id
            LEFT JOIN agent_metadata am ON am.bead_id = e.agent_id"""


def history_window_state(
    source: Source, start: str, end: str, names: tuple[str, str] = ("--from", "--to")
) -> tuple[TownRun, sqlite3.Connection]:
    """A dump's window as a :class:`TownRun` with no ticks and its history, and the
    file's tables as stored (what the window is judged on). Takes ``source``'s
    connection over: it is returned, or closed on failure."""
    try:
        window = check_window(source, start, end, names)
        history = source_history(source, window)
        conn = source.conn
        run = TownRun(
            town_id=source.town_id,
            source=source.name,
            window_from=window.start,
            window_to=window.end,
            fidelity=APPROXIMATE,
            caveat=HISTORY_CAVEAT.format(name=source.name),
            ticks=[],
            entities=collect_entities(conn, [], (ref for e in history for ref in e["entities"])),
            bead_events=bead_events_in(conn, window) if table_exists(conn, "bead_events") else [],
            quarantined=[{"at": window.start, **q} for q in noncanonical_events(conn, window)],
            history=history,
            town_name=town_name_of(source),
        )
    except BaseException:
        source.conn.close()
        raise
    return run, conn


def source_history(source: Source, window: Window) -> list[dict[str, Any]]:
    """The entries of :attr:`TownRun.history`: the stored events in the window, in time
    order, then the dry-run at its end."""
    stored = bead_event_entries(source.conn, window) + town_event_entries(source.conn, window)
    stored.sort(key=lambda entry: str(entry["at"]))  # stable: bead events first at a tie
    return [*stored, dry_run_entry(source, window.end)]


def bead_event_entries(conn: sqlite3.Connection, window: Window) -> list[dict[str, Any]]:
    """One entry per ``bead_events`` row created in the window (status changes, hooks, …)."""
    if not table_exists(conn, "bead_events"):
        return []
    columns = "e.bead_event_id, e.bead_id, e.old_value, e.new_value, e.metadata"
    entries: list[dict[str, Any]] = []
    for at, row in _created_in(conn, "bead_events", "bead_event_id", columns, window):
        change = _change(row["event_type"], row["old_value"], row["new_value"], row["agent_id"])
        label = f"bead {_name(row['bead_title'], row['bead_id'])}: {change}"
        if row["agent_id"]:
            label += f" (agent {_name(row['agent_name'], row['agent_id'])})"
        refs = [["bead", str(row["bead_id"])]]
        refs += [["agent", str(row["agent_id"])]] if row["agent_id"] else []
        entries.append(_entry(at, "bead_event", label, refs, row, ("bead_title", "agent_name")))
    return entries


def town_event_entries(conn: sqlite3.Connection, window: Window) -> list[dict[str, Any]]:
    """One entry per ``town_events`` row created in the window, at its ``created_at``,
    saying when it was processed (``processed_at``) or that it was still pending."""
    columns = "e.event_id, e.bead_id, e.payload, e.processed_at"
    entries: list[dict[str, Any]] = []
    for at, row in _created_in(conn, "town_events", "event_id", columns, window):
        label = f"town event {_cut(row['event_type'], LABEL_CHARS)}"
        if row["agent_id"]:
            label += f" from agent {_name(row['agent_name'], row['agent_id'])}"
        if row["bead_id"]:
            label += f" for bead {_name(row['bead_title'], row['bead_id'])}"
        processed = row["processed_at"]
        label += (
            f"; processed at {_cut(processed, LABEL_CHARS)}"
            if processed is not None
            else "; not processed when the dump was taken"
        )
        refs = [["agent", str(row["agent_id"])]] if row["agent_id"] else []
        refs += [["bead", str(row["bead_id"])]] if row["bead_id"] else []
        refs += [r for r in entity_refs(_payload(row["payload"])) if r not in refs]
        entries.append(_entry(at, "town_event", label, refs, row, ("bead_title", "agent_name")))
    return entries


def dry_run_entry(source: Source, at: str) -> dict[str, Any]:
    """What the reconciler would do at ``at`` on the stored state: labelled as a dry-run,
    not something that happened."""
    report = dry_run_report(source.path, now=at)
    response = report.response
    actions: list[dict[str, Any]] = list(response["actions"])
    counts = Counter(str(a["type"]) for a in actions)
    what = ", ".join(f"{kind} ×{n}" for kind, n in counts.items())
    label = (
        "dry-run on the stored state at the window's end (what the reconciler would do now; "
        f"it did not happen): {len(actions)} action(s)" + (f": {what}" if what else "")
    )
    detail: dict[str, Any] = {
        "now": at,
        "fidelity": response["fidelity"],
        "actions_total": len(actions),
        "actions": [_plain_json(a) for a in actions[:DRY_RUN_ACTIONS]],
        "metrics": _plain_json(response["metrics"]),
    }
    if response.get("caveat"):
        detail["caveat"] = response["caveat"]
    return {"at": at, "kind": "dry_run", "label": label, "entities": entity_refs(actions),
            "detail": detail}  # fmt: skip


def _entry(
    at: str, kind: str, label: str, refs: list[list[str]], row: sqlite3.Row, drop: tuple[str, ...]
) -> dict[str, Any]:
    """An entry in the contract's shape; ``detail`` holds the stored row's fields, cut."""
    # a Row iterates its values, not its column names: keys() is needed
    detail = {key: _plain(row[key]) for key in sorted(row.keys()) if key not in drop}
    return {"at": at, "kind": kind, "label": label, "entities": refs, "detail": detail}


def _change(event_type: Any, old: Any, new: Any, agent_id: Any) -> str:
    """What a bead event changed: ``status open → in_progress``, ``hooked``, …
    (a value that is the acting agent's id is said by the agent suffix instead)."""
    kind = _cut(event_type, LABEL_CHARS)
    old, new = (None if v in (None, "", agent_id) else _cut(v, LABEL_CHARS) for v in (old, new))
    name = "status" if kind == "status_changed" else kind
    if old is not None and new is not None:
        return f"{name} {old} → {new}"
    if new is not None:
        return f"{name} → {new}"
    return f"{name} (was {old})" if old is not None else name


def _created_in(
    conn: sqlite3.Connection, table: str, key: str, columns: str, window: Window
) -> Iterator[tuple[str, sqlite3.Row]]:
    """``(time, row)`` of every row of an event table created in the window, in time order,
    with ``columns``, the event's type and agent, and the names of its bead and agent."""
    rows = conn.execute(
        f"""SELECT {columns}, e.event_type, e.agent_id, e.created_at, b.title AS bead_title,
                   COALESCE(ab.title, am.identity) AS agent_name
            FROM {table} e {_NAMES}
            WHERE e.created_at >= ? AND e.created_at <= ?
            ORDER BY e.created_at, e.{key}""",
        (window.start, window.end),
    )
    for row in rows:
        at = _time_in(row["created_at"], window)
        if at is not None:
            yield at, row


def _time_in(value: Any, window: Window) -> str | None:
    """The stored time in upstream's form, if it is a time inside the window."""
    if not isinstance(value, str):
        return None
    try:
        at = clock.normalize(value)
    except (ValueError, OverflowError):
        return None
    return at if window.start <= at <= window.end else None


def _payload(text: Any) -> Any:
    """A stored payload's JSON value (``None`` when it is not JSON)."""
    if not isinstance(text, str):
        return None
    try:
        return jsonio.loads(text)
    except ValueError:
        return None


def _name(title: Any, entity_id: Any) -> str:
    """A bead's title or an agent's name, else the start of its id."""
    if isinstance(title, str) and title.strip():
        return _cut(title, LABEL_CHARS)
    return _cut(entity_id, 8)


def _cut(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    """A stored value as small plain JSON: text cut, bytes counted, non-finite floats as text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return _cut(value, DETAIL_CHARS)


def _plain_json(value: Any) -> Any:
    """:func:`_plain` through a JSON value (an action, the dry-run's metrics)."""
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value[:DRY_RUN_ACTIONS]]
    return _plain(value)
