"""What a simulated agent process does once the container has started it.

A run heartbeats every ~30 s (``touchAgent`` with SDK activity), works for a
sampled time and then reports: a polecat calls ``gt_done`` with its branch
(and a PR when its rig merges by PR), a refinery finishes its review (with
the PR URL, or merging directly), and the container then reports
``agent_completed``. A run may instead crash (the container reports
``exited``/``failed`` and heartbeats stop), hang (heartbeats continue without
SDK progress: GUPP's case) or lose its heartbeats (it keeps working unseen).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from reportgen.sim.container import Process
from reportgen.town import clock

if TYPE_CHECKING:
    from reportgen.sim.event_loop import Simulation

EVENT_TYPES = ("tool_use", "tool_result", "message")
TOOLS = ("Bash", "Edit", "Read", "Grep")


def slug(title: str) -> str:
    """A branch-safe slug of a bead title."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "work"


def plan_run(sim: Simulation, proc: Process) -> None:
    """Draw the run's fate and schedule its heartbeats and its end."""
    k, rng, now = sim.knobs.agents, sim.rng, proc.started_ms
    work = k.refinery_review if proc.role == "refinery" else k.polecat_work
    finish_ms = proc.ready_ms + work.sample(rng)
    crash = k.refinery_crash if proc.role == "refinery" else k.polecat_crash
    if rng.random() < crash.prob:
        crash_ms = now + crash.after.sample(rng)
        if crash_ms < finish_ms:
            sim.agenda.at(crash_ms, lambda ms: crash_run(sim, proc, ms))
            finish_ms = -1
    if finish_ms > 0 and rng.random() < k.hang.prob:
        proc.hung_from_ms = now + k.hang.after.sample(rng)
        finish_ms = -1 if proc.hung_from_ms < finish_ms else finish_ms
    if finish_ms > 0 and rng.random() < k.lost_heartbeat.prob:
        proc.silent_from_ms = now + k.lost_heartbeat.after.sample(rng)
    sim.agenda.at(proc.ready_ms, lambda ms: heartbeat(sim, proc, ms))
    if finish_ms > 0:
        sim.agenda.at(finish_ms, lambda ms: finish_run(sim, proc, ms))


def heartbeat(sim: Simulation, proc: Process, ms: int) -> None:
    """One heartbeat, then the next one; a hung run reports no SDK activity."""
    if not sim.container.current(proc):
        return
    if not proc.silent(ms):
        at = clock.iso(ms)
        if proc.hung(ms):
            sim.town.heartbeat(at, proc.agent_id, active_tools=[])
        else:
            tools = sorted(sim.rng.sample(TOOLS, sim.rng.randint(0, 2)))
            event = EVENT_TYPES[sim.rng.randrange(len(EVENT_TYPES))]
            sim.town.heartbeat(at, proc.agent_id, last_event_type=event, active_tools=tools)
    sim.agenda.at(
        ms + sim.knobs.agents.heartbeat.sample(sim.rng), lambda t: heartbeat(sim, proc, t)
    )


def crash_run(sim: Simulation, proc: Process, ms: int) -> None:
    """The process dies without reporting; the container tells what it saw."""
    if not sim.container.current(proc):
        return
    statuses = sim.knobs.agents.crash_statuses
    proc.end(statuses[sim.rng.randrange(len(statuses))], "error")


def finish_run(sim: Simulation, proc: Process, ms: int) -> None:
    """``gt_done`` with the run's result, then the completion report a few seconds later."""
    if not sim.container.current(proc):
        return
    if proc.role == "refinery":
        _refinery_done(sim, proc, ms)
    else:
        _polecat_done(sim, proc, ms)
    sim.poke(ms)
    done_ms = ms + sim.knobs.agents.completion_delay.sample(sim.rng)
    proc.silent_from_ms = ms  # no heartbeats between gt_done and the exit
    sim.agenda.at(done_ms, lambda t: complete_run(sim, proc, t))


def complete_run(sim: Simulation, proc: Process, ms: int) -> None:
    if sim.container.procs.get(proc.agent_id) is not proc:
        return
    proc.end("exited", "completed")
    sim.town.agent_completed(clock.iso(ms), proc.agent_id, status="completed")
    sim.poke(ms)


def _bead(sim: Simulation, bead_id: str) -> dict[str, object]:
    row = sim.town.conn.execute(
        """SELECT b.title, b.rig_id, b.labels, b.created_by,
                  json_extract(b.metadata, '$.pr_url') AS meta_pr,
                  json_extract(b.metadata, '$.branch') AS meta_branch,
                  rm.branch AS mr_branch, rm.pr_url AS mr_pr
           FROM beads b LEFT JOIN review_metadata rm ON rm.bead_id = b.bead_id
           WHERE b.bead_id = ?""",
        (bead_id,),
    ).fetchone()
    return {} if row is None else dict(row)


def _agent_name(sim: Simulation, agent_id: str) -> str:
    row = sim.town.conn.execute("SELECT title FROM beads WHERE bead_id = ?", (agent_id,)).fetchone()
    return str(row[0]) if row is not None else "agent"


def _polecat_done(sim: Simulation, proc: Process, ms: int) -> None:
    bead = _bead(sim, proc.bead_id)
    at = clock.iso(ms)
    if bead.get("meta_pr"):  # follow-up work (feedback, conflict) pushes to the existing PR
        url = str(bead["meta_pr"])
        if "gt:pr-conflict" in str(bead.get("labels")):
            sim.github.resolve_conflict(url, ms)
        branch = str(bead.get("meta_branch") or f"gt/{_agent_name(sim, proc.agent_id)}/fixup")
        sim.town.agent_done(at, proc.agent_id, branch=branch, summary="Addressed PR follow-up")
        return
    branch = f"gt/{_agent_name(sim, proc.agent_id).lower()}/{slug(str(bead.get('title', '')))}"
    rig_id = str(bead.get("rig_id") or "")
    pr_url = sim.github.open_pr(sim.repo(rig_id), ms) if sim.pr_strategy(rig_id) else None
    sim.town.agent_done(at, proc.agent_id, branch=branch, pr_url=pr_url, summary="Work complete")


def _refinery_done(sim: Simulation, proc: Process, ms: int) -> None:
    mr = _bead(sim, proc.bead_id)
    at = clock.iso(ms)
    branch = str(mr.get("mr_branch") or "main")
    rig_id = str(mr.get("rig_id") or "")
    if not sim.pr_strategy(rig_id):
        sim.town.agent_done(at, proc.agent_id, branch=branch, summary="Merged by refinery agent")
        return
    pr_url = mr.get("mr_pr")
    if not pr_url:
        landing = mr.get("created_by") == "system"
        pr_url = sim.github.open_pr(sim.repo(rig_id), ms, landing=landing)
    sim.town.agent_done(at, proc.agent_id, branch=branch, pr_url=str(pr_url), summary="Reviewed")
