"""The ``vecduck`` command: ``vecduck run`` serves a folder over Chroma's HTTP API."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence

from vecduck import __version__


def _size(text: str) -> int:
    """A byte count, with an optional K/M/G suffix (binary units)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = int(float(number) * factor)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def _port(text: str) -> int:
    """A TCP port number, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def _days(text: str) -> float:
    """A non-negative, finite number of days."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"days must be a finite number >= 0, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    from vecduck.server import DEFAULT_MAX_BODY_BYTES

    top = argparse.ArgumentParser(prog="vecduck", description="vecduck: a Chroma-compatible embedding database")
    top.add_argument("--version", action="version", version=f"vecduck {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="serve a data folder over Chroma's HTTP API",
        description="Serve a persistent folder over Chroma's HTTP API (v2). Stop with Ctrl-C or SIGTERM.",
    )
    run.add_argument(
        "--path",
        default=os.environ.get("VECDUCK_PATH") or "./chroma",
        help="data folder (created if missing; default ./chroma), or a shared lake's PostgreSQL catalog URL",
    )
    run.add_argument(
        "--data-path",
        default=os.environ.get("VECDUCK_DATA_PATH") or None,
        help="a shared lake's data: s3://bucket/prefix/ or a shared folder (with a PostgreSQL --path)",
    )
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    run.add_argument(
        "--auth-token",
        default=os.environ.get("VECDUCK_AUTH_TOKEN") or None,
        help="require this token (Authorization: Bearer / X-Chroma-Token); default $VECDUCK_AUTH_TOKEN",
    )
    run.add_argument(
        "--auth-file",
        default=os.environ.get("VECDUCK_AUTH_FILE") or None,
        help="TOML file of tokens and the tenants each may read or write (see docs/server.md)",
    )
    run.add_argument(
        "--allow-reset",
        action="store_true",
        default=os.environ.get("VECDUCK_ALLOW_RESET", "").lower() in ("1", "true", "yes"),
        help="allow POST /reset to delete every collection (default: refused with 403)",
    )
    run.add_argument(
        "--max-body-bytes",
        type=_size,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request body accepted, e.g. 64M (default 64 MiB); larger ones get 413",
    )
    run.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    run.add_argument(
        "--log-format",
        default=os.environ.get("VECDUCK_LOG_FORMAT") or "text",
        choices=["text", "json"],
        help="json: one JSON object per line, and one line per request (default text)",
    )
    compact = commands.add_parser("compact", help="merge small Parquet files, expire old snapshots, free disk space")
    compact.add_argument("path", help="a persistent data folder, or a shared lake's PostgreSQL catalog URL")
    compact.add_argument(
        "--data-path",
        default=os.environ.get("VECDUCK_DATA_PATH") or None,
        help="a shared lake's data path (s3://bucket/prefix/ or a folder)",
    )
    compact.add_argument("--retention-days", type=_days, default=7.0, help="keep snapshots this recent (default 7)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vecduck`` console script."""
    args = parser().parse_args(argv)
    if args.command == "compact":
        from vecduck.sql import compact_command

        return compact_command(args.path, args.retention_days, args.data_path)
    if args.command == "run":
        from vecduck.server import serve
        from vecduck.server.access import AuthFileError, load_grants
        from vecduck.server.metrics import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        json_logs = args.log_format == "json"
        handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(levelname)s:     %(message)s"))
        logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
        logging.captureWarnings(json_logs)  # warnings become JSON records too, not raw stderr lines
        if args.auth_file:
            try:
                load_grants(args.auth_file)  # refuse a bad file before anything starts
            except AuthFileError as exc:
                print(f"vecduck run: {exc}", file=sys.stderr)
                return 2
        serve(
            args.path,
            args.host,
            args.port,
            data_path=args.data_path,
            log_format=args.log_format,
            auth_token=args.auth_token,
            auth_file=args.auth_file,
            allow_reset=args.allow_reset,
            max_body_bytes=args.max_body_bytes,
            log_level=args.log_level,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
