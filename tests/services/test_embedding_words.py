"""Which installed embeddings a prompt uses: whole words only, unreadable files left out."""

from __future__ import annotations

import shutil
from pathlib import Path

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
