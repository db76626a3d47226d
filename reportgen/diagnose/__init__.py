"""Diagnosis: every town gets a verdict and named findings, so a stuck town is never shown healthy.

One map of the package (imports point down the list):

``loader``
    ``DiagnosingLoader``: ``reportgen build`` judges every town on the window it loads.
``diagnose``
    open a source, choose its ticks and state, run the detectors, the verdict.
``detectors``
    one pure function per finding kind, of a :class:`DiagnosisInput`.
``inputs``
    the input object and the facts several detectors share.
``model``, ``registry``
    findings, verdicts and their ids; the catalogue of kinds, thresholds,
    overrides, expected invariant episodes and the generated docs.
``scenarios``
    what a diagnosis of each named simulated scenario says (tested, documented).
``episodes``
    invariant violations grouped into episodes (imports only :mod:`reportgen.town`).
"""

from __future__ import annotations

from reportgen.diagnose.diagnose import Diagnosis, diagnose, diagnose_state, judge
from reportgen.diagnose.inputs import DiagnosisInput
from reportgen.diagnose.model import Finding, Subject, Verdict, town_verdict
from reportgen.diagnose.registry import DEFAULT_CONFIG, KINDS, DiagnosisConfig, load_config

__all__ = [
    "DEFAULT_CONFIG",
    "KINDS",
    "Diagnosis",
    "DiagnosisConfig",
    "DiagnosisInput",
    "Finding",
    "Subject",
    "Verdict",
    "diagnose",
    "diagnose_state",
    "judge",
    "load_config",
    "town_verdict",
]
