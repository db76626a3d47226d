"""``no-progress``: work waits in a rig and nothing productive happened for too long.

Judged at the window's end from the beads' own times, so it works on a bare
upstream dump: the last productive moment of a rig is the newest of its
beads' ``closed_at`` and of the audit events that mark finished work
(submitted for review, a PR created, a review completed, a status change to
``in_review`` or ``closed``). An agent of the rig with recent SDK activity
(``last_event_at``) is work in flight, not a stall.
"""

from __future__ import annotations

from reportgen.diagnose.detectors.common import fmt_duration, plural, when
from reportgen.diagnose.inputs import DiagnosisInput, ms
from reportgen.diagnose.model import Finding, fold
from reportgen.town import clock

KIND = "no-progress"

_PRODUCTIVE_SQL = """
SELECT rig_id, max(t) AS last FROM (
  SELECT rig_id, closed_at AS t FROM beads
  WHERE closed_at IS NOT NULL AND type IN ('issue', 'merge_request', 'convoy')
  UNION ALL
  SELECT b.rig_id, e.created_at AS t FROM bead_events e JOIN beads b ON b.bead_id = e.bead_id
  WHERE e.event_type IN ('review_submitted', 'pr_created', 'review_completed')
     OR (e.event_type = 'status_changed' AND e.new_value IN ('in_review', 'closed'))
) WHERE rig_id IS NOT NULL AND t <= :as_of GROUP BY rig_id
"""

_ACTIVE_AGENTS_SQL = """
SELECT ab.rig_id, count(*) FROM agent_metadata am JOIN beads ab ON ab.bead_id = am.bead_id
WHERE am.status IN ('working', 'stalled') AND am.last_event_at > :since
  AND am.last_event_at <= :as_of
GROUP BY ab.rig_id
"""


def detect(inp: DiagnosisInput) -> list[Finding]:
    """One finding per rig whose pending work saw no productive moment for ``min_idle``."""
    idle_ms = inp.config.ms(KIND, "min_idle")
    since = clock.iso(inp.as_of_ms - idle_ms)
    params = {"as_of": inp.as_of, "since": since}
    last = {str(r[0]): str(r[1]) for r in inp.rows(_PRODUCTIVE_SQL, params) if ms(r[1])}
    active = {str(r[0]) for r in inp.rows(_ACTIVE_AGENTS_SQL, params)}
    found: list[Finding] = []
    for rig_id, beads in sorted(inp.pending.items()):
        if rig_id in active:
            continue
        waiting_since = min(
            (str(b["created_at"]) for b in beads if ms(b["created_at"])), default=""
        )
        idle_since = last.get(rig_id) or waiting_since
        if not idle_since or inp.as_of_ms - clock.to_ms(idle_since) < idle_ms:
            continue
        finding = _finding(inp, rig_id, len(beads), idle_since, rig_id in last, idle_ms)
        if finding is not None:
            found.append(finding)
    return found


def _finding(
    inp: DiagnosisInput, rig_id: str, waiting: int, idle_since: str, ever: bool, idle_ms: int
) -> Finding | None:
    crossed = clock.to_ms(idle_since) + idle_ms
    ticked = inp.ticks_after(crossed)
    if inp.ticks is not None and not ticked:
        return None  # the town did not tick after the threshold: town-silent's case
    subject = inp.rig_subject(rig_id)
    stalled = fmt_duration(inp.as_of_ms - clock.to_ms(idle_since))
    what = "last productive work" if ever else "the oldest pending bead arrived"
    because = (
        f"Rig {inp.name(subject)} has {plural(waiting, 'bead')} waiting and nothing was closed, "
        f"merged or submitted for review for {stalled} ({what} at {when(idle_since)}), "
        "with no agent of the rig working."
    )
    meanwhile = None
    if inp.ticks is not None:
        bead_ids = [
            str(r[0]) for r in inp.rows("SELECT bead_id FROM beads WHERE rig_id = ?", (rig_id,))
        ]
        steps = inp.steps(bead_ids, after=idle_since)
        meanwhile = fold([(s.at, s.label) for s in steps]) or (
            f"{plural(len(inp.ticks_after(clock.to_ms(idle_since))), 'tick')}, no action"
        )
    return inp.finding(
        KIND,
        subject,
        first_at=idle_since,
        last_at=inp.as_of,
        open_at_end=True,
        count=waiting,
        because=because,
        witness_at=ticked,
        meanwhile=meanwhile,
    )
