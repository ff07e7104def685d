"""Keep pyarrow from importing pandas before anyone hands it a pandas object.

pyarrow asks "is pandas installed?" in nearly every ``pa.array`` call, and answering it
imports pandas: ~350 ms, most of a fresh process's first write. Nothing in vecduck needs
pandas until a DataFrame arrives, and a DataFrame cannot arrive before pandas is imported.

So, when pandas is not imported yet, :func:`defer_pandas_import` lets pyarrow's lazy check
conclude "not imported" (its state is per process), and watches the import system: the
moment anyone imports pandas, pyarrow is told to look again, so its pandas integration
works from then on exactly as before. pyarrow's explicit pandas paths (``to_pandas``,
``from_pandas``) import pandas themselves in any case.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_installed = False
_lock = threading.Lock()


def _reconnect_pyarrow() -> None:
    """pyarrow's pandas check, made again now that pandas is imported (best effort)."""
    try:
        import pyarrow as pa

        _ = pa.lib._pandas_api.pd  # a checking access: imports (finds) pandas and records it
    except Exception:  # a pyarrow without this private hook: it checks for itself, as it always did
        pass


class _PandasWatch(importlib.abc.MetaPathFinder):
    """Finds pandas where the path finder would, with a loader that tells pyarrow once the
    module is executed (a mere ``find_spec`` probe changes nothing)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "pandas":
            return None
        spec = None
        for finder in sys.meta_path:  # whichever finder would have found it without us
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ThenReconnect(spec.loader)
        return spec


class _ThenReconnect(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _uninstall()
        _reconnect_pyarrow()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


_watch = _PandasWatch()


def _uninstall() -> None:
    global _installed
    with _lock:
        if _watch in sys.meta_path:
            sys.meta_path.remove(_watch)
        _installed = False


def defer_pandas_import() -> None:
    """Spare this process pandas' import until pandas is really used (see the module)."""
    global _installed
    with _lock:
        if _installed or "pandas" in sys.modules:
            return
        try:
            import pyarrow as pa

            shim = pa.lib._pandas_api
        except Exception:
            return
        sys.meta_path.insert(0, _watch)
        _installed = True
        # pyarrow's first, non-raising check records "no pandas" while the import fails fast
        blocked = sys.modules.setdefault("pandas", None) is None
        try:
            _ = shim.have_pandas  # the check itself is the point
        except Exception:
            pass
        finally:
            if blocked and sys.modules.get("pandas", ...) is None:
                del sys.modules["pandas"]
