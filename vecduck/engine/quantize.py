"""The HNSW graph's int8 vectors: each collection's float32 vectors scaled to fit a byte.

The graph only has to find candidates: their exact distances come from the float32
vectors afterwards (`VectorIndex` re-ranks them). A byte per component makes its inserts
and searches 3-4x faster than float32 and its memory a quarter, on real 384-d embeddings
(benchmarks/README.md, "Ninth round").

One scale per collection, not one per component: a common scale changes neither cosine
nor the order of inner products and L2 distances, so the graph's int8 metric ranks as the
float32 one does, up to rounding. Cosine vectors are scaled to unit length first (their
cosine is then an inner product); L2 vectors are shifted by their mean first (L2 ignores a
shift, and a collection far from the origin would otherwise lose its spread to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

QMAX = 127
# A batch whose largest component exceeds the fitted one this many times is clipped hard
# enough to blur the graph: the index is then rebuilt with a scale fitted to all of it.
REFIT_GROWTH = 1.5


@dataclass
class Quantizer:
    """float32 -> int8 for one collection's graph: (prepared vector - center) * scale,
    rounded and clipped to +-127."""

    space: str
    scale: float = 1.0
    bound: float = 0.0  # the largest |component| it was fitted to
    center: np.ndarray | None = None  # L2 only

    @classmethod
    def fit(cls, space: str, vectors: np.ndarray) -> Quantizer:
        """The scale that maps the largest component of `vectors` to 127."""
        prepared = _prepared(space, vectors)
        center = prepared.mean(axis=0) if space == "l2" and len(prepared) else None
        unfitted = cls(space, center=center)
        bound = float(np.abs(unfitted._shifted(vectors)).max()) if prepared.size else 0.0
        scale = QMAX / bound if bound > 0 and np.isfinite(QMAX / bound) else 1.0
        return cls(space, scale, bound, center)

    def _shifted(self, vectors: np.ndarray) -> np.ndarray:
        prepared = _prepared(self.space, vectors)
        return prepared - self.center if self.center is not None else prepared

    def _bytes(self, shifted: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(shifted * self.scale), -QMAX, QMAX).astype(np.int8)

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return self._bytes(self._shifted(vectors))

    def queries(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Queries as int8, and which of them the graph can answer. A cosine or inner
        product query larger than the scale allows is shrunk to fit (its ranking does not
        change with its length); an L2 query beyond the fitted range would be clipped out of
        shape (its nearest are not those of the clipped query): it is marked, for an exact
        search instead."""
        shifted = self._shifted(queries)
        largest = np.abs(shifted).max(axis=1) if shifted.size else np.zeros(len(shifted))
        limit = self.bound if self.bound > 0 else 1.0
        if self.space == "l2":
            fits = largest <= limit
        else:
            fits = np.ones(len(shifted), bool)
            over = largest > limit
            shifted[over] *= (limit / largest[over])[:, None]
        return self._bytes(shifted), fits

    def outgrown_by(self, vectors: np.ndarray) -> bool:
        """True when `vectors` reach far beyond what the scale was fitted to."""
        if not len(vectors):
            return False
        largest = float(np.abs(self._shifted(vectors)).max())
        return largest > REFIT_GROWTH * self.bound

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "bound": self.bound,
            "center": None if self.center is None else self.center.tolist(),
        }

    @classmethod
    def from_json(cls, space: str, saved: dict[str, Any], dimension: int) -> Quantizer:
        """The quantizer a marker recorded; ValueError when it is not whole."""
        center = saved.get("center")
        center_array = None if center is None else np.asarray(center, np.float64)
        if center_array is not None and center_array.shape != (dimension,):
            raise ValueError("center of the wrong dimension")
        if (space == "l2") != (center_array is not None):
            raise ValueError("center does not match the space")
        return cls(space, float(saved["scale"]), float(saved["bound"]), center_array)


def _prepared(space: str, vectors: np.ndarray) -> np.ndarray:
    """Vectors in float64, cosine ones scaled to unit length (a zero row stays zero)."""
    wide = np.asarray(vectors, np.float64)
    if space != "cosine":
        return wide
    norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
    norms[norms == 0] = 1.0
    return wide / norms[:, None]
