"""The debug API: every route, every error code, the token rule, a real socket, a schema fuzz."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from test_replay_towns import TOWN_ID, Built, Script, at, build_town

from reportgen.cli import main
from reportgen.export import export
from reportgen.replay import dry_run, replay_events
from reportgen.server import MAX_BODY_BYTES, create_app, debug_status, town_status

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_http_over_uvicorn(served: tuple[Path, Built]) -> None:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(served[0]), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/towns/{TOWN_ID}/debug/replay-events", json=WINDOW
        )
        assert response.status_code == 200
        assert response.json()["fidelity"] == "exact"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def fuzz_schema(served: tuple[Path, Built]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(served[0]))


def test_schemathesis_finds_no_server_error(fuzz_schema: Any) -> None:
    """Every operation, a few generated requests each: no 5xx, responses match the schema."""
    from schemathesis.checks import not_a_server_error

    failures: list[str] = []
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) == 8
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
