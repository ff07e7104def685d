"""A process killed with SIGKILL in the middle of a write leaves each collection before or after it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import vecduck

LONG = os.environ.get("VECDUCK_LONG") == "1"

WRITER = textwrap.dedent(
    """
    import sys, numpy as np, vecduck
    path, batch, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = vecduck.PersistentClient(path=path)
    col = client.get_or_create_collection("crash", embedding_function=None)
    start = col.count()
    rng = np.random.default_rng(start)
    print("ready", flush=True)
    for r in range(rounds):
        first = start + r * batch
        ids = [f"id{first + i}" for i in range(batch)]
        col.add(
            ids=ids,
            embeddings=rng.random((batch, 16), dtype=np.float32),
            metadatas=[{"round": r, "n": first + i} for i in range(batch)],
            documents=[f"doc {first + i}" for i in range(batch)],
        )
        print("done", first + batch, flush=True)
    """
)


def run_and_kill(path: Path, batch: int, rounds: int, delay: float) -> list[int]:
    """Start a writer, kill it after `delay` seconds, return the counts it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(batch), str(rounds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return [int(line.split()[1]) for line in proc.stdout.read().splitlines() if line.startswith("done")]


def check_consistent(path: Path, batch: int, acknowledged: list[int]) -> int:
    """Reopen: whole batches only, every acknowledged one present, index and table agree."""
    client = vecduck.PersistentClient(path=path)
    try:
        col = client.get_collection("crash", embedding_function=None)
        count = col.count()
        assert count % batch == 0, f"half-written batch: {count} rows"
        if acknowledged:
            assert count >= acknowledged[-1], "an acknowledged write was lost"
        got = col.get(include=["metadatas", "embeddings"])
        assert sorted(got["ids"]) == sorted(f"id{i}" for i in range(count))
        assert [m["n"] for m in got["metadatas"]] == [int(i[2:]) for i in got["ids"]]
        if count:
            probe = np.asarray(got["embeddings"][-1])
            hit = col.query(query_embeddings=[probe.tolist()], n_results=1, include=["distances"])
            assert hit["ids"][0][0] == got["ids"][-1]
            assert hit["distances"][0][0] == pytest.approx(0.0, abs=1e-5)
        return count
    finally:
        client.close()


@pytest.mark.parametrize("batch", [20_000, 7])
def test_sigkill_during_writes_leaves_whole_batches(tmp_path: Path, batch: int) -> None:
    """Large adds go straight to the lake, small ones to the write buffer: both are atomic."""
    rng = random.Random(batch)
    kills = 12 if LONG else 3
    previous = 0
    for _ in range(kills):
        acknowledged = run_and_kill(tmp_path, batch, rounds=50, delay=rng.uniform(0.3, 2.5))
        count = check_consistent(tmp_path, batch, acknowledged)
        assert count >= previous
        previous = count
