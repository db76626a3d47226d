"""The container_status noise filter: remember what each agent's container last said.

Upstream's pre-phase polls every working or stalled agent's container every
tick (720 answers an hour at the active cadence), and nearly every answer is
``running``, which changes nothing. The filter records an answer only when it
is not ``running`` or differs from the last answer for that agent — so a
recovery to ``running`` is still on the record. The last answer per agent is
kept in ``rg_container_last`` so the rule survives across ticks and replays.
"""

from __future__ import annotations

from reportgen.town.context import TownCtx

MODES = ("upstream", "changes", "off")


def last_status(ctx: TownCtx, agent_id: str) -> str | None:
    row = ctx.one("SELECT status FROM rg_container_last WHERE agent_id = ?", (agent_id,))
    return None if row is None else str(row[0])


def should_record(ctx: TownCtx, agent_id: str, status: str, mode: str) -> bool:
    """Whether this answer becomes a ``container_status`` event; updates the last-seen status.

    Needs reportgen's tables (``ensure_reportgen_tables``), as every tick does.
    """
    if mode not in MODES:
        raise ValueError(f"unknown container filter mode {mode!r} (expected one of {MODES})")
    previous = last_status(ctx, agent_id)
    ctx.run(
        "INSERT INTO rg_container_last (agent_id, status, observed_at) VALUES (?, ?, ?) "
        "ON CONFLICT(agent_id) DO UPDATE SET status = excluded.status, "
        "observed_at = excluded.observed_at",
        (agent_id, status, ctx.now),
    )
    if mode == "off":
        return True
    if status != "running":
        return True
    return mode == "changes" and previous is not None and previous != "running"
