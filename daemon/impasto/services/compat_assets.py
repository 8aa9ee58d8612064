"""What the AUTOMATIC1111 listings show: installed LoRAs, VAEs, embeddings, styles, memory.

Each function reads the models folder afresh (so A1111's refresh routes have nothing to reload)
and does file I/O: call them in a thread.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from pathlib import Path
from typing import Any

from impasto.engine.embeddings import EmbeddingError, fits, load_embedding, token_width
from impasto.engine.onnx_graph import OnnxGraph
from impasto.engine.types import EngineError
from impasto.services.compat import current_checkpoint
from impasto.services.container import Services
from impasto.services.system import gpus

MAX_HEADER = 16 * 1024 * 1024  # a safetensors header larger than this is not read for metadata


def _folder(services: Services, kind: str) -> Path:
    return services.catalog.models_dir / kind


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (training notes A1111 shows), or {}."""
    try:
        with path.open("rb") as fh:
            size = struct.unpack("<Q", fh.read(8))[0]
            if size > MAX_HEADER:
                return {}
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _relative(services: Services, path: Path) -> str:
    """``path`` relative to the models folder (``loras/x.safetensors``): no local path leaves
    the daemon."""
    return path.relative_to(services.catalog.models_dir).as_posix()


def installed_loras(services: Services) -> list[dict[str, Any]]:
    """A1111's /loras items: name, alias (the trainer's output name), path (relative to the
    models folder) and metadata."""
    folder = _folder(services, "loras")
    if not folder.is_dir():
        return []
    items = []
    for path in sorted(folder.glob("*.safetensors")):
        metadata = safetensors_metadata(path)
        items.append(
            {
                "name": path.stem,
                "alias": metadata.get("ss_output_name") or path.stem,
                "path": _relative(services, path),
                "metadata": metadata,
            }
        )
    return items


def installed_vaes(services: Services) -> list[dict[str, str]]:
    """A1111's /sd-vae items: each VAE folder (or file) a request's ``vae`` may name; the
    filename relative to the models folder."""
    folder = _folder(services, "vae")
    if not folder.is_dir():
        return []
    return [
        {
            "model_name": path.stem if path.is_file() else path.name,
            "filename": _relative(services, path),
        }
        for path in sorted(folder.iterdir())
        if not path.name.startswith(".")
    ]


def installed_embeddings(services: Services) -> dict[str, dict[str, Any]]:
    """A1111's /embeddings: under ``loaded`` those the current checkpoint can use, under
    ``skipped`` the unreadable ones and those made for another model family (their vectors
    fit none of its text encoders), as A1111 sorts them for its loaded model."""
    loaded: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    widths = _token_widths(services)
    folder = _folder(services, "embeddings")
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        item: dict[str, Any] = {
            "step": None,
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
            "shape": 0,
            "vectors": 0,
        }
        try:
            embedding = load_embedding(path)
        except EmbeddingError:
            skipped[path.stem] = item
            continue
        vectors = next(iter(embedding.vectors.values()))
        listed = loaded if fits(embedding, widths) else skipped
        listed[path.stem] = {**item, "shape": int(vectors.shape[-1]), "vectors": len(vectors)}
    return {"loaded": loaded, "skipped": skipped}


def _token_widths(services: Services) -> dict[str, int]:
    """The token vector width of each text encoder of the current checkpoint; {} when it
    cannot be read (then every readable embedding counts as loaded)."""
    entry = services.catalog.get(current_checkpoint(services))
    if entry is None:
        return {}
    widths = {}
    for component in ("text_encoder", "text_encoder_2"):
        graph = entry.path / component / "model.onnx"
        if graph.is_file():
            try:
                widths[component] = _width_of(graph, graph.stat().st_mtime_ns)
            except (OSError, ValueError, EngineError):
                return {}
    return widths


@functools.lru_cache(maxsize=8)
def _width_of(graph: Path, mtime_ns: int) -> int:
    """A text encoder graph's token width, read once per version of the file."""
    return token_width(OnnxGraph(graph))


def prompt_styles(services: Services) -> list[dict[str, str]]:
    """A1111's /prompt-styles: the styles plugin's styles, or none without it."""
    styles = services.plugins.prompt_styles() if services.plugins else {}
    return [
        {"name": name, "prompt": style["prompt"], "negative_prompt": style["negative_prompt"]}
        for name, style in styles.items()
    ]


def _rss() -> int:
    """This process's resident memory in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _meminfo() -> dict[str, int]:
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        return {"total": info["MemTotal"], "free": info.get("MemAvailable", info["MemFree"])}
    except (OSError, KeyError, ValueError, IndexError):
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
        return {"total": pages * size, "free": 0}


def memory_report() -> dict[str, Any]:
    """A1111's /memory: RAM (machine total and free, the daemon's own use) and NVIDIA memory."""
    ram = _meminfo()
    report: dict[str, Any] = {
        "ram": {"free": ram["free"], "used": ram["total"] - ram["free"], "total": ram["total"]},
    }
    report["ram"]["process"] = _rss()
    found = gpus()
    if not found:
        report["cuda"] = {"error": "unavailable"}
        return report
    gpu = found[0]
    total, used = gpu["memory_total"], gpu["memory_used"]
    nothing = {"current": 0, "peak": 0}
    report["cuda"] = {
        "system": {"free": total - used, "used": used, "total": total},
        "active": nothing,
        "allocated": nothing,
        "reserved": nothing,
        "inactive": nothing,
        "events": {"retries": 0, "oom": 0},
    }
    return report
