"""Progress bars for long-running work (embedding many texts, downloading the model).

A bar is shown only when the work is large enough to be worth watching, so small calls
stay quiet. Silence every bar with the environment variable ``VECDUCK_PROGRESS=0`` or
with ``vecduck.progress.set_enabled(False)``. Bars come from ``tqdm.auto`` so they
render as widgets in notebooks and as text in terminals.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["MIN_TOTAL", "is_enabled", "progress", "set_enabled"]

T = TypeVar("T")

#: Work at or below this many units shows no bar unless a caller asks for one.
MIN_TOTAL = 256

_override: bool | None = None


def set_enabled(enabled: bool | None) -> None:
    """Turn every progress bar on or off for this process; ``None`` defers to the env var."""
    global _override
    _override = enabled


def is_enabled() -> bool:
    """Whether bars may be shown: ``set_enabled`` wins, then ``VECDUCK_PROGRESS`` (default on)."""
    if _override is not None:
        return _override
    value = os.environ.get("VECDUCK_PROGRESS", "").strip().lower()
    return value not in {"0", "false", "no", "off"}


class _NullBar(Generic[T]):
    """Stands in for a tqdm bar when none is shown: same calls, no output."""

    def __init__(self, iterable: Iterable[T] | None) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[T]:
        return iter(self._iterable if self._iterable is not None else ())

    def __enter__(self) -> _NullBar[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None

    def close(self) -> None:
        return None


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    unit: str = "it",
    min_total: int = MIN_TOTAL,
    **tqdm_kwargs: Any,
) -> Any:
    """Wrap ``iterable`` (or a manual ``update()`` counter) in a bar when it is worth showing.

    ``enabled=None`` shows the bar only when ``total`` is known and above ``min_total``;
    ``True`` forces it and ``False`` hides it. The global switch (``set_enabled`` /
    ``VECDUCK_PROGRESS=0``) silences bars in every case. Returns a tqdm bar or a silent
    stand-in with the same interface (iteration, ``update``, ``close``, ``with``).
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    show = (enabled if enabled is not None else total is not None and total > min_total) and is_enabled()
    if not show:
        return _NullBar(iterable)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but a missing bar must never break work
        return _NullBar(iterable)
    return tqdm(iterable, total=total, desc=desc, unit=unit, **tqdm_kwargs)
