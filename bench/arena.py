"""What ONNX Runtime's CPU memory arena keeps after a large call, and what releasing it costs.

    .venv/bin/python bench/arena.py                                    # impasto-shapes
    .venv/bin/python bench/arena.py --model SD15_FUSED --big 1024 --size 512 --calls 3

(SD15_FUSED: a folder whose unet/ is the SD 1.5-shaped export, fused; bench/fusion.py.)

ORT's CPU allocator is an arena: memory a call needed stays reserved by the session for the
next call. A worker that ran one large image holds that image's activations until the model
is unloaded. For each way of running, a fresh process opens the UNet as the worker does
(``session_options``), runs one call at batch 2 at ``--big`` (``--component vae_decoder``:
the VAE decoder, one image), then ``--calls`` calls at
``--size``, and prints its resident memory after the large call and after the last one, and
the median seconds of the later calls, each against the arena's own figures from the same
rounds (these machines are noisy: rounds alternate the ways).

Ways: ``arena`` (ORT's default), ``shrink`` (the run option
``memory.enable_memory_arena_shrinkage``: each call returns what it grew the arena by; what
the engine does now, ``sessions.releasing_run_options``), ``shrink-last`` (only the large call
and the last call shrink: a job's last UNet call), ``no-arena`` (``enable_cpu_mem_arena =
False``: plain malloc and free).

    .venv/bin/python bench/arena.py --whole --size 128 --steps 20     # whole generations

``--whole`` times whole generations through the engine instead (``load_pipeline``, euler,
CFG 7), one pipeline opened with the engine's releasing run options and one with ORT's
defaults, alternating, and prints the median seconds and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("arena", "shrink", "shrink-last", "no-arena")


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2


def child(graph: Path, way: str, big: int, size: int, calls: int) -> None:
    import numpy as np
    import onnxruntime as ort

    from impasto.engine.providers import cpu_choice
    from impasto.engine.sessions import releasing_run_options, session_options

    options = session_options(cpu_choice())
    options.intra_op_num_threads = 2
    if way == "no-arena":
        options.enable_cpu_mem_arena = False
    unet = ort.InferenceSession(str(graph), options)
    rng = np.random.default_rng(0)

    def feeds(side: int) -> dict[str, np.ndarray]:
        out = {}
        for spec in unet.get_inputs():
            if spec.name == "sample":
                out[spec.name] = rng.standard_normal((2, 4, side // 8, side // 8), np.float32)
            elif spec.name == "latent_sample":  # a VAE decoder: one image
                out[spec.name] = rng.standard_normal((1, 4, side // 8, side // 8), np.float32)
            elif spec.name == "encoder_hidden_states":
                out[spec.name] = rng.standard_normal((2, 77, spec.shape[2]), np.float32)
            elif spec.name == "timestep":
                kind = np.int64 if "int64" in spec.type else np.float32
                out[spec.name] = np.full([2] if spec.shape else [], 500, dtype=kind)
        return out

    def run(side: int, shrink: bool) -> float:
        run_options = releasing_run_options() if shrink else ort.RunOptions()
        given = feeds(side)
        started = time.perf_counter()
        unet.run(None, given, run_options)
        return time.perf_counter() - started

    opened = _rss_mib()
    run(big, way in ("shrink", "shrink-last"))
    after_big = _rss_mib()
    seconds = [run(size, way == "shrink" or (way == "shrink-last" and i == calls - 1))
               for i in range(calls)]  # fmt: skip
    print(json.dumps({
        "opened": opened, "after_big": after_big, "after_last": _rss_mib(),
        "median_s": statistics.median(seconds[1:] if calls > 2 else seconds),
    }))  # fmt: skip


def whole(model: Path, size: int, steps: int, rounds: int) -> None:
    """Median seconds of whole generations, releasing against keeping the arena."""
    import onnxruntime as ort

    from impasto.engine import load_pipeline, sessions
    from impasto.engine.providers import cpu_choice
    from impasto.engine.types import GenerationParams

    release = load_pipeline(model, cpu_choice())
    default = sessions.releasing_run_options
    sessions.releasing_run_options = ort.RunOptions  # type: ignore[assignment]
    try:
        keep = load_pipeline(model, cpu_choice())
    finally:
        sessions.releasing_run_options = default
    params = GenerationParams(
        prompt="a red circle on a white background", width=size, height=size, steps=steps,
        cfg_scale=7.0, seed=1, sampler="euler",
    )  # fmt: skip
    seconds: dict[str, list[float]] = {"release": [], "keep": []}
    for _ in range(rounds + 1):  # the first round warms both up and is not counted
        for way, pipe in (("release", release), ("keep", keep)):
            started = time.perf_counter()
            pipe.generate(params)
            seconds[way].append(time.perf_counter() - started)
    got = {way: statistics.median(found[1:]) for way, found in seconds.items()}
    print(f"{model.name}, {size}x{size}, {steps} steps euler, CFG 7; medians of {rounds}")
    print("| way | s per image | /keep |")
    print("|---|---:|---:|")
    for way, value in got.items():
        print(f"| {way} | {value:.3f} | {value / got['keep']:.3f} |")


def measure(unet: Path, way: str, big: int, size: int, calls: int) -> dict[str, float]:
    command = [sys.executable, "-P", __file__, "--child", str(unet), way, str(big), str(size),
               str(calls)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{way} failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tiny" / "impasto-shapes")
    parser.add_argument("--big", type=int, default=1024, help="side of the large call")
    parser.add_argument("--size", type=int, default=256, help="side of the later calls")
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--component", default="unet", choices=["unet", "vae_decoder"])
    parser.add_argument("--whole", action="store_true", help="time whole generations")
    parser.add_argument("--steps", type=int, default=20, help="with --whole")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.whole:
        whole(args.model, args.size, args.steps, args.rounds)
        return 0
    if args.child:
        path, way, big, size, calls = args.child
        child(Path(path), way, int(big), int(size), int(calls))
        return 0
    unet = args.model / args.component / "model.onnx"
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            runs[way].append(measure(unet, way, args.big, args.size, args.calls))
    med = {
        way: {key: statistics.median(r[key] for r in found) for key in found[0]}
        for way, found in runs.items()
    }
    base = med["arena"]
    print(f"{args.model.name} {args.component} (UNet: batch 2): one call at {args.big}, then "
          f"{args.calls} at "
          f"{args.size}; medians of {args.rounds} rounds")  # fmt: skip
    print("| way | opened MiB | after the large call MiB | after the last call MiB | "
          "/arena | s per call | /arena |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for way, got in med.items():
        print(
            f"| {way} | {got['opened']:.0f} | {got['after_big']:.0f} | {got['after_last']:.0f} "
            f"| {got['after_last'] / base['after_last']:.3f} | {got['median_s']:.3f} "
            f"| {got['median_s'] / base['median_s']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
