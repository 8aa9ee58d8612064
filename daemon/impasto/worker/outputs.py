"""A job's pictures written to its output folder: through its plugins' post-processors, each
atomically, none kept when the job is cancelled before the last."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import msgspec

from impasto.worker.protocol import RunJob


def write_outputs(
    job: RunJob, params: Any, images: list[Any], plugins: Any = None, cancel: Any = None
) -> list[dict[str, Any]]:
    """Post-process each image through the job's plugins, write it atomically; return records.

    A cancel (``cancel``, the job's token) that comes before the last image is written raises
    GenerationCancelled and removes the images written so far: a cancelled job keeps none."""
    folder = Path(job.output_dir)
    results: list[dict[str, Any]] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for index, generated in enumerate(images):
            results.append(_write_one(job, index, generated, folder, plugins, cancel))
        if cancel is not None:
            cancel.raise_if_cancelled()
    except BaseException as exc:
        for written in results:
            Path(written["path"]).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(folder, exc) from exc
        raise
    return results


class OutputError(Exception):
    """A picture could not be written to the output folder; the message names the folder and
    the setting (a full disk, a folder that is not writable)."""

    def __init__(self, folder: Path, cause: OSError) -> None:
        full = cause.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "disk full" if full else (cause.strerror or str(cause))
        advice = "free some space there" if full else "check the folder"
        super().__init__(
            f"{why}: the picture could not be written to {folder}; {advice}, or choose "
            "another folder with output_dir"
        )


def _write_one(
    job: RunJob, index: int, generated: Any, folder: Path, plugins: Any, cancel: Any
) -> dict[str, Any]:
    """Post-process and write one image; its record."""
    from impasto.formats.png import write_png
    from impasto.plugins import PostprocessResult

    # The PNG metadata is written by the built-in png_metadata plugin, like any other.
    result = PostprocessResult(
        job_id=job.job_id,
        index=index,
        seed=generated.seed,
        model=job.plan.model,
        request=msgspec.to_builtins(job.plan),
    )
    image = generated.image
    if plugins is not None:
        image = plugins.postprocess(result, image, job.plugins, job.plugin_options, cancel)
    if cancel is not None:
        cancel.raise_if_cancelled()
    path = write_png(image, folder / f"{job.job_id}-{index}.png", text=result.text)
    return {
        "index": index,
        "path": str(path),
        "seed": generated.seed,
        "width": image.width,
        "height": image.height,
        "metadata": {str(key): str(value) for key, value in result.text.items()},
    }
