"""The outside world a town's side effects talk to: container, SCM, wasteland service.

:class:`World` is the protocol the deferred parts of actions call
(:mod:`reportgen.town.effects`); its answers are plain data so that they can
be recorded (:mod:`reportgen.town.worldlog`) and played back in a replay.
:class:`NullWorld` is a town with nothing outside it; :class:`RecordingWorld`
a scripted one for tests; the simulator's lives in :mod:`reportgen.sim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

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
