"""chromadb-compatible BM25 sparse embeddings (``"chroma_bm25"``), without chromadb.

Same name, arguments, config and output as chromadb 1.5's ``ChromaBm25EmbeddingFunction``:
the text is split on non-word characters and lowercased, stopwords and over-long tokens
are dropped, the rest are Snowball-stemmed (English) and hashed with MurmurHash3
(``abs(mmh3.hash(stem, 0))``); each distinct hash gets the BM25 term-frequency weight
``tf * (k + 1) / (tf + k * (1 - b + b * doc_len / avg_doc_length))``. It uses the same
``snowballstemmer`` and ``mmh3`` packages as chromadb, so indices and values are equal,
bit for bit. It is faster because the stemmer is built once (chromadb builds one per text)
and each distinct token is stemmed and hashed only once; :meth:`encode_batch` gives a
whole batch as CSR arrays for the engine.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, pairwise
from typing import Any

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecduck.api.types import SparseVector
from vecduck.engine.arrays import as_numpy

__all__ = ["DEFAULT_CHROMA_BM25_STOPWORDS", "ChromaBm25EmbeddingFunction"]

NAME = "chroma_bm25"

DEFAULT_K = 1.2
DEFAULT_B = 0.75
DEFAULT_AVG_DOC_LENGTH = 256.0
DEFAULT_TOKEN_MAX_LENGTH = 40

# NLTK's English stopword list, which chromadb uses by default (179 words, sorted).
# fmt: off
DEFAULT_CHROMA_BM25_STOPWORDS: tuple[str, ...] = (
    "a", "about", "above", "after", "again", "against", "ain", "all", "am", "an", "and", "any", "are", "aren",
    "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "couldn", "couldn't", "d", "did", "didn", "didn't", "do", "does", "doesn", "doesn't", "doing", "don", "don't",
    "down", "during", "each", "few", "for", "from", "further", "had", "hadn", "hadn't", "has", "hasn", "hasn't",
    "have", "haven", "haven't", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i",
    "if", "in", "into", "is", "isn", "isn't", "it", "it's", "its", "itself", "just", "ll", "m", "ma", "me", "mightn",
    "mightn't", "more", "most", "mustn", "mustn't", "my", "myself", "needn", "needn't", "no", "nor", "not", "now",
    "o", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "re",
    "s", "same", "shan", "shan't", "she", "she's", "should", "should've", "shouldn", "shouldn't", "so", "some",
    "such", "t", "than", "that", "that'll", "the", "their", "theirs", "them", "themselves", "then", "there", "these",
    "they", "this", "those", "through", "to", "too", "under", "until", "up", "ve", "very", "was", "wasn", "wasn't",
    "we", "were", "weren", "weren't", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "won", "won't", "wouldn", "wouldn't", "y", "you", "you'd", "you'll", "you're", "you've", "your", "yours",
    "yourself", "yourselves",
)
# fmt: on

_CONFIG_KEYS = frozenset({"k", "b", "avg_doc_length", "token_max_length", "stopwords", "include_tokens"})
_NUMBER_KEYS = ("k", "b", "avg_doc_length", "token_max_length")

# Runs of characters that are neither word characters nor whitespace become a space.
_NON_WORD = re.compile(r"[^\w\s]+")

# From this many texts on, a call encodes them as one vectorised batch.
_BATCH_MIN = 16

# Distinct tokens remembered (stems process-wide, hashes per function) before a cache restarts.
_CACHE_LIMIT = 500_000

# Snowball stemmers keep per-word state in the object, so the shared one is used under a lock;
# only tokens not seen before reach it.
_stemmer: Any = None
_stem_lock = threading.Lock()
_stems: dict[str, str] = {}


def _stem(token: str) -> str:
    """The stripped English Snowball stem of a lowercased token (cached)."""
    stem = _stems.get(token)
    return stem if stem is not None else _stem_many([token])[0]


def _stem_many(tokens: list[str]) -> list[str]:
    """The stripped English Snowball stems of lowercased tokens, those not cached yet
    stemmed in one call (in C when PyStemmer is installed, which snowballstemmer uses)."""
    global _stemmer
    with _stem_lock:
        missing = list(set(tokens).difference(_stems))
        if missing:
            if _stemmer is None:
                import snowballstemmer  # imported at first use: it loads ~40 languages

                _stemmer = snowballstemmer.stemmer("english")
            if len(_stems) + len(missing) > _CACHE_LIMIT:
                _stems.clear()
                missing = list(set(tokens))
            _stems.update(zip(missing, (stem.strip() for stem in _stemmer.stemWords(missing)), strict=True))
        return [_stems[token] for token in tokens]


def _tokens(text: str) -> list[str]:
    """Lowercased raw tokens, before stopword, length and stemming filters."""
    return _NON_WORD.sub(" ", text).lower().split()


# One byte-to-byte table does the ASCII half of `_tokens`: a word character (Python's \w
# within ASCII) maps to its lowercase, any other ASCII byte to a space. Bytes of other
# characters map to themselves; their texts are tokenized by Python's own rules.
_ASCII_TOKEN_TABLE = bytes(
    (ord(chr(b).lower()) if chr(b).isalnum() or chr(b) == "_" else 32) if b < 128 else b for b in range(256)
)


def _token_rows(texts: Sequence[str | None]) -> tuple[np.ndarray, pa.Array]:
    """The raw tokens of a batch with the row each came from, exactly as :func:`_tokens`
    splits them. The ASCII texts (most) are translated in one pass over the batch's
    Arrow string buffer and split by Arrow; others by Python's Unicode rules."""
    array = pa.array(texts, pa.string())
    validity, offsets, data = array.buffers()
    if data is not None and data.size:
        data = pa.py_buffer(data.to_pybytes().translate(_ASCII_TOKEN_TABLE))
    spaced = pa.StringArray.from_buffers(len(array), offsets, data, validity, array.null_count)
    lists = pc.ascii_split_whitespace(spaced)
    row = as_numpy(pc.list_parent_indices(lists), np.int64)
    tokens = pc.list_flatten(lists)
    # Arrow keeps the empty strings around leading and trailing spaces; Python's split does not
    keep = as_numpy(pc.not_equal(pc.binary_length(tokens), 0), np.bool_)
    ascii_rows = as_numpy(pc.fill_null(pc.string_is_ascii(array), True), np.bool_)
    others = np.flatnonzero(~ascii_rows)
    if len(others):
        keep &= ascii_rows[row]
    row, tokens = row[keep], tokens.filter(pa.array(keep))
    if len(others):
        other_tokens = [_tokens(texts[i]) if texts[i] else [] for i in others]
        counts = np.fromiter(map(len, other_tokens), dtype=np.int64, count=len(others))
        row = np.concatenate([row, np.repeat(others.astype(np.int64), counts)])
        tokens = pa.concat_arrays([tokens, pa.array(list(chain.from_iterable(other_tokens)), pa.string())])
    return row, tokens

class ChromaBm25EmbeddingFunction:
    """BM25 sparse vectors equal to chromadb's ``ChromaBm25EmbeddingFunction``.

    ``k`` and ``b`` are BM25's saturation and length-normalisation parameters and
    ``avg_doc_length`` the assumed average document length in tokens; tokens longer than
    ``token_max_length`` (after lowercasing) and those in ``stopwords`` (default: NLTK's
    English list) are dropped before stemming. With ``include_tokens`` each vector carries
    the stem behind each index as ``labels``. Thread-safe.
    """

    def __init__(
        self,
        k: float = DEFAULT_K,
        b: float = DEFAULT_B,
        avg_doc_length: float = DEFAULT_AVG_DOC_LENGTH,
        token_max_length: int = DEFAULT_TOKEN_MAX_LENGTH,
        stopwords: Iterable[str] | None = None,
        include_tokens: bool = False,
    ) -> None:
        self.k = float(k)
        self.b = float(b)
        self.avg_doc_length = float(avg_doc_length)
        self.token_max_length = int(token_max_length)
        self.include_tokens = bool(include_tokens)
        # ``stopwords`` is what the config records (None: the default list, not recorded)
        self.stopwords: list[str] | None = None if stopwords is None else [str(word) for word in stopwords]
        words = DEFAULT_CHROMA_BM25_STOPWORDS if self.stopwords is None else self.stopwords
        self._stopwords = frozenset(word.lower() for word in words)
        # raw token -> its stem's hash, or -1 when the token is dropped
        self._hashes: dict[str, int] = {}

    # -- encoding ---------------------------------------------------------------------

    def _resolve(self, tokens: set[str], hashes: dict[str, int]) -> None:
        """Put in `hashes` the index of each raw token (-1 for a stopword, a token too long
        or one that stems to nothing)."""
        kept = [t for t in tokens if t not in self._stopwords and len(t) <= self.token_max_length]
        resolved = dict.fromkeys(tokens, -1)
        hash_of = mmh3.hash
        resolved.update(
            (token, abs(hash_of(stem, 0)) if stem else -1) for token, stem in zip(kept, _stem_many(kept), strict=True)
        )
        # one update of the shared cache: a call in another thread never reads a kept
        # token's placeholder (-1) as if the token were dropped
        hashes.update(resolved)

    def _indices(self, tokens: list[str]) -> list[int]:
        """The index (or -1) of each raw token, from the cache where possible. A full cache
        is replaced, not cleared, so a call running in another thread keeps its own."""
        hashes = self._hashes
        unseen = set(tokens).difference(hashes)
        if unseen:
            if len(hashes) + len(unseen) > _CACHE_LIMIT:
                hashes = self._hashes = {}
                unseen = set(tokens)
            self._resolve(unseen, hashes)
        return list(map(hashes.__getitem__, tokens))

    def _scale(self, doc_len: float) -> float:
        """BM25's ``k * (1 - b + b * doc_len / avg_doc_length)``, in chromadb's operation order."""
        return self.k * (1 - self.b + (self.b * doc_len) / self.avg_doc_length)

    def _encode(self, text: str | None) -> SparseVector:
        if not text:
            return SparseVector._unchecked([], [])
        tokens = _tokens(text)
        kept = [index for index in self._indices(tokens) if index >= 0]
        if not kept:
            return SparseVector._unchecked([], [])
        scale = self._scale(float(len(kept)))
        k1 = self.k + 1
        indices = sorted(Counter(kept).items())
        values = [tf * k1 / (tf + scale) for tf in (float(count) for _, count in indices)]
        labels: list[str] | None = None
        if self.include_tokens:
            # the stem first seen for each index (distinct stems may share a hash)
            first: dict[int, str] = {}
            for token, index in zip(tokens, self._indices(tokens), strict=True):
                if index >= 0 and index not in first:
                    first[index] = _stem(token)
            labels = [first[index] for index, _ in indices]
        return SparseVector._unchecked([index for index, _ in indices], values, labels)

    def __call__(self, input: list[str]) -> list[SparseVector]:
        """One sparse vector per document (empty for a document without indexable words)."""
        docs = [input] if isinstance(input, str) else input
        if self.include_tokens or len(docs) < _BATCH_MIN:
            return [self._encode(text) for text in docs]
        return self.encode_vectors(docs)[0]

    def encode_vectors(self, texts: Sequence[str | None]) -> tuple[list[SparseVector], np.ndarray]:
        """:meth:`encode_batch` as one SparseVector per text (no labels), with the batch's
        values array (for checks over the whole batch at once)."""
        offsets, indices, values = self.encode_batch(texts)
        index_list, value_list, bounds = indices.tolist(), values.tolist(), offsets.tolist()
        vectors = [
            SparseVector._unchecked(index_list[start:stop], value_list[start:stop])
            for start, stop in pairwise(bounds)
        ]
        return vectors, values

    def embed_query(self, input: list[str]) -> list[SparseVector]:
        """Same as calling: BM25 weighs queries like documents."""
        return self(input)

    def encode_batch(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch as CSR arrays ``(offsets int64[n + 1], indices uint32, values float64)``.

        Row ``i`` is ``indices[offsets[i]:offsets[i + 1]]`` (ascending) with its values, the
        same numbers as ``self(texts)[i]``; ``None`` and empty texts give empty rows. Counting
        and weighting are vectorised over the batch (no per-row objects), for ingestion.
        """
        n = len(texts)
        row, tokens = _token_rows(texts)
        # each distinct token of the batch is looked up once, then spread back by position
        encoded = tokens.dictionary_encode()
        by_token = np.array(self._indices(encoded.dictionary.to_pylist()), dtype=np.int64)
        index = by_token[as_numpy(encoded.indices, np.int64)]
        keep = index >= 0
        index, row = index[keep], row[keep]
        offsets = np.zeros(n + 1, dtype=np.int64)
        if not len(index):
            return offsets, np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.float64)
        doc_len = np.bincount(row, minlength=n)
        # one sort orders by row then index and counts terms; indices are below 2**32
        keys, counts = np.unique((row << 32) | index, return_counts=True)
        key_row = keys >> 32
        offsets[1:] = np.cumsum(np.bincount(key_row, minlength=n))
        if self.avg_doc_length == 0.0:
            raise ZeroDivisionError("float division by zero")  # as chromadb (Python floats) raises
        tf = counts.astype(np.float64)
        length = doc_len[key_row].astype(np.float64)
        with np.errstate(all="ignore"):  # NaN or inf parameters propagate silently, as with Python floats
            # the same IEEE operations, in the same order, as _encode and chromadb
            denominator = tf + self.k * (1 - self.b + (self.b * length) / self.avg_doc_length)
            if not denominator.all():
                raise ZeroDivisionError("float division by zero")
            values = tf * (self.k + 1) / denominator
        return offsets, (keys & 0xFFFFFFFF).astype(np.uint32), values

    # -- chromadb's embedding-function protocol ---------------------------------------

    @staticmethod
    def name() -> str:
        return NAME

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaBm25EmbeddingFunction:
        """The function a ``get_config()`` dict describes (missing keys take the defaults)."""
        return ChromaBm25EmbeddingFunction(
            k=config.get("k", DEFAULT_K),
            b=config.get("b", DEFAULT_B),
            avg_doc_length=config.get("avg_doc_length", DEFAULT_AVG_DOC_LENGTH),
            token_max_length=config.get("token_max_length", DEFAULT_TOKEN_MAX_LENGTH),
            stopwords=config.get("stopwords"),
            include_tokens=config.get("include_tokens", False),
        )

    def get_config(self) -> dict[str, Any]:
        """chromadb's config: ``stopwords`` only when custom ones were given."""
        config: dict[str, Any] = {
            "k": self.k,
            "b": self.b,
            "avg_doc_length": self.avg_doc_length,
            "token_max_length": self.token_max_length,
            "include_tokens": self.include_tokens,
        }
        if self.stopwords is not None:
            config["stopwords"] = list(self.stopwords)
        return config

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Every key of the config may change; others are refused (ValueError)."""
        for key in new_config:
            if key not in _CONFIG_KEYS:
                raise ValueError(f"Updating '{key}' is not supported for {NAME}")

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """ValueError unless ``config`` fits chromadb's ``chroma_bm25`` schema (known keys, right types)."""
        if not isinstance(config, dict):
            raise ValueError(f"{NAME} config must be a dict, not {type(config).__name__}")
        unknown = sorted(str(key) for key in config if key not in _CONFIG_KEYS)
        if unknown:
            raise ValueError(f"{NAME} config has unknown keys: {', '.join(unknown)}")
        for key in _NUMBER_KEYS:
            if key in config:
                value = config[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{NAME} config '{key}' must be a number, not {type(value).__name__}")
        if "include_tokens" in config and not isinstance(config["include_tokens"], bool):
            raise ValueError(f"{NAME} config 'include_tokens' must be a boolean")
        if "stopwords" in config:
            words = config["stopwords"]
            if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
                raise ValueError(f"{NAME} config 'stopwords' must be a list of strings")

    def is_legacy(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.k, self.b, self.avg_doc_length, self.token_max_length))

    def __repr__(self) -> str:
        custom = "" if self.stopwords is None else f", stopwords=[{len(self.stopwords)} words]"
        return (
            f"{type(self).__name__}(k={self.k!r}, b={self.b!r}, avg_doc_length={self.avg_doc_length!r}, "
            f"token_max_length={self.token_max_length!r}, include_tokens={self.include_tokens!r}{custom})"
        )
