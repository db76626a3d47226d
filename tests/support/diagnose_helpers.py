"""Build diagnosis inputs for tests: a hand-built town (``townbuilder``) plus hand-written ticks.

Tick records here carry only the fields the detectors read (``at``,
``actions``, ``side_effects``, ``violations``, ``active_work``); they are in
the shape :func:`reportgen.town.record.tick_record` writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from reportgen.diagnose import DiagnosisConfig, DiagnosisInput, Finding, judge
from reportgen.diagnose.detectors import DETECTORS
from reportgen.diagnose.registry import DEFAULT_CONFIG, config_from
from reportgen.town import clock
from support.townbuilder import HOUR, NOW, ago

TOWN = "town-t"


def at(offset_ms: int, now: str = NOW) -> str:
    """``now`` shifted by ``offset_ms`` (negative: before)."""
    return clock.iso(clock.to_ms(now) + offset_ms)


def tick(
    when: str,
    actions: Sequence[Mapping[str, Any]] = (),
    *,
    outcomes: Sequence[Mapping[str, Any]] = (),
    violations: Sequence[Mapping[str, Any]] = (),
    active_work: bool = True,
) -> dict[str, Any]:
    """A tick record; ``outcomes`` are side-effect outcomes (each with its action ``index``)."""
    return {
        "at": when,
        "actions": [dict(a) for a in actions],
        "side_effects": {"outcomes": [dict(o) for o in outcomes]},
        "violations": [dict(v) for v in violations],
        "active_work": active_work,
        "events": [],
        "metrics": {},
    }


def dispatch(bead_id: str, *, ok: bool = True, when: str = NOW) -> dict[str, Any]:
    """A tick with one ``dispatch_agent`` for ``bead_id`` and its outcome."""
    detail = "container accepted the agent" if ok else "container refused start"
    return tick(
        when,
        [{"type": "dispatch_agent", "agent_id": "", "bead_id": bead_id, "rig_id": "r"}],
        outcomes=[{"type": "dispatch_agent", "ok": ok, "detail": detail, "index": 0}],
    )


def config(overrides: Mapping[str, Mapping[str, float]] | None = None) -> DiagnosisConfig:
    return DEFAULT_CONFIG if overrides is None else config_from(dict(overrides), "test")


def make_input(
    conn: sqlite3.Connection,
    ticks: Sequence[Mapping[str, Any]] | None = None,
    *,
    as_of: str = NOW,
    window_from: str | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
) -> DiagnosisInput:
    """An input over the 24 h before ``as_of`` (``ticks=None``: an approximate source)."""
    return DiagnosisInput(
        town_id=TOWN,
        source="town.sqlite",
        window_from=window_from or ago(24 * HOUR, as_of),
        window_to=as_of,
        as_of=as_of,
        fidelity="approximate" if ticks is None else "recorded",
        conn=conn,
        ticks=ticks,
        config=config(overrides),
    )


def run(kind: str, inp: DiagnosisInput) -> list[Finding]:
    """The findings of one detector."""
    return DETECTORS[kind](inp)


def kinds(inp: DiagnosisInput) -> list[str]:
    """The kinds of every finding a whole diagnosis of ``inp`` gives."""
    return [f.kind for f in judge(inp).findings]
