"""One detector per finding kind: a pure function of a :class:`DiagnosisInput` to findings.

:data:`DETECTORS` maps every kind of the catalogue
(:data:`reportgen.diagnose.registry.KINDS`) to its detector; a test checks
the two agree.
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.diagnose.detectors import (
    breaker,
    dispatch,
    progress,
    review,
    silence,
    spawn,
    stale,
    storm,
)
from reportgen.diagnose.inputs import DiagnosisInput
from reportgen.diagnose.model import Finding

Detector = Callable[[DiagnosisInput], list[Finding]]

DETECTORS: dict[str, Detector] = {
    progress.KIND: progress.detect,
    dispatch.DISPATCH_LOOP: dispatch.detect_dispatch_loop,
    dispatch.ATTEMPTS_EXHAUSTED: dispatch.detect_attempts_exhausted,
    stale.KIND: stale.detect,
    silence.KIND: silence.detect,
    review.KIND: review.detect,
    breaker.KIND: breaker.detect,
    dispatch.HOOKED_NOT_DISPATCHED: dispatch.detect_hooked_not_dispatched,
    spawn.KIND: spawn.detect,
    storm.KIND: storm.detect,
}

__all__ = ["DETECTORS", "Detector"]
