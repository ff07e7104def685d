"""The examples in examples/ that the README points to run as written (offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_hybrid_search_example(tmp_path: Path) -> None:
    env = dict(os.environ, VECDUCK_PROGRESS="0", HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "hybrid_search.py"), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rates = {
        line.split()[0]: float(line.split()[1].rstrip("%")) for line in lines if line.startswith("  ") and "%" in line
    }
    assert set(rates) == {"dense", "bm25", "hybrid"}
    assert all(rate > 50 for rate in rates.values()), rates  # each finds most docstrings from their summary
    assert any(line.strip().endswith(("json.load", "json.loads")) for line in lines), done.stdout
