"""``poll_pr``'s error path (spec §6.5): count failed status reads, fail the MR at a threshold.

A PR whose status cannot be read is retried on later polls; errors that can
never heal (no token, a URL we cannot parse, a refused host, a non-transient
HTTP status) fail the MR at once, the others after enough in a row, with a
``failureMessage`` that tells the user what to fix.
"""

from __future__ import annotations

import math
from typing import Any

from reportgen.town import bead_ops
from reportgen.town.context import TownCtx
from reportgen.town.effect_run import LOG, EffectOutcome, EffectRun
from reportgen.town.world import PRStatusError

#: Fail the MR after this many consecutive transient poll errors (#1632).
PR_POLL_NULL_THRESHOLD = 10
#: Fail the MR after this many consecutive ``invalid_response`` errors.
PR_POLL_NON_TRANSIENT_THRESHOLD = 3


def _provider_label(provider: str | None) -> str:
    """The provider's name as the failure messages spell it."""
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
    """``shouldFailImmediately``: errors no retry can heal (configuration, refusal) fail at once."""
    if error.kind in ("no_token", "unrecognized_url", "host_mismatch"):
        return True
    if error.kind == "http_error":
        return not error.transient
    return False


def poll_error(run: EffectRun, bead_id: str, error: PRStatusError) -> EffectOutcome:
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
    """A count as JavaScript prints it in upstream's log lines (``3``, not ``3.0``; ``NaN``)."""
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
    bead_ops.update_bead_status(ctx, bead_id, "failed", "system")
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
