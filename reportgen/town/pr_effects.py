"""The deferred parts of ``poll_pr`` and ``merge_pr`` (spec §6.4, §6.5), and PR URL parsing.

Polling a PR drives most of an MR's life: status changes become
``pr_status_changed`` events, conflicts and feedback become their own events
and beads, all-green PRs start the auto-merge grace period, and repeated poll
errors fail the MR. Runs inside :func:`reportgen.town.effects.run_side_effects`, which imports this module;
the types both share live in :mod:`reportgen.town.effect_run`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from reportgen.town import clock, ops
from reportgen.town.context import TownCtx
from reportgen.town.effect_run import LOG, EffectOutcome, EffectRun
from reportgen.town.world import PRFeedback, PRStatusError, World

#: Fail the MR after this many consecutive transient poll errors (#1632).
PR_POLL_NULL_THRESHOLD = 10
#: Fail the MR after this many consecutive ``invalid_response`` errors.
PR_POLL_NON_TRANSIENT_THRESHOLD = 3


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


def _provider_label(provider: str | None) -> str:
    return "GitHub" if provider == "github" else "GitLab"


def failure_message_for(error: PRStatusError) -> str:
    """``failureMessageFor``: the ``failureMessage`` stored on an MR failed by polling."""
    p = error.provider
    if error.kind == "no_token":
        chain = ", ".join(f"`{s}`" for s in error.resolution_chain)
        return (
            f"No {_provider_label(p)} token resolved for this town. Tried (in order): {chain}. "
            "Configure one of these in town or rig settings. Note: polecat agents use their own "
            "container credentials and may have created the PR successfully — that does not "
            "imply the town worker can poll PR status."
        )
    if error.kind == "http_error":
        if error.status == 401:
            return (
                f"Town's {_provider_label(p)} token is invalid or expired (HTTP 401). "
                "Refresh the token in town settings."
            )
        if error.status == 403:
            hint = (
                "Ensure the token has `pull-requests: read` scope on the repo, or check for a "
                "secondary rate limit."
                if p == "github"
                else "Ensure the token has permission to read merge requests in the project."
            )
            return (
                f"Town's {_provider_label(p)} token lacks permission for this PR (HTTP 403). {hint}"
            )
        if error.status == 404:
            what = "PR" if p == "github" else "MR"
            return (
                f"{what} not found (HTTP 404). Was the branch deleted before it could be polled, "
                "or is the URL wrong?"
            )
        retry = "Retrying." if error.transient else "Not retryable."
        return f"{p} API returned HTTP {error.status} {error.status_text}. {retry}"
    if error.kind == "invalid_response":
        keys = f"; top-level keys: {', '.join(error.sample_keys)}" if error.sample_keys else ""
        return (
            f"{p} API returned an unexpected response shape ({error.reason}){keys}. "
            "Please file a bug — the API contract may have drifted."
        )
    if error.kind == "unrecognized_url":
        return f"PR URL format not recognized: {error.url}. Expected GitHub PR or GitLab MR URL."
    if error.kind == "host_mismatch":
        return (
            f"Refusing to send GitLab token to unexpected host `{error.got}` "
            f"(configured: `{error.expected}`)."
        )
    return f"unknown PR status error kind {error.kind!r}"


def should_fail_immediately(error: PRStatusError) -> bool:
    if error.kind in ("no_token", "unrecognized_url", "host_mismatch"):
        return True
    if error.kind == "http_error":
        return not error.transient
    return False


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
        return _poll_error(run, bead_id, error)

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


def _poll_error(run: EffectRun, bead_id: str, error: PRStatusError) -> EffectOutcome:
    """The ``checkPRStatus`` error path: store the kind, count, fail the MR at the threshold."""
    ctx = run.ctx
    ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'), '$.poll_error_kind', ?)
           WHERE bead_id = ?""",
        (error.kind, bead_id),
    )
    rig_row = ctx.one("SELECT rig_id FROM beads WHERE bead_id = ?", (bead_id,))
    rig_id = (rig_row[0] if rig_row is not None else None) or ""

    if should_fail_immediately(error):
        run.log(
            "warn",
            f"{LOG} poll_pr: immediate-fail error kind={error.kind} for bead={bead_id}, failing",
        )
        _fail_polled_mr(run, bead_id, rig_id, error)
        return run.done(False, f"poll error {error.kind}: MR failed")

    if error.kind == "http_error" and error.transient:
        ctx.run(
            """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
                   '$.poll_transient_count',
                   COALESCE(json_extract(metadata, '$.poll_transient_count'),
                            json_extract(metadata, '$.poll_null_count'), 0) + 1,
                   '$.poll_non_transient_count', 0)
               WHERE bead_id = ?""",
            (bead_id,),
        )
        count = _metadata_number(ctx, bead_id, "$.poll_transient_count")
        if count >= PR_POLL_NULL_THRESHOLD:
            run.log(
                "warn",
                f"{LOG} poll_pr: {_fmt(count)} consecutive transient errors for bead={bead_id}, "
                "failing",
            )
            _fail_polled_mr(run, bead_id, rig_id, error)
            return run.done(False, f"transient poll error {_fmt(count)}/10: MR failed")
        return run.done(False, f"transient poll error {_fmt(count)}/{PR_POLL_NULL_THRESHOLD}")

    ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
               '$.poll_non_transient_count',
               COALESCE(json_extract(metadata, '$.poll_non_transient_count'), 0) + 1,
               '$.poll_transient_count', 0)
           WHERE bead_id = ?""",
        (bead_id,),
    )
    count = _metadata_number(ctx, bead_id, "$.poll_non_transient_count")
    if count >= PR_POLL_NON_TRANSIENT_THRESHOLD:
        run.log(
            "warn",
            f"{LOG} poll_pr: {_fmt(count)} consecutive non-transient errors kind={error.kind} "
            f"for bead={bead_id}, failing",
        )
        _fail_polled_mr(run, bead_id, rig_id, error)
        return run.done(False, f"poll error {error.kind} {_fmt(count)}/3: MR failed")
    return run.done(
        False, f"poll error {error.kind} {_fmt(count)}/{PR_POLL_NON_TRANSIENT_THRESHOLD}"
    )


def _fmt(n: float) -> str:
    if math.isnan(n) or math.isinf(n):
        return "NaN" if math.isnan(n) else str(n)
    return str(int(n)) if n == int(n) else str(n)


def _metadata_number(ctx: TownCtx, bead_id: str, path: str) -> float:
    """``Number(json_extract(...) ?? 0)``; ``NaN`` (never reaching a threshold) if not numeric."""
    row = ctx.one(
        f"SELECT json_extract(metadata, '{path}') FROM beads WHERE bead_id = ?", (bead_id,)
    )
    value = row[0] if row is not None else None
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fail_polled_mr(run: EffectRun, bead_id: str, rig_id: str, error: PRStatusError) -> None:
    ctx = run.ctx
    ops.update_bead_status(ctx, bead_id, "failed", "system")
    ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'),
               '$.failureReason', 'pr_poll_failed', '$.failureKind', ?, '$.failureMessage', ?)
           WHERE bead_id = ?""",
        (error.kind, failure_message_for(error), bead_id),
    )
    data: dict[str, Any] = {
        "event": "pr.poll_failed",
        "townId": ctx.town_id,
        "beadId": bead_id,
        "rigId": rig_id,
        "reason": error.kind,
        "label": error.provider or "",
    }
    if error.kind == "http_error":
        data["statusCode"] = error.status
    run.emit(data)


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
