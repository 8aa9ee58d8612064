"""What the install's optimisations cost in quality: fused attention and int8 against the export.

    python bench/optimize_quality.py [--count 40]

Runs the real daemon with the bundled impasto-shapes model as the baseline (its graphs exactly
as exported), installs two copies of it through the install pipeline (``fused``: the default
install, attention fused; ``int8``: ``precision: "int8"``, fused and its UNet quantised), and
generates the same prompts and seeds with each (the semantic tests' prompts, recommended
settings). Prints the semantic accuracy of each (tests/semantic/analyser.py), its change from
the baseline in points, the mean PSNR of its pictures against the baseline's, and the time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PIL import Image

from tests.harness import Daemon
from tests.models_manager.conftest import wait_install
from tests.semantic.analyser import world
from tests.semantic.jobs import PROMPT_SEED, generate, score

SHAPES = Path(__file__).resolve().parents[1] / "models" / "tiny" / "impasto-shapes"
COLUMNS = ("background", "colour", "shape", "position", "all")
VARIANTS = {"fused": "", "int8": "int8"}  # id -> precision


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of ``b`` against ``a`` in dB (inf when identical)."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def install(daemon: Daemon, model_id: str, precision: str) -> None:
    body = {"source": str(SHAPES), "id": model_id}
    if precision:
        body["precision"] = precision
    with daemon.client() as client:
        started = client.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        done = wait_install(client, started.json()["id"], {"completed", "failed"}, timeout=600)
        assert done["status"] == "completed", done


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    prompts = world.test_prompts(args.count, seed=PROMPT_SEED)
    bodies = [{"prompt": p, "seed": i} for i, p in enumerate(prompts)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="impasto-optimize-bench-") as tmp:
        daemon = Daemon(Path(tmp)).start()
        try:
            daemon.wait_worker_ready()
            for model_id, precision in VARIANTS.items():
                install(daemon, model_id, precision)
            baseline: list[Image.Image] = []
            for model_id in ("impasto-shapes", *VARIANTS):
                started = time.perf_counter()
                images = generate(daemon, [{**b, "model": model_id} for b in bodies])
                seconds = time.perf_counter() - started
                baseline = baseline or images
                quality = [psnr(a, b) for a, b in zip(baseline, images, strict=True)]
                finite = [q for q in quality if np.isfinite(q)]
                mean = float(np.mean(finite)) if finite else float("inf")
                rows.append((model_id, score(prompts, images), mean, seconds))
                print(rows[-1], flush=True)
        finally:
            daemon.stop()
    base = rows[0][1]
    print()
    print("| variant | " + " | ".join(COLUMNS) + " | all vs baseline | PSNR vs baseline | time |")
    print("|---|" + "---:|" * (len(COLUMNS) + 3))
    for name, result, mean, seconds in rows:
        cells = " | ".join(f"{result[c]:.0%}" for c in COLUMNS)
        change = (result["all"] - base["all"]) * 100
        print(f"| {name} | {cells} | {change:+.1f} pts | {mean:.1f} dB | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
