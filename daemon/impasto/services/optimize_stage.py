"""The install steps after the files are checked: fuse and quantise the graphs, warm the cache.

The graph work runs in the converter's child process (services/optimize.py, which needs no
``onnx`` package); the cache is warmed by a worker process started with ``--warm``.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

from impasto.services.convert import (
    ConversionError,
    fuse_graphs,
    quantize_int8,
)

logger = logging.getLogger("impasto.installs")
CPU = "CPUExecutionProvider"
# Providers with kernels for com.microsoft's MultiHeadAttention; the graph compilers (TensorRT,
# OpenVINO, CoreML) would hand fused nodes back to the CPU, so their installs stay unfused.
FUSES_FOR = frozenset(
    {CPU, "CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider"}
)
WARM_TIMEOUT = 3600.0  # seconds; ORT optimises an SDXL UNet in well under a minute


def optimize_folder(
    folder: Path,
    *,
    model_id: str,
    provider: str,
    precision: str,
    unet_precision: str,
    cancel: threading.Event,
    log: Path,
) -> None:
    """Fuse attention for ``provider``; quantise the UNet when ``precision`` is int8.

    Fusion is a speed-up, never a reason to fail: when the child fails, the graphs stay as
    exported (each fused graph replaces its original only after matching its outputs). An
    int8 request that cannot be met raises ConversionError.
    """
    int8 = precision == "int8"
    if int8 and unet_precision not in ("", "fp32", "int8"):
        raise ConversionError(f"precision int8 needs an fp32 UNet; this one is {unet_precision}")
    if (provider or CPU) in FUSES_FOR:
        try:
            fuse_graphs(folder, cancel=cancel, log=log, provider=provider)
        except ConversionError as exc:
            logger.warning("%s: attention left unfused: %s", model_id, exc)
    if int8 and unet_precision != "int8":
        quantize_int8(folder, cancel=cancel, log=log)


def warm_cache(command: tuple[str, ...], model: Path) -> None:
    """Open an installed model once in a worker process, which saves ORT's optimised graphs.

    A failure costs only the speed of the first generation, so it is logged, not raised.
    """
    if not model.is_dir():
        return  # a single-file LoRA, embedding or VAE: nothing a worker opens on its own
    try:
        done = subprocess.run(
            [*command, "--warm", str(model)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=WARM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("%s: optimised graphs not cached: %s", model.name, exc)
        return
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        logger.warning("%s: optimised graphs not cached: %s", model.name, " | ".join(tail))
