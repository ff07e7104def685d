"""A fresh process's first write does not import pandas, and pyarrow's pandas integration
still works in full once the user imports pandas (see vecduck/utils/pandas_deferral.py).

Each case runs in a new interpreter: the test process itself has pandas imported already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pandas", reason="the deferral only matters where pandas is installed")


def run(code: str, folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_first_writes_and_query_leave_pandas_unimported(tmp_path: Path) -> None:
    got = run(
        """
        import json, sys
        import vecduck
        client = vecduck.PersistentClient(path=sys.argv[1])
        col = client.create_collection("docs", embedding_function=None)
        col.add(ids=["a", "b"], embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                documents=["x", "y"], metadatas=[{"k": 1}, {"k": "two"}])
        col.add(ids=["c"], embeddings=[[0.0, 0.0, 1.0]], metadatas=[{"k": 2.5}])
        for i in range(1_050):  # past the read model's batching of single writes (1,000)
            col.add(ids=[f"n{i}"], embeddings=[[0.0, 0.001 * i, -1.0]], metadatas=[{"m": i, "s": "x"}])
        after_add = "pandas" in sys.modules
        found = col.query(query_embeddings=[[0.9, 0.1, 0.0]], n_results=2)["ids"]
        after_query = "pandas" in sys.modules
        # a filter's bind parameters go through DuckDB's Python binding, which imports pandas
        where = col.get(where={"k": 1})["ids"]
        print(json.dumps({"after_add": after_add, "after_query": after_query, "found": found, "where": where}))
        """,
        tmp_path,
    )
    assert got == {"after_add": False, "after_query": False, "found": [["a", "b"]], "where": ["a"]}


def test_pyarrow_pandas_integration_is_whole_once_pandas_is_imported(tmp_path: Path) -> None:
    got = run(
        """
        import json, sys
        import vecduck
        client = vecduck.PersistentClient(path=sys.argv[1])
        col = client.create_collection("docs", embedding_function=None)
        col.add(ids=["a"], embeddings=[[1.0, 0.0, 0.0]])  # pyarrow has been asked about pandas by now
        import pandas as pd
        import pyarrow as pa
        out = {
            "categorical": str(pa.array(pd.Series(pd.Categorical(["p", "q", "p"]))).type),
            "nullable": pa.array(pd.Series([1, None], dtype="Int64")).to_pylist(),
            "na_in_list": pa.array([1, pd.NA, 3], pa.int64(), from_pandas=True).null_count,
            "timestamp": str(pa.array(pd.Series(pd.to_datetime(["2026-01-01"]).tz_localize("UTC"))).type),
        }
        frame = pd.DataFrame({"id": ["b", "c"], "embedding": [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                              "document": ["bee", "sea"], "kind": pd.Categorical(["x", "y"])})
        out["upserted"] = col.upsert_df(frame)
        out["ids"] = sorted(col.to_pandas()["id"].tolist())
        out["kind"] = col.get(ids=["c"])["metadatas"][0]
        print(json.dumps(out))
        """,
        tmp_path,
    )
    # the same answers pyarrow gives in a process where pandas came first
    import pandas as pd
    import pyarrow as pa

    expected_categorical = str(pa.array(pd.Series(pd.Categorical(["p", "q", "p"]))).type)
    assert got["categorical"] == expected_categorical and got["categorical"].startswith("dictionary")
    assert got["nullable"] == [1, None]
    assert got["na_in_list"] == 1
    assert got["timestamp"] == str(pa.array(pd.Series(pd.to_datetime(["2026-01-01"]).tz_localize("UTC"))).type)
    assert got["upserted"] == 2
    assert got["ids"] == ["a", "b", "c"]
    assert got["kind"] == {"kind": "y"}


def test_a_find_spec_probe_does_not_import_pandas(tmp_path: Path) -> None:
    got = run(
        """
        import importlib.util, json, sys
        import vecduck
        probed = importlib.util.find_spec("pandas") is not None
        client = vecduck.PersistentClient(path=sys.argv[1])
        col = client.create_collection("docs", embedding_function=None)
        col.add(ids=["a"], embeddings=[[1.0, 2.0]])
        print(json.dumps({"probed": probed, "imported": "pandas" in sys.modules}))
        """,
        tmp_path,
    )
    assert got == {"probed": True, "imported": False}


def test_vectors_written_before_pandas_read_back_exactly(tmp_path: Path) -> None:
    vectors = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    got = run(
        """
        import json, sys
        import numpy as np
        import vecduck
        vectors = np.load(sys.argv[1] + "/v.npy")
        client = vecduck.PersistentClient(path=sys.argv[1] + "/db")
        col = client.create_collection("docs", embedding_function=None)
        col.add(ids=[f"r{i}" for i in range(50)], embeddings=vectors)
        before = "pandas" in sys.modules
        client.close()
        client = vecduck.PersistentClient(path=sys.argv[1] + "/db")
        got = client.get_collection("docs").get(ids=["r7"], include=["embeddings"])["embeddings"][0]
        print(json.dumps({"before": before, "r7": [float(x) for x in got]}))
        """,
        tmp_path,
    )
    assert got["before"] is False
    assert np.array_equal(np.asarray(got["r7"], np.float32), vectors[7])
