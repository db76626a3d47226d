"""A long, busy synthetic window, to check that pages stay bounded whatever the window's length.

:func:`long_run` builds a :class:`~reportgen.town_run.TownRun` of ``ticks``
ticks (5 s apart) where every tick touches the same few entities with many
kinds of item, statuses flip on every tick, and a violation comes and goes
so that the town has many episodes: the worst case for an entity section,
an episode page and a finding page, with no engine run (it is fast).
"""

from __future__ import annotations

from typing import Any

from reportgen.town import clock
from reportgen.town_run import EntityInfo, TownRun

T0 = "2026-03-01T00:00:00.000Z"
RIG = "rig-long"
AGENT = "agent-long"
MR = "mr-long"
#: Ordinary beads, each touched by one action somewhere in the window.
BEADS = 300


def _tick(i: int, at: str) -> dict[str, Any]:
    """One busy tick: events, actions of several types, effects (some failing), a violation."""
    bead = f"bead-{i % BEADS:04d}"
    status = ("working", "idle")[i % 2]
    actions: list[dict[str, Any]] = [
        {"type": "poll_pr", "bead_id": MR, "pr_url": "https://example.com/pr/1"},
        {"type": "transition_agent", "agent_id": AGENT, "from": "x", "to": status},
        {"type": "transition_bead", "bead_id": MR, "from": "x", "to": f"s{i % 7}"},
        {"type": f"kind_{i % 20}", "bead_id": bead, "rig_id": RIG, "agent_id": AGENT},
    ]
    return {
        "at": at,
        "draining": False,
        "container": {"observed": 1, "recorded": 0},
        "events": [
            {
                "event_id": f"e{i}",
                "event_type": f"event_{i % 15}",
                "agent_id": AGENT,
                "bead_id": MR,
                "outcome": "applied",
                "error": None,
            },
        ],
        "actions": actions,
        "apply": [],
        "side_effects": {
            "attempted": 1,
            "succeeded": i % 3 != 0,
            "failed": i % 3 == 0,
            "outcomes": [
                {
                    "type": "poll_pr",
                    "ok": i % 3 != 0,
                    "detail": "x" * 300,
                    "bead_id": MR,
                    "agent_id": AGENT,
                }
            ],
        },
        "violations": [
            {
                "invariant": 7,
                "message": "Working agent has no hook " + "y" * 200,
                "agent_ids": [AGENT],
                "bead_ids": [MR],
                "rig_ids": [RIG],
            }
        ]
        if (i // 250) % 2 == 0
        else [],
        "recoveries": [],
        "metrics": {},
        "active_work": True,
        "next_tick_at": None,
    }


def long_run(ticks: int, town_id: str = "town-long") -> TownRun:
    """A window of ``ticks`` busy ticks, 5 s apart, with a finding spanning all of it."""
    start = clock.to_ms(T0)
    times = [clock.iso(start + 5000 * i) for i in range(ticks)]
    entities = {
        AGENT: EntityInfo(AGENT, "agent", "polecat", "Toast " + "t" * 300, "stalled", RIG),
        MR: EntityInfo(MR, "bead", "merge_request", "Review " + "m" * 300, "in_review", RIG),
    }
    finding = {
        "id": "f-long",
        "kind": "review-loop",
        "severity": "critical",
        "status": "new",
        "subject": {"kind": "bead", "id": MR},
        "subject_name": "Review",
        "first_at": times[0],
        "last_at": times[-1],
        "open_at_end": True,
        "count": ticks,
        "because": "loops",
        "witness": times[:3],
        "meanwhile": "poll_pr ×many",
        "replay_command": "reportgen replay",
        "expected": False,
    }
    return TownRun(
        town_id=town_id,
        source=f"{town_id}.sqlite",
        window_from=times[0],
        window_to=times[-1],
        fidelity="exact",
        caveat=None,
        ticks=[_tick(i, at) for i, at in enumerate(times)],
        entities=entities,
        diagnosis={"verdict": "stuck", "findings": [finding], "as_of": times[-1]},
    )
