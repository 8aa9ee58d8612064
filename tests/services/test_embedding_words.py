"""Which installed embeddings a prompt uses: whole words only, unreadable files left out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from impasto.engine import embeddings
from impasto.worker import files
from impasto.worker.files import embeddings_in

VIOLET = (
    Path(__file__).resolve().parents[2]
    / "models/tiny/shapes-adapters/embeddings/shapes-violet.safetensors"
)


def test_an_embedding_is_used_where_its_name_is_a_word(tmp_path: Path) -> None:
    folder = tmp_path / "embeddings"
    folder.mkdir()
    shutil.copy(VIOLET, folder / "violet.safetensors")
    shutil.copy(VIOLET, folder / "red.safetensors")
    (folder / "square.safetensors").write_bytes(b"\xff" * 32)  # unreadable: skipped
    assert embeddings_in(tmp_path, "a violet, red square") == ["red", "violet"]
    assert embeddings_in(tmp_path, "a (violet:1.2) circle") == ["violet"]
    assert embeddings_in(tmp_path, "a redhead by ultraviolet light") == []
    assert embeddings_in(tmp_path, "a red-violet square") == []  # another word


def test_each_embedding_file_is_read_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request checks its prompt against every installed embedding: a file is read again
    only when its size or modification time changed (a repaired file then counts)."""
    folder = tmp_path / "embeddings"
    folder.mkdir()
    shutil.copy(VIOLET, folder / "violet.safetensors")
    broken = folder / "square.safetensors"
    broken.write_bytes(b"\xff" * 32)
    reads: list[str] = []
    load = embeddings.load_embedding

    def counting(path: Path) -> embeddings.Embedding:
        reads.append(Path(path).name)
        return load(path)

    monkeypatch.setattr(embeddings, "load_embedding", counting)
    for _ in range(3):
        assert embeddings_in(tmp_path, "a violet square") == ["violet"]
    assert sorted(reads) == ["square.safetensors", "violet.safetensors"]
    shutil.copy(VIOLET, broken)  # repaired: another size
    os.utime(broken, ns=(1, 1))
    assert embeddings_in(tmp_path, "a violet square") == ["square", "violet"]
    assert reads.count("square.safetensors") == 2 and reads.count("violet.safetensors") == 1
    # A removed file leaves neither a result nor its cached token behind.
    broken.unlink()
    assert embeddings_in(tmp_path, "a violet square") == ["violet"]
    assert broken not in files._TOKENS and folder / "violet.safetensors" in files._TOKENS
