"""What DeepCache costs in quality: semantic accuracy and PSNR against the uncached baseline.

    nice .venv/bin/python bench/speed_quality.py [--count 40] [--intervals 2,3,4]

The bundled prompt-following model (impasto-shapes) draws the semantic tests' prompts with
their seeds and recommended settings (128x128, 20 steps euler_a, CFG 5), once without DeepCache
(the full-precision, uncached baseline) and once per interval. Every picture is read by the
semantic tests' analyser (tests/semantic/analyser.py); PSNR compares each picture with the
baseline picture of the same prompt and seed. The table goes to docs/benchmarks.md as printed.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.semantic.analyser import world  # noqa: E402
from tests.semantic.jobs import PROMPT_SEED, RECOMMENDED, score  # noqa: E402

COLUMNS = ("background", "colour", "shape", "position", "all")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def main() -> int:
    """Command-line entry point."""
    from impasto.engine import GenerationParams, load_pipeline
    from impasto.engine.providers import cpu_choice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--intervals", default="2,3,4")
    parser.add_argument("--sampler", default="euler_a")
    args = parser.parse_args()
    prompts = world.test_prompts(args.count, seed=PROMPT_SEED)
    with tempfile.TemporaryDirectory(prefix="impasto-speed-quality-") as tmp:
        # A copy: the DeepCache split is written beside the UNet.
        folder = shutil.copytree(ROOT / "models" / "tiny" / "impasto-shapes", Path(tmp) / "m")
        pipe = load_pipeline(Path(folder), cpu_choice())
        settings = {k: v for k, v in RECOMMENDED.items() if k != "model"}

        def draw(interval: int) -> list:
            return [
                pipe.generate(
                    GenerationParams(
                        prompt=p, seed=i, sampler=args.sampler, cache_interval=interval, **settings
                    )
                )[0].image
                for i, p in enumerate(prompts)
            ]

        baseline = draw(0)
        rows = [("no cache (baseline)", score(prompts, baseline), math.inf)]
        for interval in (int(n) for n in args.intervals.split(",") if n):
            images = draw(interval)
            pairs = zip(images, baseline, strict=True)
            values = [psnr(np.asarray(a), np.asarray(b)) for a, b in pairs]
            finite = [v for v in values if math.isfinite(v)]
            rows.append(
                (
                    f"cache_interval {interval}",
                    score(prompts, images),
                    float(np.mean(finite)) if finite else math.inf,
                )
            )
            print(rows[-1], flush=True)
    print(f"\n{args.count} prompts, {args.sampler}, 20 steps, CFG 5, 128x128\n")
    print("| run | " + " | ".join(COLUMNS) + " | PSNR vs baseline |")
    print("|---|" + "---:|" * (len(COLUMNS) + 1))
    for name, result, value in rows:
        cells = " | ".join(f"{result[c]:.0%}" for c in COLUMNS)
        shown = "-" if math.isinf(value) else f"{value:.1f} dB"
        print(f"| {name} | {cells} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
