"""History across runs: one JSON line per run, carried from the previous site to the next.

The file is ``history.jsonl`` at the site root (like Allure 3's history
file). Each line is one run::

    {"run_id": "20260301T000000Z-20260302T000000Z",      # from the data window
     "window_from": "...", "window_to": "...",
     "towns": ["town-a", "town-b"],                     # towns built in that run
     "episodes": {"3f2a…": {"town_id": "town-a", "invariant": 6,
                            "agent_ids": [...], "bead_ids": [...], "rig_ids": [...],
                            "first_at": "...", "last_at": "...",
                            "open_at_end": true, "status": "new"}},
     "counts": {"6": 1},                                 # episodes per invariant
     "findings": {"9c1e…": {"town_id": "town-a", "kind": "dispatch-loop",
                            "severity": "critical", "subject": {...}, …,
                            "status": "new"}},           # the diagnosis's findings
     "not_rebuilt": {"town-c": "2026…Z-2026…Z"},         # towns carried over: run last built
     "town_names": {"town-a": "review-round-stuck", …}}  # the names of the towns it built or carried

With ``--history PREVIOUS`` (a site directory or the file itself) an episode
is *new* when the previous run did not have it, *persisting* when it did,
and a previous episode of a town built again but absent now is *resolved*.
An episode open at the end of the previous window that is still there at
the start of this one keeps its id (and first tick), so its permalink
survives the window boundary. Rebuilding the same window replaces its line
instead of appending a duplicate.

Findings (``reportgen.diagnose``) are marked the same way, by id: a
finding's id already hashes its first time taken from the data, so the
same problem keeps its id from one window to the next without adoption.

History never forgets a town because one run could not build it: a town of
the previous run that this run did not build (it failed, or its source was
missing) has its previous episodes and findings carried forward unchanged but for their
``status``, ``"not rebuilt"``, and is listed in ``not_rebuilt`` with the
run it was last built in. The next run that builds it again compares with
those episodes, so nothing is *new* (no second alert) just because a run
in between failed. A town not built for as long as the history keeps runs
(:data:`DEFAULT_LIMIT`) has left the fleet and is dropped.

The pages kept for what a run no longer shows (resolved, not rebuilt) name
the town as the others do, so each run records the names of its towns
(``town_names``); lines written before it had them leave the town's id to
stand for its name (:func:`town_names`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen import jsonio
from reportgen.diagnose.episodes import EntityKey, Episode
from reportgen.errors import BadInputError

FILE_NAME = "history.jsonl"
#: Runs kept in the file (and shown in trends).
DEFAULT_LIMIT = 30
#: The status of an episode carried forward from a town this run did not build.
NOT_REBUILT = "not rebuilt"


@dataclass
class RunRecord:
    run_id: str
    window_from: str
    window_to: str
    towns: list[str]
    episodes: dict[str, dict[str, Any]]
    counts: dict[str, int]
    #: Towns this run did not build whose episodes it carries: town id -> run last built in.
    not_rebuilt: dict[str, str] = field(default_factory=dict)
    #: The findings of the run's diagnoses, by id (each with its ``town_id`` and ``status``).
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The name a person knows each town by (built or carried), by id: what the pages that
    #: outlive the town's build show. Empty in lines of older histories.
    town_names: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "window_from": self.window_from,
            "window_to": self.window_to,
            "towns": self.towns,
            "episodes": self.episodes,
            "counts": self.counts,
            "not_rebuilt": self.not_rebuilt,
            "findings": self.findings,
            "town_names": self.town_names,
        }


def town_names(runs: Sequence[RunRecord]) -> dict[str, str]:
    """Every town's name the runs recorded, by id, the newest run's where they differ.

    A town no run named (lines of older histories) is absent: its id is its name then.
    """
    names: dict[str, str] = {}
    for run in runs:
        names.update(run.town_names)
    return names


def run_id(window_from: str, window_to: str) -> str:
    """A run's id, from its data window (never the build time): ``YYYYmmddTHHMMSSZ-…``."""

    def compact(ts: str) -> str:
        return ts[:19].replace("-", "").replace(":", "") + "Z"

    return f"{compact(window_from)}-{compact(window_to)}" if window_from else "empty"


def read_history(path: Path | None) -> list[RunRecord]:
    """Runs from a previous site directory or history file (none when ``path`` is None).

    A directory without a history file is a first run (empty history); a
    file that is not JSON Lines is bad input.
    """
    if path is None:
        return []
    file = path / FILE_NAME if path.is_dir() else path
    if not file.exists():
        if path.is_dir():
            return []
        raise BadInputError(f"--history {path}: no such file or directory")
    runs: list[RunRecord] = []
    for number, line in enumerate(_history_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            runs.append(
                RunRecord(
                    str(raw["run_id"]),
                    str(raw["window_from"]),
                    str(raw["window_to"]),
                    list(raw["towns"]),
                    dict(raw["episodes"]),
                    dict(raw["counts"]),
                    {str(k): str(v) for k, v in dict(raw.get("not_rebuilt", {})).items()},
                    dict(raw.get("findings", {})),
                    {str(k): str(v) for k, v in dict(raw.get("town_names", {})).items()},
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"--history {file}:{number}: not a history record ({exc})") from exc
    return runs


def _history_text(file: Path) -> str:
    """The history file's text; a file that is not UTF-8 text (a database, an image) is bad input."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BadInputError(f"--history {file}: {exc.strerror}") from exc
    if data.startswith(b"SQLite format 3\x00"):
        problem = "a SQLite database"
    else:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
    raise BadInputError(
        f"--history {file}: {problem}, not a history file "
        "(give the previous site directory or its history.jsonl)"
    )


def _key(
    town_id: str, invariant: int, agents: Sequence[str], beads: Sequence[str], rigs: Sequence[str]
) -> tuple[Any, ...]:
    return (town_id, invariant, tuple(agents), tuple(beads), tuple(rigs))


@dataclass
class History:
    """The previous runs, and the marks for this run's episodes against the newest of them."""

    runs: list[RunRecord]
    seen: dict[str, str] = field(default_factory=dict)  # episode id -> status
    seen_findings: dict[str, str] = field(default_factory=dict)  # finding id -> status

    @property
    def previous(self) -> RunRecord | None:
        """The run this one is compared with: the newest in the history (even the same window,
        when a site is rebuilt over itself: then nothing is new and nothing resolved)."""
        return self.runs[-1] if self.runs else None

    def adopt(self, episodes: list[Episode]) -> None:
        """Give an episode continuing from the previous window the previous episode's id."""
        prev = self.previous
        if prev is None:
            return
        carried = {
            _key(e["town_id"], int(e["invariant"]), e["agent_ids"], e["bead_ids"], e["rig_ids"]): (
                eid,
                e["first_at"],
            )
            for eid, e in prev.episodes.items()
            if e.get("open_at_end")
        }
        for ep in episodes:
            k = _key(
                ep.town_id,
                ep.invariant,
                ep.entities.agent_ids,
                ep.entities.bead_ids,
                ep.entities.rig_ids,
            )
            if ep.open_at_start and k in carried:
                ep.id, ep.first_at = carried[k]

    def status(self, episode_id: str) -> str:
        prev = self.previous
        mark = "persisting" if prev is not None and episode_id in prev.episodes else "new"
        self.seen[episode_id] = mark
        return mark

    def finding_status(self, finding_id: str) -> str:
        """``persisting`` when the previous run had the finding, else ``new``."""
        prev = self.previous
        mark = "persisting" if prev is not None and finding_id in prev.findings else "new"
        self.seen_findings[finding_id] = mark
        return mark

    def carried(
        self, built_towns: set[str], limit: int = DEFAULT_LIMIT
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The previous run's towns this run did not build: their episodes, marked not rebuilt,
        and ``{town id: run last built in}``.

        A town whose last build is older than the runs the history keeps is
        not carried (it has left the fleet).
        """
        prev = self.previous
        if prev is None:
            return {}, {}
        towns = self._not_rebuilt(prev, built_towns, limit)
        return _carried(prev.episodes, towns), towns

    def carried_findings(
        self, built_towns: set[str], limit: int = DEFAULT_LIMIT
    ) -> dict[str, dict[str, Any]]:
        """The previous run's findings of the towns :meth:`carried` carries, marked not rebuilt."""
        prev = self.previous
        if prev is None:
            return {}
        return _carried(prev.findings, self._not_rebuilt(prev, built_towns, limit))

    def _not_rebuilt(self, prev: RunRecord, built_towns: set[str], limit: int) -> dict[str, str]:
        """``{town id: run last built in}`` of the previous run's towns this run did not build
        (but for those not built for as long as the history keeps runs)."""
        kept = {r.run_id for r in self.runs[-(limit - 1) :]} if limit > 1 else set()
        last_built = {**{t: prev.run_id for t in prev.towns}, **prev.not_rebuilt}
        return {
            t: run for t, run in sorted(last_built.items()) if t not in built_towns and run in kept
        }

    def resolved(self, built_towns: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """Previous episodes of towns built again that this run no longer has."""
        prev = self.previous
        return [] if prev is None else _absent(prev.episodes, built_towns, self.seen)

    def resolved_findings(self, built_towns: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """Previous findings of towns built again that this run no longer has."""
        prev = self.previous
        return [] if prev is None else _absent(prev.findings, built_towns, self.seen_findings)


def _carried(
    records: Mapping[str, Mapping[str, Any]], towns: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The records (episodes or findings) of ``towns``, marked not rebuilt."""
    return {
        rid: {**r, "status": NOT_REBUILT}
        for rid, r in sorted(records.items())
        if r["town_id"] in towns
    }


def _absent(
    records: Mapping[str, dict[str, Any]], built_towns: set[str], seen: Mapping[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """The records of towns built again that this run did not see."""
    return sorted(
        (rid, r) for rid, r in records.items() if r["town_id"] in built_towns and rid not in seen
    )


def record_for(
    run: str,
    window: tuple[str, str],
    towns: Sequence[str],
    episodes: Sequence[Episode],
    statuses: dict[str, str],
) -> RunRecord:
    return record_from(run, window, towns, {ep.id: episode_record(ep) for ep in episodes}, statuses)


def record_from(
    run: str,
    window: tuple[str, str],
    towns: Sequence[str],
    episodes: Mapping[str, Mapping[str, Any]],
    statuses: Mapping[str, str],
    not_rebuilt: Mapping[str, str] | None = None,
) -> RunRecord:
    """:func:`record_for` from :func:`episode_record` dicts (what a fleet build keeps per town,
    so the parent never needs the towns' :class:`Episode` objects).

    ``not_rebuilt`` lists the towns whose episodes were carried forward
    (:meth:`History.carried`); those episodes keep the status they carry."""
    counts: dict[str, int] = {}
    for e in episodes.values():
        counts[str(e["invariant"])] = counts.get(str(e["invariant"]), 0) + 1
    return RunRecord(
        run_id=run,
        window_from=window[0],
        window_to=window[1],
        towns=sorted(towns),
        episodes={
            eid: {**episodes[eid], "status": statuses.get(eid, episodes[eid].get("status", "new"))}
            for eid in sorted(episodes)
        },
        counts=dict(sorted(counts.items())),
        not_rebuilt=dict(sorted((not_rebuilt or {}).items())),
    )


def episode_record(ep: Episode) -> dict[str, Any]:
    """An episode as the history file stores it (without its status)."""
    return _ep_json(ep)


def _ep_json(ep: Episode) -> dict[str, Any]:
    e: EntityKey = ep.entities
    return {
        "town_id": ep.town_id,
        "invariant": ep.invariant,
        "agent_ids": list(e.agent_ids),
        "bead_ids": list(e.bead_ids),
        "rig_ids": list(e.rig_ids),
        "subject_ids": list(ep.subject.all_ids()),
        "first_at": ep.first_at,
        "last_at": ep.last_at,
        "ticks": ep.ticks,
        "message": ep.messages[0] if ep.messages else "",
        "open_at_end": ep.open_at_end,
    }


def next_runs(
    runs: list[RunRecord], current: RunRecord, limit: int = DEFAULT_LIMIT
) -> list[RunRecord]:
    """The history to write: earlier runs (a rebuilt window replaced), then this one, last ``limit``."""
    kept = [r for r in runs if r.run_id != current.run_id] + [current]
    return kept[-limit:]


def dump(runs: Sequence[RunRecord]) -> str:
    return "".join(jsonio.canonical(r.to_json()) + "\n" for r in runs)


def trends(runs: Sequence[RunRecord]) -> tuple[list[str], dict[int, list[int]]]:
    """Run labels and, per invariant seen in any run, its episode count per run."""
    numbers = sorted({int(n) for r in runs for n in r.counts})
    labels = [r.window_to[:16].replace("T", " ") for r in runs]
    return labels, {n: [int(r.counts.get(str(n), 0)) for r in runs] for n in numbers}


def gone(
    runs: Sequence[RunRecord], current: RunRecord, *, findings: bool = False
) -> list[tuple[str, dict[str, Any], str]]:
    """Episodes (or ``findings``) of earlier runs that the current run does not have:
    ``(id, record, last run)``.

    Their permalinks get a "resolved" page for as long as their run is in the history.
    """

    def of(run: RunRecord) -> dict[str, dict[str, Any]]:
        return run.findings if findings else run.episodes

    latest: dict[str, tuple[dict[str, Any], str]] = {}
    for run in runs:
        if run.run_id == current.run_id:
            continue
        for rid, e in of(run).items():
            latest[rid] = (e, run.run_id)
    return [(rid, e, r) for rid, (e, r) in sorted(latest.items()) if rid not in of(current)]
