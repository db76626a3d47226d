"""The debug API over the broken-database corpus: every route answers every broken town
with one JSON line naming the problem, never a traceback.

The corpus is the CLI's (``support/hostile_corpus.py``): each case says which words
its error must contain and which commands never read the broken part. The API's
replay-events reads what ``reportgen replay`` reads; dry-run and status what
``reportgen dry-run`` reads (status also reads the newest tick record).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.hostile_corpus import WINDOW, Case, build_corpus, simulated_town

from reportgen.server import create_app
from reportgen.server_pool import Limits

#: (method, route under /api/towns/{townId}, JSON body, the command that reads the same).
ROUTES = (
    ("GET", "status", None, "status"),
    ("POST", "debug/replay-events", {"from": WINDOW[0], "to": WINDOW[1]}, "replay"),
    ("POST", "debug/reconcile-dry-run", None, "dry-run"),
)
LAST_TICK_BAD = "last-tick-bad-json"


def _break_last_tick(path: Path) -> None:
    """The newest tick record is not JSON: the one row the status route reads."""
    conn = sqlite3.connect(path)
    conn.execute("UPDATE rg_ticks SET record = '{oops' WHERE seq = (SELECT max(seq) FROM rg_ticks)")
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    """The corpus, plus a town whose newest tick record does not decode."""
    folder = tmp_path_factory.mktemp("served")
    healthy = simulated_town(tmp_path_factory.mktemp("healthy"))
    cases = build_corpus(folder, healthy)
    last = folder / f"{LAST_TICK_BAD}.sqlite"
    last.write_bytes(healthy.read_bytes())
    _break_last_tick(last)
    seq = sqlite3.connect(healthy).execute("SELECT max(seq) FROM rg_ticks").fetchone()[0]
    expect = (f"rg_ticks seq {seq}", "record is not valid JSON")
    spared = frozenset({"replay", "dry-run"})  # they read no tick record
    return [*cases, Case(LAST_TICK_BAD, last, expect, spared)]


@pytest.fixture(scope="module")
def client(corpus: list[Case]) -> Iterator[TestClient]:
    with TestClient(create_app(corpus[0].path.parent, limits=Limits(workers=1))) as client:
        yield client


@pytest.fixture(scope="module")
def town_ids(client: TestClient) -> dict[str, str]:
    """File name -> the townId it is served under (an unreadable file: its stem)."""
    return {t["file"]: t["townId"] for t in client.get("/api/towns").json()}


def _cases() -> list[str]:
    from support.hostile_corpus import BREAKERS

    return [*BREAKERS, LAST_TICK_BAD]


def _spared(case: Case, command: str) -> bool:
    """Whether ``command`` never meets the broken part of ``case`` (so it succeeds)."""
    if command == "status":  # what dry-run reads, and the newest tick record
        return "dry-run" in case.spared and case.name != LAST_TICK_BAD
    return command in case.spared


@pytest.mark.parametrize(("method", "route", "body", "command"), ROUTES)
@pytest.mark.parametrize("name", _cases())
def test_every_route_names_the_problem(
    client: TestClient,
    town_ids: dict[str, str],
    corpus: list[Case],
    name: str,
    method: str,
    route: str,
    body: object,
    command: str,
) -> None:
    case = next(c for c in corpus if c.name == name)
    town_id = town_ids.get(case.path.name, case.path.stem)
    kwargs = {} if body is None else {"json": body}
    response = client.request(method, f"/api/towns/{town_id}/{route}", **kwargs)  # type: ignore[arg-type]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if _spared(case, command):
        assert response.status_code == 200, response.text
        return
    assert 400 <= response.status_code < 600, response.text
    assert response.headers["content-type"] == "application/json"
    (message,) = response.json().values()
    assert list(response.json()) == ["error"]
    assert "\n" not in message and case.path.name in message
    for word in case.expect:
        assert word in message, (word, message)


def test_an_unreadable_file_is_not_listed(town_ids: dict[str, str]) -> None:
    """Not SQLite or damaged beyond opening: no town to list, a 400 under its stem."""
    for name in ("not-sqlite", "truncated", "corrupt-pages"):
        assert f"{name}.sqlite" not in town_ids
