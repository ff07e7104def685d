"""vecduck's HTTP server: Chroma's REST API (v2) over a persistent folder.

Start it with ``vecduck run --path DIR``; chromadb's official Python and JavaScript
clients, and ``vecduck.HttpClient``, talk to it unchanged. See ``docs/server.md``.
"""

from __future__ import annotations

from vecduck.server.app import DEFAULT_MAX_BODY_BYTES, create_app, serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "serve"]
