"""Progress bars appear for large work only, and can be silenced globally."""

from __future__ import annotations

import io

import pytest

from vecduck import progress as prog


def _is_tqdm(bar: object) -> bool:
    from tqdm.auto import tqdm

    return isinstance(bar, tqdm)


def test_small_work_shows_no_bar() -> None:
    bar = prog.progress(range(10), desc="x")
    assert not _is_tqdm(bar)
    assert list(bar) == list(range(10))  # the stand-in still iterates


def test_large_work_shows_a_bar() -> None:
    out = io.StringIO()
    with prog.progress(total=1000, desc="Embedding", file=out) as bar:
        assert _is_tqdm(bar)
        bar.update(1000)
    assert "Embedding" in out.getvalue() and "1000/1000" in out.getvalue()


def test_env_var_silences_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECDUCK_PROGRESS", "0")
    assert not prog.is_enabled()
    assert not _is_tqdm(prog.progress(total=10_000, enabled=True))


def test_set_enabled_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    prog.set_enabled(False)
    try:
        assert not _is_tqdm(prog.progress(total=10_000))
        monkeypatch.setenv("VECDUCK_PROGRESS", "0")
        prog.set_enabled(True)
        assert prog.is_enabled()
    finally:
        prog.set_enabled(None)
    assert not prog.is_enabled()  # back to the env var


def test_explicit_choice_wins_over_size() -> None:
    out = io.StringIO()
    bar = prog.progress(range(3), enabled=True, file=out)
    assert _is_tqdm(bar) and list(bar) == [0, 1, 2]
    assert not _is_tqdm(prog.progress(total=10_000, enabled=False))


def test_embedding_many_texts_reports_progress(capsys: pytest.CaptureFixture[str]) -> None:
    from vecduck.embeddings.default import load_model

    load_model().encode([f"text {i}" for i in range(300)])
    assert "Embedding" in capsys.readouterr().err
    load_model().encode([f"text {i}" for i in range(20)])
    assert "Embedding" not in capsys.readouterr().err
