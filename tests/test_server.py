"""The debug API: every route, every error code, the token rule, a real socket, a schema fuzz."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from test_replay_towns import TOWN_ID, Built, Script, at, build_town
from test_server_load import running

from reportgen.cli import main
from reportgen.replay import dry_run, replay_events
from reportgen.replay.export import export
from reportgen.server import MAX_BODY_BYTES, create_app, debug_status, town_status
from reportgen.server_jobs import Job
from reportgen.town.api import Town
from reportgen.town.db import configure

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Built]:
    directory = tmp_path_factory.mktemp("served")
    built = build_town(directory / "town.sqlite", Script(end=1800))
    export(built.path, at(600), at(1500), directory / "window.sqlite")
    (directory / "notes.sqlite").write_text("not a database")
    return directory, built


@pytest.fixture(scope="module")
def client(served: tuple[Path, Built]) -> TestClient:
    return TestClient(create_app(served[0]))


WINDOW = {"from": at(600), "to": at(1500)}


def test_lists_the_towns_and_bundles(client: TestClient) -> None:
    for path in ("/api/towns", "/debug/towns"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == [
            {"townId": TOWN_ID, "file": "town.sqlite", "kind": "town"},
            {"townId": "window", "file": "window.sqlite", "kind": "bundle"},
        ]


def test_replay_events_equals_the_cli(client: TestClient, served: tuple[Path, Built]) -> None:
    expected = replay_events(served[1].path, WINDOW["from"], WINDOW["to"])
    for path in (
        f"/api/towns/{TOWN_ID}/debug/replay-events",
        f"/debug/towns/{TOWN_ID}/replay-events",
    ):
        response = client.post(path, json=WINDOW)
        assert response.status_code == 200
        assert response.json() == json.loads(json.dumps(expected))
    bundle = client.post("/api/towns/window/debug/replay-events", json=WINDOW)
    assert bundle.status_code == 200 and bundle.json() == response.json()


def test_dry_run_equals_the_cli(client: TestClient, served: tuple[Path, Built]) -> None:
    for path in (
        f"/api/towns/{TOWN_ID}/debug/reconcile-dry-run",
        f"/debug/towns/{TOWN_ID}/reconcile-dry-run",
    ):
        assert client.post(path).json() == dry_run(served[1].path)
        with_now = client.post(path, json={"now": at(900)})
        assert with_now.json() == dry_run(served[1].path, now=at(900))


def test_status_routes(client: TestClient, served: tuple[Path, Built]) -> None:
    status = client.get(f"/api/towns/{TOWN_ID}/status").json()
    assert status == town_status(served[1].path)
    assert set(status) >= {"alarm", "agents", "beads", "patrol", "reconciler", "recentEvents"}
    assert set(status["reconciler"]) >= {"eventsDrained", "wallClockMs", "pendingEventCount"}
    upstream = client.get(f"/debug/towns/{TOWN_ID}/status").json()
    assert upstream == json.loads(json.dumps(debug_status(served[1].path)))
    assert upstream["alarmStatus"] == status and "agentMeta" in upstream


def test_diagnosis_equals_the_cli(client: TestClient, served: tuple[Path, Built]) -> None:
    """The verdict and findings a build shows, over HTTP: ``reportgen diagnose --json``."""
    path = served[1].path
    for query, args in (("", []), (f"?from={WINDOW['from']}&to={WINDOW['to']}",
                                   ["--from", WINDOW["from"], "--to", WINDOW["to"]])):  # fmt: skip
        got = client.get(f"/api/towns/{TOWN_ID}/diagnosis{query}")
        cli = CliRunner().invoke(main, ["diagnose", "--db", str(path), "--json", *args])
        assert got.status_code == 200 and cli.exit_code == 0, cli.output
        assert got.json() == json.loads(cli.stdout)
        assert got.json()["verdict"] in ("stuck", "degraded", "healthy", "unknown")
    assert client.get(f"/debug/towns/{TOWN_ID}/diagnosis").status_code == 404  # not upstream's


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "message"),
    [
        ("post", f"/api/towns/{TOWN_ID}/debug/replay-events", {"from": "x", "to": at(9)}, 400,
         "from: not an ISO-8601 time"),
        ("post", f"/api/towns/{TOWN_ID}/debug/replay-events", {"from": at(99), "to": at(9)}, 400,
         "is after to"),
        ("post", f"/api/towns/{TOWN_ID}/debug/replay-events",
         {"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z"}, 400, "outside the data"),
        ("post", f"/api/towns/{TOWN_ID}/debug/replay-events", {"from": at(1)}, 400, "to"),
        ("post", f"/api/towns/{TOWN_ID}/debug/replay-events", [1, 2], 400, "body"),
        ("post", f"/api/towns/{TOWN_ID}/debug/reconcile-dry-run", {"now": "soon"}, 400, "now: not an ISO-8601 time"),
        ("post", "/api/towns/nope/debug/replay-events", WINDOW, 404, "unknown town 'nope'"),
        ("get", "/api/towns/nope/status", None, 404, "unknown town"),
        ("get", f"/api/towns/{TOWN_ID}/diagnosis?from=soon", None, 400, 'from: not an ISO-8601 time'),
        ("get", "/api/towns/nope/diagnosis", None, 404, "unknown town"),
        ("get", "/debug/towns/nope/status", None, 404, "unknown town"),
        ("get", "/api/towns/..%2F..%2Fetc/status", None, 404, ""),
        ("get", "/api/towns/a.b/status", None, 400, "townId"),
        ("get", f"/api/towns/{'x' * 65}/status", None, 400, "townId"),
    ],
)  # fmt: skip
def test_errors(
    client: TestClient, method: str, path: str, body: object, code: int, message: str
) -> None:
    kwargs = {} if body is None else {"json": body}
    response = client.request(method.upper(), path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == code
    assert message in response.json().get("error", "") or not message


def test_oversized_body_is_413(client: TestClient) -> None:
    big = {"from": at(1), "to": at(2), "pad": "x" * (MAX_BODY_BYTES + 1)}
    response = client.post(f"/api/towns/{TOWN_ID}/debug/replay-events", json=big)
    assert response.status_code == 413 and "larger than" in response.json()["error"]

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = client.post(f"/api/towns/{TOWN_ID}/debug/replay-events", content=chunks())
    assert response.status_code == 413


def test_token_is_required_on_every_route(served: tuple[Path, Built]) -> None:
    guarded = TestClient(create_app(served[0], token=TOKEN))
    for method, path in (
        ("GET", "/api/towns"),
        ("GET", f"/api/towns/{TOWN_ID}/status"),
        ("POST", f"/api/towns/{TOWN_ID}/debug/reconcile-dry-run"),
        ("GET", "/openapi.json"),
    ):
        assert guarded.request(method, path).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert guarded.request(method, path, headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert guarded.request(method, path, headers=right).status_code == 200


def test_serve_refuses_a_public_address_without_token(served: tuple[Path, Built]) -> None:
    result = CliRunner().invoke(
        main, ["serve", str(served[0]), "--host", "0.0.0.0"], env={"REPORTGEN_TOKEN": ""}
    )
    assert result.exit_code == 2 and "refusing to serve without a token" in result.stderr


def test_the_server_never_writes_its_files(client: TestClient, served: tuple[Path, Built]) -> None:
    files = sorted(served[0].glob("*.sqlite"))
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    client.post(f"/api/towns/{TOWN_ID}/debug/replay-events", json=WINDOW)
    client.post(f"/api/towns/{TOWN_ID}/debug/reconcile-dry-run")
    client.get(f"/api/towns/{TOWN_ID}/status")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in files] == before
    assert sorted(served[0].glob("*.sqlite")) == files


def test_real_http_over_uvicorn(served: tuple[Path, Built]) -> None:
    with running(create_app(served[0])) as base:
        response = httpx.post(f"{base}/api/towns/{TOWN_ID}/debug/replay-events", json=WINDOW)
    assert response.status_code == 200
    assert response.json()["fidelity"] == "exact"


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", "/nope", None, 404),
        ("GET", "/api/towns/nope/status", None, 404),
        ("DELETE", "/api/towns", None, 405),
        ("POST", f"/api/towns/{TOWN_ID}/status", None, 405),
        ("GET", "/api/towns/a.b/status", None, 400),
        ("POST", f"/api/towns/{TOWN_ID}/debug/replay-events", [1, 2], 400),
        ("POST", f"/api/towns/{TOWN_ID}/debug/replay-events", {"from": "x", "to": "y"}, 400),
        ("POST", f"/api/towns/{TOWN_ID}/debug/reconcile-dry-run", {"now": "x", "extra": 1}, 400),
    ],
)
def test_every_error_has_one_json_shape(
    client: TestClient, method: str, path: str, body: object, code: int
) -> None:
    """Was: 404 and 405 answered ``{"detail": ...}``."""
    kwargs = {} if body is None else {"json": body}
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == code
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"] and response.json()["error"]
    if code == 405:
        assert response.headers["allow"]


def _town_without_events(directory: Path) -> Path:
    conn = configure(sqlite3.connect(directory / "empty.sqlite"))
    Town.create(conn, "empty-town", {})
    conn.commit()
    conn.close()
    return directory / "empty.sqlite"


def test_error_texts_name_the_api_fields_not_cli_flags(tmp_path: Path) -> None:
    """Was: ``--now: not an ISO-8601 time`` and ``pass --now`` from the API."""
    _town_without_events(tmp_path)
    client = TestClient(create_app(tmp_path))
    dry_run_path = "/api/towns/empty-town/debug/reconcile-dry-run"
    bad_now = client.post(dry_run_path, json={"now": "soon"})
    assert bad_now.status_code == 400
    assert bad_now.json() == {"error": "now: not an ISO-8601 time: 'soon'"}
    no_clock = client.post(dry_run_path)
    assert no_clock.status_code == 400
    assert no_clock.json()["error"].endswith('holds no timestamps; pass the "now" field')
    for response in (bad_now, no_clock):
        assert "--" not in response.json()["error"]


def test_a_town_without_events_has_no_status_rather_than_a_fault(tmp_path: Path) -> None:
    """Was: a 500 (``Invalid isoformat string: ''``)."""
    _town_without_events(tmp_path)
    client = TestClient(create_app(tmp_path))
    for path in ("/api/towns/empty-town/status", "/debug/towns/empty-town/status"):
        response = client.get(path)
        assert response.status_code == 400
        assert response.json() == {
            "error": "empty.sqlite: the database holds no timestamps: no status yet"
        }


def test_a_town_file_gone_after_start_is_a_400_naming_it(
    served: tuple[Path, Built], tmp_path: Path
) -> None:
    copy = tmp_path / "town.sqlite"
    shutil.copy(served[1].path, copy)
    client = TestClient(create_app(tmp_path))
    copy.unlink()
    response = client.post(f"/api/towns/{TOWN_ID}/debug/replay-events", json=WINDOW)
    assert response.status_code == 400 and str(copy) in response.json()["error"]


def test_a_damaged_town_in_a_worker_is_a_json_400_naming_the_column(
    served: tuple[Path, Built], tmp_path: Path
) -> None:
    copy = tmp_path / "town.sqlite"
    shutil.copy(served[1].path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("ALTER TABLE rg_ticks RENAME COLUMN record TO renamed")
    response = TestClient(create_app(tmp_path)).get(f"/api/towns/{TOWN_ID}/status")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    (message,) = response.json().values()
    assert "missing column rg_ticks.record" in message and "Traceback" not in message


class _BrokenPool:
    async def run(self, job: Job) -> bytes:
        raise RuntimeError(f"{job.route} broke\nTraceback (most recent call last): ...")

    def close(self) -> None:
        pass


def test_a_fault_in_the_server_is_a_json_500_without_traceback(
    served: tuple[Path, Built],
) -> None:
    client = TestClient(create_app(served[0], pool=_BrokenPool()))
    response = client.get(f"/api/towns/{TOWN_ID}/status")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "internal error: RuntimeError: status broke"}
    assert client.get("/api/towns").status_code == 200


def test_serve_with_its_port_in_use_exits_6_with_one_line(served: tuple[Path, Built]) -> None:
    """Was: uvicorn's log and exit 3, the code of "new violations"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", "from reportgen.cli import main; main()",
             "serve", str(served[0]), "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 6
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert result.stdout == ""


@pytest.fixture(scope="module")
def fuzz_schema(served: tuple[Path, Built]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(served[0]))


def test_schemathesis_finds_no_server_error(fuzz_schema: Any) -> None:
    """Every operation, a few generated requests each: no 5xx, responses match the schema."""
    from schemathesis.checks import not_a_server_error

    failures: list[str] = []
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) == 9  # 4 routes under /api and /debug, and /api's diagnosis
    for operation in operations:

        @settings(max_examples=6, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            # Generated ids are almost never a served town: also send each case to one.
            variants = [dict(case.path_parameters or {})]
            if case.path_parameters and "townId" in case.path_parameters:
                variants.append({**case.path_parameters, "townId": TOWN_ID})
            for params in variants:
                case.path_parameters = params
                try:
                    response = case.call()
                    case.validate_response(response, checks=[not_a_server_error])
                except Exception as exc:  # collect every failure, report them together
                    failures.append(f"{case.method} {case.formatted_path}: {exc!r}"[:300])

        run()
    assert failures == []
