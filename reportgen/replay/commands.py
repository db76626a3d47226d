"""Dry-run and replay-events: one reconcile on the state at a time, nothing applied.

Upstream's ``debugReplayEvents`` re-applied a window's events on top of the
*live* state and warned that the result was approximate. Here the state is
rebuilt as it was at the window's start when the source has a journal
(``exact``); an upstream dump without one gets upstream's behaviour, and the
response says it is ``approximate``. Nothing is written to the source.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen import progress
from reportgen.replay.fidelity import APPROXIMATE, EXACT, REWIND_CAVEAT
from reportgen.replay.source import (
    ChosenWindow,
    Source,
    Window,
    check_window,
    choose_now,
    open_source,
)
from reportgen.replay.state import (
    noncanonical_events,
    quarantine_noncanonical,
    quarantined_rows,
    state_at,
    state_snapshot,
)
from reportgen.town import events, reconciler
from reportgen.town.config import TownConfig
from reportgen.town.context import EngineError


@dataclass(frozen=True)
class DryRun:
    """A dry-run: upstream's response, and what the command line says beside it."""

    #: Upstream's dry-run response (what ``--json`` prints and the server returns).
    response: dict[str, Any]
    #: The ``now`` used: given, or the time the source is at (and what was set aside).
    now: ChosenWindow
    #: Pending events drained although their ``created_at`` is not in upstream's form:
    #: dry-run drains them in upstream's order, as the next tick would.
    noncanonical: tuple[str, ...] = ()


def dry_run(
    db: str | Path,
    *,
    now: str | None = None,
    config: dict[str, Any] | None = None,
    draining: bool | None = None,
) -> dict[str, Any]:
    """Upstream's dry-run response (see :func:`dry_run_report`)."""
    return dry_run_report(db, now=now, config=config, draining=draining).response


def dry_run_report(
    db: str | Path,
    *,
    now: str | None = None,
    config: dict[str, Any] | None = None,
    draining: bool | None = None,
) -> DryRun:
    """Drain pending events and reconcile once on the state at ``now``; upstream's response.

    Nothing is written to ``db``. ``now`` defaults to the source's newest
    plausible timestamp (the state as it is; :func:`choose_now`). New ids come
    from the town's own id counters, so the actions are exactly those the next
    tick would emit.
    """
    source = open_source(db)
    chosen = choose_now(source, now)
    at = chosen.end
    newest = source.default_now() or ""
    rewind = now is not None and (at <= newest if source.journaled else at < newest)
    state = state_at(source, at if rewind else None)
    ctx = state.ctx(at)
    if config is not None:
        ctx.config = TownConfig.parse(config)
    if draining is not None:
        ctx.draining = draining
    noncanonical = tuple(row["event_id"] for row in noncanonical_events(state.conn, None))
    drained = events.drain_events(ctx)
    actions = reconciler.reconcile(ctx)
    result: dict[str, Any] = {
        "actions": actions,
        "metrics": {
            "actionsEmitted": len(actions),
            "actionsByType": dict(Counter(a["type"] for a in actions)),
            "pendingEventCount": events.pending_event_count(ctx),
            "eventsDrained": drained.drained,
        },
        "fidelity": EXACT,
    }
    if rewind and state.fidelity == APPROXIMATE:
        result["fidelity"] = APPROXIMATE
        result["caveat"] = REWIND_CAVEAT.format(name=source.name, at=at)
    return DryRun(result, chosen, noncanonical)


# --------------------------------------------------------------------------- replay-events


def replay_events(
    db: str | Path, start: str, end: str, names: tuple[str, str] = ("--from", "--to")
) -> dict[str, Any]:
    """Seed deliverable 1: the state at ``start``, the window's inputs and events, one reconcile.

    Returns ``{"eventsReplayed", "actions", "stateSnapshot", "fidelity",
    "caveat"?, "quarantined"}``; the actions are not applied. Exact sources
    re-run every journal row of the window (ticks included, with their
    recorded world answers), then drain what is pending and reconcile at
    ``end``; ``eventsReplayed`` counts the events drained on the way.
    """
    source = open_source(db)
    window = check_window(source, start, end, names)
    if source.journaled:
        result = _replay_events_exact(source, window)
    else:
        result = _replay_events_approximate(source, window)
    return result


def _replay_events_exact(source: Source, window: Window) -> dict[str, Any]:
    with progress.step(0, 2, "state at the window's start"):  # one bar, not two
        state = state_at(source, window.start)
    with progress.step(1, 2, "the window"):
        state.advance(window.end, alarm=True, keep_ticks=True)
    quarantined: list[dict[str, Any]] = []
    replayed = 0
    for tick in state.ticks:
        replayed += tick.record["metrics"]["eventsDrained"]
        quarantined += quarantined_rows(tick.record["events"], tick.record["at"])
    ctx = state.ctx(window.end)
    drained = events.drain_events(ctx)
    quarantined += quarantined_rows([o.__dict__ for o in drained.outcomes], window.end)
    actions = reconciler.reconcile(ctx)
    return {
        "eventsReplayed": replayed + drained.drained,
        "actions": actions,
        "stateSnapshot": state_snapshot(state.conn),
        "fidelity": EXACT,
        "quarantined": quarantined,
    }


def _replay_events_approximate(source: Source, window: Window) -> dict[str, Any]:
    """Upstream's ``debugReplayEvents``: re-apply the window's events on the current state."""
    state = state_at(source, None)
    quarantined = quarantine_noncanonical(state, window)
    ctx = state.ctx(window.end)
    rows = ctx.all(
        """SELECT event_id, event_type, agent_id, bead_id, payload, created_at, processed_at
           FROM town_events WHERE created_at >= ? AND created_at <= ?
           ORDER BY created_at ASC, event_id ASC""",
        (window.start, window.end),
    )
    failed: list[dict[str, Any]] = []
    for row in rows:
        parsed = events.parse_event_row(row)
        if isinstance(parsed, str):
            quarantined.append(
                {"at": str(row["created_at"]), "event_id": str(row["event_id"]),
                 "event_type": str(row["event_type"]), "reason": parsed}
            )  # fmt: skip
            continue
        try:
            events.apply_event(ctx, parsed)
        except (EngineError, sqlite3.Error) as exc:
            failed.append({"event_id": parsed.event_id, "error": str(exc)})
    actions = reconciler.reconcile(ctx)
    result: dict[str, Any] = {
        "eventsReplayed": len(rows),
        "actions": actions,
        "stateSnapshot": state_snapshot(state.conn),
        "fidelity": APPROXIMATE,
        "caveat": state.caveat,
        "quarantined": quarantined,
    }
    if failed:
        result["failedEvents"] = failed
    return result


# --------------------------------------------------------------------------- tick replay
