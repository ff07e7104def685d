"""all-MiniLM-L6-v2 in pure NumPy: the BERT encoder, mean pooling and L2 normalisation.

This computes the same vectors as Chroma's default embedding function (an ONNX export of
sentence-transformers/all-MiniLM-L6-v2) without PyTorch or onnxruntime:

* tokens from the model's own ``tokenizer.json`` (``tokenizers`` library), truncated to
  256 tokens including ``[CLS]``/``[SEP]``; token type ids are all 0;
* a 6-layer BERT (hidden 384, 12 heads, FFN 1536, exact-erf GELU, LayerNorm eps 1e-12)
  in float32;
* the mean of the last hidden states over real (unpadded) tokens, scaled to unit length.

Speed comes from batching texts of similar token length (little padding), doing every
step as a few large array operations, and running one batch per core with BLAS on one
thread each (see ``_blas``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vecduck.embeddings import _blas
from vecduck.embeddings.model_files import read_verified
from vecduck.progress import progress

__all__ = ["DIM", "MAX_TOKENS", "MiniLM", "SentenceEncoder"]

DIM = 384
MAX_TOKENS = 256
_LAYERS = 6
_HEADS = 12
_HEAD_DIM = DIM // _HEADS
_FFN = 1536
_EPS = np.float32(1e-12)

# GELU(x) = x * Phi(x) = relu(x) - |x| * erfc(|x| / sqrt 2) / 2, with erfc from
# Abramowitz & Stegun 7.1.26: erfc(z) = poly(t) * exp(-z^2), t = 1 / (1 + p z), whose
# absolute error is below 1.5e-7, i.e. float32 rounding level.
_P = np.float32(0.3275911 / math.sqrt(2.0))
_A = tuple(np.float32(c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_HALF_NEG = np.float32(-0.5)

_FFN_ROWS = 128  # rows per FFN block: keeps the 1536-wide activations in cache
_MASKED = np.float32(-1e30)


def _layer_norm(x: NDArray[np.float32], gamma: NDArray[np.float32], beta: NDArray[np.float32]) -> NDArray[np.float32]:
    """LayerNorm over the last axis of a 2-D array, in place."""
    x -= x.mean(axis=1, keepdims=True)
    scale = np.einsum("ij,ij->i", x, x)
    scale *= np.float32(1.0 / x.shape[1])
    scale += _EPS
    np.sqrt(scale, out=scale)
    np.reciprocal(scale, out=scale)
    x *= scale[:, None]
    x *= gamma
    x += beta
    return x


def _double_gelu(
    h: NDArray[np.float32], a: NDArray[np.float32], t: NDArray[np.float32], p: NDArray[np.float32]
) -> None:
    """Overwrite ``h`` with 2 * GELU(h) (the 1/2 is folded into the next weights)."""
    np.abs(h, out=a)
    np.multiply(a, _P, out=t)
    t += 1
    np.reciprocal(t, out=t)
    np.multiply(t, _A[4], out=p)
    for coef in (_A[3], _A[2], _A[1], _A[0]):
        p += coef
        p *= t
    np.multiply(a, _HALF_NEG, out=t)
    t *= a
    np.exp(t, out=t)
    p *= t  # erfc(|h| / sqrt 2)
    p *= a
    h += a  # 2 relu(h) = h + |h|
    h -= p


class SentenceEncoder(ABC):
    """Tokenise, batch by length, run the encoder, mean-pool and L2-normalise.

    Subclasses supply ``_hidden``: the last hidden states of one padded batch.
    """

    #: whether batches may run on several of our threads (False when the runtime has its own)
    parallel_batches = True

    def __init__(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tokenizer_json)
        tok.no_padding()  # the file may pin padding (to 128 here); batches are padded below
        tok.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer = tok

    @abstractmethod
    def _hidden(self, ids: NDArray[np.intp], lengths: NDArray[np.int64]) -> NDArray[np.float32]:
        """Last hidden states (B, L, 384) of token ids (B, L) padded with 0 past ``lengths``."""

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text: ``[CLS] ... [SEP]``, at most 256 of them."""
        return [e.ids for e in self._tokenizer.encode_batch(list(texts))]

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        max_batch_tokens: int = 4096,
        workers: int | None = None,
        show_progress: bool | None = None,
    ) -> NDArray[np.float32]:
        """Unit-length float32 embeddings, one row per text, in input order.

        Texts are grouped by token length into batches of at most ``batch_size`` texts
        and ``max_batch_tokens`` padded tokens. ``workers`` batches run at once (default:
        one per core, at most 8). ``show_progress=None`` shows a bar for large inputs.
        """
        n = len(texts)
        out = np.empty((n, DIM), dtype=np.float32)
        if n == 0:
            return out
        ids = self.token_ids(texts)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=n)
        if workers is None:
            workers = min(_blas.cpu_count(), 8)
        if not self.parallel_batches or not _blas.blas_control_available():
            workers = 1  # the runtime (or BLAS) keeps its own threads; one batch at a time
        # at least one batch per worker, so even a handful of texts uses every core
        per_batch = max(1, min(batch_size, -(-n // max(1, workers))))
        batches = _plan_batches(lengths, per_batch, max_batch_tokens)
        workers = max(1, min(workers, len(batches)))

        def run(idx: NDArray[np.intp]) -> NDArray[np.float32]:
            lens = lengths[idx]
            batch = np.zeros((len(idx), int(lens.max())), dtype=np.intp)
            for row, i in enumerate(idx):
                batch[row, : lens[row]] = ids[i]
            return _mean_pool(self._hidden(batch, lens), lens)

        bar = progress(total=n, desc="Embedding", unit="text", enabled=show_progress)
        # BLAS on one thread per call, our threads on the cores: faster here than BLAS's
        # own threading, and far more robust when other processes share the cores
        with bar, _blas.single_threaded_blas():
            if workers == 1:
                for idx in batches:
                    out[idx] = run(idx)
                    bar.update(len(idx))
                return out
            with ThreadPoolExecutor(workers) as pool:
                futures = {pool.submit(run, idx): idx for idx in batches}
                try:
                    for done in as_completed(futures):
                        idx = futures[done]
                        out[idx] = done.result()
                        bar.update(len(idx))
                finally:
                    for f in futures:
                        f.cancel()
        return out


class MiniLM(SentenceEncoder):
    """all-MiniLM-L6-v2 in NumPy: ``encode(texts)`` gives unit vectors, shape (n, 384)."""

    def __init__(self, weights: Mapping[str, NDArray[np.float32]], tokenizer_json: str) -> None:
        super().__init__(tokenizer_json)

        def w(name: str) -> NDArray[np.float32]:
            return np.asarray(weights[name], dtype=np.float32)

        self._word = np.ascontiguousarray(w("embeddings.word_embeddings.weight"))
        # token type ids are all 0, so that embedding is a constant added to positions
        self._pos = np.ascontiguousarray(
            w("embeddings.position_embeddings.weight")[:MAX_TOKENS] + w("embeddings.token_type_embeddings.weight")[0]
        )
        self._emb_ln = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        scale = np.float32(1.0 / math.sqrt(_HEAD_DIM))
        self._layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            # one (384, 1152) product for queries, keys and values; 1/sqrt(d) folded into queries
            qkv = np.concatenate(
                [w(att + "self.query.weight").T * scale, w(att + "self.key.weight").T, w(att + "self.value.weight").T],
                axis=1,
            )
            qkv_b = np.concatenate(
                [w(att + "self.query.bias") * scale, w(att + "self.key.bias"), w(att + "self.value.bias")]
            )
            self._layers.append(
                (
                    np.ascontiguousarray(qkv),
                    qkv_b,
                    np.ascontiguousarray(w(att + "output.dense.weight").T),
                    w(att + "output.dense.bias"),
                    w(att + "output.LayerNorm.weight"),
                    w(att + "output.LayerNorm.bias"),
                    np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    w(p + "intermediate.dense.bias"),
                    # halved: _double_gelu yields 2 * GELU (exact, a power of two)
                    np.ascontiguousarray(w(p + "output.dense.weight").T * np.float32(0.5)),
                    w(p + "output.dense.bias"),
                    w(p + "output.LayerNorm.weight"),
                    w(p + "output.LayerNorm.bias"),
                )
            )

    @classmethod
    def from_dir(cls, folder: Path) -> MiniLM:
        """Load ``model.safetensors`` and ``tokenizer.json`` from ``folder``, checksums verified."""
        from safetensors.numpy import load

        weights = load(read_verified(folder, "model.safetensors"))
        tokenizer_json = read_verified(folder, "tokenizer.json").decode("utf-8")
        return cls(weights, tokenizer_json)

    def _hidden(self, ids: NDArray[np.intp], lengths: NDArray[np.int64]) -> NDArray[np.float32]:
        b, width = ids.shape
        rows = b * width
        x = self._word[ids]
        x += self._pos[:width]
        x = _layer_norm(x.reshape(rows, DIM), *self._emb_ln)
        padded = bool((lengths < width).any())
        bias = None
        if padded:  # padding keys get -1e30 before the softmax, i.e. weight 0
            bias = np.where(np.arange(width) < lengths[:, None], np.float32(0), _MASKED)[:, None, None, :]
        chunk = min(_FFN_ROWS, rows)
        hid, a, t, p = (np.empty((chunk, _FFN), dtype=np.float32) for _ in range(4))
        for qkv_w, qkv_b, o_w, o_b, ln1_g, ln1_b, i_w, i_b, f_w, f_b, ln2_g, ln2_b in self._layers:
            # self-attention, all heads at once
            qkv = x @ qkv_w
            qkv += qkv_b
            qkv5 = qkv.reshape(b, width, 3, _HEADS, _HEAD_DIM)
            q = qkv5[:, :, 0].transpose(0, 2, 1, 3)
            k_t = qkv5[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv5[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k_t  # (B, H, L, L)
            if bias is not None:
                scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            ctx = scores @ v
            ctx /= scores.sum(axis=-1, keepdims=True)  # softmax denominator, on the smaller array
            ctx = ctx.transpose(0, 2, 1, 3).reshape(rows, DIM)
            att = ctx @ o_w
            att += o_b
            att += x
            x = _layer_norm(att, ln1_g, ln1_b)
            # feed-forward in row blocks so the 1536-wide activations stay in cache
            ffn = np.empty_like(x)
            for start in range(0, rows, chunk):
                stop = min(rows, start + chunk)
                n = stop - start
                h = hid[:n]
                np.matmul(x[start:stop], i_w, out=h)
                h += i_b
                _double_gelu(h, a[:n], t[:n], p[:n])
                np.matmul(h, f_w, out=ffn[start:stop])
            ffn += f_b
            ffn += x
            x = _layer_norm(ffn, ln2_g, ln2_b)
        return x.reshape(b, width, DIM)


def _mean_pool(hidden: NDArray[np.float32], lengths: NDArray[np.int64]) -> NDArray[np.float32]:
    """Mean over each row's first ``lengths`` tokens, scaled to unit length."""
    width = hidden.shape[1]
    if bool((lengths < width).any()):  # masked sum as one batched matrix product
        mask = (np.arange(width) < lengths[:, None]).astype(np.float32)
        pooled = np.matmul(mask[:, None, :], hidden)[:, 0]
    else:
        pooled = hidden.sum(axis=1, dtype=np.float32)
    pooled /= lengths[:, None].astype(np.float32)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    np.maximum(norms, _EPS, out=norms)
    pooled /= norms
    return pooled.astype(np.float32, copy=False)


def _plan_batches(lengths: NDArray[np.int64], batch_size: int, max_batch_tokens: int) -> list[NDArray[np.intp]]:
    """Index groups of similar length, longest first, each within the size limits."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start, n = 0, len(order)
    while start < n:
        longest = int(lengths[order[start]])
        count = max(1, min(batch_size, max_batch_tokens // max(longest, 1), n - start))
        batches.append(order[start : start + count])
        start += count
    return batches
