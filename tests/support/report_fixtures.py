"""TownRuns for the report tests, made by driving the real town engine with a scripted world.

Until window replay lands, this is the adapter between the engine and the
report: run :class:`reportgen.town.api.Town` on a simulated clock, read the
recorded ticks back with :func:`reportgen.town.record.load_ticks`, and the
entities from the town tables. Scenarios are small and fully deterministic
(ids derive from the town id, the wall clock is the model stopwatch).
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from reportgen.town import clock, store
from reportgen.town.api import Town
from reportgen.town.record import load_ticks
from reportgen.town.tick import ModelStopwatch
from reportgen.town_run import Divergence, EntityInfo, TownRun
from support.timeline_data import lands
from support.worlds import RecordingWorld

T0 = "2026-03-01T00:00:00.000Z"
HOSTILE = "<script>alert('x')</script>\"' &amp; <b>bold</b> \u2028" + "long " * 400 + "\udcff\udc80"


def _at(seconds: float) -> str:
    return clock.iso(clock.to_ms(T0) + int(seconds * 1000))


def entities_of(conn: sqlite3.Connection) -> dict[str, EntityInfo]:
    """Beads and agents as the report names them, from the town tables."""
    agents = {r["bead_id"]: r for r in conn.execute("SELECT * FROM agent_metadata")}
    out: dict[str, EntityInfo] = {}
    for r in conn.execute(
        "SELECT bead_id, type, status, title, rig_id FROM beads ORDER BY bead_id"
    ):
        agent = agents.get(r["bead_id"])
        if agent is not None:
            out[r["bead_id"]] = EntityInfo(
                r["bead_id"], "agent", agent["role"], r["title"], agent["status"], r["rig_id"]
            )
        else:
            out[r["bead_id"]] = EntityInfo(
                r["bead_id"], "bead", r["type"], r["title"], r["status"], r["rig_id"]
            )
    return out


def run_from_db(conn: sqlite3.Connection, source: str, start: str, end: str) -> TownRun:
    """A TownRun of the recorded ticks in ``[start, end]`` (what replay will produce)."""
    bead_events = [
        dict(r)
        for r in conn.execute(
            "SELECT * FROM bead_events WHERE created_at BETWEEN ? AND ? ORDER BY created_at, bead_event_id",
            (start, end),
        )
    ]
    return TownRun(
        town_id=store.town_id(conn),
        source=source,
        window_from=start,
        window_to=end,
        fidelity="exact",
        caveat=None,
        ticks=load_ticks(conn, start, end),
        entities=entities_of(conn),
        bead_events=bead_events,
    )


def _agents_started(result: Any, agents: dict[str, str]) -> None:
    for applied in result.applied:
        effect = applied.side_effect
        if effect is not None and effect.type == "dispatch_agent":
            agents.setdefault(effect.args["bead_id"], effect.args["agent_id"])


def scripted_town(
    town_id: str = "town-alpha",
    minutes: int = 6,
    *,
    violations: bool = True,
    db_path: Path | None = None,
) -> TownRun:
    """Two issues worked by two polecats, an MR, and (optionally) three violation episodes.

    Violations: invariant 6 (a direct write hooks a second agent to bead 1,
    undone 55 s later), invariant 4 (a third issue set in_review by hand; the
    safety net settles it), and invariant 7 (an idle agent set working, still
    open at the window's end).
    """
    conn = sqlite3.connect(str(db_path) if db_path else ":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")
    town = Town.create(conn, town_id, {})
    rig = town.add_rig(_at(0), "repo1", git_url="https://github.com/acme/repo1")
    b1 = town.sling_bead(_at(1), rig, "Fix the flaky login test")
    b2 = town.sling_bead(_at(2), rig, 'Add <metrics> & "quotes"')
    world, watch = RecordingWorld(), ModelStopwatch()
    agents: dict[str, str] = {}
    script = _violation_script(conn, town, rig, agents, b1, b2) if violations else {}
    for s in range(5, minutes * 60 + 1, 5):
        if s in script:
            script[s](s)
        if s == 120:
            town.agent_done(
                _at(s),
                agents[b1],
                branch="gt/fix-login",
                pr_url="https://github.com/acme/repo1/pull/1",
            )
        if s % 30 == 0:
            for agent in sorted(set(agents.values())):
                town.heartbeat(_at(s), agent)
        _agents_started(town.tick(_at(s), world, stopwatch=watch), agents)
    conn.commit()
    return run_from_db(conn, str(db_path or f"{town_id}.sqlite"), _at(0), _at(minutes * 60))


def _violation_script(
    conn: sqlite3.Connection, town: Town, rig: str, agents: dict[str, str], b1: str, b2: str
) -> dict[int, Callable[[int], None]]:
    def hook_second(s: int) -> None:
        conn.execute(
            "UPDATE agent_metadata SET current_hook_bead_id = ? WHERE bead_id = ?", (b1, agents[b2])
        )

    def unhook_second(s: int) -> None:
        conn.execute(
            "UPDATE agent_metadata SET current_hook_bead_id = ? WHERE bead_id = ?", (b2, agents[b2])
        )

    def review_by_hand(s: int) -> None:
        b3 = town.sling_bead(_at(s - 3), rig, "Docs typo")
        town.update_bead_status(_at(s - 2), b3, "in_review")

    def working_idle(s: int) -> None:
        conn.execute(
            "UPDATE agent_metadata SET status = 'working', current_hook_bead_id = NULL "
            "WHERE bead_id = ?",
            (agents[b2],),
        )

    return {40: hook_second, 95: unhook_second, 150: review_by_hand, 300: working_idle}


def hostile_run(base: TownRun) -> TownRun:
    """``base`` with hostile strings everywhere the report shows data-derived text."""
    run = copy.deepcopy(base)
    run.source = "/tmp/it's a <db>.sqlite"
    for info in run.entities.values():
        info.title = HOSTILE
    for tick in run.ticks:
        for v in tick["violations"]:
            v["message"] = HOSTILE
        for a in tick["actions"]:
            a["reason"] = HOSTILE
        for e in tick["events"]:
            e["error"] = HOSTILE
    run.caveat = HOSTILE
    run.divergence = Divergence(run.ticks[3]["at"], "actions", {"x": HOSTILE}, ["</script>"])
    run.quarantined = [
        {
            "event_id": "q1",
            "event_type": HOSTILE,
            "reason": HOSTILE,
            "at": run.ticks[0]["at"],
        }
    ]
    return run


def loader(runs: dict[str, TownRun]) -> Callable[[Path, str | None, str | None], TownRun]:
    """A ``load_run`` for ``build_site`` serving prepared runs by source file name."""

    def load(source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        if source.name not in runs:
            raise ValueError(f"{source.name}: not a fixture")
        return runs[source.name]

    return load


# ── Structural checks over a built site (links resolve, fragments exist, nothing fetched) ──

EXTERNAL = ("http:", "https:", "//")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None:
                self.refs.append((tag, value))


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_links(site: Path) -> list[str]:
    """Every relative href/src that does not resolve, and every #fragment without its id."""
    pages = {p: parse(p) for p in sorted(site.rglob("*.html"))}
    problems: list[str] = []
    for path, page in pages.items():
        for tag, ref in page.refs:
            if ref.startswith(EXTERNAL):
                if tag != "a":
                    problems.append(f"{path}: external resource {ref}")
                continue
            parts = urlsplit(ref)
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if not target.exists():
                problems.append(f"{path}: {ref} does not exist")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if not _lands(target, unquote(parts.fragment), ids):
                    problems.append(f"{path}: {ref} has no #{parts.fragment}")
    return problems


def _lands(target: Path, fragment: str, ids: set[str]) -> bool:
    """An element with the id, or (a town page's ``#tick-<ms>``) a row of its timeline."""
    if fragment in ids:
        return True
    folder = target.parent / "timeline"
    ms = fragment.removeprefix("tick-")
    return (
        fragment.startswith("tick-") and ms.isdigit() and folder.is_dir() and lands(folder, int(ms))
    )
