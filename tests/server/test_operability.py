"""Operating `vecduck run`: /metrics, /healthcheck and JSON logs, on real server processes.

The request counts /metrics reports are checked against the requests each test sent itself
(through httpx, and through chromadb's official client, whose requests are recorded by an
httpx event hook), keyed by the route template the test used to build each path. The store
gauges are checked against writes the test makes, including writes of a second process
(an embedded `vecduck.PersistentClient` on the same folder) that the server has not seen.
"""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest
from conftest import Server
from prometheus_client.parser import text_string_to_metric_families

import vecduck

TOKEN = "operability-token-0001"
SCOPE = "/api/v2/tenants/{tenant}/databases/{database}"
ONE = SCOPE + "/collections/{cid}"
# A request's key in /metrics: (route template, method, status code)
Key = tuple[str, str, str]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own (text logs, no token), so that no other test's requests are counted."""
    running = Server(tmp_path_factory.mktemp("operability") / "data").start()
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with JSON logs and a token."""
    folder = tmp_path_factory.mktemp("operability-json") / "data"
    running = Server(folder, "--log-format", "json", "--auth-token", TOKEN, token=TOKEN).start()
    yield running
    assert running.stop() == 0, running.log()


class Scrape:
    """One parsed /metrics answer."""

    def __init__(self, text: str) -> None:
        self.requests: dict[Key, float] = {}
        self.histogram_counts: dict[Key, float] = {}
        self.histogram_infinite: dict[Key, float] = {}
        self.gauges: dict[str, float] = {}
        self.help: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.help[family.name] = family.documentation
            for sample in family.samples:
                labels = sample.labels
                key = (labels.get("route", ""), labels.get("method", ""), labels.get("status", ""))
                if sample.name == "vecduck_http_requests_total":
                    self.requests[key] = sample.value
                elif sample.name == "vecduck_http_request_duration_seconds_count":
                    self.histogram_counts[key] = sample.value
                elif sample.name == "vecduck_http_request_duration_seconds_bucket" and labels["le"] == "+Inf":
                    self.histogram_infinite[key] = sample.value
                elif family.type == "gauge" and not labels:
                    self.gauges[sample.name] = sample.value


def scrape(server: Server, sent: Counter[Key] | None = None) -> Scrape:
    """GET /metrics (counted in `sent`: the next scrape reports it)."""
    answer = httpx.get(server.url + "/metrics", headers=server.headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    if sent is not None:
        sent[("/metrics", "GET", "200")] += 1
    return Scrape(answer.text)


def difference(after: dict[Key, float], before: dict[Key, float]) -> dict[Key, float]:
    keys = set(after) | set(before)
    return {key: after.get(key, 0) - before.get(key, 0) for key in keys if after.get(key, 0) != before.get(key, 0)}


def chroma_client(server: Server) -> Any:
    return chromadb.HttpClient(
        host="127.0.0.1", port=server.port, settings=chromadb.Settings(anonymized_telemetry=False)
    )


def record_requests(client: Any, into: list[tuple[str, str, int]]) -> None:
    """Record every later request of a chromadb client: (method, path, status)."""

    def hook(response: httpx.Response) -> None:
        into.append((response.request.method, response.request.url.path, response.status_code))

    session = client._server._session
    session.event_hooks = {"request": [], "response": [hook]}


def template_of(path: str, names: dict[str, str]) -> str:
    """The route template a path was built from: the segments the test chose become their placeholders."""
    return "/".join(names.get(segment, segment) for segment in path.split("/"))


def test_metrics_count_each_request_by_route_template(plain: Server) -> None:
    chroma = chroma_client(plain)  # before the baseline: its start-up requests are not the test's
    sent: Counter[Key] = Counter()
    before = scrape(plain, sent)

    def call(method: str, template: str, json_body: Any = None, route: str = "", **values: str) -> httpx.Response:
        answer = httpx.request(method, plain.url + template.format(**values), json=json_body, timeout=30)
        sent[(route or template, method, str(answer.status_code))] += 1
        return answer

    for _ in range(3):
        assert call("GET", "/api/v2/heartbeat").status_code == 200
    assert call("GET", "/api/v2/version").status_code == 200
    assert call("GET", "/healthcheck").status_code == 200
    assert call("GET", "/api/v2/healthcheck").status_code == 200
    assert call("DELETE", "/api/v2/heartbeat").status_code == 405
    assert call("GET", "/no/such/route", route="unmatched").status_code == 404
    assert call("GET", "/api/v2/tenants/missing-one/databases/d/no-such-thing", route="unmatched").status_code == 404
    # many tenants, databases and collections: one series per route, not one per name
    for tenant in ("tenant-one", "tenant-two", "tenant-three"):
        assert call("GET", SCOPE, tenant=tenant, database="db-x").status_code == 404
    assert call("POST", "/api/v2/tenants", {"name": "ops-tenant"}).status_code == 200
    assert call("POST", SCOPE[: -len("/{database}")], {"name": "ops-db"}, tenant="ops-tenant").status_code == 200
    created = call("POST", SCOPE + "/collections", {"name": "ops-http"}, tenant="ops-tenant", database="ops-db")
    assert created.status_code == 200
    cid = created.json()["id"]
    where = {"tenant": "ops-tenant", "database": "ops-db", "cid": cid}
    for i in range(2):
        body = {"ids": [f"h{i}"], "embeddings": [[1.0, float(i)]]}
        assert call("POST", ONE + "/add", body, **where).status_code == 201
    assert call("POST", ONE + "/query", {"query_embeddings": [[1.0, 0.0]], "n_results": 1}, **where).status_code == 200
    assert call("GET", ONE + "/count", **where).status_code == 200
    assert call("POST", ONE + "/add", {"ids": ["bad"], "embeddings": [[1.0]]}, **where).status_code == 400

    # chromadb's client: its requests as it sent them, mapped back to templates by the names used
    made: list[tuple[str, str, int]] = []
    record_requests(chroma, made)
    collection = chroma.get_or_create_collection("ops-chroma", embedding_function=None)
    collection.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    collection.upsert(ids=["a"], embeddings=[[0.5, 0.5]])
    assert collection.query(query_embeddings=[[1.0, 0.0]], n_results=1)["ids"] == [["a"]]
    assert collection.count() == 2
    assert chroma.get_collection("ops-chroma", embedding_function=None).id == collection.id
    names = {
        "default_tenant": "{tenant}",
        "default_database": "{database}",
        str(collection.id): "{cid}",
        "ops-chroma": "{cid}",  # get_collection by name: the same route as by id
    }
    assert len(made) >= 6
    for method, path, status in made:
        sent[(template_of(path, names), method, str(status))] += 1

    after = scrape(plain)
    counted = difference(after.requests, before.requests)
    assert counted == {key: float(n) for key, n in sent.items()}
    # the histograms saw the same requests, each under one bucket at most +Inf
    assert difference(after.histogram_counts, before.histogram_counts) == counted
    assert after.histogram_infinite == after.histogram_counts
    # no raw name reached a label
    routes = {route for route, _method, _status in after.requests}
    for name in ("tenant-one", "tenant-two", "ops-tenant", "ops-db", "ops-http", "ops-chroma", cid, str(collection.id)):
        assert not any(name in route for route in routes), name
    assert "unmatched" in routes
    assert ONE + "/query" in routes


def test_store_gauges_follow_the_write_buffer_and_index_lag(plain: Server) -> None:
    chroma = chroma_client(plain)
    collection = chroma.get_or_create_collection("ops-gauges", embedding_function=None)
    first = scrape(plain)
    assert first.gauges["vecduck_catalog_up"] == 1
    assert first.gauges["vecduck_object_store_up"] == 1
    assert 0 < first.gauges["vecduck_catalog_round_trip_seconds"] < 5
    assert first.gauges["vecduck_http_requests_in_flight"] == 1  # the scrape itself
    for name in ("vecduck_write_buffer_writes", "vecduck_index_lag_writes", "vecduck_index_lag_seconds"):
        assert first.help.get(name)

    # three small writes wait in the write buffer
    for i in range(3):
        collection.add(ids=[f"g{i}"], embeddings=[[1.0, float(i)]])
    buffered = scrape(plain)
    assert buffered.gauges["vecduck_write_buffer_writes"] == first.gauges["vecduck_write_buffer_writes"] + 3
    assert buffered.gauges["vecduck_index_lag_writes"] == 0  # the server applied its own writes

    # another process writes twice, then closes, which moves the whole buffer to Parquet files
    other = vecduck.PersistentClient(str(plain.path))
    try:
        mine = other.get_collection("ops-gauges")
        mine.add(ids=["o1"], embeddings=[[0.0, 1.0]])
        mine.add(ids=["o2"], embeddings=[[0.0, 2.0]])
    finally:
        other.close()
    behind = scrape(plain)
    assert behind.gauges["vecduck_write_buffer_writes"] == 0
    assert behind.gauges["vecduck_index_lag_writes"] == 2  # the server has not seen them yet
    pause = 0.3
    time.sleep(pause)
    still = scrape(plain)
    assert still.gauges["vecduck_index_lag_writes"] == 2
    assert still.gauges["vecduck_index_lag_seconds"] >= pause

    # the collection's next call catches its read model up
    assert collection.count() == 5
    caught_up = scrape(plain)
    assert caught_up.gauges["vecduck_index_lag_writes"] == 0
    assert caught_up.gauges["vecduck_index_lag_seconds"] == 0


def test_healthcheck_says_catalog_and_object_store_are_reachable(plain: Server) -> None:
    for path in ("/healthcheck", "/api/v2/healthcheck"):
        answer = httpx.get(plain.url + path, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "is_executor_ready": True,  # chromadb's keys, kept
            "is_log_client_ready": True,
            "catalog": {"reachable": True, "error": None},
            "object_store": {"reachable": True, "error": None},
        }


def test_a_data_folder_that_went_away_is_a_503_and_a_0_gauge(tmp_path: Path) -> None:
    """The folder moved away under a running server (an unmounted volume), then back."""
    server = Server(tmp_path / "data").start()
    moved = tmp_path / "moved"
    try:
        assert httpx.get(server.url + "/healthcheck", timeout=30).status_code == 200
        server.path.rename(moved)
        try:
            for path in ("/healthcheck", "/api/v2/healthcheck"):
                answer = httpx.get(server.url + path, timeout=30)
                assert answer.status_code == 503, answer.text
                body = answer.json()
                assert body["object_store"]["reachable"] is False and body["object_store"]["error"]
                assert body["catalog"] == {"reachable": True, "error": None}
                assert body["is_executor_ready"] is False and body["is_log_client_ready"] is True
            gauges = scrape(server).gauges
            assert gauges["vecduck_object_store_up"] == 0 and gauges["vecduck_catalog_up"] == 1
        finally:
            moved.rename(server.path)
        assert httpx.get(server.url + "/healthcheck", timeout=30).status_code == 200
        assert scrape(server).gauges["vecduck_object_store_up"] == 1
    finally:
        assert server.stop() == 0, server.log()


def test_text_logs_have_no_line_per_request(plain: Server) -> None:
    httpx.get(plain.url + "/api/v2/heartbeat", timeout=30)
    text = plain.log()
    assert "INFO:" in text and "vecduck" in text
    assert "/api/v2/heartbeat" not in text and "vecduck.requests" not in text
    assert not any(line.lstrip().startswith("{") for line in text.splitlines())


def test_metrics_and_healthcheck_need_a_token_like_heartbeat(json_server: Server) -> None:
    for path in ("/metrics", "/healthcheck", "/api/v2/healthcheck", "/api/v2/heartbeat"):
        assert httpx.get(json_server.url + path, timeout=30).status_code == 401
        assert httpx.get(json_server.url + path, headers=json_server.headers(), timeout=30).status_code == 200
    # a refusal before routing is still counted under its route's template
    httpx.get(json_server.url + "/api/v2/tenants/someone/databases/x", timeout=30)
    counted = scrape(json_server).requests
    assert counted[(SCOPE, "GET", "401")] == 1
    assert counted[("/metrics", "GET", "401")] == 1


def test_json_logs_are_one_object_per_line_with_one_per_request(json_server: Server) -> None:
    start = len(json_server.log())
    sent: list[tuple[str, str, int]] = []

    def call(method: str, template: str, token: bool = True, **values: str) -> None:
        headers = json_server.headers() if token else {}
        answer = httpx.request(method, json_server.url + template.format(**values), headers=headers, timeout=30)
        sent.append((method, template, answer.status_code))

    call("GET", "/api/v2/heartbeat")
    call("GET", "/healthcheck")
    call("GET", SCOPE, tenant="default_tenant", database="default_database")
    call("GET", SCOPE + "/collections/{cid}", tenant="default_tenant", database="default_database", cid="nothing")
    call("GET", "/not/a/route")
    call("GET", "/metrics", token=False)
    call("GET", "/metrics")
    assert [status for _m, _t, status in sent] == [200, 200, 200, 404, 404, 401, 200]
    expected = [(m, "unmatched" if t == "/not/a/route" else t, s) for m, t, s in sent]

    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in json_server.log()[start:].splitlines() if line.strip()]
        requests = [line for line in lines if line["logger"] == "vecduck.requests"]
        if len(requests) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(r["method"], r["route"], r["status"]) for r in requests] == expected
    for record in requests:
        assert record["level"] == "INFO"
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
        assert record["client"].startswith("127.0.0.1:")
        assert record["path"].startswith("/")
        moment = datetime.datetime.fromisoformat(record["time"])
        assert moment.utcoffset() == datetime.timedelta(0)
        assert abs(time.time() - moment.timestamp()) < 600

    # the whole log, uvicorn's lines and the shutdown included, is JSON, one object per line
    assert json_server.stop() == 0
    records = [json.loads(line) for line in json_server.log().splitlines() if line.strip()]
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "vecduck.server", "vecduck.requests"} <= loggers
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    messages = " ".join(record["message"] for record in records)
    assert "Uvicorn running on" in messages and "vecduck stopped" in messages
    assert not any("color_message" in record for record in records)
