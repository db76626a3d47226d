"""The deferred parts of ``poll_pr`` and ``merge_pr`` (spec §6.4, §6.5), and PR URL parsing.

Polling a PR drives most of an MR's life: status changes become
``pr_status_changed`` events, conflicts and feedback become their own events
and beads, all-green PRs start the auto-merge grace period, and repeated poll
errors fail the MR (:mod:`reportgen.town.pr_poll_errors`). Runs inside
:func:`reportgen.town.effects.run_side_effects`, which imports this module;
the types both share live in :mod:`reportgen.town.effect_run`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from reportgen.town import clock
from reportgen.town.context import TownCtx
from reportgen.town.effect_run import LOG, EffectOutcome, EffectRun
from reportgen.town.pr_poll_errors import poll_error
from reportgen.town.world import PRFeedback, PRStatusError, World

# --------------------------------------------------------------------------- PR URLs


_GITHUB_PR = re.compile(r"https://github\.com/([^/]+/[^/]+)/pull/(\d+)")
_GITLAB_MR = re.compile(r"https://[^/]+/(.+)/-/merge_requests/(\d+)")


def parse_pr_url(pr_url: str) -> tuple[str, int] | None:
    """``parsePrUrl``: ``(repo, number)`` of a GitHub PR or GitLab MR URL, else ``None``."""
    m = _GITHUB_PR.match(pr_url) or _GITLAB_MR.match(pr_url)
    if m is None:
        return None
    return m.group(1), int(m.group(2))


def parse_git_url(git_url: str) -> tuple[str, str] | None:
    """``parseGitUrl`` (worker-utils, no GitLab instance URL): ``(owner, repo)`` or ``None``.

    Only ``github.com`` and ``gitlab.com`` are recognised; GitLab subgroups go
    into the owner.
    """
    url = re.sub(r"\.git\Z", "", git_url)
    url = re.sub(r"//[^@]+@", "//", url, count=1)
    m = re.match(r"https?://([^/]+)/(.+)", url) or re.match(r"git@([^:]+):(.+)", url)
    if m is None:
        return None
    host, path = m.group(1), m.group(2)
    if host == "github.com":
        parts = path.split("/")
        return (parts[0], parts[1]) if len(parts) >= 2 else None
    if host == "gitlab.com":
        cut = path.rfind("/")
        return (path[:cut], path[cut + 1 :]) if cut > 0 else None
    return None


# --------------------------------------------------------------------------- poll_pr (§6.5)


def _json_flag(value: object) -> bool:
    """``x === 1 || x === true`` on a ``json_extract`` result (SQLite gives 1 for JSON true)."""
    return value == 1


def poll_pr(run: EffectRun, world: World) -> EffectOutcome:
    bead_id = str(run.effect.args["bead_id"])
    pr_url = str(run.effect.args["pr_url"])
    try:
        return _poll_pr_body(run, world, bead_id, pr_url)
    except Exception as exc:
        run.log("warn", f"{LOG} poll_pr failed: bead={bead_id} url={pr_url} {exc}")
        return run.done(False, f"poll failed: {exc}")


def _poll_pr_body(run: EffectRun, world: World, bead_id: str, pr_url: str) -> EffectOutcome:
    """Read the PR and hand each state to its phase (§6.5).

    Errors go to the error counters; a closed or merged PR becomes an event;
    a conflicting PR opens a conflict episode; an open PR goes on to the
    feedback and auto-merge phases.
    """
    ctx = run.ctx
    outcome = world.check_pr_status(pr_url)
    if not outcome.ok or outcome.error is not None:
        error = outcome.error or PRStatusError(kind="invalid_response", reason="no result")
        return poll_error(run, bead_id, error)

    ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
               '$.poll_transient_count', 0, '$.poll_non_transient_count', 0,
               '$.poll_error_kind', NULL)
           WHERE bead_id = ?""",
        (bead_id,),
    )
    status, mergeable = outcome.status, outcome.mergeable_state
    if status != "open":
        run.insert_event(
            "pr_status_changed", bead_id=bead_id, payload={"pr_url": pr_url, "pr_state": status}
        )
        return run.done(True, f"PR {status}: pr_status_changed recorded")

    refinery = ctx.config.refinery
    if not refinery:
        return run.done(True, "PR open (town has no refinery config)")
    if mergeable == "unknown":
        return run.done(True, "PR open, mergeability unknown (retry next poll)")
    if mergeable == "dirty":
        return _poll_conflicted(run, bead_id, pr_url)
    if mergeable in ("clean", "blocked", "has_hooks"):
        ctx.run(
            """UPDATE beads SET metadata = json_remove(COALESCE(metadata, '{}'),
                   '$.has_conflicts', '$.conflicts_detected_at'),
                   updated_at = ?
               WHERE bead_id = ? AND json_extract(metadata, '$.has_conflicts') IS NOT NULL""",
            (ctx.now, bead_id),
        )
    return _poll_open_pr(run, world, bead_id, pr_url, refinery, str(mergeable))


def _poll_conflicted(run: EffectRun, bead_id: str, pr_url: str) -> EffectOutcome:
    """A ``dirty`` PR: mark the MR and record ``pr_conflict_detected`` once per episode.

    ``has_conflicts`` stays set until a clean poll clears it, so a PR that
    stays in conflict is reported once, not on every poll; the auto-merge
    grace period always restarts.
    """
    ctx = run.ctx
    row = ctx.one(
        "SELECT json_extract(metadata, '$.has_conflicts') FROM beads WHERE bead_id = ?",
        (bead_id,),
    )
    already = row is not None and _json_flag(row[0])
    detail = "PR has conflicts (already marked)"
    if not already:
        ctx.run(
            """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
                   '$.has_conflicts', 1, '$.conflicts_detected_at', ?),
                   updated_at = ?
               WHERE bead_id = ?""",
            (ctx.now, ctx.now, bead_id),
        )
        meta = ctx.one(
            """SELECT json_extract(b.metadata, '$.source_bead_id'), rm.branch
               FROM beads b JOIN review_metadata rm ON rm.bead_id = b.bead_id
               WHERE b.bead_id = ?""",
            (bead_id,),
        )
        run.insert_event(
            "pr_conflict_detected",
            bead_id=bead_id,
            payload={
                "mr_bead_id": bead_id,
                "source_bead_id": meta[0] if meta is not None else None,
                "pr_url": pr_url,
                "branch": (meta[1] if meta is not None else None) or "",
            },
        )
        detail = "PR has conflicts: pr_conflict_detected recorded"
    ctx.run(
        """UPDATE review_metadata SET auto_merge_ready_since = NULL
           WHERE bead_id = ? AND auto_merge_ready_since IS NOT NULL""",
        (bead_id,),
    )
    return run.done(True, detail)


def _poll_open_pr(
    run: EffectRun,
    world: World,
    bead_id: str,
    pr_url: str,
    refinery: dict[str, Any],
    mergeable: str,
) -> EffectOutcome:
    """An open, mergeable-or-not PR: feedback (if auto-resolve) and auto-merge phases.

    Feedback is read once and shared by both phases, and only when one of
    them is configured, as upstream does.
    """
    wants_resolve = refinery.get("auto_resolve_pr_feedback") is True
    delay = refinery.get("auto_merge_delay_minutes")
    wants_merge = refinery.get("auto_merge") is not False and delay is not None
    feedback = world.check_pr_feedback(pr_url) if wants_resolve or wants_merge else None
    notes: list[str] = [f"PR open ({mergeable})"]

    if feedback is not None:
        _record_feedback(run, bead_id, pr_url, feedback)
    if (
        wants_resolve
        and feedback is not None
        and (
            feedback.has_unresolved_comments
            or feedback.has_failing_checks
            or feedback.has_unchecked_runs
        )
    ):
        _request_feedback_work(run, world, bead_id, pr_url, feedback, notes)
    if wants_merge:
        if feedback is None:
            return run.done(True, "; ".join([*notes, "feedback unavailable"]))
        notes.append(_auto_merge_step(run, bead_id, pr_url, feedback, delay))
    return run.done(True, "; ".join(notes))


def _request_feedback_work(
    run: EffectRun,
    world: World,
    bead_id: str,
    pr_url: str,
    feedback: PRFeedback,
    notes: list[str],
) -> None:
    """Record ``pr_feedback_detected`` unless a feedback bead is already open.

    The PR is read again first: it may have been merged or closed while the
    feedback was being read, and then there is nothing left to address.
    """
    ctx = run.ctx
    fresh = world.check_pr_status(pr_url)
    if not fresh.ok or fresh.status != "open":
        state = fresh.status if fresh.ok else "error"
        run.log(
            "log",
            f"{LOG} poll_pr: PR status changed to '{state}' during feedback check, "
            f"skipping feedback for bead={bead_id}",
        )
        notes.append("feedback skipped (PR no longer open)")
        return
    if not _has_existing_feedback_bead(ctx, bead_id):
        parsed = parse_pr_url(pr_url)
        branch_row = ctx.one("SELECT branch FROM review_metadata WHERE bead_id = ?", (bead_id,))
        run.insert_event(
            "pr_feedback_detected",
            bead_id=bead_id,
            payload={
                "mr_bead_id": bead_id,
                "pr_url": pr_url,
                "pr_number": parsed[1] if parsed else 0,
                "repo": parsed[0] if parsed else "",
                "branch": (branch_row[0] if branch_row is not None else None) or "",
                "has_unresolved_comments": feedback.has_unresolved_comments,
                "has_failing_checks": feedback.has_failing_checks,
                "has_unchecked_runs": feedback.has_unchecked_runs,
            },
        )
        notes.append("pr_feedback_detected recorded")
    ctx.run(
        "UPDATE review_metadata SET last_feedback_check_at = ? WHERE bead_id = ?",
        (ctx.now, bead_id),
    )


def _auto_merge_step(
    run: EffectRun, bead_id: str, pr_url: str, feedback: PRFeedback, delay_minutes: Any
) -> str:
    """The auto-merge grace period; returns the note saying where it stands.

    An all-green PR starts the period, and once it has lasted ``delay_minutes``
    ``pr_auto_merge`` is recorded; anything not green resets it, so the delay
    always counts from the latest moment the PR became green.
    """
    ctx = run.ctx
    if not feedback.all_green:
        ctx.run(
            "UPDATE review_metadata SET auto_merge_ready_since = NULL WHERE bead_id = ?",
            (bead_id,),
        )
        return "not green: auto-merge timer reset"
    row = ctx.one(
        "SELECT auto_merge_ready_since FROM review_metadata WHERE bead_id = ?", (bead_id,)
    )
    ready_since = row[0] if row is not None else None
    if not ready_since:
        ctx.run(
            "UPDATE review_metadata SET auto_merge_ready_since = ? WHERE bead_id = ?",
            (ctx.now, bead_id),
        )
        return "all green: auto-merge grace period started"
    elapsed = ctx.now_ms - clock.try_ms(ready_since)
    # Converted only once the period is running: a malformed delay never blocks the rest.
    delay_ms = float(delay_minutes or 0) * 60_000
    if not math.isnan(elapsed) and elapsed >= delay_ms:
        run.insert_event(
            "pr_auto_merge", bead_id=bead_id, payload={"mr_bead_id": bead_id, "pr_url": pr_url}
        )
        return "all green past the delay: pr_auto_merge recorded"
    return "all green, waiting for the auto-merge delay"


def _record_feedback(run: EffectRun, bead_id: str, pr_url: str, feedback: PRFeedback) -> None:
    """Store awaiting-approval state and emit the edge analytics events."""
    ctx = run.ctx
    row = ctx.one(
        "SELECT json_extract(metadata, '$.awaiting_approval') FROM beads WHERE bead_id = ?",
        (bead_id,),
    )
    was_awaiting = row is not None and _json_flag(row[0])
    now_awaiting = feedback.awaiting_approval
    ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
               '$.awaiting_approval', ?, '$.review_decision', ?, '$.merge_state_status', ?),
               updated_at = ?
           WHERE bead_id = ?""",
        (
            1 if now_awaiting else 0,
            feedback.review_decision,
            feedback.merge_state_status,
            ctx.now,
            bead_id,
        ),
    )
    base = {
        "townId": ctx.town_id,
        "beadId": bead_id,
        "prUrl": pr_url,
        "label": feedback.review_decision or "",
        "reason": feedback.merge_state_status or "",
    }
    if now_awaiting and not was_awaiting:
        created = ctx.one("SELECT created_at FROM beads WHERE bead_id = ?", (bead_id,))
        duration = ctx.now_ms - clock.try_ms(created[0]) if created is not None else 0
        run.emit({"event": "pr.awaiting_approval_detected", **base, "durationMs": duration})
    elif not now_awaiting and was_awaiting:
        observed = ctx.one(
            "SELECT json_extract(metadata, '$.awaiting_approval_observed_at') FROM beads "
            "WHERE bead_id = ?",
            (bead_id,),
        )
        at = observed[0] if observed is not None else None
        duration = ctx.now_ms - clock.try_ms(at) if at else 0
        run.emit({"event": "pr.awaiting_approval_resolved", **base, "durationMs": duration})
    if now_awaiting:
        ctx.run(
            """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
                   '$.awaiting_approval_observed_at', ?)
               WHERE bead_id = ?""",
            (ctx.now, bead_id),
        )
    else:
        ctx.run(
            """UPDATE beads SET metadata = json_remove(COALESCE(metadata, '{}'),
                   '$.awaiting_approval_observed_at')
               WHERE bead_id = ?""",
            (bead_id,),
        )


def _has_existing_feedback_bead(ctx: TownCtx, mr_bead_id: str) -> bool:
    """``hasExistingFeedbackBead``: a live ``gt:pr-feedback`` bead already blocks the MR."""
    row = ctx.one(
        """SELECT 1 FROM bead_dependencies bd
           JOIN beads fb ON fb.bead_id = bd.depends_on_bead_id
           WHERE bd.bead_id = ? AND bd.dependency_type = 'blocks'
             AND fb.labels LIKE '%gt:pr-feedback%'
             AND fb.status NOT IN ('closed', 'failed')
           LIMIT 1""",
        (mr_bead_id,),
    )
    return row is not None


# --------------------------------------------------------------------------- merge_pr


def _clear_auto_merge(ctx: TownCtx, bead_id: str) -> None:
    ctx.run(
        """UPDATE beads SET metadata = json_remove(COALESCE(metadata, '{}'), '$.auto_merge_pending'),
               updated_at = ?
           WHERE bead_id = ?""",
        (ctx.now, bead_id),
    )
    ctx.run(
        "UPDATE review_metadata SET auto_merge_ready_since = NULL WHERE bead_id = ?", (bead_id,)
    )


def merge_pr(run: EffectRun, world: World) -> EffectOutcome:
    ctx = run.ctx
    bead_id = str(run.effect.args["bead_id"])
    pr_url = str(run.effect.args["pr_url"])
    try:
        fresh = world.check_pr_feedback(pr_url)
        if fresh is not None and not fresh.all_green:
            run.log(
                "log",
                f"{LOG} merge_pr: fresh feedback check found issues, aborting merge for "
                f"bead={bead_id}",
            )
            _clear_auto_merge(ctx, bead_id)
            return run.done(False, "merge aborted: fresh feedback is not green")
        if world.merge_pr(pr_url):
            run.insert_event(
                "pr_status_changed",
                bead_id=bead_id,
                payload={"pr_url": pr_url, "pr_state": "merged"},
            )
            return run.done(True, "merged: pr_status_changed recorded")
        _clear_auto_merge(ctx, bead_id)
        run.log(
            "warn", f"{LOG} merge_pr: merge failed, cleared auto_merge_pending for bead={bead_id}"
        )
        return run.done(False, "merge refused; auto_merge_pending cleared")
    except Exception as exc:
        run.log("warn", f"{LOG} merge_pr failed: bead={bead_id} url={pr_url} {exc}")
        _clear_auto_merge(ctx, bead_id)
        return run.done(False, f"merge raised: {exc}")
