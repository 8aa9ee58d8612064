"""Whole generations with fused attention against the export and diffusers, same latents.

    python bench/fused_pipeline.py                      # SD 1.5 shape, 512x512, euler
    python bench/fused_pipeline.py --steps 2,4 --target-steps 20 --rounds 1

Writes ``~/.cache/impasto/bench/sd15/onnx-fused`` once: the SD 1.5-shaped export
(``models/build_tiny.py --shape sd15``) with every graph's attention fused as an install
does, weights copied beside it (3.4 GB). Then times bench/engine.py's children (``ours`` on
the exported and on the fused folder, ``diffusers`` on the same weights), each in a fresh
process, at two step counts. A 20-step generation on a shared two-core machine takes
minutes per implementation, so the 20-step time is extrapolated:
``T(20) = T(b) + (20 - b) * (T(b) - T(a)) / (b - a)``, the per-step cost measured as the
difference of the two runs (text encoder and VAE cancel out).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import engine  # noqa: E402  (bench/engine.py: its children and spawn)

SD15 = engine.SD15
FUSED = SD15 / "onnx-fused"


def fused_folder() -> Path:
    """The fused copy of the SD 1.5-shaped export, made once."""
    from impasto.formats.onnx_model import OnnxModel
    from impasto.services.fusion import fuse_attention

    if (FUSED / "model_index.json").is_file():
        return FUSED
    partial = FUSED.with_name(FUSED.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    source = SD15 / "onnx"
    for file in sorted(source.rglob("*")):
        target = partial / file.relative_to(source)
        if file.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if file.name == "model.onnx":
            model = OnnxModel.load(file)  # inline weights come along
            count = fuse_attention(model)
            model.save(target)
            print(f"{file.parent.name}: {count} attention blocks fused", flush=True)
        else:
            # A copy, in the graph's folder for ORT's external-data check (ORT refuses
            # linked weights too).
            shutil.copy2(file, target)
    partial.rename(FUSED)
    return FUSED


def measure(kind: str, folder: Path, steps: int, args: argparse.Namespace) -> float | None:
    run = argparse.Namespace(**{**vars(engine.parse([])), "threads": args.threads})
    run.steps, run.runs, run.sampler, run.cfg = steps, 1, "euler", 7.0
    result: dict[str, Any] = engine.spawn(
        kind, run, onnx=folder, diffusers=SD15 / "diffusers", size=args.size
    )
    if "error" in result:
        print(f"{kind} {folder.name} {steps} steps: {result['error']}", flush=True)
        return None
    seconds = statistics.median(result["times"])
    print(f"{kind:9} {folder.name:10} {steps:2} steps: {seconds:.2f} s", flush=True)
    return float(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", default="2,4", help="the two step counts measured")
    parser.add_argument("--target-steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not (SD15 / "onnx" / "unet").is_dir():
        print(f"{SD15} is missing: run python models/build_tiny.py --shape sd15")
        return 1
    fused = fused_folder()
    low, high = (int(s) for s in args.steps.split(","))
    runs = {
        "ours exported": ("ours", SD15 / "onnx"),
        "ours fused": ("ours", fused),
        "diffusers": ("diffusers", SD15 / "onnx"),
    }
    times: dict[str, dict[int, list[float]]] = {name: {low: [], high: []} for name in runs}
    for _ in range(args.rounds):  # implementations take turns, as in bench/engine.py
        for name, (kind, folder) in runs.items():
            for steps in (low, high):
                seconds = measure(kind, folder, steps, args)
                if seconds is not None:
                    times[name][steps].append(seconds)
    target = args.target_steps
    total: dict[str, float] = {}
    print(
        f"\n### SD 1.5 shape {args.size}x{args.size}, euler, cfg 7, {args.threads} threads, "
        f"{target} steps extrapolated from {low} and {high}, {args.rounds} round(s)\n"
    )
    print(f"| | {low} steps s | {high} steps s | s/step | {target} steps s |")
    print("|---|---:|---:|---:|---:|")
    for name, by_steps in times.items():
        if not by_steps[low] or not by_steps[high]:
            continue
        a, b = statistics.median(by_steps[low]), statistics.median(by_steps[high])
        per_step = (b - a) / (high - low)
        total[name] = b + (target - high) * per_step
        print(f"| {name} | {a:.2f} | {b:.2f} | {per_step:.2f} | {total[name]:.1f} |")
    if "diffusers" in total:
        for name in ("ours exported", "ours fused"):
            if name in total:
                print(f"{name}/diffusers {total[name] / total['diffusers']:.3f} (target <= 0.55)")
    if "ours fused" in total and "ours exported" in total:
        print(f"fused/exported {total['ours fused'] / total['ours exported']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
