"""The outside world a town's side effects talk to: container, SCM, wasteland service.

:class:`World` is the protocol the deferred parts of actions call
(:mod:`reportgen.town.effects`); its answers are plain data so that they can
be recorded (:mod:`reportgen.town.worldlog`) and played back in a replay.
:class:`NullWorld` is a town with nothing outside it; the simulator's lives in
:mod:`reportgen.sim` and the tests' scripted one in ``tests/support/worlds.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
