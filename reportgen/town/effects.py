"""The deferred half of actions: side effects and the outside world they talk to (spec §6.4–§6.5, §7.9).

Upstream's ``applyAction`` returns a deferred async closure for six action
types; the alarm collects them and runs them all concurrently with
``Promise.allSettled`` after every action has been applied. Here the
deferred part is *data*: :class:`SideEffect` says what to do, and
:func:`run_side_effects` does it against a :class:`World`, the protocol for
everything outside the town database (container, GitHub/GitLab, wasteland).

What is engine logic and stays here (it writes the town database):

* ``dispatch_agent`` → the TownDO ``dispatchAgent`` wrapper and
  ``scheduling.dispatchAgent`` (§7.9): rig config check, bead → in_progress,
  agent ``working`` with ``dispatch_attempts + 1`` and a fresh
  ``last_activity_at``, bead ``dispatch_attempts + 1`` and
  ``last_dispatch_attempt_at``; then ``world.start_agent``; a successful start
  resets the agent counter (not for refineries).
* ``poll_pr`` → §6.5 in full (error counters, conflict episodes, awaiting
  approval, auto-resolve and the auto-merge grace period); its events go
  through :func:`reportgen.town.events.insert_event` at ``ctx.now``.
* ``merge_pr`` → the fresh feedback re-check, the merge, the
  ``pr_status_changed`` event or the cleared ``auto_merge_pending``.
* ``send_nudge`` → TownDO ``queueNudge``: a second ``agent_nudges`` row
  (source ``reconciler``, SQLite-format ``created_at``), ``delivered_at`` when
  the world delivered it.
* ``report_wasteland_done`` → the local ``metadata.wasteland.reported_done_at``
  stamp once the world says the upstream call succeeded.

Counting follows upstream (§6.4, quirk 13): every deferred part catches its
own errors, so ``failed`` only counts an exception escaping our own engine
code; ``succeeded`` means "ran to completion", not "the container accepted
the agent". What actually happened is in :attr:`SideEffectStats.outcomes`.

Upstream runs the side effects concurrently; we run them **sequentially in
emission order** so a run is deterministic (ids minted, rows written and
world calls happen in one reproducible order).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reportgen.town import clock, events, ops
from reportgen.town.context import TownCtx

log = logging.getLogger(__name__)

LOG = "[actions]"

#: Fail the MR after this many consecutive transient poll errors (#1632).
PR_POLL_NULL_THRESHOLD = 10
#: Fail the MR after this many consecutive ``invalid_response`` errors.
PR_POLL_NON_TRANSIENT_THRESHOLD = 3

#: The action types whose apply may defer a side effect.
DEFERRING_TYPES = (
    "dispatch_agent",
    "stop_agent",
    "poll_pr",
    "merge_pr",
    "send_nudge",
    "report_wasteland_done",
)

#: An analytics sink: receives upstream's ``emitEvent`` payloads (``{"event": …, "townId": …}``).
Emit = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------- world answers


@dataclass(frozen=True)
class PRStatusError:
    """Why a PR status check failed (upstream ``PRStatusError``).

    ``kind``: ``no_token``, ``unrecognized_url``, ``host_mismatch``,
    ``http_error`` (with ``status``, ``status_text`` and ``transient``) or
    ``invalid_response`` (with ``reason`` and optional ``sample_keys``).
    ``provider`` is ``github`` / ``gitlab`` (``None`` when unknown, e.g. an
    unrecognised URL).
    """

    kind: str
    provider: str | None = "github"
    transient: bool = False
    status: int | None = None
    status_text: str = ""
    reason: str = ""
    sample_keys: tuple[str, ...] | None = None
    url: str = ""
    got: str = ""
    expected: str = ""
    resolution_chain: tuple[str, ...] = ()


@dataclass(frozen=True)
class PRStatus:
    """``checkPRStatus`` outcome: ``ok`` with ``status``/``mergeable_state``, or an ``error``."""

    ok: bool
    status: str | None = None
    mergeable_state: str | None = None
    error: PRStatusError | None = None

    @classmethod
    def found(cls, status: str, mergeable_state: str | None = None) -> PRStatus:
        return cls(ok=True, status=status, mergeable_state=mergeable_state)

    @classmethod
    def failed(cls, error: PRStatusError) -> PRStatus:
        return cls(ok=False, error=error)


@dataclass(frozen=True)
class PRFeedback:
    """``checkPRFeedback`` result (upstream ``PRFeedbackCheckResult``)."""

    has_unresolved_comments: bool = False
    has_failing_checks: bool = False
    all_checks_pass: bool = True
    has_unchecked_runs: bool = False
    awaiting_approval: bool = False
    changes_requested: bool = False
    review_decision: str | None = None
    merge_state_status: str | None = None
    is_draft: bool = False

    @property
    def all_green(self) -> bool:
        return (
            not self.has_unresolved_comments
            and not self.has_failing_checks
            and self.all_checks_pass
            and not self.awaiting_approval
            and not self.changes_requested
        )


class World(Protocol):
    """Everything outside the town database that a side effect talks to.

    Any method may raise; the engine handles exceptions where upstream does.
    """

    def start_agent(self, agent_id: str, bead_id: str, rig_id: str) -> bool:
        """Start the agent's process in the town container; true if it was accepted."""
        ...

    def stop_agent(self, agent_id: str) -> None:
        """Stop the agent's process in the container."""
        ...

    def check_pr_status(self, url: str) -> PRStatus:
        """The PR's state (``open``/``closed``/``merged``) and ``mergeable_state``."""
        ...

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        """Review comments, CI and approval state; ``None`` when it could not be read."""
        ...

    def merge_pr(self, url: str) -> bool:
        """Merge the PR; true on success."""
        ...

    def queue_nudge(self, agent_id: str, message: str, tier: str) -> bool:
        """Push a nudge to the running agent; true if it was delivered immediately."""
        ...

    def report_wasteland_done(
        self, wasteland_id: str, item_id: str, evidence: str, canonical_bead_id: str
    ) -> bool:
        """Mark the wasteland item done upstream; true on success (then the bead is stamped)."""
        ...


class NullWorld:
    """A town with nothing outside it: no container, no SCM, no wasteland service.

    Every answer is the least eventful one upstream could get: a dispatch is a
    phantom failed start (``start_agent`` → ``False``: the agent stays
    ``working`` with its counter incremented until the heartbeat rules reap
    it, quirk 6); a PR stays ``open`` with ``mergeable_state 'unknown'``
    (upstream retries next poll and changes nothing else); feedback cannot be
    read; merges fail; nudges are not delivered; wasteland reports fail (and
    are retried next tick).
    """

    def start_agent(self, agent_id: str, bead_id: str, rig_id: str) -> bool:
        return False

    def stop_agent(self, agent_id: str) -> None:
        return None

    def check_pr_status(self, url: str) -> PRStatus:
        return PRStatus.found("open", "unknown")

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        return None

    def merge_pr(self, url: str) -> bool:
        return False

    def queue_nudge(self, agent_id: str, message: str, tier: str) -> bool:
        return False

    def report_wasteland_done(
        self, wasteland_id: str, item_id: str, evidence: str, canonical_bead_id: str
    ) -> bool:
        return False


def _take(script: object, key: str, default: Any) -> Any:
    """Next scripted answer: a per-key list is consumed (its last item repeats)."""
    if isinstance(script, dict):
        if key not in script:
            return default
        script = script[key]
    if isinstance(script, list):
        if not script:
            return default
        return script.pop(0) if len(script) > 1 else script[0]
    return script


class RecordingWorld:
    """A scripted world for tests: records every call, answers from scripts.

    Each ``*_answers`` is either one answer for every call, a list consumed in
    order (the last item repeats), or a dict keyed by agent id / PR URL /
    item id whose values are such answers. An answer that is an exception
    instance is raised instead of returned.
    """

    def __init__(
        self,
        *,
        start_answers: object = True,
        pr_status_answers: object = None,
        feedback_answers: object = None,
        merge_answers: object = True,
        nudge_answers: object = True,
        wasteland_answers: object = True,
        stop_answers: object = None,
    ) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.start_answers = start_answers
        self.pr_status_answers = pr_status_answers
        self.feedback_answers = feedback_answers
        self.merge_answers = merge_answers
        self.nudge_answers = nudge_answers
        self.wasteland_answers = wasteland_answers
        self.stop_answers = stop_answers

    def _answer(self, script: object, key: str, default: Any) -> Any:
        value = _take(script, key, default)
        if isinstance(value, BaseException):
            raise value
        return value

    def start_agent(self, agent_id: str, bead_id: str, rig_id: str) -> bool:
        self.calls.append(("start_agent", (agent_id, bead_id, rig_id)))
        return bool(self._answer(self.start_answers, agent_id, True))

    def stop_agent(self, agent_id: str) -> None:
        self.calls.append(("stop_agent", (agent_id,)))
        self._answer(self.stop_answers, agent_id, None)

    def check_pr_status(self, url: str) -> PRStatus:
        self.calls.append(("check_pr_status", (url,)))
        answer = self._answer(self.pr_status_answers, url, None)
        return answer if isinstance(answer, PRStatus) else PRStatus.found("open", "unknown")

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        self.calls.append(("check_pr_feedback", (url,)))
        answer = self._answer(self.feedback_answers, url, None)
        return answer if isinstance(answer, PRFeedback) else None

    def merge_pr(self, url: str) -> bool:
        self.calls.append(("merge_pr", (url,)))
        return bool(self._answer(self.merge_answers, url, True))

    def queue_nudge(self, agent_id: str, message: str, tier: str) -> bool:
        self.calls.append(("queue_nudge", (agent_id, message, tier)))
        return bool(self._answer(self.nudge_answers, agent_id, True))

    def report_wasteland_done(
        self, wasteland_id: str, item_id: str, evidence: str, canonical_bead_id: str
    ) -> bool:
        self.calls.append(
            ("report_wasteland_done", (wasteland_id, item_id, evidence, canonical_bead_id))
        )
        return bool(self._answer(self.wasteland_answers, item_id, True))

    def called(self, method: str) -> list[tuple[Any, ...]]:
        """The argument tuples of every call to ``method``, in order."""
        return [args for name, args in self.calls if name == method]


# --------------------------------------------------------------------------- side effects


@dataclass(frozen=True)
class SideEffect:
    """What a deferred part must do: the action type, the action, and resolved arguments.

    ``args`` holds what the deferred closure upstream captured: for
    ``dispatch_agent`` the agent id *resolved at apply time* (the action's
    ``agent_id`` may be ``''``), the bead and the action's rig id.
    """

    type: str
    action: Mapping[str, Any] = field(hash=False)
    args: Mapping[str, Any] = field(hash=False)
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "index": self.index, "args": dict(self.args)}


@dataclass
class EffectOutcome:
    """What one side effect did (for the report): ``ok`` is the effect's own success.

    ``ok`` means: dispatch → the container accepted the agent; stop / nudge →
    the world call returned (nudge: and delivered); poll → the PR status was
    read; merge → the PR was merged; wasteland → reported and stamped.
    """

    type: str
    ok: bool
    detail: str
    index: int | None = None
    agent_id: str | None = None
    bead_id: str | None = None
    events: list[str] = field(default_factory=list)
    analytics: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "ok": self.ok, "detail": self.detail}
        if self.index is not None:
            out["index"] = self.index
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        if self.bead_id is not None:
            out["bead_id"] = self.bead_id
        if self.events:
            out["events"] = list(self.events)
        if self.analytics:
            out["analytics"] = list(self.analytics)
        if self.logs:
            out["logs"] = list(self.logs)
        return out


@dataclass
class SideEffectStats:
    """Phase 2 counts as upstream's metrics report them, plus every effect's outcome."""

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    outcomes: list[EffectOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "outcomes": [o.to_json() for o in self.outcomes],
        }


class _Run:
    """Per-effect scratch: collects logs, analytics and inserted events."""

    def __init__(self, ctx: TownCtx, effect: SideEffect, emit: Emit | None) -> None:
        self.ctx = ctx
        self.effect = effect
        self.emit_sink = emit
        self.out = EffectOutcome(
            type=effect.type,
            ok=False,
            detail="",
            index=effect.index,
            agent_id=effect.args.get("agent_id"),
            bead_id=effect.args.get("bead_id"),
        )

    def log(self, level: str, msg: str) -> None:
        self.out.logs.append({"level": level, "msg": msg})
        log.log(logging.WARNING if level == "warn" else logging.INFO, "%s", msg)

    def emit(self, data: dict[str, Any]) -> None:
        self.out.analytics.append(data)
        if self.emit_sink is not None:
            self.emit_sink(data)

    def insert_event(self, event_type: str, *, bead_id: str, payload: dict[str, Any]) -> None:
        event_id = events.insert_event(self.ctx, event_type, bead_id=bead_id, payload=payload)
        self.out.events.append(event_id)

    def done(self, ok: bool, detail: str) -> EffectOutcome:
        self.out.ok = ok
        self.out.detail = detail
        return self.out


def run_side_effects(
    ctx: TownCtx,
    effects: list[SideEffect],
    world: World,
    *,
    emit: Emit | None = None,
) -> SideEffectStats:
    """Run every deferred part, in emission order, and count them as upstream does.

    Upstream runs them concurrently (``Promise.allSettled``); we run them one
    after another in emission order so that the database, the ids and the
    world calls are reproducible. ``attempted`` = number of effects;
    ``succeeded`` = those that ran to completion (upstream: fulfilled);
    ``failed`` = those whose own engine code raised (upstream: rejected —
    effectively never, quirk 13).
    """
    stats = SideEffectStats(attempted=len(effects))
    for effect in effects:
        run = _Run(ctx, effect, emit)
        runner = _RUNNERS.get(effect.type)
        try:
            if runner is None:
                outcome = run.done(False, f"no deferred part for action type {effect.type!r}")
            else:
                outcome = runner(run, world)
        except Exception as exc:  # an escape from our own engine code: upstream "rejected"
            stats.failed += 1
            run.log("error", f"{LOG} {effect.type}: side effect raised: {exc}")
            stats.outcomes.append(run.done(False, f"side effect raised: {exc}"))
            continue
        stats.succeeded += 1
        stats.outcomes.append(outcome)
    return stats


# --------------------------------------------------------------------------- dispatch (§7.9)


def _dispatch_agent(run: _Run, world: World) -> EffectOutcome:
    """TownDO ``dispatchAgent`` wrapper + ``scheduling.dispatchAgent`` (§7.9)."""
    ctx = run.ctx
    agent_id = str(run.effect.args["agent_id"])
    bead_id = str(run.effect.args["bead_id"])
    agent = ops.get_agent(ctx, agent_id)
    bead = ops.get_bead(ctx, bead_id)
    if agent is None or bead is None or _agent_bead_missing(ctx, agent_id):
        return run.done(False, "agent or bead no longer exists")
    role = agent["role"]
    rig_id = ""
    try:
        if agent["rig_id"] is not None:
            rig_id = str(agent["rig_id"])
        else:
            first = ctx.one("SELECT id FROM rigs ORDER BY created_at ASC LIMIT 1")
            rig_id = str(first[0]) if first is not None else ""
        rig = ctx.one("SELECT id FROM rigs WHERE id = ?", (rig_id,)) if rig_id else None
        if rig is None:
            run.log(
                "warn",
                f"[scheduling] dispatchAgent: no rig config for agent={agent_id} rig={rig_id}",
            )
            return run.done(False, f"no rig config for rig {rig_id!r}")

        current = ops.get_bead(ctx, bead_id)
        if current is not None and current["status"] not in ("in_progress", "closed", "failed"):
            ops.update_bead_status(ctx, bead_id, "in_progress", agent_id)
        ctx.run(
            """UPDATE agent_metadata
               SET status = 'working', dispatch_attempts = dispatch_attempts + 1,
                   last_activity_at = ?, last_event_at = NULL, last_event_type = NULL
               WHERE bead_id = ?""",
            (ctx.now, agent_id),
        )
        ctx.run(
            """UPDATE beads SET dispatch_attempts = dispatch_attempts + 1,
                   last_dispatch_attempt_at = ?
               WHERE bead_id = ?""",
            (ctx.now, bead_id),
        )

        started = bool(world.start_agent(agent_id, bead_id, rig_id))
        base = {
            "townId": ctx.town_id,
            "rigId": rig_id,
            "agentId": agent_id,
            "beadId": bead_id,
            "role": role,
        }
        if started:
            if role != "refinery":
                ctx.run(
                    "UPDATE agent_metadata SET dispatch_attempts = 0 WHERE bead_id = ?", (agent_id,)
                )
            run.emit({"event": "agent.spawned", **base})
            return run.done(True, "container accepted the agent")
        run.emit({"event": "agent.dispatch_failed", **base, "reason": "container returned false"})
        return run.done(False, "container refused start")
    except Exception as exc:
        run.log("error", f"[scheduling] dispatchAgent: failed for agent={agent_id}: {exc}")
        run.emit(
            {
                "event": "agent.dispatch_failed",
                "townId": ctx.town_id,
                "agentId": agent_id,
                "beadId": bead_id,
                "role": role,
                "reason": str(exc),
            }
        )
        return run.done(False, f"container start raised: {exc}")


def _agent_bead_missing(ctx: TownCtx, agent_id: str) -> bool:
    """Upstream's ``getAgent`` inner-joins ``beads``: metadata without a bead row is no agent."""
    return ctx.one("SELECT 1 FROM beads WHERE bead_id = ?", (agent_id,)) is None


# --------------------------------------------------------------------------- stop / nudge / wasteland


def _stop_agent(run: _Run, world: World) -> EffectOutcome:
    agent_id = str(run.effect.args["agent_id"])
    try:
        world.stop_agent(agent_id)
    except Exception as exc:
        run.log("warn", f"{LOG} stop_agent failed: agent={agent_id} {exc}")
        return run.done(False, f"stop failed: {exc}")
    return run.done(True, "stop requested")


def _send_nudge(run: _Run, world: World) -> EffectOutcome:
    """TownDO ``queueNudge(agent, message, {immediate, urgent, source 'reconciler'})``."""
    ctx = run.ctx
    agent_id = str(run.effect.args["agent_id"])
    message = str(run.effect.args["message"])
    tier = str(run.effect.args["tier"])
    try:
        nudge_id = ctx.new_id()
        ctx.run(
            """INSERT INTO agent_nudges (nudge_id, agent_bead_id, message, mode, priority, source,
                                         created_at, expires_at)
               VALUES (?, ?, ?, 'immediate', 'urgent', 'reconciler', ?, NULL)""",
            (nudge_id, agent_id, message, clock.sqlite_seconds(ctx.now)),
        )
        delivered = bool(world.queue_nudge(agent_id, message, tier))
        if delivered:
            ctx.run(
                "UPDATE agent_nudges SET delivered_at = ? WHERE nudge_id = ?",
                (clock.sqlite_seconds(ctx.now), nudge_id),
            )
            return run.done(True, "nudge delivered")
        run.log("warn", f"[Town.do] queueNudge: immediate delivery failed for agent={agent_id}")
        return run.done(False, "nudge queued, not delivered")
    except Exception as exc:
        run.log("warn", f"{LOG} send_nudge failed: agent={agent_id} {exc}")
        return run.done(False, f"nudge failed: {exc}")


def _report_wasteland_done(run: _Run, world: World) -> EffectOutcome:
    """``reportWastelandDone``: the world's RPC, then the local idempotency stamp."""
    ctx = run.ctx
    args = run.effect.args
    bead_id = str(args["canonical_bead_id"])
    item_id = str(args["item_id"])
    evidence = str(args["evidence"])
    run.out.bead_id = bead_id
    try:
        ok = bool(
            world.report_wasteland_done(str(args["wasteland_id"]), item_id, evidence, bead_id)
        )
    except Exception as exc:  # TownDO.reportWastelandDone catches and returns false
        run.log("error", f"[Town.do] reportWastelandDone: unexpected error item={item_id}: {exc}")
        ok = False
    if ok:
        ok = stamp_wasteland_reported_done(ctx, bead_id, evidence)
        if not ok:
            run.log(
                "warn", f"[Town.do] reportWastelandDone: bead={bead_id} has no metadata.wasteland"
            )
    if not ok:
        run.log(
            "warn",
            f"{LOG} report_wasteland_done: deferred call returned false for item={item_id}; "
            "will retry next tick",
        )
        return run.done(False, "not reported (retried next tick)")
    return run.done(True, "reported done; canonical bead stamped")


def stamp_wasteland_reported_done(ctx: TownCtx, bead_id: str, evidence: str | None) -> bool:
    """``stampWastelandReportedDone``: false (nothing written) without ``metadata.wasteland``."""
    row = ctx.one(
        "SELECT json_extract(metadata, '$.wasteland') FROM beads WHERE bead_id = ?", (bead_id,)
    )
    if row is None or row[0] is None:
        return False
    ctx.run(
        """UPDATE beads
           SET metadata = json_set(COALESCE(metadata, '{}'),
                                   '$.wasteland.reported_done_at', ?,
                                   '$.wasteland.reported_evidence', ?),
               updated_at = ?
           WHERE bead_id = ?""",
        (ctx.now, evidence, ctx.now, bead_id),
    )
    return True


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


def _poll_pr(run: _Run, world: World) -> EffectOutcome:
    bead_id = str(run.effect.args["bead_id"])
    pr_url = str(run.effect.args["pr_url"])
    try:
        return _poll_pr_body(run, world, bead_id, pr_url)
    except Exception as exc:
        run.log("warn", f"{LOG} poll_pr failed: bead={bead_id} url={pr_url} {exc}")
        return run.done(False, f"poll failed: {exc}")


def _poll_pr_body(run: _Run, world: World, bead_id: str, pr_url: str) -> EffectOutcome:
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
    if mergeable in ("clean", "blocked", "has_hooks"):
        ctx.run(
            """UPDATE beads SET metadata = json_remove(COALESCE(metadata, '{}'),
                   '$.has_conflicts', '$.conflicts_detected_at'),
                   updated_at = ?
               WHERE bead_id = ? AND json_extract(metadata, '$.has_conflicts') IS NOT NULL""",
            (ctx.now, bead_id),
        )

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
        fresh = world.check_pr_status(pr_url)
        if not fresh.ok or fresh.status != "open":
            state = fresh.status if fresh.ok else "error"
            run.log(
                "log",
                f"{LOG} poll_pr: PR status changed to '{state}' during feedback check, "
                f"skipping feedback for bead={bead_id}",
            )
            notes.append("feedback skipped (PR no longer open)")
        else:
            if not _has_existing_feedback_bead(ctx, bead_id):
                parsed = parse_pr_url(pr_url)
                branch_row = ctx.one(
                    "SELECT branch FROM review_metadata WHERE bead_id = ?", (bead_id,)
                )
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

    if wants_merge:
        if feedback is None:
            return run.done(True, "; ".join([*notes, "feedback unavailable"]))
        if feedback.all_green:
            row = ctx.one(
                "SELECT auto_merge_ready_since FROM review_metadata WHERE bead_id = ?", (bead_id,)
            )
            ready_since = row[0] if row is not None else None
            if not ready_since:
                ctx.run(
                    "UPDATE review_metadata SET auto_merge_ready_since = ? WHERE bead_id = ?",
                    (ctx.now, bead_id),
                )
                notes.append("all green: auto-merge grace period started")
            else:
                elapsed = ctx.now_ms - clock.try_ms(ready_since)
                delay_ms = float(delay or 0) * 60_000
                if not math.isnan(elapsed) and elapsed >= delay_ms:
                    run.insert_event(
                        "pr_auto_merge",
                        bead_id=bead_id,
                        payload={"mr_bead_id": bead_id, "pr_url": pr_url},
                    )
                    notes.append("all green past the delay: pr_auto_merge recorded")
                else:
                    notes.append("all green, waiting for the auto-merge delay")
        else:
            ctx.run(
                "UPDATE review_metadata SET auto_merge_ready_since = NULL WHERE bead_id = ?",
                (bead_id,),
            )
            notes.append("not green: auto-merge timer reset")
    return run.done(True, "; ".join(notes))


def _record_feedback(run: _Run, bead_id: str, pr_url: str, feedback: PRFeedback) -> None:
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


def _poll_error(run: _Run, bead_id: str, error: PRStatusError) -> EffectOutcome:
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


def _fail_polled_mr(run: _Run, bead_id: str, rig_id: str, error: PRStatusError) -> None:
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


def _merge_pr(run: _Run, world: World) -> EffectOutcome:
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


_RUNNERS: dict[str, Callable[[_Run, World], EffectOutcome]] = {
    "dispatch_agent": _dispatch_agent,
    "stop_agent": _stop_agent,
    "poll_pr": _poll_pr,
    "merge_pr": _merge_pr,
    "send_nudge": _send_nudge,
    "report_wasteland_done": _report_wasteland_done,
}
