"""The web layer: Chroma's v2 routes on Starlette, token auth, body limits, error bodies.

HTTP parsing, keep-alive and graceful shutdown are uvicorn's; routing is Starlette's.
This module only turns requests into `Service` calls (run in a thread pool, since the
engine blocks) and their results or exceptions into Chroma's JSON answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from vecduck import __version__
from vecduck.api.client import PersistentClient, Settings
from vecduck.engine.location import scrub
from vecduck.errors import ChromaError
from vecduck.server import wire
from vecduck.server.access import AccessControl, admin_grants, load_grants
from vecduck.server.metrics import Metrics, RequestMetrics, json_log_config
from vecduck.server.service import HttpError, Service, not_supported

log = logging.getLogger("vecduck.server")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
PREFIX = "/api/v2"
SCOPE = PREFIX + "/tenants/{tenant}/databases/{database}"
ONE = SCOPE + "/collections/{cid}"


def json_response(value: Any, status: int = 200) -> Response:
    return Response(wire.dumps(value), status_code=status, media_type="application/json")


def error_response(status: int, name: str, message: str) -> Response:
    return json_response({"error": name, "message": message}, status)


def answer_for(exc: BaseException) -> Response:
    """Chroma's error body for an exception; only a real fault of ours is a 500."""
    if isinstance(exc, HttpError):
        return error_response(exc.status, exc.error_name, exc.message())
    if isinstance(exc, wire.SchemaError):
        return error_response(422, "ChromaError", str(exc))
    if isinstance(exc, ChromaError):
        status = exc.code()
        if status >= 500:
            log.error("internal error", exc_info=exc)
        return error_response(status, type(exc).name(), exc.message())
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)):
        # a request whose values the api layer refused with a builtin (bad shape or type)
        text = str(exc) or type(exc).__name__
        return error_response(400, "InvalidArgumentError", text)
    if shared_lake_unreachable(exc):
        log.warning("shared lake unreachable: %s", scrub(str(exc)).splitlines()[0])
        return error_response(503, "ServiceUnavailableError", f"The shared lake cannot be reached: {scrub(str(exc))}")
    log.error("internal error", exc_info=exc)
    return error_response(500, "InternalError", f"{type(exc).__name__}: {scrub(str(exc))}")


def shared_lake_unreachable(exc: BaseException) -> bool:
    """A DuckDB or psycopg error that says PostgreSQL or object storage was out of reach (one
    the engine did not already turn into ServiceUnavailableError): retryable, so 503."""
    import duckdb

    from vecduck.engine.lake import unreachable

    if any(c.__name__ == "OperationalError" and c.__module__.startswith("psycopg") for c in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and unreachable(exc) and any(w in text for w in ("postgres", "http", "s3"))


async def read_body(request: Request, limit: int) -> Any:
    """The JSON body (None when empty), refusing oversize bodies and non-JSON content types."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HttpError(400, "InvalidArgumentError", "Invalid Content-Length header")
        if int(length) > limit:
            raise HttpError(413, "ChromaError", f"Request body larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "ChromaError", f"Request body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        return None
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise HttpError(415, "ChromaError", f"Expected request with `Content-Type: application/json`, got {media}")
    return wire.parse_json(body)


Handler = Callable[[dict[str, str], Any, Any], Any]


def route(
    path: str, method: str, handler: Handler, *, body: bool = False, status: int = 200, grant: bool = False, limit: int
) -> Route:
    """A Starlette route whose endpoint reads the body, runs `handler` in a thread, answers JSON
    (`grant`: the handler also gets the request's access grant, if any)."""

    async def endpoint(request: Request) -> Response:
        try:
            payload = await read_body(request, limit) if body else None
            extra = {"grant": request.scope.get("state", {}).get("grant")} if grant else {}
            result = await run_in_threadpool(handler, dict(request.path_params), payload, request.query_params, **extra)
        except Exception as exc:
            return answer_for(exc)
        return json_response(result, status)

    return Route(path, endpoint, methods=[method])


def routes(service: Service, limit: int) -> list[Route]:
    s = service

    def fixed(answer: Callable[[], Any]) -> Handler:
        return lambda p, b, q: answer()

    def refuse(error: HttpError) -> Handler:
        def fail(p: dict[str, str], b: Any, q: Any) -> Any:
            raise error

        return fail

    def writer(mode: str) -> Handler:
        return lambda p, b, q: s.write(p["tenant"], p["database"], p["cid"], mode, b)

    gone = HttpError(410, "Unimplemented", "The v1 API is deprecated. Please use /v2 apis")
    table: list[tuple[str, str, Handler, dict[str, Any]]] = [
        (PREFIX, "GET", fixed(s.heartbeat), {}),
        (PREFIX + "/", "GET", fixed(s.heartbeat), {}),
        (PREFIX + "/heartbeat", "GET", fixed(s.heartbeat), {}),
        (PREFIX + "/version", "GET", fixed(s.version), {}),
        (PREFIX + "/pre-flight-checks", "GET", fixed(s.pre_flight), {}),
        (PREFIX + "/auth/identity", "GET", lambda p, b, q, grant=None: s.identity(grant), {"grant": True}),
        (PREFIX + "/reset", "POST", fixed(s.reset), {}),
        (PREFIX + "/tenants", "POST", lambda p, b, q: s.create_tenant(b), {"body": True}),
        (PREFIX + "/tenants/{tenant}", "GET", lambda p, b, q: s.get_tenant(p["tenant"]), {}),
        (PREFIX + "/tenants/{tenant}", "PATCH", refuse(not_supported("Updating tenants")), {}),
        (
            PREFIX + "/tenants/{tenant}/databases",
            "GET",
            lambda p, b, q: s.list_databases(p["tenant"], q.get("limit"), q.get("offset")),
            {},
        ),
        (
            PREFIX + "/tenants/{tenant}/databases",
            "POST",
            lambda p, b, q: s.create_database(p["tenant"], b),
            {"body": True},
        ),
        (SCOPE, "GET", lambda p, b, q: s.get_database(p["tenant"], p["database"]), {}),
        (SCOPE, "DELETE", lambda p, b, q: s.delete_database(p["tenant"], p["database"]), {}),
        (
            SCOPE + "/collections",
            "GET",
            lambda p, b, q: s.list_collections(p["tenant"], p["database"], q.get("limit"), q.get("offset")),
            {},
        ),
        (
            SCOPE + "/collections",
            "POST",
            lambda p, b, q: s.create_collection(p["tenant"], p["database"], b),
            {"body": True},
        ),
        (SCOPE + "/collections_count", "GET", lambda p, b, q: s.count_collections(p["tenant"], p["database"]), {}),
        (
            SCOPE + "/collections/by-id/{cid}",
            "GET",
            lambda p, b, q: s.get_collection_by_id(p["tenant"], p["database"], p["cid"]),
            {},
        ),
        (ONE, "GET", lambda p, b, q: s.get_collection(p["tenant"], p["database"], p["cid"]), {}),
        (ONE, "DELETE", lambda p, b, q: s.delete_collection(p["tenant"], p["database"], p["cid"]), {}),
        (
            ONE,
            "PUT",
            lambda p, b, q: s.modify_collection(p["tenant"], p["database"], p["cid"], b),
            {"body": True},
        ),
        (ONE + "/add", "POST", writer("add"), {"body": True, "status": 201}),
        (ONE + "/upsert", "POST", writer("upsert"), {"body": True}),
        (ONE + "/update", "POST", writer("update"), {"body": True}),
        (ONE + "/get", "POST", lambda p, b, q: s.get(p["tenant"], p["database"], p["cid"], b), {"body": True}),
        (ONE + "/query", "POST", lambda p, b, q: s.query(p["tenant"], p["database"], p["cid"], b), {"body": True}),
        (ONE + "/delete", "POST", lambda p, b, q: s.delete(p["tenant"], p["database"], p["cid"], b), {"body": True}),
        (
            ONE + "/count",
            "GET",
            lambda p, b, q: s.count(p["tenant"], p["database"], p["cid"], q.get("read_level")),
            {},
        ),
        (ONE + "/search", "POST", lambda p, b, q: s.search(p["tenant"], p["database"], p["cid"], b), {"body": True}),
        (ONE + "/fork", "POST", lambda p, b, q: s.fork(p["tenant"], p["database"], p["cid"], b), {"body": True}),
        (ONE + "/fork_count", "GET", lambda p, b, q: s.fork_count(p["tenant"], p["database"], p["cid"]), {}),
        (
            ONE + "/indexing_status",
            "GET",
            lambda p, b, q: s.indexing_status(p["tenant"], p["database"], p["cid"]),
            {},
        ),
    ]
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        table.append((ONE + "/functions/{rest:path}", method, refuse(not_supported("Collection functions")), {}))
        table.append(("/api/v1", method, refuse(gone), {}))
        table.append(("/api/v1/{rest:path}", method, refuse(gone), {}))
    served = [route(path, method, handler, limit=limit, **options) for path, method, handler, options in table]

    async def healthcheck(request: Request) -> Response:
        """200 when the catalog and the object store can be reached, else 503 saying which not."""
        body = await run_in_threadpool(s.healthcheck)
        healthy = body["catalog"]["reachable"] and body["object_store"]["reachable"]
        return json_response(body, 200 if healthy else 503)

    # Chroma's route, and the plain one load balancers and deployment docs use
    served += [Route(PREFIX + "/healthcheck", healthcheck, methods=["GET"])]
    served += [Route("/healthcheck", healthcheck, methods=["GET"])]
    return served


def create_app(
    path: str | os.PathLike[str],
    *,
    data_path: str | os.PathLike[str] | None = None,
    auth_token: str | None = None,
    auth_file: str | None = None,
    allow_reset: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_requests: bool = False,
) -> ASGIApp:
    """The ASGI app serving the folder `path` (or the shared lake of catalog `path` and data
    `data_path`); the store is released (flushed) at shutdown.

    `auth_token` (one token that may do everything) and `auth_file` (tokens with grants per
    tenant, `vecduck.server.access`) put every request behind a token, `/metrics` and
    `/healthcheck` included (like heartbeat). Every request is counted for `/metrics`;
    `log_requests` also logs one line per request (logger `vecduck.requests`)."""
    grants = load_grants(auth_file) if auth_file else {}
    if auth_token:
        grants.update(admin_grants(auth_token))
    client = PersistentClient(path, settings=Settings(allow_reset=allow_reset), data_path=data_path)
    folder = client._store_for_use().location.describe()
    service = Service(client, allow_reset=allow_reset, max_body_bytes=max_body_bytes)
    metrics = Metrics(client._store_for_use)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info(
            "vecduck %s serving %s (auth %s, reset %s)",
            __version__,
            folder,
            f"{len(grants)} token(s)" if grants else "off",
            "allowed" if allow_reset else "disabled",
        )
        try:
            yield
        finally:
            await run_in_threadpool(client.close)
            log.info("vecduck stopped; data flushed to %s", folder)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(404, "NotFoundError", f"No route {request.method} {request.url.path}")
        if exc.status_code == 405:
            return error_response(405, "ChromaError", f"Method {request.method} not allowed on {request.url.path}")
        return error_response(exc.status_code, "ChromaError", str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return answer_for(exc)

    app = Starlette(
        routes=[*routes(service, max_body_bytes), Route("/metrics", metrics.endpoint, methods=["GET"])],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.router.redirect_slashes = False  # a redirect would reach clients as an error without a body
    app.state.service = service
    app.state.metrics = metrics
    guarded: ASGIApp = AccessControl(app, grants) if grants else app
    outer = RequestMetrics(guarded, metrics, app.router.routes, log_requests)
    outer.state = app.state  # `create_app(...).state.service` keeps working
    return outer


def serve(
    path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    data_path: str | os.PathLike[str] | None = None,
    log_format: str = "text",
    auth_token: str | None = None,
    auth_file: str | None = None,
    allow_reset: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
) -> None:
    """Run the server until Ctrl-C or SIGTERM; in-flight requests finish, then the folder is flushed.

    `log_format` "json": every log line is a JSON object (`metrics.JsonFormatter`), one per
    request too; "text": uvicorn's usual lines, requests only at log level debug."""
    import uvicorn

    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json', got {log_format!r}")
    _Server = _uvicorn_server_class()  # noqa: N806 - a class
    app = create_app(
        path,
        data_path=data_path,
        auth_token=auth_token,
        auth_file=auth_file,
        allow_reset=allow_reset,
        max_body_bytes=max_body_bytes,
        log_requests=log_format == "json",
    )
    # JSON: every logger writes JSON lines, and vecduck's per-request line replaces uvicorn's
    # access log; text: uvicorn's own logging, its access log at debug level (as before)
    logging_options: dict[str, Any] = (
        {"log_config": json_log_config(log_level), "access_log": False}
        if log_format == "json"
        else {"access_log": log_level == "debug"}
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http="h11",  # httptools answers extension methods (BREW) with a plain-text 400 itself
        ws="none",
        lifespan="on",
        server_header=False,
        **logging_options,
    )
    _Server(config).run()


def _uvicorn_server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a stop asked for by Ctrl-C/SIGTERM is a clean exit (status 0).

        uvicorn re-raises the signal after its graceful shutdown, which turns Ctrl-C into a
        KeyboardInterrupt traceback and SIGTERM into exit status -15.
        """

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    return Server
