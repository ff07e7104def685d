"""What an operator watches: Prometheus metrics (`GET /metrics`), one log line per request,
and JSON log records (`vecduck run --log-format json`).

Request metrics are labelled by the matched route's path template (never the raw path, so
tenant, database and collection names cannot multiply the series), the method and the
status. The store's gauges (write buffer, index lag, catalog round trip) are read at scrape
time; a catalog that cannot be reached makes `vecduck_catalog_up` 0, never a failed scrape.
Every app has its own `CollectorRegistry`, so several apps in one process do not clash.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecduck import __version__

log = logging.getLogger("vecduck.server")
request_log = logging.getLogger("vecduck.requests")

# The route label of a request no route serves (404s on made-up paths).
UNMATCHED = "unmatched"
# Request latency buckets (seconds): sub-millisecond reads up to minute-long bulk writes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

CATALOG_UP_HELP = "1 when the catalog database answered at this scrape, else 0 (and the gauges it tells are left out)"


class StoreCollector:
    """The store's gauges, read at each scrape (`store.stats()`; blocking, so scrape in a thread)."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            store = self.store()
        except Exception as exc:  # the store is closed (shutting down): nothing can be reached
            log.warning("/metrics: no store: %s: %s", type(exc).__name__, exc)
            yield GaugeMetricFamily("vecduck_catalog_up", CATALOG_UP_HELP, value=0)
            return
        try:
            storage_up = store.location.reachable() is None
        except Exception:
            storage_up = False
        yield GaugeMetricFamily(
            "vecduck_object_store_up",
            "1 when the data path (object store or folder) could be reached at this scrape, else 0",
            value=int(storage_up),
        )
        try:
            stats = store.stats()
        except Exception as exc:  # the catalog is down: say so, and leave out what it would tell
            log.warning("/metrics: the catalog cannot be reached: %s: %s", type(exc).__name__, exc)
            yield GaugeMetricFamily("vecduck_catalog_up", CATALOG_UP_HELP, value=0)
            return
        yield GaugeMetricFamily("vecduck_catalog_up", CATALOG_UP_HELP, value=1)
        yield GaugeMetricFamily(
            "vecduck_catalog_round_trip_seconds",
            "Time of one round trip to the catalog database at this scrape",
            value=float(stats["catalog_round_trip_seconds"]),
        )
        yield GaugeMetricFamily(
            "vecduck_write_buffer_writes",
            "Committed small writes waiting in the catalog's write buffer to be moved to Parquet files",
            value=float(stats["write_buffer_writes"]),
        )
        yield GaugeMetricFamily(
            "vecduck_index_lag_writes",
            "Committed writes this server's open collections have not applied yet (summed over collections)",
            value=float(stats["index_lag_writes"]),
        )
        yield GaugeMetricFamily(
            "vecduck_index_lag_seconds",
            "How long the most lagging open collection has been seen behind the committed writes",
            value=float(stats["index_lag_seconds"]),
        )


class Metrics:
    """One app's metrics: its own registry, the request counters and the store's gauges."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry()
        labels = ("route", "method", "status")
        self.requests = Counter(
            "vecduck_http_requests",
            "HTTP requests answered, by route template, method and status code",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "vecduck_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template, method and status code",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "vecduck_http_requests_in_flight", "HTTP requests being answered now", registry=self.registry
        )
        Info("vecduck_build", "The vecduck version serving", registry=self.registry).info({"version": __version__})
        self.registry.register(StoreCollector(store))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method, str(status)).observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`: Prometheus' text format (the store is asked in a thread: it blocks)."""
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route that served (or would serve) a request: the router's
    match when it ran, else a match against `routes` (a request refused before routing, by
    access control), else UNMATCHED."""
    matched = scope.get("route")
    path = getattr(matched, "path", None)
    if isinstance(path, str):
        return path
    partial = None
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED))
        if match is Match.PARTIAL and partial is None:
            partial = str(getattr(candidate, "path", UNMATCHED))
    return partial or UNMATCHED


class RequestMetrics:
    """ASGI middleware (outermost, so refusals by access control count too): counts and times
    every HTTP request by route template, and with `log_requests` logs one line per request.

    Both are recorded just before the last byte of the answer is sent, so a client that has
    its answer finds it counted."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute], log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.log_requests = log_requests
        self.state: Any = None  # the wrapped Starlette app's state, set by create_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what a request that ends without an answer is counted as
        done = False

        def record() -> None:
            nonlocal done
            if done:
                return
            done = True
            seconds = time.perf_counter() - start
            route = route_template(scope, self.routes)
            method = scope["method"]
            self.metrics.observe(route, method, status, seconds)
            if self.log_requests:
                client = scope.get("client")
                request_log.info(
                    "%s %s %s %.1fms",
                    method,
                    route,
                    status,
                    seconds * 1000,
                    extra={
                        "method": method,
                        "route": route,
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "client": f"{client[0]}:{client[1]}" if client else None,
                    },
                )

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, counted_send)
        finally:
            self.metrics.in_flight.dec()
            record()


# LogRecord attributes that are not extra fields of the call.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO-8601 UTC), level, logger, message, the call's
    extra fields, and the exception's traceback if any; for log collectors that parse lines."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def json_log_config(level: str) -> dict[str, Any]:
    """uvicorn's `log_config` for JSON logs: uvicorn's loggers and vecduck's own write JSON
    lines to stderr (uvicorn's access log is replaced by vecduck's per-request line)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "vecduck": {"handlers": ["json"], "level": level.upper(), "propagate": False},
        },
    }


__all__ = ["JsonFormatter", "Metrics", "RequestMetrics", "json_log_config", "route_template"]
