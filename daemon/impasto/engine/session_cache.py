"""A disk cache of ONNX models already optimised by ONNX Runtime, so sessions open faster.

The first load of a model at a graph optimisation level asks ORT to write the optimised graph
(``SessionOptions.optimized_model_filepath``); later loads open that copy with optimisation
disabled. Weights go to a side file (``session.optimized_model_external_initializers_*``):
protobuf cannot hold more than 2 GB, and an SD UNet's weights are 3.4 GB in fp32.

An entry is ``<cache_dir>/<source>-<key>/`` where ``source`` names the model file, provider and
level, and ``key`` also covers the size and mtime of the model and its external-data files, the
ORT version and the CPU, so any change opens a new entry and the stale one is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import onnxruntime as ort

from impasto.engine.onnx_external import ProtobufError, read_external_data_locations

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
SOURCE_FILE = "source.txt"  # the model file an entry was made from, so removals can find it
# Initializers at least this large go to the data file; small ones stay inline in the graph.
MIN_EXTERNAL_BYTES = 1024
FORMAT = 1  # bump when the entry layout changes
ORPHAN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CachePlan:
    """How to open one model: from which file, at which level, and where ORT saves a copy."""

    load_path: Path
    level: str
    save_dir: Path | None = None  # a private folder ORT writes into; published by ``commit``
    entry: Path | None = None  # the cache entry this load reads or creates

    @property
    def hit(self) -> bool:
        """Whether the model is opened from an already optimised cached copy."""
        return self.entry is not None and self.save_dir is None


@cache
def _cpu_signature() -> str:
    # Level "all" writes kernels' blocked layouts chosen for this CPU's vector width.
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    flags = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags}"


def _digest(parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _file_stats(model: Path) -> list[object]:
    files = [model]
    with contextlib.suppress(OSError, ProtobufError):  # ORT reports a bad model when opening
        files += [model.parent / loc for loc in read_external_data_locations(model)]
    stats: list[object] = []
    for file in files:
        st = file.stat()
        stats.append([file.name, st.st_size, st.st_mtime_ns])
    return stats


def entry_path(cache_dir: Path, model: Path, provider: str, level: str) -> Path:
    """The cache entry folder for ``model`` as it is now on disk."""
    source = _digest([str(model.resolve()), provider, level])[:16]
    key = _digest([FORMAT, ort.__version__, _cpu_signature(), _file_stats(model)])[:24]
    return cache_dir / f"{source}-{key}"


def plan_load(model: Path, provider: str, level: str, cache_dir: Path | None) -> CachePlan:
    """Open the cached optimised copy when there is one, else optimise and save a new one."""
    if cache_dir is None or level == "disabled":
        return CachePlan(model, level)
    try:
        entry = entry_path(cache_dir, model, provider, level)
    except OSError:
        return CachePlan(model, level)
    if (entry / MODEL_FILE).is_file():
        # Already optimised at ``level``: running the optimisers again would only cost time.
        return CachePlan(entry / MODEL_FILE, "disabled", entry=entry)
    save_dir = cache_dir / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        save_dir.mkdir(parents=True)
    except OSError:
        return CachePlan(model, level)
    return CachePlan(model, level, save_dir=save_dir, entry=entry)


def configure(options: ort.SessionOptions, plan: CachePlan) -> None:
    """Ask ORT to write the optimised model into the plan's private folder."""
    if plan.save_dir is None:
        return
    options.optimized_model_filepath = str(plan.save_dir / MODEL_FILE)
    # Relative to the model file, so the entry folder can be renamed into place.
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", DATA_FILE
    )
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes",
        str(MIN_EXTERNAL_BYTES),
    )


def commit(plan: CachePlan) -> None:
    """Publish a freshly written entry and remove older entries of the same model."""
    if plan.save_dir is None or plan.entry is None:
        return
    try:
        if not (plan.save_dir / MODEL_FILE).is_file():
            return  # ORT wrote nothing; never publish a half entry
        source_path = plan.load_path.resolve()
        (plan.save_dir / SOURCE_FILE).write_text(str(source_path), encoding="utf-8")
        # A rename is atomic: a concurrent loader sees either no entry or a complete one.
        os.replace(plan.save_dir, plan.entry)
    except OSError:
        return  # another process published the same entry first, or the disk is full
    finally:
        shutil.rmtree(plan.save_dir, ignore_errors=True)
    source = plan.entry.name.partition("-")[0]
    for stale in plan.entry.parent.glob(f"{source}-*"):
        if stale != plan.entry:
            shutil.rmtree(stale, ignore_errors=True)
    # Private folders of loads that were killed while ORT wrote them (a day is far longer than
    # any save, so a concurrent writer's folder is never among them).
    for orphan in plan.entry.parent.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if time.time() - orphan.stat().st_mtime > ORPHAN_SECONDS:
                shutil.rmtree(orphan, ignore_errors=True)


def discard(plan: CachePlan) -> None:
    """Remove a private folder after a failed load."""
    if plan.save_dir is not None:
        shutil.rmtree(plan.save_dir, ignore_errors=True)


def forget_model(cache_dir: Path, model_root: Path) -> int:
    """Delete the entries made from the graphs under ``model_root`` (a model being removed;
    an SD 1.5 UNet's entry is 3.4 GB); returns how many went. Blocking.

    ``model_root`` is the folder's path before it was moved away to be deleted.
    """
    root = model_root.resolve()
    removed = 0
    try:
        entries = list(cache_dir.iterdir())
    except OSError:
        return 0
    for entry in entries:
        try:
            source = Path((entry / SOURCE_FILE).read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue  # no source recorded (an older entry, a private folder): left alone
        if source.is_relative_to(root):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
