"""Comparing replayed ticks with their recordings: the first field that differs.

Pure: no database, no engine run. ``wallClockMs`` is compared only when the
recording was modelled (:func:`~reportgen.replay.fidelity.is_modelled`);
a measured recording's value is carried over to the replayed tick.
"""

from __future__ import annotations

from typing import Any

from reportgen import jsonio
from reportgen.replay.fidelity import is_modelled
from reportgen.replay.state import ReplayedTick
from reportgen.town.record import COMPARED_FIELDS
from reportgen.town_run import Divergence


def first_difference(recorded: Any, replayed: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first place two JSON values differ: ``(path, recorded, replayed)``, or ``None``."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in list(recorded) + [k for k in replayed if k not in recorded]:
            if key not in recorded or key not in replayed:
                return f"{path}.{key}", recorded.get(key), replayed.get(key)
            found = first_difference(recorded[key], replayed[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return path, recorded, replayed
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(recorded, bool) or isinstance(replayed, bool):
        same = type(recorded) is type(replayed) and recorded == replayed
    else:
        same = recorded == replayed
    return None if same else (path, recorded, replayed)


def compare_tick(recorded: dict[str, Any], tick: ReplayedTick) -> Divergence | None:
    """The first field where a replayed tick differs from its recording (see the module doc)."""
    replayed = tick.record
    at = str(recorded.get("at", replayed["at"]))
    if recorded.get("at") != replayed["at"]:
        return Divergence(at, "at", recorded.get("at"), replayed["at"])
    if not is_modelled(recorded):
        replayed["metrics"]["wallClockMs"] = recorded.get("metrics", {}).get("wallClockMs")
    # the quick check that settles almost every tick; a difference in text goes field by field
    if not tick.mismatches and jsonio.same_text(
        [recorded.get(n) for n in COMPARED_FIELDS], [replayed.get(n) for n in COMPARED_FIELDS]
    ):
        return None
    for name in COMPARED_FIELDS:
        found = first_difference(recorded.get(name), replayed.get(name), name)
        if found is not None:
            return Divergence(at, found[0], found[1], found[2])
    if tick.mismatches:
        m = tick.mismatches[0]
        return Divergence(at, f"world[{m.position}]", m.expected, m.got)
    return None


def compare_ticks(
    ticks: list[ReplayedTick], recorded: dict[int, dict[str, Any]]
) -> tuple[Divergence | None, int]:
    """First divergence over the window and how many ticks had a recording to compare."""
    first: Divergence | None = None
    compared = 0
    for tick in ticks:
        record = recorded.get(tick.seq)
        if record is None:
            continue
        compared += 1
        found = compare_tick(record, tick)
        if first is None and found is not None:
            first = found
    return first, compared


# --------------------------------------------------------------------------- entities
