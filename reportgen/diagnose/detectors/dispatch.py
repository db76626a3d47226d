"""Dispatch gone wrong: ``dispatch-loop``, ``attempts-exhausted``, ``hooked-not-dispatched``.

``dispatch-loop`` reads the window's ticks (how often one bead was
dispatched, and how each dispatch ended); the other two read the state at
the window's end (attempt counters, failure reasons in the audit trail,
hooks), and use the ticks, where they exist, only for their witnesses.
"""

from __future__ import annotations

import sqlite3

from reportgen.diagnose.detectors.common import fmt_duration, listed, plural, quoted, when
from reportgen.diagnose.inputs import DiagnosisInput, Step, ms
from reportgen.diagnose.model import Finding, Subject, fold
from reportgen.town import clock
from reportgen.town.config import rig_overrides

DISPATCH_LOOP = "dispatch-loop"
ATTEMPTS_EXHAUSTED = "attempts-exhausted"
HOOKED_NOT_DISPATCHED = "hooked-not-dispatched"

#: Bead statuses in which a dispatch loop can go on.
LIVE = ("open", "in_progress")


# --------------------------------------------------------------------------- dispatch-loop


def detect_dispatch_loop(inp: DiagnosisInput) -> list[Finding]:
    """One finding per bead dispatched at least ``dispatches`` times in the window."""
    least = inp.config.count(DISPATCH_LOOP, "dispatches")
    found: list[Finding] = []
    for bead_id, steps in sorted(inp.steps_by_bead.items()):
        dispatches = [s for s in steps if s.type == "dispatch_agent"]
        if len(dispatches) < least:
            continue
        row = inp.conn.execute("SELECT status FROM beads WHERE bead_id = ?", (bead_id,)).fetchone()
        refused, lost = _failures(steps)
        subject = inp.bead_subject(bead_id)
        span = fmt_duration(clock.to_ms(dispatches[-1].at) - clock.to_ms(dispatches[0].at))
        because = (
            f"Bead {quoted(inp.name(subject))} was dispatched {len(dispatches)} times in {span}"
            f"{_how_they_ended(refused, lost)}."
        )
        found.append(
            inp.finding(
                DISPATCH_LOOP,
                subject,
                first_at=dispatches[0].at,
                last_at=dispatches[-1].at,
                open_at_end=row is not None and row[0] in LIVE,
                count=len(dispatches),
                because=because,
                witness_at=[s.at for s in dispatches],
                meanwhile=fold([(s.at, s.label) for s in steps]),
            )
        )
    return found


def _how_they_ended(refused: int, lost: int) -> str:
    """``: the container refused 2 starts and 3 runs ended without finishing the work``."""
    parts = []
    if refused:
        parts.append(f"the container refused {plural(refused, 'start')}")
    if lost:
        parts.append(f"{plural(lost, 'run')} ended without finishing the work")
    return (": " + " and ".join(parts)) if parts else ""


def _failures(steps: list[Step]) -> tuple[int, int]:
    """Dispatches the container refused, and accepted ones whose bead was reset or failed after."""
    refused = lost = 0
    running = False
    for step in steps:
        if step.type == "dispatch_agent":
            refused += step.ok is False
            running = step.ok is not False
        elif (
            running
            and step.type == "transition_bead"
            and step.action.get("to") in ("open", "failed")
        ):
            lost += 1
            running = False
    return refused, lost


# --------------------------------------------------------------------------- attempts-exhausted

_FAILED_AT_CAP_SQL = """
SELECT b.bead_id, b.rig_id, b.title, b.updated_at, b.dispatch_attempts,
       (EXISTS (SELECT 1 FROM bead_events e WHERE e.bead_id = b.bead_id
               AND e.event_type = 'status_changed' AND e.new_value = 'failed'
               AND e.metadata LIKE '%dispatch attempts%')
        OR (b.type = 'convoy' AND b.metadata LIKE '%landing_mr_exhausted%')) AS by_reconciler
FROM beads b
WHERE b.status = 'failed' AND b.type NOT IN ('agent', 'message')
  AND b.updated_at >= :start AND b.updated_at <= :as_of
ORDER BY b.updated_at, b.bead_id
"""
_LIVE_AT_CAP_SQL = """
SELECT bead_id, rig_id, title, coalesce(last_dispatch_attempt_at, updated_at) AS at,
       dispatch_attempts
FROM beads WHERE status IN ('open', 'in_progress') AND type IN ('issue', 'merge_request')
ORDER BY bead_id
"""
_AGENTS_AT_CAP_SQL = """
SELECT am.bead_id, ab.rig_id, ab.title, am.last_activity_at AS at, am.dispatch_attempts
FROM agent_metadata am JOIN beads ab ON ab.bead_id = am.bead_id
JOIN beads hooked ON hooked.bead_id = am.current_hook_bead_id
WHERE am.status = 'idle' AND am.role != 'mayor' AND hooked.status NOT IN ('closed', 'failed')
ORDER BY am.bead_id
"""


def _cap(conn: sqlite3.Connection, rig_id: object, default: int) -> int:
    """The rig's ``max_dispatch_attempts`` override, else ``default``."""
    row = conn.execute("SELECT config FROM rigs WHERE id = ?", (rig_id,)).fetchone()
    value = rig_overrides(row[0] if row is not None else None).get("max_dispatch_attempts")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def detect_attempts_exhausted(inp: DiagnosisInput) -> list[Finding]:
    """One finding per rig with beads failed at, or beads and hooked agents sitting at, the cap."""
    default = inp.config.count(ATTEMPTS_EXHAUSTED, "cap")
    groups: dict[str, dict[str, list[sqlite3.Row]]] = {}
    params = {"start": inp.window_from, "as_of": inp.as_of}

    def at_cap(row: sqlite3.Row) -> bool:
        return int(row["dispatch_attempts"] or 0) >= _cap(inp.conn, row["rig_id"], default)

    for row in inp.rows(_FAILED_AT_CAP_SQL, params):
        if row["by_reconciler"] or at_cap(row):
            groups.setdefault(str(row["rig_id"] or ""), {}).setdefault("failed", []).append(row)
    for sql, part in ((_LIVE_AT_CAP_SQL, "beads"), (_AGENTS_AT_CAP_SQL, "agents")):
        for row in inp.rows(sql):
            if at_cap(row) and ms(row["at"]) is not None:
                groups.setdefault(str(row["rig_id"] or ""), {}).setdefault(part, []).append(row)
    return [_exhausted(inp, rig_id, parts) for rig_id, parts in sorted(groups.items())]


def _sit(rows: list[sqlite3.Row]) -> str:
    return "sits" if len(rows) == 1 else "sit"


def _exhausted(inp: DiagnosisInput, rig_id: str, parts: dict[str, list[sqlite3.Row]]) -> Finding:
    failed, live, agents = (parts.get(k, []) for k in ("failed", "beads", "agents"))
    rows = failed + live + agents
    times = sorted([str(r["updated_at"]) for r in failed] + [str(r["at"]) for r in live + agents])
    subject = inp.rig_subject(rig_id or None)
    said = []
    if failed:
        said.append(
            f"{plural(len(failed), 'bead')} failed after using every attempt "
            f"({listed([r['title'] for r in failed])})"
        )
    if live:
        said.append(
            f"{plural(len(live), 'bead')} {_sit(live)} at the attempt cap "
            f"({listed([r['title'] for r in live])})"
        )
    if agents:
        said.append(
            f"{plural(len(agents), 'idle agent')} hooked to live work {_sit(agents)} at the "
            f"cap ({listed([r['title'] for r in agents])})"
        )
    where = f"In rig {inp.name(subject)}" if subject.kind == "rig" else "In the town"
    because = f"{where}, " + "; ".join(said) + "; the reconciler will not pick them again."
    bead_ids = [str(r["bead_id"]) for r in failed + live]
    steps = inp.steps(bead_ids)
    ends = [s.at for s in steps if s.type == "transition_bead" and s.action.get("to") == "failed"]
    return inp.finding(
        ATTEMPTS_EXHAUSTED,
        subject,
        first_at=times[0],
        last_at=times[-1],
        open_at_end=True,
        count=len(rows),
        because=because,
        witness_at=ends,
        meanwhile=fold([(s.at, s.label) for s in steps]),
    )


# --------------------------------------------------------------------------- hooked-not-dispatched

_HOOKED_SQL = """
SELECT am.bead_id AS agent_id, am.last_activity_at, b.bead_id, b.title, b.updated_at,
       b.last_dispatch_attempt_at
FROM agent_metadata am JOIN beads b ON b.bead_id = am.current_hook_bead_id
WHERE am.status = 'idle' AND b.status = 'open'
ORDER BY am.bead_id
"""


def detect_hooked_not_dispatched(inp: DiagnosisInput) -> list[Finding]:
    """One finding per idle agent hooked to an open bead for ``hooked_for`` with no dispatch since."""
    least = inp.config.ms(HOOKED_NOT_DISPATCHED, "hooked_for")
    found: list[Finding] = []
    for row in inp.rows(_HOOKED_SQL):
        times = [t for t in (ms(row["updated_at"]), ms(row["last_activity_at"])) if t is not None]
        if not times:
            continue
        since = max(times)
        dispatched = ms(row["last_dispatch_attempt_at"])
        if inp.as_of_ms - since < least or (dispatched is not None and dispatched >= since):
            continue
        since_at = clock.iso(since)
        steps = [
            s
            for s in inp.steps([str(row["bead_id"])], after=since_at)
            if s.type == "dispatch_agent"
        ]
        if steps:
            continue
        subject = Subject("agent", str(row["agent_id"]))
        because = (
            f"Agent {inp.name(subject)} has been idle and hooked to open bead {quoted(row['title'])} "
            f"since {when(since_at)} ({fmt_duration(inp.as_of_ms - since)}) and nothing dispatched it."
        )
        found.append(
            inp.finding(
                HOOKED_NOT_DISPATCHED,
                subject,
                first_at=since_at,
                last_at=inp.as_of,
                open_at_end=True,
                count=1,
                because=because,
                witness_at=inp.ticks_after(since + least),
            )
        )
    return found
