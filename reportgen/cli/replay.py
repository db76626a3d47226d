"""``reportgen replay``: the state at --from and the window, or the window tick by tick.

The views at the bottom shape ``replay --ticks`` output for the terminal and ``--json``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import click

from reportgen.cli.common import (
    DB_PATH,
    auto_recover_option,
    echo_chosen,
    format_actions_table,
    json_text,
    reports_errors,
)
from reportgen.cli.progress import progress_bar, quiet_option
from reportgen.errors import BadInputError
from reportgen.town.context import Action
from reportgen.town_run import TownRun


@click.command("replay")
@click.option("--db", required=True, type=DB_PATH, help="Town database or bundle.")
@click.option(
    "--from", "start", required=True, help="Window start, ISO-8601 UTC (e.g. 2026-03-16T08:00:00Z)."
)
@click.option(
    "--to", "end", required=True, help="Window end, ISO-8601 UTC (e.g. 2026-03-16T09:00:00Z)."
)
@click.option(
    "--ticks",
    "ticks",
    is_flag=False,
    flag_value="replay",
    default=None,
    type=click.Choice(["replay", "simulate"]),
    help="Replay tick by tick and compare with the record (--ticks alone is --ticks replay). "
    "A database with no journal (an "
    "upstream dump) has no ticks: its own history and a dry-run at --to are shown instead, "
    "unless '--ticks simulate', which adds ticks simulated on its stored (today's) state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON response.")
@auto_recover_option
@quiet_option
@reports_errors
def replay_command(
    db: str, start: str, end: str, ticks: str | None, as_json: bool, auto_recover: tuple[int, ...]
) -> None:
    """Rebuild the state at --from and replay the window (read-only).

    With --ticks and SENTRY_DSN set, each violation episode found is sent to
    Sentry once (flushed before the command exits); simulated ticks never alert.

    \b
    Examples:
        reportgen replay --db town.sqlite --from 2026-03-16T08:00:00Z --to 2026-03-16T09:00:00Z
        reportgen replay --db incident.sqlite --from 2026-03-16T08:00:00Z --to 2026-03-16T09:00:00Z --ticks
        reportgen replay --db town.sqlite --from 2026-03-16T08:00:00Z --to 2026-03-16T09:00:00Z --ticks --auto-recover 7 --json
    """
    from reportgen import replay
    from reportgen.diagnose.episodes import find_episodes
    from reportgen.observability.sentry import report_episodes, reporter_from_env
    from reportgen.replay.source import given_window
    from reportgen.town.recovery import validate

    if auto_recover and not ticks:
        raise BadInputError("--auto-recover needs --ticks (it changes what each tick does)")
    if not ticks:
        with progress_bar("replay"):
            result = replay.replay_events(db, start, end)
        echo_chosen("window", given_window(start, end), db)
        if as_json:
            click.echo(json_text(result))
            return
        click.echo(_events_text(result))
        return
    recover = validate(auto_recover) if auto_recover else None
    reporter = reporter_from_env()  # a bad SENTRY_DSN fails before the work, not after
    with progress_bar("replay"):
        run = replay.replay_window(
            db, start, end, auto_recover=recover, simulate=ticks == "simulate"
        )
    echo_chosen("window", given_window(start, end), db)
    click.echo(json_text(ticks_json(run)) if as_json else _ticks_text(run))
    if run.fidelity != replay.SIMULATED:  # ticks that never happened raise no alert
        report_episodes(reporter, find_episodes(run.town_id, run.ticks))


def _events_text(result: dict[str, Any]) -> str:
    lines = [format_actions_table(result["actions"]), ""]
    snap = result["stateSnapshot"]
    lines.append(
        f"{len(result['actions'])} action(s) at the window end; {result['eventsReplayed']} "
        f"event(s) replayed; {len(snap['agents'])} agent(s), "
        f"{len(snap['nonTerminalBeads'])} non-terminal bead(s); fidelity {result['fidelity']}"
    )
    lines += [f"quarantined {q['event_id']}: {q['reason']}" for q in result["quarantined"]]
    if result.get("caveat"):
        lines.append(f"caveat: {result['caveat']}")
    return "\n".join(lines)


def _ticks_text(run: TownRun) -> str:
    """A dump's own history first (one line per entry), then one line per tick that did
    something; quiet ticks are counted, then the summary."""
    lines = [f"{h['at']}  {h['kind']}  {h['label']}" for h in run.history]
    quiet = 0
    for t in run.ticks:
        m = t["metrics"]
        if not (m["eventsDrained"] or m["actionsEmitted"] or m["invariantViolations"]):
            quiet += 1
            continue
        line = (
            f"{t['at']}  events {m['eventsDrained']}  actions {m['actionsEmitted']}"
            f"{' (' + actions_line(t['actions']) + ')' if t['actions'] else ''}  "
            f"effects {m['sideEffectsSucceeded']}/{m['sideEffectsAttempted']}"
        )
        if t["violations"]:
            line += "  violations: " + "; ".join(v["message"] for v in t["violations"])
        lines.append(line)
    s = summary(run)
    if run.ticks:
        lines.append(f"({quiet} quiet tick(s) not shown)")
    lines.append(
        f"{s['ticks']} tick(s), {s['eventsDrained']} event(s), {s['actionsEmitted']} action(s), "
        f"{s['sideEffectsFailed']} failed side effect(s), {s['invariantViolations']} "
        f"violation(s) in {s['ticksWithViolations']} tick(s); fidelity {run.fidelity}"
    )
    lines += [f"quarantined {q['event_id']} at {q['at']}: {q['reason']}" for q in run.quarantined]
    if run.divergence is not None:
        d = run.divergence
        lines.append(
            f"DIVERGENCE at tick {d.tick_at}, {d.field}: recorded {d.recorded!r}, "
            f"replayed {d.replayed!r}"
        )
    elif run.compared_ticks:
        lines.append(f"no divergence over {run.compared_ticks} recorded tick(s)")
    if run.caveat:
        lines.append(f"caveat: {run.caveat}")
    return "\n".join(lines)


def tick_view(record: dict[str, Any]) -> dict[str, Any]:
    """One tick as ``replay --ticks --json`` shows it."""
    m = record["metrics"]
    return {
        "at": record["at"],
        "eventsDrained": m["eventsDrained"],
        "eventsByType": dict(Counter(e["event_type"] for e in record["events"])),
        "actions": record["actions"],
        "sideEffects": {
            "attempted": m["sideEffectsAttempted"],
            "succeeded": m["sideEffectsSucceeded"],
            "failed": m["sideEffectsFailed"],
        },
        "violations": record["violations"],
        "wallClockMs": m["wallClockMs"],
        "pendingEventCount": m["pendingEventCount"],
    }


def summary(run: TownRun) -> dict[str, Any]:
    """Totals over the window's ticks."""
    metrics = [t["metrics"] for t in run.ticks]
    by_type: Counter[str] = Counter()
    for m in metrics:
        by_type.update(m["actionsByType"])
    return {
        "ticks": len(run.ticks),
        "eventsDrained": sum(m["eventsDrained"] for m in metrics),
        "actionsEmitted": sum(m["actionsEmitted"] for m in metrics),
        "actionsByType": dict(sorted(by_type.items())),
        "sideEffectsAttempted": sum(m["sideEffectsAttempted"] for m in metrics),
        "sideEffectsSucceeded": sum(m["sideEffectsSucceeded"] for m in metrics),
        "sideEffectsFailed": sum(m["sideEffectsFailed"] for m in metrics),
        "invariantViolations": sum(m["invariantViolations"] for m in metrics),
        "ticksWithViolations": sum(1 for m in metrics if m["invariantViolations"]),
        "quarantined": len(run.quarantined),
        "journalInputs": run.journal_inputs,
    }


def ticks_json(run: TownRun) -> dict[str, Any]:
    """The ``replay --ticks --json`` response."""
    out: dict[str, Any] = {
        "townId": run.town_id,
        "source": run.source,
        "from": run.window_from,
        "to": run.window_to,
        "fidelity": run.fidelity,
    }
    if run.caveat:
        out["caveat"] = run.caveat
    div = run.divergence
    out |= {
        "history": run.history,
        "ticks": [tick_view(t) for t in run.ticks],
        "summary": summary(run),
        "quarantined": run.quarantined,
        "comparison": {
            "comparedTicks": run.compared_ticks,
            "divergence": None
            if div is None
            else {
                "tickAt": div.tick_at,
                "field": div.field,
                "recorded": div.recorded,
                "replayed": div.replayed,
            },
        },
    }
    return out


def actions_line(actions: list[Action]) -> str:
    return ", ".join(f"{t}×{n}" for t, n in Counter(a["type"] for a in actions).items())
