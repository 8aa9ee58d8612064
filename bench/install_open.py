"""From the end of an install to the first image: opening a model with and without the cache.

    python bench/install_open.py [--folder ~/.cache/impasto/bench/sd15/onnx-fused] [--size 512]

The install's last step runs ``impasto worker --warm MODEL_DIR`` with the workers' arguments,
which saves ONNX Runtime's optimised graphs in ``DATA/cache/ort``. This times that step, then,
each in a fresh process as a worker would be: opening the pipeline with the saved graphs and
making a first image (1 step), and opening it without them (what the first generation paid
before the install wrote the cache). Default model: the fused SD 1.5-shaped folder that
bench/fused_pipeline.py writes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FOLDER = Path("~/.cache/impasto/bench/sd15/onnx-fused").expanduser()


def child(folder: Path, cache: str, size: int) -> dict[str, Any]:
    """Open the pipeline (with the cache folder, or none) and make one 1-step image."""
    from impasto.engine import GenerationParams, load_pipeline
    from impasto.engine.providers import cpu_choice

    start = time.perf_counter()
    pipe = load_pipeline(folder, cpu_choice(), cache_dir=Path(cache) if cache else None)
    opened = time.perf_counter() - start
    params = GenerationParams(prompt="a lighthouse", width=size, height=size, steps=1, seed=1)
    pipe.generate(params)
    return {"open": opened, "first_image": time.perf_counter() - start}


def spawn(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.folder, args.cache, args.size)))
        return 0
    if not (args.folder / "unet" / "model.onnx").is_file():
        print(f"{args.folder} is missing: run python bench/fused_pipeline.py first")
        return 1
    with tempfile.TemporaryDirectory(prefix="impasto-open-bench-") as data:
        start = time.perf_counter()
        warm = [sys.executable, "-m", "impasto.worker", "--data-dir", data, "--warm"]
        subprocess.run([*warm, str(args.folder)], check=True, stdin=subprocess.DEVNULL)
        warmed = time.perf_counter() - start
        cached = spawn("--child", "--folder", str(args.folder), "--size", str(args.size),
                       "--cache", str(Path(data) / "cache" / "ort"))  # fmt: skip
        plain = spawn("--child", "--folder", str(args.folder), "--size", str(args.size))
    print(f"\n### Open and first image ({args.folder.name}, {args.size}x{args.size}, 1 step)\n")
    print("| | open s | open + first image s |\n|---|---:|---:|")
    print(f"| install's cache step (`impasto worker --warm`) | {warmed:.1f} | |")
    for name, row in (("after the install (cached graphs)", cached), ("without the cache", plain)):
        print(f"| {name} | {row['open']:.2f} | {row['first_image']:.1f} |")
    print(f"\ncached/uncached open {cached['open'] / plain['open']:.3f} (target: open < 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
