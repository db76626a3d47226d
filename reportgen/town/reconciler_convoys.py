"""reconcileConvoys (spec §5.4): convoy progress, and landing a finished convoy's feature
branch through a landing merge request.

Read-only and clock-free like every pass (see :mod:`reportgen.town.reconciler`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import (
    LANDING_MR_COOLDOWN_BASE_MS,
    LANDING_MR_COOLDOWN_MAX_MS,
    MAX_LANDING_MR_ATTEMPTS,
    close_convoy,
    coalesce,
    create_landing_mr,
    elapsed_ms,
    emit_event,
    fail_convoy,
    is_one_or_true,
    js_truthy,
    json_object,
    set_convoy_ready_to_land,
    update_convoy_progress,
)

# ════════════════════════════════════════════════════════════════════════
# reconcileConvoys (spec §5.4)
# ════════════════════════════════════════════════════════════════════════


def reconcile_convoys(ctx: TownCtx) -> list[Action]:
    """Track convoy progress and finish convoys whose tracked issues are all done (§5.4)."""
    actions: list[Action] = []
    convoys = ctx.all(
        """
        SELECT b.bead_id, b.metadata, cm.closed_beads, cm.feature_branch, cm.merge_mode
        FROM beads b
        JOIN convoy_metadata cm ON cm.bead_id = b.bead_id
        WHERE b.type = 'convoy' AND b.status = 'open'
        """
    )
    for convoy in convoys:
        actions += _reconcile_one_convoy(ctx, convoy)
    return actions


def _reconcile_one_convoy(ctx: TownCtx, convoy: sqlite3.Row) -> list[Action]:
    """Progress update (always when it changed), then landing or closing when all done.

    Only ``merge_mode = 'review-then-land'`` (exactly; null does not count)
    with a feature branch lands through a landing MR; anything else closes.
    """
    convoy_id = convoy["bead_id"]
    progress = ctx.one(
        """
        SELECT count(CASE WHEN t.status IN ('closed', 'failed') THEN 1 END) AS closed_count,
               count(*) AS total_count
        FROM bead_dependencies bd
        JOIN beads t ON t.bead_id = bd.bead_id
        WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks' AND t.type = 'issue'
        """,
        (convoy_id,),
    )
    closed_count = int(progress["closed_count"]) if progress else 0
    total_count = int(progress["total_count"]) if progress else 0
    in_flight = _convoy_has_in_flight_mr(ctx, convoy_id)

    actions: list[Action] = []
    if closed_count != convoy["closed_beads"]:
        actions.append(update_convoy_progress(convoy_id, closed_count))
    if not (closed_count >= total_count and total_count > 0 and not in_flight):
        return actions
    if convoy["merge_mode"] == "review-then-land" and convoy["feature_branch"]:
        return actions + _land_convoy(ctx, convoy)
    return [*actions, close_convoy(convoy_id)]


def _convoy_has_in_flight_mr(ctx: TownCtx, convoy_id: str) -> bool:
    """An open/in-progress MR tracks one of the issues the convoy tracks."""
    row = ctx.one(
        """
        SELECT count(*) AS cnt
        FROM bead_dependencies track_dep
        JOIN bead_dependencies mr_dep ON mr_dep.depends_on_bead_id = track_dep.bead_id
        JOIN beads mr ON mr.bead_id = mr_dep.bead_id
        WHERE track_dep.depends_on_bead_id = ?
          AND track_dep.dependency_type = 'tracks'
          AND mr_dep.dependency_type = 'tracks'
          AND mr.type = 'merge_request'
          AND mr.status IN ('open', 'in_progress')
        """,
        (convoy_id,),
    )
    return row is not None and int(row["cnt"]) > 0


def _land_convoy(ctx: TownCtx, convoy: sqlite3.Row) -> list[Action]:
    """Review-then-land: mark ready, then drive one landing MR at a time (§5.4 step 7).

    A merged landing MR closes the convoy; an active one is waited for; a
    failed one awaiting external approval suppresses a respawn; after 5
    attempts the convoy fails; between attempts the cooldown is
    ``min(2^n × 30 s, 30 min)`` (an exactly elapsed cooldown proceeds).
    """
    convoy_id = convoy["bead_id"]
    meta = json_object(convoy["metadata"])
    if not js_truthy(meta.get("ready_to_land")):
        return [set_convoy_ready_to_land(convoy_id)]

    attempts = _landing_attempts(meta)
    landing = ctx.all(
        """
        SELECT mr.status, mr.metadata FROM bead_dependencies bd
        JOIN beads mr ON mr.bead_id = bd.bead_id
        WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks'
          AND mr.type = 'merge_request'
        """,
        (convoy_id,),
    )
    statuses = [mr["status"] for mr in landing]
    if "closed" in statuses:
        return [close_convoy(convoy_id)]
    if "open" in statuses or "in_progress" in statuses:
        return []
    if any(
        mr["status"] == "failed"
        and is_one_or_true(json_object(mr["metadata"]).get("awaiting_approval"))
        for mr in landing
    ):
        data = {"convoyId": convoy_id, "suppressedAttempt": attempts + 1}
        return [emit_event("reconciler.respawn_suppressed", data)]
    if attempts >= MAX_LANDING_MR_ATTEMPTS:
        reason = f"Landing MR creation failed after {MAX_LANDING_MR_ATTEMPTS} attempts"
        return [fail_convoy(convoy_id, reason)]
    last_at = meta.get("last_landing_mr_attempt_at")
    if attempts > 0 and isinstance(last_at, str) and last_at:
        cooldown = min(2**attempts * LANDING_MR_COOLDOWN_BASE_MS, LANDING_MR_COOLDOWN_MAX_MS)
        if elapsed_ms(ctx, last_at) < cooldown:
            return []
    return _create_landing_mr(ctx, convoy)


def _landing_attempts(meta: dict[str, Any]) -> int | float:
    """``landing_mr_attempts`` when it is a JSON number, else 0 (§17)."""
    value = meta.get("landing_mr_attempts")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return 0


def _create_landing_mr(ctx: TownCtx, convoy: sqlite3.Row) -> list[Action]:
    """``create_landing_mr`` on the first rig among the tracked beads (none → nothing)."""
    row = ctx.one(
        """
        SELECT DISTINCT t.rig_id AS rig_id FROM bead_dependencies bd
        JOIN beads t ON t.bead_id = bd.bead_id
        WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks'
          AND t.rig_id IS NOT NULL
        LIMIT 1
        """,
        (convoy["bead_id"],),
    )
    if row is None:
        return []
    rig = ctx.one("SELECT default_branch FROM rigs WHERE id = ?", (row["rig_id"],))
    target = coalesce(rig["default_branch"] if rig else None, "main")
    return [create_landing_mr(convoy["bead_id"], row["rig_id"], convoy["feature_branch"], target)]
