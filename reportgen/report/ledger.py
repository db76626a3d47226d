"""What the published tree has ever shown of each episode and finding: the permalinks' memory.

Dated runs are thinned and then deleted (``reportgen publish``), but the
permalink of an episode or a finding (``permalinks/episodes/<id>.html``,
``permalinks/findings/<id>.html``) must keep saying what became of it. The
ledger, ``permalinks/ledger.json`` in the published tree, remembers every
entry ever seen: its town, its extent, every run that showed it and its
latest state, so a page outlives every run it was seen in.

The ledger is updated from each kept run's ``index.json`` (every run keeps
it, thinned or not), oldest run first. Applying a run is monotonic, so
applying the same runs again changes nothing:

* shown in the run: ``open`` (violated or stuck at the window's end) or
  ``ended`` (it stopped inside the window); the run joins its list;
* its town was built by a later run that no longer has it: ``resolved`` in
  the first such run (what ``reportgen build --history`` calls resolved);
* its town was not built (failed, not rebuilt): unchanged.

Runs are ordered as ``sort -V`` orders their names (the nightly's dated
labels: ``2026-03-16`` < ``2026-03-16.2`` < ``2026-03-17``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reportgen import jsonio
from reportgen.errors import BadInputError

FILE_NAME = "ledger.json"
VERSION = 1
OPEN, ENDED, RESOLVED = "open", "ended", "resolved"
KINDS = ("episodes", "findings")


def run_key(label: str) -> tuple[tuple[int, int, str], ...]:
    """A run name's place in ``sort -V`` order: digits compare as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|\D+", label)
    )


def sort_runs(labels: Sequence[str]) -> list[str]:
    """``labels`` oldest first (``sort -V``)."""
    return sorted(labels, key=run_key)


@dataclass
class Entry:
    """One episode or finding as the published tree has shown it."""

    id: str
    town_id: str
    town_name: str
    heading: str
    detail: str
    first_at: str
    last_at: str
    state: str
    #: The run that showed it last.
    last_run: str
    #: The run it was resolved in ("" unless ``state`` is resolved).
    resolved_in: str = ""
    #: Every run that showed it, oldest first (deleted runs included).
    runs: list[str] = field(default_factory=list)


@dataclass
class Ledger:
    """Every episode and finding the published tree has shown, by id."""

    episodes: dict[str, Entry] = field(default_factory=dict)
    findings: dict[str, Entry] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, Entry]:
        """The entries of ``kind`` (``episodes`` or ``findings``)."""
        return self.episodes if kind == "episodes" else self.findings

    def dump(self) -> str:
        """Canonical JSON, entries sorted by id: the same ledger is the same bytes."""
        data = {
            "version": VERSION,
            **{k: {i: asdict(e) for i, e in sorted(self.of(k).items())} for k in KINDS},
        }
        return jsonio.canonical(data) + "\n"


def read_ledger(path: Path) -> Ledger:
    """The ledger at ``path`` (an empty one when there is none yet); a damaged one is bad input."""
    if not path.exists():
        return Ledger()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Ledger(**{k: {i: _read_entry(e) for i, e in raw[k].items()} for k in KINDS})
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"{path}: not a permalink ledger ({exc})") from exc


def _read_entry(raw: Mapping[str, Any]) -> Entry:
    """An entry as the ledger stores it; ledgers written before towns had names have none,
    and the town's id stands for its name until a run showing the entry again names it."""
    return Entry(**{**raw, "town_name": raw.get("town_name") or raw["town_id"]})


@dataclass(frozen=True)
class RunView:
    """What one run's ``index.json`` says about its episodes and findings."""

    label: str
    built: frozenset[str]
    episodes: dict[str, Entry]
    findings: dict[str, Entry]


def read_run(label: str, index_path: Path) -> RunView:
    """The episodes and findings a run showed, from its ``index.json`` (bad input if damaged)."""
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        return _run_view(label, index)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"{index_path}: not a run's index.json ({exc})") from exc


def _run_view(label: str, index: Mapping[str, Any]) -> RunView:
    """:func:`read_run` on parsed JSON."""
    towns = list(index["towns"])
    names = {str(t["town_id"]): str(t.get("name") or t["town_id"]) for t in towns}
    carried = set(index.get("not_rebuilt_towns") or {})
    built = frozenset(
        str(t["town_id"])
        for t in towns
        if t.get("state") != "failed" and t["town_id"] not in carried
    )
    episodes = {
        str(e["id"]): _entry(e, names, label, f"Invariant {e['invariant']}: {e['title']}")
        for e in index["episodes"]
        if e["town_id"] in built
    }
    findings = {
        str(f["id"]): _entry(
            {**f, "town_id": t["town_id"], "summary": f.get("because", "")},
            names,
            label,
            f"{f['kind']}: {f.get('subject_name', '')}",
        )
        for t in towns
        if t["town_id"] in built
        for f in t.get("findings") or []
    }
    return RunView(label, built, episodes, findings)


def _entry(row: Mapping[str, Any], names: Mapping[str, str], label: str, heading: str) -> Entry:
    town = str(row["town_id"])
    return Entry(
        id=str(row["id"]),
        town_id=town,
        town_name=names.get(town, town),
        heading=heading,
        detail=str(row.get("summary", "")),
        first_at=str(row["first_at"]),
        last_at=str(row["last_at"]),
        state=OPEN if row.get("open_at_end") else ENDED,
        last_run=label,
        runs=[label],
    )


def apply_run(ledger: Ledger, run: RunView) -> None:
    """Bring the ledger up to ``run`` (see the module docstring); applying it twice is a no-op."""
    for kind in KINDS:
        entries = ledger.of(kind)
        shown: dict[str, Entry] = getattr(run, kind)
        for eid, seen in shown.items():
            _shown(entries, eid, seen, run.label)
        for eid, entry in entries.items():
            if eid not in shown and entry.town_id in run.built:
                _absent(entry, run.label)


def _shown(entries: dict[str, Entry], eid: str, seen: Entry, label: str) -> None:
    """``label`` showed the entry: it joins its runs; the newest run showing it sets its state."""
    known = entries.get(eid)
    if known is None:
        entries[eid] = seen
        return
    if label not in known.runs:
        known.runs = sort_runs([*known.runs, label])
    if run_key(label) < run_key(known.last_run):
        return
    first_at = min(known.first_at, seen.first_at)
    entries[eid] = Entry(**{**asdict(seen), "first_at": first_at, "runs": known.runs})
    if known.resolved_in and run_key(known.resolved_in) > run_key(label):
        _absent(entries[eid], known.resolved_in)


def _absent(entry: Entry, label: str) -> None:
    """A run after the entry's last one built its town without it: resolved there (the first)."""
    if run_key(label) <= run_key(entry.last_run):
        return
    if entry.state == RESOLVED and run_key(entry.resolved_in) <= run_key(label):
        return
    entry.state, entry.resolved_in = RESOLVED, label
