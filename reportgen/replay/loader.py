"""The town loader of a build: a source's window as a :class:`~reportgen.town_run.TownRun`.

The report never replays or opens a town itself: the command line hands it
a loader (``build_site(load_run=ReplayLoader(...))``), which chooses between
the town's own tick record and a replay, and the window when none is given.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from reportgen.errors import BadInputError
from reportgen.replay.source import check_window, choose_window, open_source
from reportgen.replay.window import record_serves, recorded_window_state, replay_window_state
from reportgen.town_run import TownRun

#: Where a town's ticks come from (``reportgen build --ticks``).
TICK_SOURCES = ("auto", "recorded", "replay", "simulate")


@dataclass(frozen=True)
class LoadedWindow:
    """A loaded window and the state at its end it was read against.

    ``state`` is the replayed state (fidelity ``exact``), the state the file
    holds for the window's end (``recorded``; ``None`` when it holds none,
    e.g. ``--ticks recorded`` over an earlier window), or the file's tables
    as stored (no journal: ``approximate``, and ``simulated`` whose ticks do
    not leave the town's state).
    """

    run: TownRun
    state: sqlite3.Connection | None


@dataclass(frozen=True)
class ReplayLoader:
    """Loads a town's window (by default the last 24 h) as a :class:`TownRun`.

    ``ticks`` says where the ticks come from: ``"replay"`` re-runs the engine
    on every tick and compares each with the town's record; ``"recorded"``
    shows the record as it is; ``"auto"`` shows the record when it can stand
    for a replay (:func:`reportgen.replay.record_serves`: a town database whose
    every tick in the window is recorded and whose tables are the window's end
    state) and replays otherwise. ``auto_recover`` replays with that recovery
    setting instead of the recorded one (so it always replays).

    A source with no journal (an upstream dump) has no ticks to show or
    replay: whatever ``ticks`` says, its window is its own history
    (:mod:`reportgen.replay.history`), except ``"simulate"``, which adds ticks
    simulated on its stored state, labelled so. With a journal, ``"simulate"``
    replays as ``"replay"`` does (a folder may mix both kinds).

    A class rather than a closure so that it can be sent to worker processes.
    """

    auto_recover: frozenset[int] | None = None
    ticks: str = "auto"

    def __post_init__(self) -> None:
        if self.ticks not in TICK_SOURCES:
            raise BadInputError(f"ticks must be one of {', '.join(TICK_SOURCES)}: {self.ticks!r}")
        if self.ticks == "recorded" and self.auto_recover is not None:
            raise BadInputError(
                "--auto-recover needs a replay: it cannot be combined with --ticks recorded"
            )

    @property
    def cache_key(self) -> str:
        """The loader's options, for the incremental-build key (the source's checksum is added)."""
        recover = "recorded" if self.auto_recover is None else sorted(self.auto_recover)
        return f"ticks={self.ticks}:auto_recover={recover}"

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        return self.load(source, window_from, window_to).run

    def load(self, source: Path, window_from: str | None, window_to: str | None) -> LoadedWindow:
        """The window as :meth:`__call__` loads it, with the state at its end."""
        opened = open_source(source, copy=False)
        with closing(opened.conn):
            chosen = choose_window(opened, window_from, window_to)
            use_record = opened.journaled and (
                self.ticks == "recorded"
                or (
                    self.ticks == "auto"
                    and self.auto_recover is None
                    and record_serves(opened, check_window(opened, chosen.start, chosen.end))
                )
            )
        state: sqlite3.Connection | None
        if use_record:
            run, state = recorded_window_state(source, chosen.start, chosen.end)
        else:
            run, state = replay_window_state(
                source,
                chosen.start,
                chosen.end,
                auto_recover=self.auto_recover,
                simulate=self.ticks == "simulate",
            )
        run.window_reason = chosen.reason
        run.ignored_times = [asdict(t) for t in chosen.dropped]
        return LoadedWindow(run, state)
