"""``diagnose``: open a town database or bundle, judge its window, give a verdict and findings.

Which ticks and which state the detectors see is what the build's loader
(:class:`reportgen.replay.loader.ReplayLoader`, ``--ticks auto``) loads, so
``reportgen diagnose`` and ``reportgen build`` judge a window alike:

* a journaled town or bundle whose record of the window can stand for a
  replay (:func:`reportgen.replay.record_serves`): the recorded ticks, and
  the state the file holds for the window's end (fidelity ``recorded``;
  rebuilt from the journal when the file holds none);
* another journaled source: the window replayed tick by tick from the
  state at ``--from``; the state is the replay's at ``--to`` (``exact``);
* no journal (an upstream dump): no ticks (behaviour kinds are listed as
  not judged, never passed, and ticks simulated on its stored state are
  never judged) and the file's tables *as stored* (``approximate``).

Ages are measured from ``--to`` when given, even past the file's newest
time (a town that stopped writing is judged as of the time asked about),
else from the newest time in the file. The default window is the last
24 h of the source's data, chosen by the one rule every command uses
(:func:`reportgen.replay.choose_window`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.diagnose.detectors import DETECTORS
from reportgen.diagnose.detectors.common import when
from reportgen.diagnose.inputs import DiagnosisInput
from reportgen.diagnose.model import Finding, Verdict, town_verdict, worst_first
from reportgen.diagnose.registry import (
    BEHAVIOUR,
    DEFAULT_CONFIG,
    KINDS,
    STATE,
    DiagnosisConfig,
)
from reportgen.errors import BadInputError
from reportgen.humanize import clean
from reportgen.replay import (
    APPROXIMATE,
    EXACT,
    SIMULATED,
    choose_window,
    open_source,
    parse_time,
    state_after,
    state_at,
)
from reportgen.replay.loader import LoadedWindow, ReplayLoader
from reportgen.town_run import TownRun

RECORDED = "recorded"

CAVEATS = {
    RECORDED: "judged on the ticks the town recorded and the state it holds for the window's end",
    EXACT: "judged on the window replayed tick by tick from the journal",
    APPROXIMATE: "no journal: judged on the file's tables as stored; behaviour kinds not judged",
    SIMULATED: "no journal: judged on the file's tables as stored; ticks simulated on today's "
    "state are not judged, so behaviour kinds are not judged",
}
#: Fidelities whose ticks are not what the town did: behaviour kinds are not judged on them.
UNJUDGED_TICKS = (APPROXIMATE, SIMULATED)


@dataclass(frozen=True)
class Diagnosis:
    """One town's verdict and findings over a window."""

    town_id: str
    source: str
    window_from: str
    window_to: str
    as_of: str
    fidelity: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    judged: tuple[str, ...]
    not_judged: tuple[str, ...]
    ticks: int

    @property
    def caveat(self) -> str:
        return CAVEATS.get(self.fidelity, "")

    def to_json(self) -> dict[str, Any]:
        """What ``reportgen diagnose --json`` prints (findings in their JSON contract)."""
        return {
            "town_id": self.town_id,
            "source": self.source,
            "from": self.window_from,
            "to": self.window_to,
            "as_of": self.as_of,
            "fidelity": self.fidelity,
            "caveat": self.caveat,
            "ticks": self.ticks,
            "verdict": str(self.verdict),
            "findings": [f.to_json() for f in self.findings],
            "judged": list(self.judged),
            "not_judged": list(self.not_judged),
        }

    def text(self) -> str:
        """The terminal report: the verdict, then one line per finding, worst first."""
        head = (
            f"{clean(self.town_id)}: {str(self.verdict).upper()} "
            f"({self.fidelity}; window {self.window_from} → {self.window_to}; "
            f"{self.ticks} ticks; as of {self.as_of})"
        )
        lines = [head, *findings_lines(self.findings)]
        if not self.findings:
            lines.append("no findings")
        if self.not_judged:
            lines.append(f"not judged ({self.caveat}): {', '.join(self.not_judged)}")
        return "\n".join(lines)

    def state_text(self) -> str:
        """What ``reportgen dry-run`` prints after its actions: the state kinds' findings."""
        head = f"diagnosis of the state as of {self.as_of}: {str(self.verdict).upper()}"
        lines = [head, *findings_lines(self.findings)]
        if not self.findings:
            lines.append("no findings")
        lines.append(f"not judged without ticks: {', '.join(self.not_judged)}")
        return "\n".join(lines)


def findings_lines(findings: Iterable[Finding]) -> list[str]:
    """One line per finding (severity, kind, subject, because, since when) and its loop."""
    rows = list(findings)
    kind_width = max((len(f.kind) for f in rows), default=0)
    lines = []
    for f in rows:
        label = "expected" if f.expected else f.severity
        state = "since" if f.open_at_end else "was"
        extent = when(f.first_at) if f.open_at_end else f"{when(f.first_at)} → {when(f.last_at)}"
        lines.append(
            f"{label:<8}  {f.kind:<{kind_width}}  {f.subject_name}: {f.because} ({state} {extent})"
        )
        if f.meanwhile:
            lines.append(f"{'':<8}  {'':<{kind_width}}  meanwhile: {f.meanwhile}")
    return lines


# --------------------------------------------------------------------------- judging


def judge(inp: DiagnosisInput, kinds: Sequence[str] | None = None) -> Diagnosis:
    """Run the detectors of ``kinds`` (default: all) that ``inp`` can judge."""
    wanted = [k for k in KINDS if kinds is None or k.name in kinds]
    judged = [k.name for k in wanted if k.judged_on == STATE or inp.ticks is not None]
    not_judged = [k.name for k in wanted if k.name not in judged]
    findings = [f for name in judged for f in DETECTORS[name](inp)]
    return Diagnosis(
        town_id=inp.town_id,
        source=inp.source,
        window_from=inp.window_from,
        window_to=inp.window_to,
        as_of=inp.as_of,
        fidelity=inp.fidelity,
        verdict=town_verdict(findings, judged=bool(judged)),
        findings=tuple(worst_first(findings)),
        judged=tuple(judged),
        not_judged=tuple(not_judged),
        ticks=len(inp.ticks or ()),
    )


def diagnose(
    path: str | Path,
    start: str | None = None,
    end: str | None = None,
    config: DiagnosisConfig | None = None,
) -> Diagnosis:
    """Diagnose the town database or bundle at ``path`` over ``[start, end]`` (see the module)."""
    loaded = ReplayLoader().load(Path(path), start, end)
    with end_state(Path(path), loaded) as state:
        return judge(window_input(loaded.run, state, config or DEFAULT_CONFIG, str(path)))


def window_input(
    run: TownRun, state: sqlite3.Connection, config: DiagnosisConfig, source: str | None = None
) -> DiagnosisInput:
    """What the detectors read of a loaded window: its ticks unless they are not the town's
    (:data:`UNJUDGED_TICKS`), and ``state``, as of the window's end."""
    return DiagnosisInput(
        town_id=run.town_id,
        source=run.source if source is None else source,
        window_from=run.window_from,
        window_to=run.window_to,
        as_of=run.window_to,
        fidelity=run.fidelity,
        conn=state,
        ticks=None if run.fidelity in UNJUDGED_TICKS else run.ticks,
        config=config,
    )


@contextmanager
def end_state(source: Path, loaded: LoadedWindow) -> Iterator[sqlite3.Connection]:
    """The state at the loaded window's end, closed after use: the one it was read against,
    else (a record over an earlier window) rebuilt from the journal up to the window's end."""
    state = loaded.state
    if state is None:
        opened = open_source(source, copy=False)
        with closing(opened.conn):
            state = state_after(opened, loaded.run.window_to).conn
    with closing(state):
        yield state


def diagnose_state(
    path: str | Path, now: str | None = None, config: DiagnosisConfig | None = None
) -> Diagnosis:
    """The state kinds judged on the town's current state (or its state at ``now``).

    What ``reportgen dry-run`` prints after its actions: a journaled source
    is rewound to ``now`` when ``now`` is older than its data, as the
    dry-run itself is; the behaviour kinds are listed as not judged.
    """
    source = open_source(path, copy=False)
    with closing(source.conn):
        newest = source.default_now()
        at = parse_time(now, "--now") if now is not None else newest
        if at is None:
            raise BadInputError(f"{path}: the database holds no timestamps; pass --now")
        rewind = source.journaled and now is not None and at <= (newest or "")
        if source.manifest is None and not rewind:
            conn = source.conn
        else:
            conn = state_at(source, at if rewind else None).conn
        first = choose_window(source, None, at).start if source.data_range() else at
        inp = DiagnosisInput(
            town_id=source.town_id or Path(path).stem,
            source=str(path),
            window_from=min(first, at),
            window_to=at,
            as_of=at,
            fidelity=source.fidelity,
            conn=conn,
            config=config or DEFAULT_CONFIG,
        )
        return judge(inp)  # without ticks: the state kinds, the others listed as not judged


__all__ = [
    "BEHAVIOUR",
    "Diagnosis",
    "diagnose",
    "diagnose_state",
    "findings_lines",
    "judge",
]
