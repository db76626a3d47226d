"""``review-loop``: one merge request goes round and round without merging or closing.

A feedback round is a bead the town created under the MR to address review
comments, failing CI, a merge conflict or requested changes (labels
``gt:pr-feedback``, ``gt:pr-conflict``, ``gt:rework``, ``gt:pr-fixup``,
parent = the MR). A loop is enough rounds, or an MR still open and polled
long after its first round. A PR that simply waits for a human to merge it
has no round and is no loop.
"""

from __future__ import annotations

import sqlite3

from reportgen.diagnose.detectors.common import fmt_duration, plural, quoted, when
from reportgen.diagnose.inputs import DiagnosisInput, ms
from reportgen.diagnose.model import Finding, Subject, fold
from reportgen.town import clock

KIND = "review-loop"

_ROUNDS_SQL = """
SELECT mr.bead_id, mr.title, mr.status, mr.updated_at, rm.pr_url,
       count(fb.bead_id) AS rounds, min(fb.created_at) AS first_round,
       max(fb.created_at) AS last_round, group_concat(fb.bead_id, char(31)) AS round_ids
FROM beads fb JOIN beads mr ON mr.bead_id = fb.parent_bead_id
LEFT JOIN review_metadata rm ON rm.bead_id = mr.bead_id
WHERE mr.type = 'merge_request' AND fb.created_at <= :as_of
  AND (fb.labels LIKE '%"gt:pr-feedback"%' OR fb.labels LIKE '%"gt:pr-conflict"%'
       OR fb.labels LIKE '%"gt:rework"%' OR fb.labels LIKE '%"gt:pr-fixup"%')
GROUP BY mr.bead_id ORDER BY mr.bead_id
"""

LIVE = ("open", "in_progress")


def detect(inp: DiagnosisInput) -> list[Finding]:
    """One finding per MR with ``rounds`` rounds, or still polled ``polled`` after its first."""
    rounds = inp.config.count(KIND, "rounds")
    polled = inp.config.ms(KIND, "polled")
    found: list[Finding] = []
    for row in inp.rows(_ROUNDS_SQL, {"as_of": inp.as_of}):
        first = ms(row["first_round"])
        live = row["status"] in LIVE
        end = inp.as_of_ms if live else ms(row["updated_at"])
        if first is None or end is None or end < clock.to_ms(inp.window_from):
            continue
        looping = int(row["rounds"]) >= rounds or (
            live and row["pr_url"] is not None and end - first >= polled
        )
        if looping:
            found.append(_loop(inp, row, first, end, live))
    return found


def _loop(inp: DiagnosisInput, row: sqlite3.Row, first: int, end: int, live: bool) -> Finding:
    subject = Subject("bead", str(row["bead_id"]))
    n = int(row["rounds"])
    outcome = "and is still open" if live else f"before it ended {row['status']}"
    because = (
        f"Merge request {quoted(row['title'])} went through {plural(n, 'feedback round')} "
        f"since {when(clock.iso(first))}, {fmt_duration(end - first)} without merging, "
        f"{outcome}."
    )
    beads = [str(row["bead_id"]), *str(row["round_ids"] or "").split("\x1f")]
    steps = inp.steps(beads, after=clock.iso(first))
    dispatches = [s.at for s in steps if s.type == "dispatch_agent"]
    return inp.finding(
        KIND,
        subject,
        first_at=clock.iso(first),
        last_at=clock.iso(end),
        open_at_end=live,
        count=n,
        because=because,
        witness_at=dispatches or [s.at for s in steps],
        meanwhile=fold([(s.at, s.label) for s in steps]),
    )
