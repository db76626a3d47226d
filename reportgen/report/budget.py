"""Will the published tree fit GitHub Pages? Sizes measured on a real tree, extrapolated to a fleet.

:func:`measure` reads a published tree (``runs/``, ``permalinks/``) and
splits it into what grows with the towns and what does not:

* a full run: each town's own pages (``towns/<id>/``) plus its share of the
  run's index, episode and finding pages; the rest (assets with the chart
  bundle, ``history.jsonl``) is per run;
* a thinned run: its index, episode and finding pages per town; its small
  assets and ``history.jsonl`` per run;
* the permalinks: bytes per entry (page, JSON twin, index row, ledger
  line) and entries per town and night, bounded from above by the most
  episodes and findings any kept run showed per town (as if all were new
  every night: a persisting one keeps its single entry).

:func:`extrapolate` scales that to ``towns`` × ``nights`` with ``full_runs``
full sites, optionally with the per-town sizes scaled (``scale``: e.g. from
short test towns to a day) or the full per-town size replaced by a modelled
one (``full_town_bytes``: e.g. the timeline work's target). The permalinks
are never pruned: their share is for ``nights`` nights and grows after.
``scripts/site_budget.py`` prints both for a tree (docs/nightly.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reportgen.report.ledger import FILE_NAME as LEDGER

#: GitHub Pages' published-site limit.
DEFAULT_BUDGET = 1_000_000_000
PER_RUN = ("assets", "history.jsonl")


def tree_bytes(path: Path) -> int:
    """The bytes of every file under ``path`` (a file: its size; missing: 0)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


@dataclass(frozen=True)
class Measured:
    """Sizes read from one published tree (bytes; per town = averaged over the towns)."""

    towns: int
    full_runs: int
    thinned_runs: int
    full_town_bytes: int
    full_run_bytes: int
    thinned_town_bytes: int
    thinned_run_bytes: int
    permalink_entry_bytes: int
    #: Permalink entries (episodes and findings) per town and night.
    entries_per_town_night: float


@dataclass(frozen=True)
class Plan:
    """An extrapolated tree: bytes of the full runs, the thinned ones and the permalinks."""

    full_bytes: int
    thinned_bytes: int
    permalink_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.full_bytes + self.thinned_bytes + self.permalink_bytes


def _split(run: Path, towns: int) -> tuple[int, int]:
    """``(bytes per town, bytes per run)`` of one run."""
    fixed = sum(tree_bytes(run / name) for name in PER_RUN)
    return (tree_bytes(run) - fixed) // max(1, towns), fixed


def _towns(run: Path) -> int:
    return len(json.loads((run / "index.json").read_text(encoding="utf-8"))["towns"])


def _shown(run: Path) -> float:
    """Episodes and findings a run showed per town: an upper bound of the new ones per town
    and night (as if every night's were all new, none persisting)."""
    index = json.loads((run / "index.json").read_text(encoding="utf-8"))
    findings = sum(len(t.get("findings") or []) for t in index["towns"])
    return (len(index["episodes"]) + findings) / max(1, len(index["towns"]))


def _mean(values: list[int]) -> int:
    return sum(values) // len(values) if values else 0


def measure(pages: Path) -> Measured:
    """Measure a published tree (runs with ``towns/`` are full, the others thinned)."""
    runs = sorted(p for p in (pages / "runs").iterdir() if (p / "index.json").is_file())
    full = [r for r in runs if (r / "towns").is_dir()]
    thinned = [r for r in runs if r not in full]
    towns = max((_towns(r) for r in runs), default=0)
    full_split = [_split(r, _towns(r)) for r in full]
    thin_split = [_split(r, _towns(r)) for r in thinned]
    ledger = json.loads((pages / "permalinks" / LEDGER).read_text(encoding="utf-8"))
    entries = len(ledger["episodes"]) + len(ledger["findings"])
    folder = pages / "permalinks"
    permalinks = tree_bytes(folder) - tree_bytes(folder / "assets")
    return Measured(
        towns=towns,
        full_runs=len(full),
        thinned_runs=len(thinned),
        full_town_bytes=_mean([t for t, _ in full_split]),
        full_run_bytes=_mean([r for _, r in full_split]),
        thinned_town_bytes=_mean([t for t, _ in thin_split]),
        thinned_run_bytes=_mean([r for _, r in thin_split]),
        permalink_entry_bytes=permalinks // max(1, entries),
        entries_per_town_night=max((_shown(r) for r in runs), default=0.0),
    )


def extrapolate(
    measured: Measured,
    *,
    towns: int,
    nights: int,
    full_runs: int,
    scale: float = 1.0,
    full_town_bytes: int | None = None,
) -> Plan:
    """The tree after ``nights`` nights of ``towns`` towns with ``full_runs`` full sites."""
    full_town = full_town_bytes if full_town_bytes is not None else measured.full_town_bytes * scale
    full = min(full_runs, nights)
    return Plan(
        full_bytes=int(full * (towns * full_town + measured.full_run_bytes)),
        thinned_bytes=int(
            (nights - full)
            * (towns * measured.thinned_town_bytes * scale + measured.thinned_run_bytes)
        ),
        permalink_bytes=int(
            towns
            * nights
            * measured.entries_per_town_night
            * scale
            * measured.permalink_entry_bytes
        ),
    )


def report(measured: Measured, plan: Plan, budget: int = DEFAULT_BUDGET) -> str:
    """The measured sizes and the extrapolation, as a few lines of text."""
    mb = 1e6
    return "\n".join(
        [
            f"measured: {measured.towns} towns, {measured.full_runs} full runs, "
            f"{measured.thinned_runs} thinned runs",
            f"  full run:    {measured.full_town_bytes / mb:.3f} MB per town "
            f"+ {measured.full_run_bytes / mb:.3f} MB per run",
            f"  thinned run: {measured.thinned_town_bytes / mb:.3f} MB per town "
            f"+ {measured.thinned_run_bytes / mb:.3f} MB per run",
            f"  permalinks:  {measured.permalink_entry_bytes} bytes per entry, "
            f"{measured.entries_per_town_night:.3f} entries per town and night",
            f"extrapolated: full {plan.full_bytes / mb:.0f} MB + thinned "
            f"{plan.thinned_bytes / mb:.0f} MB + permalinks {plan.permalink_bytes / mb:.0f} MB "
            f"= {plan.total_bytes / mb:.0f} MB of {budget / mb:.0f} MB: "
            + ("within budget" if plan.total_bytes <= budget else "OVER BUDGET"),
        ]
    )
