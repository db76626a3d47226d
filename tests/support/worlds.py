"""A scripted outside world for tests: :class:`RecordingWorld` records every call a
town's side effects make and answers from scripts (see :mod:`reportgen.town.world`
for the protocol it implements)."""

from __future__ import annotations

from typing import Any

from reportgen.town.world import PRFeedback, PRStatus


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
