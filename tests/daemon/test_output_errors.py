"""A picture the worker cannot write (a full disk, an output folder that is a file) fails its
job with a message naming the folder and the output_dir setting, and leaves no half of a
batch behind."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from impasto.engine import GeneratedImage
from impasto.worker.outputs import OutputError, write_outputs
from tests.fake_jobs import Job


def _images() -> list[GeneratedImage]:
    return [GeneratedImage(Image.new("RGB", (8, 8)), seed) for seed in (1, 2)]


def test_a_full_disk_names_the_output_folder_and_removes_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from impasto.formats import png

    real = png.write_png
    calls: list[Path] = []

    def fills_up(image: Image.Image, path: Path, **kwargs: Any) -> Path:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(image, path, **kwargs)

    monkeypatch.setattr(png, "write_png", fills_up)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as raised:
        write_outputs(Job("job-1", str(out)), None, _images())  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith("disk full: the picture could not be written to ")
    assert str(out) in message and "output_dir" in message
    assert list(out.iterdir()) == []  # the first picture went with the failed batch


def test_an_output_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    taken = tmp_path / "out"
    taken.write_text("not a folder")
    with pytest.raises(OutputError, match=r"could not be written to .*out; check the folder"):
        write_outputs(Job("job-1", str(taken)), None, _images())  # type: ignore[arg-type]
