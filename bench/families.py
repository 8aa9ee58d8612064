"""Family benchmark: few-step models against 20 steps, and the cost of opening a LoRA session.

    .venv/bin/python bench/families.py                # tiny family models, 256x256
    .venv/bin/python bench/families.py --size 128 --runs 3

Rows, all in one process on the same provider and threads:
- SD-Turbo at 1 and 4 steps (cfg 1, euler_a) against the same model at 20 steps (euler_a, cfg 7);
- LCM at 4 steps (lcm sampler, cfg 8.5, embedded) against the same model at 20 steps euler_a;
- SDXL at 20 steps, then with its refiner taking the last 20% of the steps;
- LoRA: the first generation with a LoRA set (opens the overridden sessions) against a
  cached second one and a plain generation.
Each timed row reports the median of ``--runs`` after one warm-up; ratios are against the
reference row of the same model in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from impasto.engine import GenerationParams, load_pipeline
from impasto.engine.providers import cpu_choice

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "models" / "tiny"
LORA = TINY / "adapters" / "loras" / "tiny-peft.safetensors"
PROMPT = "a lighthouse on a cliff at dusk"


def _median_seconds(run: Callable[[], object], runs: int) -> float:
    run()  # warm-up: session creation and first-call allocations stay out of the median
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _params(size: int, **fields: Any) -> GenerationParams:
    return GenerationParams(prompt=PROMPT, width=size, height=size, seed=1, **fields)


def few_step_rows(size: int, runs: int) -> list[tuple[str, float, str]]:
    """Turbo, LCM and SDXL refiner rows: (label, seconds, reference label)."""
    rows: list[tuple[str, float, str]] = []
    cases: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = [
        (
            "sd-tiny-turbo",
            [
                ("20 steps euler_a cfg 7", {"steps": 20, "cfg_scale": 7.0}),
                ("1 step euler_a cfg 1", {"steps": 1, "cfg_scale": 1.0}),
                ("4 steps euler_a cfg 1", {"steps": 4, "cfg_scale": 1.0}),
            ],
        ),
        (
            "sd-tiny-lcm",
            [
                ("20 steps euler_a cfg 7", {"steps": 20, "cfg_scale": 7.0}),
                ("4 steps lcm cfg 8.5", {"steps": 4, "cfg_scale": 8.5, "sampler": "lcm"}),
            ],
        ),
        (
            "sdxl-tiny",
            [
                ("20 steps euler cfg 7", {"steps": 20, "sampler": "euler"}),
                (
                    "20 steps euler + refiner at 0.8",
                    {"steps": 20, "sampler": "euler", "refiner": TINY / "sdxl-tiny-refiner"},
                ),
            ],
        ),
    ]
    for model, variants in cases:
        pipe = load_pipeline(TINY / model, cpu_choice())
        reference = f"{model}: {variants[0][0]}"
        for label, fields in variants:
            params = _params(size, **fields)
            seconds = _median_seconds(partial(pipe.generate, params), runs)
            rows.append((f"{model}: {label}", seconds, reference))
        pipe.close()
    return rows


def lora_rows(size: int, runs: int) -> list[tuple[str, float, str]]:
    """Opening a LoRA session set (first generation) against cached and plain generations."""
    model = TINY / "sd-tiny"
    reference = "sd-tiny: plain (no LoRA)"
    firsts = []
    for _ in range(runs):
        pipe = load_pipeline(model, cpu_choice())
        pipe.generate(_params(size, steps=20))  # plain sessions warm, as in a running worker
        started = time.perf_counter()
        pipe.generate(_params(size, steps=20, loras=[(LORA, 1.0)]))
        firsts.append(time.perf_counter() - started)
        pipe.close()
    pipe = load_pipeline(model, cpu_choice())
    plain = _median_seconds(partial(pipe.generate, _params(size, steps=20)), runs)
    with_lora = _params(size, steps=20, loras=[(LORA, 1.0)])
    cached = _median_seconds(partial(pipe.generate, with_lora), runs)
    pipe.close()
    return [
        (reference, plain, reference),
        ("sd-tiny: LoRA, first generation (opens sessions)", statistics.median(firsts), reference),
        ("sd-tiny: LoRA, cached sessions", cached, reference),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every row and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image width and height")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (median)")
    args = parser.parse_args(argv)
    rows = few_step_rows(args.size, args.runs) + lora_rows(args.size, args.runs)
    seconds = {label: value for label, value, _ in rows}
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"tiny family models, {args.size}x{args.size}, CPU, threads {threads}, {args.runs} runs")
    print(f"| {'row':<50} | {'ms/image':>9} | {'vs reference':>12} |")
    print(f"|{'-' * 52}|{'-' * 10}:|{'-' * 13}:|")
    for label, value, reference in rows:
        ratio = value / seconds[reference]
        print(f"| {label:<50} | {value * 1000:>9.1f} | {ratio:>11.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
