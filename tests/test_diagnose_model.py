"""The catalogue, the override file, findings and verdicts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.diagnose_helpers import make_input
from support.townbuilder import HOUR, MINUTE, add_bead, add_rig, ago, new_town

from reportgen.diagnose import judge, load_config
from reportgen.diagnose.detectors import DETECTORS
from reportgen.diagnose.episodes import EntityKey, episode_id
from reportgen.diagnose.model import Finding, Subject, Verdict, fold, lower, town_verdict
from reportgen.diagnose.registry import (
    BEHAVIOUR,
    CRITICAL,
    KIND_NAMES,
    KINDS,
    NOTICE,
    STATE,
    WARNING,
    markdown,
)
from reportgen.errors import BadInputError

CATALOGUE = {
    "no-progress": (CRITICAL, STATE),
    "dispatch-loop": (CRITICAL, BEHAVIOUR),
    "attempts-exhausted": (CRITICAL, STATE),
    "stale-in-progress": (CRITICAL, STATE),
    "town-silent": (CRITICAL, BEHAVIOUR),
    "review-loop": (CRITICAL, BEHAVIOUR),
    "breaker-open": (CRITICAL, STATE),
    "hooked-not-dispatched": (WARNING, STATE),
    "bead-spawn-loop": (WARNING, BEHAVIOUR),
    "violation-storm": (WARNING, BEHAVIOUR),
}

CONTRACT = {"id", "kind", "severity", "expected", "subject", "subject_name", "first_at",
            "last_at", "open_at_end", "status", "count", "because", "replay_command", "href"}  # fmt: skip


def test_the_catalogue_is_the_issues_and_every_kind_has_a_detector() -> None:
    assert {k.name: (k.severity, k.judged_on) for k in KINDS} == CATALOGUE
    assert set(DETECTORS) == set(KIND_NAMES)
    for k in KINDS:
        assert k.summary and k.explanation and k.incident, k.name
        for t in k.thresholds:
            assert t.unit in ("min", "s", "count") and t.default > 0 and t.meaning


def test_markdown_lists_every_kind_and_threshold() -> None:
    text = markdown([("healthy-day", "healthy", (), "24 h")], {"triage-loop": "not faithful"})
    for k in KINDS:
        assert f"## {k.name}\n" in text
        for t in k.thresholds:
            assert f"`{t.name}` = {t.default:g}" in text
    assert "| `healthy-day` | healthy | — | 24 h |" in text
    assert "Not simulated: `triage-loop`: not faithful" in text


def _finding(severity: str, *, expected: bool = False, open_at_end: bool = True) -> Finding:
    return Finding("x", "k", severity, expected, Subject("town", "t"), "t", "a", "b",
                   open_at_end, 1, "because", "cmd")  # fmt: skip


@pytest.mark.parametrize(
    ("severities", "verdict"),
    [((), Verdict.HEALTHY), ((NOTICE,), Verdict.HEALTHY), ((WARNING, NOTICE), Verdict.DEGRADED),
     ((CRITICAL, WARNING), Verdict.STUCK)],
)  # fmt: skip
def test_verdict_from_findings(severities: tuple[str, ...], verdict: Verdict) -> None:
    assert town_verdict([_finding(s) for s in severities]) is verdict


def test_expected_findings_never_count_and_nothing_judged_is_unknown() -> None:
    assert town_verdict([_finding(CRITICAL, expected=True)]) is Verdict.HEALTHY
    assert town_verdict([], judged=False) is Verdict.UNKNOWN
    assert [lower(s) for s in (CRITICAL, WARNING, NOTICE)] == [WARNING, NOTICE, NOTICE]


def test_finding_json_is_the_contract() -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn, name="webapp"), created_at=ago(HOUR))
    (f,) = judge(make_input(conn)).findings
    data = f.to_json()
    assert set(data) == CONTRACT
    assert data["subject"] == {"kind": f.subject.kind, "id": f.subject.id}
    assert data["status"] == "new" and data["href"] == f"findings/{f.id}.html"
    assert data["replay_command"].startswith("reportgen replay --db town.sqlite --from ")


def test_finding_id_comes_from_the_state_not_from_the_end_of_the_window() -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), created_at=ago(HOUR))
    one = judge(make_input(conn)).findings[0]
    later = judge(make_input(conn, as_of=ago(-2 * HOUR))).findings[0]
    assert one.id == later.id and one.first_at == later.first_at
    assert one.last_at != later.last_at


def test_episode_ids_are_unchanged_by_the_shared_hashing_helper() -> None:
    """Episode ids are permalinks: moving the hash into ``stable_id`` must not change one."""
    key = EntityKey(("a1",), ("b1",), ("r1",))
    payload = json.dumps(["town-1", 7, ["a1"], ["b1"], ["r1"], "2026-03-01T00:00:05.000Z"],
                         separators=(",", ":"), ensure_ascii=True)  # fmt: skip
    assert (
        episode_id("town-1", 7, key, "2026-03-01T00:00:05.000Z")
        == (hashlib.sha256(payload.encode("ascii")).hexdigest()[:12])
    )


def test_fold_folds_a_loop() -> None:
    steps = [(f"2026-03-01T0{h}:00:00.000Z", "dispatch_agent → container refused start")
             for h in range(3)] + [("2026-03-01T02:00:00.000Z", "transition_bead → open")]  # fmt: skip
    assert fold(steps) == (
        "dispatch_agent → container refused start ×3, transition_bead → open ×1 over 2 h"
    )
    assert fold([]) is None


# --------------------------------------------------------------------------- the override file


def test_toml_and_json_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "d.toml"
    toml.write_text(
        "[no-progress]\nmin_idle = 45\n[dispatch-loop]\ndispatches = 5\n", encoding="utf-8"
    )
    cfg = load_config(toml)
    assert cfg.ms("no-progress", "min_idle") == 45 * MINUTE
    assert cfg.count("dispatch-loop", "dispatches") == 5
    assert cfg.ms("town-silent", "silence") == 15 * MINUTE
    js = tmp_path / "d.json"
    js.write_text('{"violation-storm": {"min_duration": 2.5}}', encoding="utf-8")
    assert load_config(js).ms("violation-storm", "min_duration") == 150_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[no-progres]\nmin_idle = 1\n", "unknown finding kind 'no-progres'"),
        ("[no-progress]\nidle = 1\n", "[no-progress] idle: unknown threshold (known: min_idle)"),
        ("[no-progress]\nmin_idle = -1\n", "[no-progress] min_idle: must be a positive number of minutes"),
        ('[no-progress]\nmin_idle = "30"\n', "[no-progress] min_idle: must be a positive number"),
        ("[dispatch-loop]\ndispatches = 2.5\n", "[dispatch-loop] dispatches: must be a whole number"),
        ("[dispatch-loop]\ndispatches = true\n", "[dispatch-loop] dispatches: must be a whole number"),
        ("no-progress = 3\n", "[no-progress] must be a table of thresholds"),
        ("[no-progress\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_overrides_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_missing_and_bad_json_override_files(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read the diagnosis config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "d.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(BadInputError, match="not valid JSON"):
        load_config(bad)
    bad.write_text("[1]", encoding="utf-8")
    with pytest.raises(BadInputError, match="expected a table of kinds"):
        load_config(bad)
