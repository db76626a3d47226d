"""Sentry alerts through the real SDK, sent over HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from click.testing import CliRunner
from support.townbuilder import NOW, SECOND, add_agent, add_rig, new_town

from reportgen.cli import main
from reportgen.diagnose.episodes import EntityKey, find_episodes
from reportgen.observability.sentry import (
    LiveEpisodes,
    SentryReporter,
    fingerprint,
    report_episodes,
    reporter_from_env,
)
from reportgen.sim.scenario_files import simulate_town
from reportgen.town import clock, store
from reportgen.town.api import Town
from reportgen.town.effects import NullWorld
from reportgen.town.record import load_ticks
from reportgen.town.tick import ModelStopwatch


class _Receiver(BaseHTTPRequestHandler):
    """Sentry's ingest endpoint, reduced to: accept envelopes and keep their events."""

    events: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                self.server.events.append(json.loads(payload))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.events = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    try:
        yield dsn, server.events  # type: ignore[attr-defined]
    finally:
        sentry_sdk.get_client().close(timeout=2)
        sentry_sdk.init()  # back to a disabled client
        server.shutdown()
        server.server_close()  # the listening socket too, not left to the garbage collector
        thread.join()


def _draining_town(observers: list[Any] | None = None) -> Town:
    conn = new_town()
    rig = add_rig(conn)
    for _ in range(2):
        add_agent(conn, rig_id=rig, status="working", hook=None, last_activity_at=NOW)
    store.put(conn, store.TOWN_ID, "town-sentry")
    store.put(conn, store.DRAINING, True)
    store.put(conn, store.DRAIN_STARTED_AT, NOW)
    return Town(conn, observers=observers)


def _at(i: int) -> str:
    return clock.iso(clock.to_ms(NOW) + i * 5 * SECOND)


def test_nothing_is_initialised_without_a_dsn() -> None:
    assert reporter_from_env({}) is None
    assert reporter_from_env({"SENTRY_DSN": "  "}) is None
    assert not sentry_sdk.get_client().is_active()


def test_live_ticks_send_one_event_per_episode_not_per_tick(receiver: Any) -> None:
    dsn, events = receiver
    reporter = reporter_from_env({"SENTRY_DSN": dsn, "SENTRY_ENVIRONMENT": "test"})
    assert reporter is not None
    town = _draining_town([LiveEpisodes(new_town(), reporter)])
    for i in range(6):
        town.tick(_at(i), NullWorld(), stopwatch=ModelStopwatch())
    reporter.flush()
    assert len(events) == 2  # two stuck agents, six ticks each: two episodes
    agents = sorted(e["contexts"]["violation"]["agent_ids"][0] for e in events)
    for event in events:
        agent = event["contexts"]["violation"]["agent_ids"][0]
        assert event["level"] == "error"
        assert (
            event["message"]
            == f"Reconciler invariant #7 violated: Working agent {agent} has no hook"
        )
        assert event["tags"] == {"invariant": "7", "town_id": "town-sentry"}
        assert event["fingerprint"] == ["reconciler-invariant", "7", "town-sentry", agent]
        assert event["contexts"]["violation"]["first_tick"] == _at(0)
        assert event["environment"] == "test"
    assert len(set(agents)) == 2


def test_batch_reports_each_episode_with_its_extent_and_permalink(receiver: Any) -> None:
    dsn, events = receiver
    town = _draining_town()
    for i in range(4):
        town.tick(_at(i), NullWorld(), stopwatch=ModelStopwatch())
    episodes = find_episodes("town-sentry", load_ticks(town.conn, _at(0), _at(3)))
    reporter = SentryReporter(dsn)
    sent = report_episodes(reporter, episodes, lambda e: f"https://reports.example/v/{e.id}.html")
    assert sent == 2 and len(events) == 2
    contexts = sorted((e["contexts"]["violation"] for e in events), key=lambda c: c["episode_id"])
    for ctx, episode in zip(contexts, sorted(episodes, key=lambda e: e.id), strict=True):
        assert ctx["episode_id"] == episode.id
        assert (ctx["first_tick"], ctx["last_tick"], ctx["tick_count"]) == (_at(0), _at(3), 4)
        assert ctx["permalink"] == f"https://reports.example/v/{episode.id}.html"
        assert ctx["invariant"] == 7 and ctx["town_id"] == "town-sentry"


def test_the_dsn_never_appears_in_what_is_sent(receiver: Any) -> None:
    dsn, events = receiver
    town = _draining_town([LiveEpisodes(new_town(), SentryReporter(dsn))])
    town.tick(_at(0), NullWorld())
    sentry_sdk.flush(timeout=5)
    assert events and all("publickey" not in json.dumps(e) for e in events)


def test_fingerprint_names_the_entity_each_invariant_is_about() -> None:
    key = EntityKey(agent_ids=("a1",), bead_ids=("b1", "b2"), rig_ids=("r1",))
    assert fingerprint("t", 7, key)[-1] == "a1"
    assert fingerprint("t", 6, key)[-1] == "b1"
    assert fingerprint("t", 3, key)[-1] == "r1"
    assert fingerprint("t", 5, EntityKey()) == ["reconciler-invariant", "5", "t"]


def test_replay_cli_sends_each_episode_once_and_never_prints_the_dsn(
    receiver: Any, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from reportgen.cli import main
    from reportgen.sim.scenario_files import simulate_town

    dsn, events = receiver
    result = simulate_town("multi-pr-rig", hours=0.5, out_dir=tmp_path)
    assert result.path is not None
    records = load_ticks(_open(result.path), "0000", "9999")
    episodes = find_episodes(result.town_id, records)
    assert episodes
    run = CliRunner().invoke(
        main,
        ["replay", "--db", str(result.path), "--from", records[0]["at"], "--to",
         records[-1]["at"], "--ticks"],
        env={"SENTRY_DSN": dsn},
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert dsn not in run.output and "publickey" not in run.output
    assert sorted(e["contexts"]["violation"]["episode_id"] for e in events) == sorted(
        e.id for e in episodes
    )


def _open(path: Any) -> Any:
    import sqlite3

    return sqlite3.connect(path)


BASE_URL = "https://reports.example/runs/2026-03-16/"
PERMALINK_BASE = "https://reports.example"


@dataclass
class Nightly:
    """One scenario town built on a first night, then again with that night's history."""

    dsn: str
    tmp: Path
    town_id: str = ""
    #: The last build's stdout (its summary).
    output: str = ""

    def night(self, name: str, history: str | None = None, *more: str) -> dict[str, Any]:
        """Build into ``tmp/name`` (Sentry on) and return its ``index.json``."""
        args = ["build", str(self.tmp / "towns"), "--jobs", "1", "--base-url", BASE_URL, *more]
        args += ["--out", str(self.tmp / name)]
        args += ["--history", str(self.tmp / history)] if history else []
        env = {"SENTRY_DSN": self.dsn, "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md")}
        done = CliRunner().invoke(main, args, env=env)
        assert done.exit_code == 0, done.output
        self.output = done.output
        return dict(json.loads((self.tmp / name / "index.json").read_text(encoding="utf-8")))


def nightly(dsn: str, tmp: Path, scenario: str, **options: Any) -> Nightly:
    """Simulate ``scenario`` into ``tmp/towns`` for a :class:`Nightly`."""
    (tmp / "towns").mkdir()
    result = simulate_town(scenario, out_dir=tmp / "towns", **options)
    assert result.path is not None
    return Nightly(dsn, tmp, result.town_id)


def test_build_alerts_new_episodes_once_with_permalinks(receiver: Any, tmp_path: Path) -> None:
    """A nightly build alerts each new episode; the next night's persisting ones stay quiet."""
    dsn, events = receiver
    run = nightly(dsn, tmp_path, "multi-pr-rig", hours=0.5)
    index = run.night("one")
    new = sorted(e["id"] for e in index["episodes"] if e["status"] == "new")
    assert new and sorted(e["contexts"]["violation"]["episode_id"] for e in events) == new
    for event in events:
        ctx = event["contexts"]["violation"]
        assert ctx["permalink"] == f"{BASE_URL}violations/{ctx['episode_id']}.html"
        assert event["fingerprint"][:3] == ["reconciler-invariant", "3", run.town_id]
        assert ctx["message"].startswith("Rig ") and ctx["tick_count"] >= 1
    count = len(events)
    run.night("two", history="one")
    assert len(events) == count  # nothing new: no new alert


def test_open_episodes_kept_in_a_file_survive_a_restart(tmp_path: Any) -> None:
    import sqlite3

    violation = {"invariant": 7, "message": "Working agent a1 has no hook", "agent_ids": ["a1"]}
    path = tmp_path / "open.sqlite"
    with sqlite3.connect(path) as conn:
        first = LiveEpisodes(conn, None)
        assert len(first.observe("town", _at(0), [violation])) == 1
    with sqlite3.connect(path) as conn:  # a restarted process: the episode goes on
        again = LiveEpisodes(conn, None)
        assert again.observe("town", _at(1), [violation]) == []
    memory = LiveEpisodes(sqlite3.connect(":memory:"), None)  # what simulate uses: no memory
    assert len(memory.observe("town", _at(1), [violation])) == 1


def test_build_alerts_each_new_critical_finding_once_grouped_by_its_id(
    receiver: Any, tmp_path: Path
) -> None:
    """A stuck town: one event per new critical finding (not per warning, not per night)."""
    dsn, events = receiver
    run = nightly(dsn, tmp_path, "container-crash-loop", seed=7, hours=1.0)
    index = run.night("one")
    findings = [f for t in index["towns"] for f in t["findings"]]
    critical = sorted(
        f["id"] for f in findings if f["severity"] == "critical" and not f["expected"]
    )
    assert critical and len(critical) < len(findings)  # the warnings are not alerted
    alerts = [e for e in events if "finding" in e.get("contexts", {})]
    assert sorted(e["contexts"]["finding"]["finding_id"] for e in alerts) == critical
    for event in alerts:
        ctx = event["contexts"]["finding"]
        assert event["fingerprint"] == ["reconciler-finding", ctx["finding_id"]]
        assert ctx["permalink"] == f"{BASE_URL}findings/{ctx['finding_id']}.html"
        assert event["tags"]["town_id"] == run.town_id and event["level"] == "error"
        assert event["message"].startswith(f"Reconciler finding {ctx['kind']}: ")
    count = len(events)
    run.night("two", history="one")
    assert len(events) == count  # persisting findings: no second alert


def test_permalink_base_links_alerts_and_summaries_to_the_stable_permalinks(
    receiver: Any, tmp_path: Path
) -> None:
    """With --permalink-base, every new episode and critical finding is linked at
    ``<base>/permalinks/…/<id>.html`` in Sentry, the summary and the step summary; Sentry
    keeps the run's own page too."""
    dsn, events = receiver
    run = nightly(dsn, tmp_path, "double-hook", seed=5, hours=0.5)
    simulate_town("container-crash-loop", seed=7, hours=1.0, out_dir=tmp_path / "towns")
    run.night("one", None, "--permalink-base", PERMALINK_BASE)
    step_summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    kinds = {"violation": ("episodes", "episode_id", "violations"),
             "finding": ("findings", "finding_id", "findings")}  # fmt: skip
    seen = set()
    for event in events:
        (context,) = set(event["contexts"]) & set(kinds)
        folder, key, run_folder = kinds[context]
        ctx = event["contexts"][context]
        link = f"{PERMALINK_BASE}/permalinks/{folder}/{ctx[key]}.html"
        assert ctx["permalink"] == link and link in run.output and f"({link})" in step_summary
        assert ctx["run_page"] == f"{BASE_URL}{run_folder}/{ctx[key]}.html"
        seen.add(context)
    assert seen == set(kinds)
