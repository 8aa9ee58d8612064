"""DeepCache and the fast decoder against diffusers, on the SD 1.5 shape, in one run.

    nice .venv/bin/python bench/speed.py                    # both tables, 512x512, 2 threads
    nice .venv/bin/python bench/speed.py --only deepcache   # 20 steps: DeepCache vs diffusers
    nice .venv/bin/python bench/speed.py --only deepcache --int8  # DeepCache on the int8 UNet
    nice .venv/bin/python bench/speed.py --only fast --runs 3  # 1 step, no CFG: TAESD vs diffusers
    nice .venv/bin/python bench/speed.py --only preview     # a TAESD preview against a UNet step
    nice .venv/bin/python bench/speed.py --only parts --runs 2  # per-call times, targets composed

Weights: ``models/build_tiny.py --shape sd15`` (random SD 1.5-shaped weights, and a TAESD with
TAESD's real architecture under ``taesd/``). Each measurement runs in a fresh subprocess with
the same threads, sampler (euler), prompt and starting latents; the ratios are of runs made in
this one invocation, taking turns round after round, so machine load drifts into all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine

SD15 = engine.SD15
# The same pipeline with its UNet quantised to int8 as `--precision int8` installs do it
# (impasto.services.optimize.quantize_unet), the other components linked (--int8).
SD15_INT8 = SD15 / "onnx-int8"
PROMPT, NEGATIVE = "a lighthouse on a cliff at dusk, oil painting", "blurry, low quality"
_latents = engine._latents
_timed = engine._timed_runs


def child_ours(args: argparse.Namespace) -> dict[str, Any]:
    """Our engine with the asked DeepCache interval and decoder."""
    from impasto.engine import GenerationParams, load_pipeline
    from impasto.engine.providers import cpu_choice

    choice = dataclasses.replace(cpu_choice(), threads=args.threads)
    pipe = load_pipeline(SD15_INT8 if args.int8 else SD15 / "onnx", choice)
    params = GenerationParams(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        width=args.size,
        height=args.size,
        steps=args.steps,
        cfg_scale=args.cfg,
        seed=1,
        sampler="euler",
        cache_interval=args.cache_interval,
        decoder=args.decoder,
        fast_decoder=SD15 / "taesd",
    )
    latents = _latents(args.size)
    if args.cache_interval > 1:
        pipe.unet.enable_deep_cache()  # the split and its session load are not a run
    return {"times": _timed(lambda: pipe.generate(params, latents=latents), args.runs, args.warmup)}


def child_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """diffusers' StableDiffusionPipeline (fp32, CPU, AutoencoderKL decode) on the same weights."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    pipe = StableDiffusionPipeline.from_pretrained(SD15 / "diffusers", safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    latents = torch.from_numpy(_latents(args.size))

    def run() -> None:
        pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE if args.cfg > 1 else None,
            num_inference_steps=args.steps,
            guidance_scale=args.cfg,
            height=args.size,
            width=args.size,
            latents=latents,
            output_type="pil",
        )

    return {"times": _timed(run, args.runs, args.warmup)}


def child_preview(args: argparse.Namespace) -> dict[str, Any]:
    """One TAESD preview decode against one UNet step (CFG batch of 2), same sessions as ours."""
    import numpy as np

    from impasto.engine import GenerationParams, load_pipeline
    from impasto.engine.preview import Previewer
    from impasto.engine.providers import cpu_choice

    choice = dataclasses.replace(cpu_choice(), threads=args.threads)
    pipe = load_pipeline(SD15_INT8 if args.int8 else SD15 / "onnx", choice)
    params = GenerationParams(prompt=PROMPT, fast_decoder=SD15 / "taesd")
    fast = pipe.fast_decoder_for(params)
    assert fast is not None
    latents = _latents(args.size)
    side = args.size // 8
    rng = np.random.default_rng(0)
    feeds = {
        "sample": rng.standard_normal((2, 4, side, side)).astype(np.float32),
        "timestep": np.asarray(999.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((2, 77, 768)).astype(np.float32),
    }
    previewer = Previewer(fast)  # as a generation makes its previews (at most 256 px)
    preview = _timed(lambda: previewer(latents), args.runs, True)
    step = _timed(lambda: pipe.unet.model.run(feeds), args.runs, True)
    return {"preview": preview, "step": step}


def _unet_feeds(batch: int, size: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "sample": rng.standard_normal((batch, 4, size // 8, size // 8)).astype(np.float32),
        "timestep": np.asarray(999.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((batch, 77, 768)).astype(np.float32),
    }


def _median(run: Any, runs: int) -> float:
    return statistics.median(_timed(run, runs, True))


def child_parts_ours(args: argparse.Namespace) -> dict[str, Any]:
    """Our sessions one call at a time: full and shallow UNet (batch 2 and 1), VAE, TAESD.

    Each session is opened alone and closed after its calls, so one 3.4 GB UNet (and ONNX
    Runtime's optimisation of it) is in memory at a time, as in a DeepCache generation.
    """
    from impasto.engine.deepcache import split_unet
    from impasto.engine.model_folder import open_model_folder
    from impasto.engine.preview import FastDecoder
    from impasto.engine.providers import cpu_choice
    from impasto.engine.sessions import OrtModel
    from impasto.engine.text_encoder import PromptEncoder
    from impasto.engine.tokenizer import ClipTokenizer
    from impasto.engine.vae import Vae

    choice = dataclasses.replace(cpu_choice(), threads=args.threads)
    folder = open_model_folder(SD15 / "onnx")
    split = split_unet(folder.unet)
    parts: dict[str, float] = {}
    features = {}
    unet = OrtModel(split.full, choice)
    for batch in (2, 1):
        feeds = _unet_feeds(batch, args.size)
        features[batch] = unet.run_outputs(feeds, (0, 1))[1]
        parts[f"unet_b{batch}"] = _median(lambda f=feeds: unet.run(f), args.runs)
    unet.close()
    shallow = OrtModel(split.shallow, choice)
    for batch in (2, 1):
        feeds = _unet_feeds(batch, args.size)
        cut = {k: v for k, v in feeds.items() if k in shallow.inputs}
        cut[split.feature] = features[batch]
        parts[f"shallow_b{batch}"] = _median(lambda c=cut: shallow.run(c), args.runs)
    shallow.close()
    latents = _latents(args.size)
    vae = Vae(OrtModel(folder.vae_decoder, choice), None, folder.vae_scaling_factor)
    parts["vae"] = _median(lambda: vae.decode(latents), args.runs)
    vae.decoder.close()
    fast = FastDecoder(OrtModel(SD15 / "taesd" / "taesd_decoder" / "model.onnx", choice))
    parts["taesd"] = _median(lambda: fast.decode(latents), args.runs)
    text = OrtModel(folder.text_encoder, choice)
    prompts = PromptEncoder(ClipTokenizer(folder.tokenizer_dir, folder.pad_token), text)
    parts["text"] = _median(lambda: prompts.encode_pair(PROMPT, NEGATIVE, 1), args.runs)
    return {"parts": parts}


def child_parts_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """diffusers' torch modules one call at a time: UNet (batch 2 and 1), AutoencoderKL decode."""
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    pipe = StableDiffusionPipeline.from_pretrained(SD15 / "diffusers", safety_checker=None)
    parts: dict[str, float] = {}
    with torch.no_grad():
        for batch in (2, 1):
            feeds = {k: torch.from_numpy(v) for k, v in _unet_feeds(batch, args.size).items()}
            parts[f"unet_b{batch}"] = _median(lambda f=feeds: pipe.unet(**f), args.runs)
        latents = torch.from_numpy(_latents(args.size)) / pipe.vae.config.scaling_factor
        parts["vae"] = _median(lambda: pipe.vae.decode(latents), args.runs)
        parts["text"] = _median(
            lambda: pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE), args.runs
        )
    return {"parts": parts}


def parts_table(args: argparse.Namespace) -> None:
    """Per-call times of both sides in one run, and the two targets composed from them."""
    ours = spawn("parts_ours", args)
    theirs = spawn("parts_diffusers", args)
    if "error" in ours or "error" in theirs:
        print(f"ours: {ours.get('error')}, diffusers: {theirs.get('error')}")
        return
    o, d = ours["parts"], theirs["parts"]
    print(f"\n### Per call, {args.size}x{args.size}, {args.threads} threads, median of {args.runs}")
    print("\n| call | ours s | diffusers s |\n|---|---:|---:|")
    for key in sorted(set(o) | set(d)):
        mine = f"{o[key]:.3f}" if key in o else ""
        print(f"| {key} | {mine} | {d[key]:.3f} |" if key in d else f"| {key} | {mine} | |")
    steps, n = 20, args.interval
    full = len(range(0, steps, n))
    cached = o["text"] + full * o["unet_b2"] + (steps - full) * o["shallow_b2"] + o["vae"]
    plain = o["text"] + steps * o["unet_b2"] + o["vae"]
    reference = d["text"] + steps * d["unet_b2"] + d["vae"]
    print(
        f"\n20 steps, cfg: ours with DeepCache every {n} ({full} full, {steps - full} shallow) "
        f"{cached:.1f} s, ours without {plain:.1f} s, diffusers {reference:.1f} s: "
        f"ours/diffusers {cached / reference:.3f} with DeepCache (target <= 0.35), "
        f"{plain / reference:.3f} without"
    )
    one_fast = o["unet_b1"] + o["taesd"]
    one_ref = d["unet_b1"] + d["vae"]
    print(
        f"1 step, no CFG: ours with the fast decoder {one_fast:.2f} s, diffusers "
        f"(AutoencoderKL) {one_ref:.2f} s: ours/diffusers {one_fast / one_ref:.3f} (target <= 0.3)"
    )
    print(
        f"Live preview: TAESD {o['taesd']:.3f} s / UNet step {o['unet_b2']:.3f} s = "
        f"{o['taesd'] / o['unet_b2']:.3f} (target < 0.05)"
    )


CHILDREN = {
    "ours": child_ours,
    "diffusers": child_diffusers,
    "preview": child_preview,
    "parts_ours": child_parts_ours,
    "parts_diffusers": child_parts_diffusers,
}


def _wait_for_memory(gib: float, patience: float = 900.0) -> None:
    """On a shared machine, start a 3.4 GB model only once that much memory is free."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        with open("/proc/meminfo", encoding="ascii") as info:
            fields = dict(line.split(":", 1) for line in info)
        if int(fields["MemAvailable"].split()[0]) / 1024**2 >= gib:
            return
        time.sleep(5)


def spawn(kind: str, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """Run one child in a fresh interpreter and return its JSON result (or an error)."""
    settings = {**vars(args), **extra}
    if Path("/proc/meminfo").is_file():
        _wait_for_memory(args.free_gib)
    # -P: bench/ is not put on sys.path (its queue.py would hide the standard library's).
    argv = [sys.executable, "-P", __file__, "--child", kind]
    for key in ("size", "threads", "runs", "steps", "cfg", "cache_interval", "decoder"):
        argv += [f"--{key.replace('_', '-')}", str(settings[key])]
    if settings["warmup"]:
        argv.append("--warmup")
    if settings["int8"]:
        argv.append("--int8")
    threads = str(args.threads)
    env = os.environ | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def compare(title: str, target: float, args: argparse.Namespace, cases: dict[str, dict]) -> None:
    """Run each case ``args.rounds`` times in turn; print medians and ours/diffusers."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, extra in cases.items():
            settings = {k: v for k, v in extra.items() if k != "kind"}
            result = spawn(extra.get("kind", "ours"), args, **settings)
            if "error" in result:
                print(f"{name}: {result['error']}")
                continue
            times[name] += result.get("times", [])
    medians = {k: statistics.median(v) for k, v in times.items() if v}
    means = {k: statistics.mean(v) for k, v in times.items() if v}
    print(f"\n### {title}, {args.size}x{args.size}, {args.threads} threads\n")
    print("| | median s | / diffusers | mean s | / diffusers |\n|---|---:|---:|---:|---:|")
    reference, mean_reference = medians.get("diffusers"), means.get("diffusers")
    for name, value in medians.items():
        ratio = f"{value / reference:.3f}" if reference else "n/a"
        mean_ratio = f"{means[name] / mean_reference:.3f}" if mean_reference else "n/a"
        print(f"| {name} | {value:.2f} | {ratio} | {means[name]:.2f} | {mean_ratio} |")
    first = next(iter(medians), None)
    if first and reference and mean_reference and first != "diffusers":
        print(
            f"\n{first}/diffusers {medians[first] / reference:.3f} by the median, "
            f"{means[first] / mean_reference:.3f} by the mean (target <= {target})"
        )
    for name, values in times.items():
        print(f"{name} runs: {', '.join(f'{t:.2f}' for t in values)}")


def int8_pipeline() -> None:
    """SD15_INT8: links to the SD 1.5-shaped export with the UNet quantised (made once)."""
    from impasto.services.optimize import quantize_unet

    if (SD15_INT8 / "unet" / "model.onnx").is_file():
        return
    # The other components as hard links; the UNet is written by the quantiser itself (onnx
    # refuses to read external data through a link).
    shutil.copytree(
        SD15 / "onnx",
        SD15_INT8,
        copy_function=os.link,
        ignore=shutil.ignore_patterns("unet"),
        dirs_exist_ok=True,
    )
    quantize_unet(SD15 / "onnx" / "unet" / "model.onnx", SD15_INT8 / "unet" / "model.onnx")
    shutil.copy(SD15 / "onnx" / "unet" / "config.json", SD15_INT8 / "unet" / "config.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--only", choices=["deepcache", "fast", "preview", "parts"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--cache-interval", type=int, default=0)
    parser.add_argument("--decoder", default="full")
    parser.add_argument("--warmup", action="store_true", help="one untimed run first")
    parser.add_argument(
        "--int8", action="store_true", help="ours on the int8 UNet (deepcache: no uncached row)"
    )
    parser.add_argument("--free-gib", type=float, default=10.0, help="wait for this much memory")
    parser.add_argument("--interval", type=int, default=3, help="DeepCache's (SD 1.x's value)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return 0
    if args.only == "parts":
        parts_table(args)
        return 0
    if args.int8:
        int8_pipeline()
    if args.only in (None, "deepcache"):
        unet = ", int8 UNet" if args.int8 else ""
        cases: dict[str, dict[str, Any]] = {
            f"ours, cache_interval {args.interval}{unet}": {"cache_interval": args.interval},
            "ours, no cache": {},
            "diffusers": {"kind": "diffusers"},
        }
        if args.int8:
            del cases["ours, no cache"]
        compare(
            f"20 steps euler, cfg 7.5: DeepCache every {args.interval} steps{unet}",
            0.35,
            args,
            cases,
        )
    if args.only in (None, "fast"):
        one = {"steps": 1, "cfg": 0.0, "warmup": True}
        compare(
            "1 step, no CFG: fast decoder (TAESD) against diffusers' AutoencoderKL",
            0.3,
            args,
            {
                "ours, decoder fast": {**one, "decoder": "fast"},
                "ours, decoder full": {**one},
                "diffusers": {**one, "kind": "diffusers"},
            },
        )
    if args.only in (None, "preview"):
        result = spawn("preview", args, runs=3)
        if "error" in result:
            print(f"preview: {result['error']}")
        else:
            preview, step = statistics.median(result["preview"]), statistics.median(result["step"])
            print(
                f"\n### Live preview cost, {args.size}x{args.size}\n\nTAESD preview "
                f"{preview * 1000:.0f} ms, UNet step (CFG batch 2) {step * 1000:.0f} ms: "
                f"preview/step {preview / step:.3f} (target < 0.05)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
