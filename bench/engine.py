"""Engine benchmark: our pipeline against its ONNX floor, optimum and diffusers, same latents.

    .venv/bin/python bench/engine.py                  # tiny model + SD 1.5 shape at 256x256
    .venv/bin/python bench/engine.py --full           # also 512x512
    .venv/bin/python bench/engine.py --levels         # ORT graph optimisation levels, SD 1.5 UNet
    .venv/bin/python bench/engine.py --sampler-table  # ours/floor for every sampler

Every implementation runs in its own fresh subprocess (so torch is never in our process, and
one 3.4 GB model is resident at a time), with the same thread count, sampler, steps, cfg and
starting latents. The first generation is a warm-up; the table reports the median of ``--runs``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "models" / "tiny" / "sd-tiny"
# build_tiny.py with --keep-diffusers; seeded, so the same weights as the committed ONNX.
TINY_DIFFUSERS = Path("~/.cache/impasto/bench/tiny/diffusers/sd-tiny").expanduser()
SD15 = Path("~/.cache/impasto/bench/sd15").expanduser()
PROMPT, NEGATIVE = "a lighthouse on a cliff at dusk, oil painting", "blurry, low quality"
IMPLEMENTATIONS = ("ours", "optimum", "diffusers")


# ---------------------------------------------------------------- children (one per process)


def _latents(size: int) -> Any:
    import numpy as np

    shape = (1, 4, size // 8, size // 8)
    return np.random.default_rng(42).standard_normal(shape).astype(np.float32)


def _timed_runs(run: Any, runs: int, warmup: bool = True) -> list[float]:
    if warmup:  # first-call allocations and kernel selection are not steady state
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _load_ours(args: argparse.Namespace) -> tuple[Any, float]:
    from impasto.engine import load_pipeline
    from impasto.engine.providers import cpu_choice

    choice = dataclasses.replace(cpu_choice(), threads=args.threads)  # as production, no cache
    start = time.perf_counter()
    pipe = load_pipeline(Path(args.onnx), choice)
    return pipe, time.perf_counter() - start


def _ours_run(pipe: Any, args: argparse.Namespace, sampler: str) -> tuple[Any, dict[str, Any]]:
    """One generation with ``sampler`` as a callable, and where it records floor and parts."""
    from impasto.engine import GenerationParams

    params = GenerationParams(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        width=args.size,
        height=args.size,
        steps=args.steps,
        cfg_scale=args.cfg,
        seed=1,
        sampler=sampler,
    )
    latents = _latents(args.size)
    record: dict[str, Any] = {"floor": [], "text": [], "unet": [], "vae": []}

    def run() -> None:
        before = pipe.session_seconds
        marks = [pipe.text_model.run_seconds, pipe.unet.model.run_seconds]
        marks.append(pipe.vae.decoder.run_seconds)
        pipe.generate(params, latents=latents)
        record["floor"].append(pipe.session_seconds - before)
        record["text"].append(pipe.text_model.run_seconds - marks[0])
        record["unet"].append(pipe.unet.model.run_seconds - marks[1])
        record["vae"].append(pipe.vae.decoder.run_seconds - marks[2])

    return run, record


def child_ours(args: argparse.Namespace) -> dict[str, Any]:
    """Our engine; also the floor (time inside ONNX Runtime) of each run."""
    pipe, load = _load_ours(args)
    run, record = _ours_run(pipe, args, args.sampler)
    times = _timed_runs(run, args.runs)
    return {
        "times": times,
        "floor": record["floor"][1:],
        "parts": {
            k: statistics.median(record[k][1:] or record[k]) for k in ("text", "unet", "vae")
        },
        "load": load,
    }


def child_samplers(args: argparse.Namespace) -> dict[str, Any]:
    """Every sampler of ``--samplers`` in one process: one load and warm-up, then ``--runs`` each.

    The samplers take turns ``--rounds`` times, so a change of machine load spreads over all.
    """
    pipe, load = _load_ours(args)
    samplers = args.samplers.split(",")
    warm_up, _ = _ours_run(pipe, args, samplers[0])
    warm_up()  # first-call allocations and kernel selection are not steady state
    rows: dict[str, dict[str, list[float]]] = {s: {"times": [], "floor": []} for s in samplers}
    for _ in range(args.rounds):
        for sampler in samplers:
            run, record = _ours_run(pipe, args, sampler)
            for _ in range(args.runs):
                start = time.perf_counter()
                run()
                rows[sampler]["times"].append(time.perf_counter() - start)
            rows[sampler]["floor"] += record["floor"]
    return {"rows": rows, "load": load}


DIFFUSERS_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
"""Samplers optimum and diffusers can run too (the others are timed for ours only)."""


def _torch_scheduler(pipe: Any, sampler: str) -> None:
    import diffusers

    name, overrides = DIFFUSERS_SCHEDULERS[sampler]
    # SD's configs mean clip_sample False; DDIMScheduler's own default is True.
    settings = {"clip_sample": False, **overrides}
    pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config, **settings)


def _torch_call(pipe: Any, args: argparse.Namespace) -> Any:
    import torch

    latents = torch.from_numpy(_latents(args.size))
    return lambda: pipe(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=args.steps,
        guidance_scale=args.cfg,
        height=args.size,
        width=args.size,
        latents=latents,
        output_type="pil",
    )


def child_optimum(args: argparse.Namespace) -> dict[str, Any]:
    """optimum's ORTStableDiffusionPipeline on the same ONNX folder, its default optimisation."""
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTStableDiffusionPipeline

    torch.set_num_threads(args.threads)  # its glue (scheduler, image processing) runs in torch
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    start = time.perf_counter()
    pipe = ORTStableDiffusionPipeline.from_pretrained(
        args.onnx, provider="CPUExecutionProvider", session_options=options
    )
    load = time.perf_counter() - start
    _torch_scheduler(pipe, args.sampler)
    return {"times": _timed_runs(_torch_call(pipe, args), args.runs), "load": load}


def child_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """diffusers' PyTorch StableDiffusionPipeline (fp32, CPU) on the same weights."""
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.diffusers, safety_checker=None)
    load = time.perf_counter() - start
    pipe.set_progress_bar_config(disable=True)
    _torch_scheduler(pipe, args.sampler)
    return {"times": _timed_runs(_torch_call(pipe, args), args.runs), "load": load}


def child_rss(args: argparse.Namespace) -> dict[str, Any]:
    """Peak resident memory of a fresh process that loads the model and generates once."""
    import resource

    result = child_ours(argparse.Namespace(**{**vars(args), "runs": 0}))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_rss_mib": peak_kib / 1024, "load": result["load"]}


def child_import(_: argparse.Namespace) -> dict[str, Any]:
    """Idle engine import plus provider selection, timed from inside a fresh interpreter."""
    start = time.perf_counter()
    from impasto.engine import select_providers

    imported = time.perf_counter()
    choice = select_providers()
    done = time.perf_counter()
    return {"import": imported - start, "select": done - imported, "provider": choice.name}


def child_level(args: argparse.Namespace) -> dict[str, Any]:
    """One UNet session at one graph optimisation level: creation time and per-step time."""
    import numpy as np
    import onnxruntime as ort

    from impasto.engine import session_cache
    from impasto.engine.sessions import LEVELS

    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[args.level]
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    if args.cache:  # writes the optimised graph into the folder, as the session cache does
        plan = session_cache.CachePlan(Path(args.cache), args.level, save_dir=Path(args.cache))
        session_cache.configure(options, plan)
    path = str(Path(args.onnx) / "unet" / "model.onnx") if not args.model else args.model
    start = time.perf_counter()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - start
    side = args.size // 8
    rng = np.random.default_rng(0)
    feeds = {
        "sample": rng.standard_normal((2, 4, side, side)).astype(np.float32),
        "timestep": np.asarray(999.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((2, 77, 768)).astype(np.float32),
    }
    times = _timed_runs(lambda: session.run(None, feeds), args.runs)
    return {"create": created, "times": times}


CHILDREN = {
    "level": child_level,
    "ours": child_ours,
    "samplers": child_samplers,
    "optimum": child_optimum,
    "diffusers": child_diffusers,
    "rss": child_rss,
    "import": child_import,
}


# ---------------------------------------------------------------- parent


def spawn(kind: str, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """Run one child in a fresh interpreter and return its JSON result (or an error)."""
    # -P: bench/ must not go first on the path, where bench/queue.py would shadow the
    # standard library queue that torch imports (the diffusers and optimum children).
    argv = [sys.executable, "-P", __file__, "--child", kind]
    for key, value in {**vars(args), **extra}.items():
        if key in ("child", "full", "levels", "sampler_table") or value is None or value is False:
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    threads = str(args.threads)
    env = os.environ | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(lines[-1]) | {"wall": wall}


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:8.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.3f}"


def table(
    name: str, onnx: Path, diffusers: Path | None, size: int, args: argparse.Namespace
) -> None:
    """Measure the three implementations for one model and size and print one table."""
    results: dict[str, dict[str, Any]] = {}
    # Implementations take turns, round after round: on a shared machine the load drifts over
    # minutes, and running each one only once would hand the drift to whichever ran last.
    for _ in range(args.rounds):
        for kind in IMPLEMENTATIONS:
            if kind == "diffusers" and (diffusers is None or not diffusers.is_dir()):
                results[kind] = {"error": f"no diffusers folder ({diffusers})"}
                continue
            if kind != "ours" and args.sampler not in DIFFUSERS_SCHEDULERS:
                results[kind] = {"error": f"diffusers has no {args.sampler} scheduler"}
                continue
            result = spawn(kind, args, onnx=onnx, diffusers=diffusers, size=size)
            merged = results.setdefault(kind, {})
            if "error" in result or "error" in merged:
                merged.setdefault("error", result.get("error"))
                continue
            for key in ("times", "floor"):
                if key in result:
                    merged[key] = merged.get(key, []) + result[key]
            merged["parts"], merged["load"] = result.get("parts"), result["load"]
    results = {k: {"error": r["error"]} if r.get("error") else r for k, r in results.items()}
    medians = {
        k: statistics.median(r["times"]) if "times" in r else None for k, r in results.items()
    }
    ours = results["ours"]
    floor = statistics.median(ours["floor"]) if "floor" in ours else None
    print(
        f"\n### {name} {size}x{size}, {args.sampler}, {args.steps} steps, cfg {args.cfg}, "
        f"{args.threads} threads, median of {args.rounds} x {args.runs}"
    )
    print("\n| | seconds | load s |\n|---|---:|---:|")
    print(f"| floor (ONNX runs inside ours) | {_fmt(floor)} | |")
    for kind in IMPLEMENTATIONS:
        load = results[kind].get("load")
        print(f"| {kind} | {_fmt(medians[kind])} | {_fmt(load)} |")
    print(
        f"\nours/floor {_ratio(medians['ours'], floor)} (target <= 1.03), "
        f"ours/optimum {_ratio(medians['ours'], medians['optimum'])} (<= 1.0), "
        f"ours/diffusers {_ratio(medians['ours'], medians['diffusers'])} (<= 0.67)"
    )
    if ours.get("parts"):
        parts = ", ".join(f"{k} {v:.3f} s" for k, v in ours["parts"].items())
        print(f"ours inside ONNX Runtime: {parts}")
    for kind, result in results.items():
        if "times" in result:
            spread = ", ".join(f"{t:.3f}" for t in result["times"])
            print(f"{kind} runs: {spread}")
        else:
            print(f"{kind}: {result['error']}")


def sampler_table(name: str, onnx: Path, size: int, args: argparse.Namespace) -> None:
    """ours/floor for every sampler: what each adds around the ONNX sessions.

    All samplers run in one fresh process (one model load), taking turns ``--rounds`` times;
    each row's floor is the time inside ONNX Runtime in that row's own runs.
    """
    from impasto.engine.schedulers import SAMPLER_SPECS

    samplers = args.samplers or ",".join(SAMPLER_SPECS)
    result = spawn("samplers", args, onnx=onnx, size=size, samplers=samplers)
    if "error" in result:
        print(f"samplers: {result['error']}")
        return
    print(
        f"\n### {name} {size}x{size}, {args.steps} steps, cfg {args.cfg}, {args.threads} threads, "
        f"median of {args.rounds} x {args.runs} (one process, load {result['load']:.1f} s)\n"
    )
    print("| sampler | ours s | floor s | ours/floor | ours - floor ms |")
    print("|---|---:|---:|---:|---:|")
    for sampler, row in result["rows"].items():
        ours, floor = statistics.median(row["times"]), statistics.median(row["floor"])
        extra = (ours - floor) * 1000
        print(f"| {sampler} | {ours:.3f} | {floor:.3f} | {_ratio(ours, floor)} | {extra:.0f} |")
    print(f"\nworst ours/floor {max(_worst(r) for r in result['rows'].values()):.4f}")


def _worst(row: dict[str, list[float]]) -> float:
    return statistics.median(row["times"]) / statistics.median(row["floor"])


def idle_and_memory(args: argparse.Namespace) -> None:
    """Import + provider selection time, and a tiny generation's peak RSS."""
    imp = spawn("import", args)
    if "error" in imp:
        print(f"\nimport: {imp['error']}")
    else:
        print(
            f"\nengine import {imp['import']:.3f} s + provider selection {imp['select']:.3f} s "
            f"= {imp['import'] + imp['select']:.3f} s ({imp['provider']}; fresh interpreter "
            f"wall incl. Python start-up {imp['wall']:.3f} s; target < 1 s)"
        )
    rss = spawn("rss", args, onnx=TINY, size=args.tiny_size)
    if "error" in rss:
        print(f"rss: {rss['error']}")
    else:
        print(
            f"peak RSS of a fresh process loading sd-tiny and generating one "
            f"{args.tiny_size}x{args.tiny_size} image: {rss['peak_rss_mib']:.0f} MiB"
        )


def _level_row(label: str, results: list[dict[str, Any]]) -> str:
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return f"| {label} | {errors[0]} | | |"
    creates = [r["create"] for r in results]
    steps = [t for r in results for t in r["times"]]
    return (
        f"| {label} | {min(creates):.2f} ({statistics.median(creates):.2f}) "
        f"| {min(steps):.3f} | {statistics.median(steps):.3f} |"
    )


def levels(args: argparse.Namespace) -> None:
    """Print session creation and per-step time of the SD 1.5 UNet at each level (CPU).

    The levels take turns, ``--rounds`` times, each in a fresh process: on a shared machine
    the minimum over rounds is the cost without other people's load, the median shows the noise.
    """
    size = args.size or 256
    onnx = SD15 / "onnx"
    names = ["disabled", "basic", "extended", "all"]
    cached = args.cache_levels.split(",") if args.cache_levels else []
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="impasto-levels-") as tmp:
        for level in cached:
            # The session cache's path: optimise once and save, then open the copy unoptimised.
            saved = Path(tmp) / level
            saved.mkdir()
            results[f"{level}, saving"] = [
                spawn("level", args, onnx=onnx, size=size, level=level, cache=saved)
            ]
        for _ in range(args.rounds):
            for level in names:
                result = spawn("level", args, onnx=onnx, size=size, level=level)
                results.setdefault(level, []).append(result)
            for level in cached:
                model = Path(tmp) / level / "model.onnx"
                result = spawn("level", args, size=size, level="disabled", model=model)
                results.setdefault(f"{level}, from cache", []).append(result)
    print(
        f"\n### ORT graph optimisation level, SD 1.5-shaped UNet fp32, batch 2, {size}x{size}, "
        f"{args.threads} threads; {args.rounds} rounds x {args.runs} steps after a warm-up"
    )
    print("\n| level | session creation s, min (median) | step s, min | step s, median |")
    print("|---|---:|---:|---:|")
    for label, rows in results.items():
        print(_level_row(label, rows))


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; the child-only ones are hidden from --help."""
    from impasto.engine.schedulers import SAMPLER_SPECS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also 512x512 for SD 1.5 shape")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--sampler", choices=list(SAMPLER_SPECS), default="euler")
    parser.add_argument(
        "--sampler-table", action="store_true", help="ours/floor for every sampler (ours only)"
    )
    parser.add_argument("--samplers", help="comma list for --sampler-table (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="same for ORT and torch")
    parser.add_argument("--sizes", default="256", help="SD 1.5 image sides, comma list")
    parser.add_argument("--tiny-size", type=int, default=256)
    parser.add_argument("--models", default="tiny,sd15", help="comma list: tiny, sd15")
    parser.add_argument("--levels", action="store_true", help="measure ORT graph levels")
    parser.add_argument(
        "--cache-levels", default="extended,all", help="levels --levels also saves and reloads"
    )
    parser.add_argument("--rounds", type=int, default=1, help="fresh-process rounds, alternating")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    parser.add_argument("--diffusers", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--level", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print one table per model and size, then idle import time and peak RSS."""
    args = parse(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return 0
    if args.levels:
        levels(args)
        return 0
    print(f"# Engine benchmark ({os.cpu_count()} CPUs, {sys.platform}, python {sys.version[:6]})")
    models = args.models.split(",")
    if args.sampler_table:
        if "tiny" in models:
            sampler_table("sd-tiny", TINY, args.tiny_size, args)
        if "sd15" in models and (SD15 / "onnx" / "unet").is_dir():
            for size in sorted({int(x) for x in args.sizes.split(",")}):
                sampler_table("SD 1.5 shape", SD15 / "onnx", size, args)
        elif "sd15" in models:
            print(f"\n{SD15} is missing: run python models/build_tiny.py --shape sd15")
        return 0
    if "tiny" in models:
        table("sd-tiny", TINY, TINY_DIFFUSERS, args.tiny_size, args)
    if "sd15" in models:
        if not (SD15 / "onnx" / "unet").is_dir():
            print(f"\n{SD15} is missing: run python models/build_tiny.py --shape sd15")
        else:
            sizes = [int(x) for x in args.sizes.split(",")] + ([512] if args.full else [])
            for size in sorted(set(sizes)):
                table("SD 1.5 shape", SD15 / "onnx", SD15 / "diffusers", size, args)
    idle_and_memory(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
