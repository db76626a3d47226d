"""Replay: the state of a town at a time, dry-run, replay-events and window replay.

One map of the package (imports point down the list):

``loader``
    the build's town loader: a source's window from its record, a replay, or
    (no journal) its own history.
``window``, ``history``
    a window tick by tick, replayed and compared, or the record as it is; a
    dump's window as its own history (ticks only when simulated, on request).
``commands``
    dry-run and replay-events (one reconcile, nothing applied).
``state``, ``compare``, ``entities``
    the working copy at a time; the first field a replayed tick differs in;
    the beads and agents a window names.
``source``, ``fidelity``
    town databases and bundles, their times and windows; how exact a figure is.

Nothing here writes to its input. The names below are the package's public
interface, re-exported for callers that do not care which module holds them.
"""

from __future__ import annotations

from reportgen.replay.commands import DryRun, dry_run, dry_run_report, replay_events
from reportgen.replay.compare import compare_tick, compare_ticks, first_difference
from reportgen.replay.entities import bead_events_in, collect_entities
from reportgen.replay.fidelity import (
    APPROXIMATE,
    EXACT,
    LATEST_ENTITIES_CAVEAT,
    RECORDED_CAVEAT,
    SIMULATED,
    is_modelled,
    modelled_wall_clock,
)
from reportgen.replay.source import (
    ChosenWindow,
    Newest,
    Source,
    StoredTime,
    Window,
    check_window,
    choose_now,
    choose_window,
    given_window,
    newest_plausible,
    newest_timestamp,
    oldest_timestamp,
    open_source,
    parse_time,
    read_manifest,
)
from reportgen.replay.state import ReplayedTick, TownState, state_after, state_at, state_snapshot
from reportgen.replay.window import (
    end_state_conn,
    record_serves,
    recorded_ticks,
    recorded_window,
    recorded_window_state,
    replay_window,
    replay_window_state,
)

__all__ = [
    "APPROXIMATE",
    "EXACT",
    "LATEST_ENTITIES_CAVEAT",
    "RECORDED_CAVEAT",
    "SIMULATED",
    "ChosenWindow",
    "DryRun",
    "Newest",
    "ReplayedTick",
    "Source",
    "StoredTime",
    "TownState",
    "Window",
    "bead_events_in",
    "check_window",
    "choose_now",
    "choose_window",
    "collect_entities",
    "compare_tick",
    "compare_ticks",
    "dry_run",
    "dry_run_report",
    "end_state_conn",
    "first_difference",
    "given_window",
    "is_modelled",
    "modelled_wall_clock",
    "newest_plausible",
    "newest_timestamp",
    "oldest_timestamp",
    "open_source",
    "parse_time",
    "read_manifest",
    "record_serves",
    "recorded_ticks",
    "recorded_window",
    "recorded_window_state",
    "replay_events",
    "replay_window",
    "replay_window_state",
    "state_after",
    "state_at",
    "state_snapshot",
]
