"""Real text with known answers for the hybrid-search benchmark (benchmarks/hybrid.py).

Nothing is downloaded: the text is what this machine has, read without importing it.

- Docstrings: every `.py` file of the standard library (without its `site-packages`) and
  of the environment's `site-packages` is parsed with `ast`; each module, class and
  function docstring is kept (cleaned like `inspect.cleandoc`) with its file and name.
- Set A, "summary -> body": a docstring whose first line is a summary of at least 3
  words, followed by a blank line and a body of at least 20 words. The query is the
  summary; the one relevant document is the body (without the summary). Pairs that
  occur twice (vendored copies) count once; a summary with two different bodies, or a
  body under two different summaries, is ambiguous and dropped. 1,000 queries are
  sampled with a fixed seed; every body is in the corpus.
- Set B, "package summary -> description": each installed distribution's METADATA
  `Summary` finds its long `Description` (at least 50 words), in the same corpus; the
  list is read once and cached, so packages installed later do not change it.
- The speed corpus: distinct whole docstrings of at least 10 words, then distinct comment
  blocks (runs of comment lines) of the same files, then paragraphs of multi-paragraph
  docstrings, then paragraphs of text files, then
  variations, until there are as many as asked for; in a seeded random order, with seeded
  synthetic 384-d unit vectors (clustered like dataset.py's).

Documents and queries of the quality sets are embedded once with vecduck's default
function (all-MiniLM-L6-v2, its 256-token limit) and cached under `benchmarks/.cache/hybrid/`
text by text (sha1 of the text -> vector): another machine's packages give another corpus
(its size and a digest of its texts are in the report), and only its new texts are embedded.
"""

from __future__ import annotations

import ast
import email.parser
import hashlib
import json
import os
import re
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dataset import DIM, _around, cache_root

SEED = 20261201
QUERIES_A = 1_000
MIN_SUMMARY_WORDS = 3
MIN_BODY_WORDS = 20
MIN_DESCRIPTION_WORDS = 50
MIN_SPEED_WORDS = 10
EMBED_BATCH = 64


def folder() -> Path:
    path = cache_root() / "hybrid"
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress(iterable, **kwargs):
    """tqdm when it is there (it is, with the bench extra), else the iterable itself."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, file=sys.stderr, mininterval=2.0, **kwargs)


def source_roots() -> list[tuple[str, Path]]:
    paths = sysconfig.get_paths()
    return [("stdlib", Path(paths["stdlib"])), ("site-packages", Path(paths["purelib"]))]


# -- docstrings ---------------------------------------------------------------------------------
def _python_files() -> list[tuple[str, str, str]]:
    """(root label, root path, relative path) of every .py file, sorted, each real file once."""
    seen: set[str] = set()
    files = []
    for label, root in source_roots():
        for directory, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not (label == "stdlib" and d == "site-packages"))
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    real = os.path.realpath(path)
                    if real not in seen:
                        seen.add(real)
                        files.append((label, str(root), os.path.relpath(path, root)))
    return files


def _file_docstrings(item: tuple[str, str, str]) -> list[tuple[str, str, str, str]]:
    label, root, relative = item
    try:
        with open(os.path.join(root, relative), "rb") as file, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old files
            tree = ast.parse(file.read())
    except (SyntaxError, ValueError, OSError, RecursionError, MemoryError):
        return []
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}.{child.name}" if prefix else child.name
                doc = ast.get_docstring(child, clean=True)
                if doc:
                    out.append((label, relative, name, doc))
                visit(child, name)
            else:
                visit(child, prefix)

    doc = ast.get_docstring(tree, clean=True) if isinstance(tree, ast.Module) else None
    if doc:
        out.append((label, relative, "", doc))
    visit(tree, "")
    return out


def docstrings() -> pa.Table:
    """Every docstring of the standard library and site-packages (source, path, name, doc), cached."""
    path = folder() / "docstrings.parquet"
    if path.exists():
        return pq.read_table(path)
    from multiprocessing import Pool

    files = _python_files()
    rows: list[tuple[str, str, str, str]] = []
    with Pool(os.cpu_count() or 1) as pool:
        for found in progress(
            pool.imap(_file_docstrings, files, chunksize=32), total=len(files), desc="parsing .py files", unit="file"
        ):
            rows.extend(found)
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    table = pa.table(
        {
            name: pa.array(list(values), pa.string())
            for name, values in zip(["source", "path", "name", "doc"], columns, strict=True)
        }
    )
    pq.write_table(table, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    return table


def split_summary(doc: str) -> tuple[str, str] | None:
    """(summary, body) of a docstring with a one-line summary, a blank line and a body."""
    lines = doc.split("\n")
    if len(lines) < 3 or not lines[0].strip() or lines[1].strip():
        return None
    summary, body = lines[0].strip(), "\n".join(lines[2:]).strip()
    if len(summary.split()) < MIN_SUMMARY_WORDS or len(body.split()) < MIN_BODY_WORDS:
        return None
    return summary, body


def summary_pairs() -> list[tuple[str, str]]:
    """Unambiguous (summary, body) pairs, sorted."""
    pairs = set()
    for doc in docstrings().column("doc").to_pylist():
        split = split_summary(doc)
        if split:
            pairs.add(split)
    summaries: dict[str, int] = {}
    bodies: dict[str, int] = {}
    for summary, body in pairs:
        summaries[summary] = summaries.get(summary, 0) + 1
        bodies[body] = bodies.get(body, 0) + 1
    return sorted((s, b) for s, b in pairs if summaries[s] == 1 and bodies[b] == 1)


def package_pairs() -> list[tuple[str, str, str]]:
    """(distribution, Summary, Description) of the installed distributions, sorted, as
    first read (cached: installing packages later does not change the corpus); a summary
    or description shared by two distributions is dropped, and so is vecduck's own (its
    README changes with every reinstall)."""
    path = folder() / "packages.json"
    if path.exists():
        return [tuple(item) for item in json.loads(path.read_text())]  # type: ignore[misc]
    parser = email.parser.Parser()
    found = []
    for _label, root in source_roots()[1:]:
        for meta in sorted(root.glob("*.dist-info/METADATA")):
            message = parser.parsestr(meta.read_text(errors="replace"))
            name = message.get("Name") or meta.parent.name
            summary = " ".join((message.get("Summary") or "").split())
            description = (message.get_payload() or message.get("Description") or "").strip()
            words = len(summary.split()), len(description.split())
            if words[0] >= MIN_SUMMARY_WORDS and words[1] >= MIN_DESCRIPTION_WORDS and name.lower() != "vecduck":
                found.append((name, summary, description))
    count: dict[str, int] = {}
    for _, s, d in found:
        count[s] = count.get(s, 0) + 1
        count[d] = count.get(d, 0) + 1
    pairs = sorted(p for p in found if count[p[1]] == 1 and count[p[2]] == 1)
    path.with_suffix(".tmp").write_text(json.dumps(pairs))
    os.replace(path.with_suffix(".tmp"), path)
    return pairs


# -- the quality sets ---------------------------------------------------------------------------
@dataclass
class QuerySet:
    name: str
    what: str
    texts: list[str]
    relevant: np.ndarray  # row number of each query's one relevant document
    vectors: np.ndarray


@dataclass
class Quality:
    documents: list[str]
    vectors: np.ndarray
    sets: list[QuerySet]
    digest: str

    @property
    def ids(self) -> list[str]:
        return [f"d{i}" for i in range(len(self.documents))]


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def embedded(texts: list[str], what: str) -> np.ndarray:
    """The default function's vectors of `texts`, from the cache of every text embedded so
    far (`embedded.parquet`: sha1 of the text -> vector); only new texts are embedded."""
    path = folder() / "embedded.parquet"
    known: dict[str, np.ndarray] = {}
    if path.exists():
        table = pq.read_table(path)
        flat = np.asarray(table.column("vector").combine_chunks().flatten(), np.float32).reshape(-1, DIM)
        known = dict(zip(table.column("key").to_pylist(), flat, strict=True))
    keys = [_text_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if missing:
        from vecduck.utils.embedding_functions import DefaultEmbeddingFunction

        ef = DefaultEmbeddingFunction()
        # batches of texts of similar length: the encoder pads each batch to its longest
        missing.sort(key=lambda item: len(item[1]))
        for start in progress(range(0, len(missing), EMBED_BATCH), desc=f"embedding {what}", unit="batch"):
            batch = missing[start : start + EMBED_BATCH]
            for (key, _), vector in zip(batch, np.asarray(ef([t for _, t in batch]), np.float32), strict=True):
                known[key] = vector
        vectors = np.stack(list(known.values())).astype(np.float32)
        table = pa.table(
            {
                "key": pa.array(list(known), pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            }
        )
        pq.write_table(table, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    return np.stack([known[k] for k in keys]) if keys else np.empty((0, DIM), np.float32)


def quality(n_queries: int = QUERIES_A) -> Quality:
    """The quality corpus (every set-A body and set-B description) and both query sets,
    embedded with the default function (cached)."""
    pairs = summary_pairs()
    packages = package_pairs()
    documents = [body for _, body in pairs] + [description for _, _, description in packages]
    # a fixed order of the pairs: n queries are the first n of it, so a smaller run's
    # queries are a subset of the full run's
    order = np.random.default_rng(SEED).permutation(len(pairs))[:QUERIES_A]
    a_texts = [pairs[i][0] for i in order]
    b_texts = [summary for _, summary, _ in packages]
    digest = hashlib.sha256(json.dumps([documents, a_texts, b_texts]).encode()).hexdigest()[:12]
    vectors = embedded(documents, f"{len(documents):,} documents")
    queries = embedded(a_texts + b_texts, f"{len(a_texts) + len(b_texts):,} queries")
    n = min(n_queries, len(a_texts))
    sets = [
        QuerySet("A", "docstring summary -> its body", a_texts[:n], order[:n].astype(np.int64), queries[:n]),
        QuerySet(
            "B",
            "package Summary -> its Description",
            b_texts,
            np.arange(len(pairs), len(documents), dtype=np.int64),
            queries[len(a_texts) :],
        ),
    ]
    return Quality(documents, vectors, sets, digest)


# -- the speed corpus ---------------------------------------------------------------------------
def _file_comments(item: tuple[str, str, str]) -> list[str]:
    """The comment blocks of a .py file: runs of lines that hold only a comment, joined."""
    _label, root, relative = item
    try:
        text = Path(root, relative).read_text(errors="replace")
    except OSError:
        return []
    blocks, current = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("#!"):
            current.append(stripped.lstrip("#").strip())
        elif current:
            blocks.append(" ".join(" ".join(current).split()))
            current = []
    if current:
        blocks.append(" ".join(" ".join(current).split()))
    return [b for b in blocks if len(b.split()) >= MIN_SPEED_WORDS]


def comments() -> list[str]:
    """Distinct comment blocks of at least MIN_SPEED_WORDS words, in file order (cached)."""
    path = folder() / "comments.parquet"
    if not path.exists():
        seen: dict[str, None] = {}
        for item in progress(_python_files(), desc="reading comments", unit="file"):
            for block in _file_comments(item):
                seen.setdefault(block, None)
        pq.write_table(pa.table({"comment": pa.array(list(seen), pa.string())}), path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    return pq.read_table(path).column("comment").to_pylist()


def _docstring_paragraphs() -> list[str]:
    """Paragraphs of at least MIN_SPEED_WORDS words of the docstrings that have several."""
    out = []
    for doc in docstrings().column("doc").to_pylist():
        paragraphs = re.split(r"\n\s*\n", doc)
        if len(paragraphs) > 1:
            out += [p.strip() for p in paragraphs if len(p.split()) >= MIN_SPEED_WORDS]
    return out


def _text_file_paragraphs() -> list[str]:
    """Distinct paragraphs of the .md / .rst / .txt files in site-packages."""
    seen: dict[str, None] = {}
    for _label, root in source_roots()[1:]:
        for directory, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                if name.endswith((".md", ".rst", ".txt")) and name != "RECORD":
                    try:
                        text = Path(directory, name).read_text(errors="replace")
                    except OSError:
                        continue
                    for paragraph in re.split(r"\n\s*\n", text):
                        if len(paragraph.split()) >= MIN_SPEED_WORDS:
                            seen.setdefault(paragraph.strip(), None)
    return list(seen)


@dataclass
class Speed:
    documents: list[str]
    vectors_path: Path
    query_texts: list[str]
    query_vectors: np.ndarray
    origin: str  # what the documents are

    def vectors(self, start: int, stop: int) -> np.ndarray:
        return np.load(self.vectors_path, mmap_mode="r")[start:stop]


def speed(rows: int, n_queries: int) -> Speed:
    """`rows` real documents with synthetic vectors, and real query texts (set A's
    summaries) with synthetic query vectors."""
    cache = folder() / f"speed-{rows}"
    texts_path = cache / "documents.parquet"
    if not texts_path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        seen: dict[str, None] = {}
        for doc in docstrings().column("doc").to_pylist():
            if len(doc.split()) >= MIN_SPEED_WORDS:
                seen.setdefault(doc, None)
        origin = f"{min(rows, len(seen)):,} distinct docstrings of at least {MIN_SPEED_WORDS} words"
        for what, more in [
            ("comment blocks of the same files", comments),
            ("paragraphs of multi-paragraph docstrings", _docstring_paragraphs),
            ("paragraphs of site-packages' text files", _text_file_paragraphs),
        ]:
            if len(seen) >= rows:
                break
            before = len(seen)
            for text in more():
                seen.setdefault(text, None)
                if len(seen) >= rows:
                    break
            origin += f", {len(seen) - before:,} distinct {what}"
        documents = list(seen)
        rng = np.random.default_rng(SEED)
        if len(documents) > rows:  # only docstrings: a seeded sample of them
            documents = [documents[i] for i in np.sort(rng.choice(len(documents), rows, replace=False))]
        documents = [documents[i] for i in rng.permutation(len(documents))]  # sources mixed
        if len(documents) < rows:  # more asked for than exist: variations of the real ones
            real = len(documents)
            documents += [f"{documents[i % real]} (copy {i // real})" for i in range(real, rows)]
            origin += f", {rows - real:,} variations (copies with a suffix)"
        pq.write_table(pa.table({"document": documents}), texts_path.with_suffix(".tmp"))
        os.replace(texts_path.with_suffix(".tmp"), texts_path)
        (cache / "origin.txt").write_text(origin)
        out = np.lib.format.open_memmap(cache / "vectors.npy.tmp", mode="w+", dtype=np.float32, shape=(rows, DIM))
        centres = _centres()
        for start in range(0, rows, 50_000):
            stop = min(rows, start + 50_000)
            out[start:stop] = _around(centres, np.random.default_rng([SEED, start]), stop - start)
        out.flush()
        del out
        os.replace(cache / "vectors.npy.tmp", cache / "vectors.npy")
    documents = pq.read_table(texts_path).column("document").to_pylist()
    pairs = summary_pairs()
    rng = np.random.default_rng(SEED + 1)
    chosen = rng.choice(len(pairs), size=min(n_queries, len(pairs)), replace=False)
    query_texts = [pairs[i][0] for i in chosen]
    query_vectors = _around(_centres(), np.random.default_rng(SEED + 2), len(query_texts))
    return Speed(documents, cache / "vectors.npy", query_texts, query_vectors, (cache / "origin.txt").read_text())


def _centres() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((256, DIM)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


if __name__ == "__main__":  # build the caches and print what they hold
    table = docstrings()
    print(f"{table.num_rows:,} docstrings; {len(summary_pairs()):,} summary pairs; {len(package_pairs())} packages")
    q = quality()
    print(
        f"quality corpus: {len(q.documents):,} documents, digest {q.digest}; "
        + "; ".join(f"{s.name} ({s.what}): {len(s.texts)} queries" for s in q.sets)
    )
