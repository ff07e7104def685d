"""Run NumPy's OpenBLAS single-threaded while our own threads share the cores.

Embedding many texts is fastest with one Python worker per core, each running whole
batches (matrix products *and* the element-wise work NumPy does on one core), while
BLAS stays on one thread per call. NumPy's wheels bundle OpenBLAS, whose thread count
can be set at run time through its C API; where that library (or the symbol) is not
found the caller simply runs one batch at a time with BLAS's own threading.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["blas_control_available", "cpu_count", "single_threaded_blas"]

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")

_lock = threading.Lock()
_users = 0
_saved: int | None = None
_api: tuple[object, object] | bool | None = False  # False: not looked up yet


def _find_api() -> tuple[object, object] | None:
    """The (setter, getter) pair of the OpenBLAS NumPy was built with, or None."""
    folder = os.path.dirname(np.__file__)
    candidates = glob.glob(os.path.join(folder + ".libs", "*openblas*"))  # Linux wheels
    candidates += glob.glob(os.path.join(folder, ".dylibs", "*openblas*"))  # macOS wheels
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


def _get_api() -> tuple[object, object] | None:
    global _api
    if _api is False:
        try:
            _api = _find_api()
        except Exception:  # any surprise here only costs speed, never correctness
            _api = None
    return _api  # type: ignore[return-value]


def blas_control_available() -> bool:
    """Whether ``single_threaded_blas`` can actually change BLAS's thread count."""
    return _get_api() is not None


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Limit OpenBLAS to one thread inside the block; yields whether that took effect.

    Nested and concurrent uses are counted, and the previous thread count comes back
    when the last one leaves.
    """
    global _users, _saved
    api = _get_api()
    if api is None:
        yield False
        return
    setter, getter = api
    with _lock:
        if _users == 0:
            _saved = int(getter())  # type: ignore[operator]
            setter(1)  # type: ignore[operator]
        _users += 1
    try:
        yield True
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                setter(_saved)  # type: ignore[operator]
                _saved = None
