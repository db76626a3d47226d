"""A simulated GitHub: pull requests whose fate is sampled when they are opened.

The engine only sees GitHub through ``check_pr_status``, ``check_pr_feedback``
and ``merge_pr``. Each PR's fate (merged by a human after a delay, closed,
flaky CI, a conflict episode, a 404) is drawn once from the town's random
stream when the PR is opened, so the answers do not depend on how often the
engine asks. Only transient errors are drawn per call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from reportgen.sim.knobs import GitHubKnobs
from reportgen.town.effects import PRFeedback, PRStatus, PRStatusError

GREEN = PRFeedback(review_decision="APPROVED", merge_state_status="CLEAN")
FAILING = PRFeedback(
    has_failing_checks=True,
    all_checks_pass=False,
    review_decision="APPROVED",
    merge_state_status="UNSTABLE",
)
AWAITING = PRFeedback(
    awaiting_approval=True, review_decision="REVIEW_REQUIRED", merge_state_status="BLOCKED"
)


@dataclass
class PullRequest:
    url: str
    opened_ms: int
    #: When a human merges (or closes, with ``closes``) it; ``None``: never.
    decided_ms: int | None
    closes: bool = False
    failing_checks: bool = False
    awaiting_approval: bool = False
    conflict_until_ms: int = 0
    not_found: bool = False
    merged: bool = False


class SimGitHub:
    """Pull requests of one town, keyed by URL."""

    def __init__(self, knobs: GitHubKnobs, rng: random.Random) -> None:
        self.knobs = knobs
        self.rng = rng
        self.prs: dict[str, PullRequest] = {}
        self._numbers: dict[str, int] = {}
        self.now_ms = 0

    def open_pr(self, repo: str, now_ms: int, *, landing: bool = False) -> str:
        """Open a PR in ``repo`` (``owner/name``) and draw its fate; returns its URL."""
        number = self._numbers.get(repo, 0) + 1
        self._numbers[repo] = number
        url = f"https://github.com/{repo}/pull/{number}"
        k, rng = self.knobs, self.rng
        closes = rng.random() < (k.landing_close_prob if landing else k.close_prob)
        pr = PullRequest(
            url=url,
            opened_ms=now_ms,
            decided_ms=now_ms + k.merge_after.sample(rng),
            closes=closes,
            failing_checks=rng.random() < k.failing_checks_prob,
            awaiting_approval=rng.random() < k.awaiting_approval_prob,
            not_found=rng.random() < k.not_found_prob,
        )
        if rng.random() < k.conflict_prob:
            pr.conflict_until_ms = now_ms + k.conflict_for.sample(rng)
        if pr.failing_checks or pr.awaiting_approval:
            pr.decided_ms = None if not closes else pr.decided_ms
        self.prs[url] = pr
        return url

    def _state(self, pr: PullRequest) -> str:
        if pr.merged:
            return "merged"
        if pr.decided_ms is not None and self.now_ms >= pr.decided_ms:
            if pr.closes:
                return "closed"
            pr.merged = True
            return "merged"
        return "open"

    def resolve_conflict(self, url: str, now_ms: int) -> None:
        """A pushed conflict fix: the PR is mergeable again from ``now_ms``."""
        pr = self.prs.get(url)
        if pr is not None:
            pr.conflict_until_ms = min(pr.conflict_until_ms, now_ms)

    # ---------------------------------------------------------------- the World's SCM part

    def check_pr_status(self, url: str) -> PRStatus:
        pr = self.prs.get(url)
        if pr is None or pr.not_found:
            return PRStatus.failed(
                PRStatusError(kind="http_error", status=404, status_text="Not Found")
            )
        if self.rng.random() < self.knobs.transient_error_prob:
            return PRStatus.failed(
                PRStatusError(
                    kind="http_error", status=502, status_text="Bad Gateway", transient=True
                )
            )
        state = self._state(pr)
        if state != "open":
            return PRStatus.found(state)
        dirty = self.now_ms < pr.conflict_until_ms
        return PRStatus.found("open", "dirty" if dirty else "clean")

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        pr = self.prs.get(url)
        if pr is None or pr.not_found:
            return None
        if pr.failing_checks:
            return FAILING
        if pr.awaiting_approval:
            return AWAITING
        return GREEN

    def merge_pr(self, url: str) -> bool:
        pr = self.prs.get(url)
        if pr is None or pr.closes or self._state(pr) != "open":
            return False
        pr.merged = True
        return True
