"""Peak memory of the exported attention against ONNX Runtime's fused kernel, by image size.

    .venv/bin/python bench/attention_memory.py                       # sd-tiny, 512 and 1024
    .venv/bin/python bench/attention_memory.py --model DIR --sizes 512,1024,1792x1024

An exported graph computes each attention block as MatMul-Softmax-MatMul and so holds the
whole tokens x tokens matrix per head and image: at 1792x1024 (28,672 latent tokens) that is
3.3 GB per head for every image of the batch. The fused ``MultiHeadAttention`` never builds
it. For the pipeline folder ``--model`` (as exported, attention unfused) the benchmark writes
a fused copy with the install's ``fuse_folder``, then for each size and each of the two runs
one UNet call at batch 2 (classifier-free guidance) and one VAE decode in a fresh process, and
prints each process's peak resident memory (its own ``ru_maxrss``), fused/exported, and the
seconds of the two calls.
A size whose exported run would need more than ``--limit-gb`` is not run (its estimate is
printed instead): the kernel's out-of-memory killer is not a measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height or width)


def child(folder: Path, width: int, height: int) -> None:
    """One UNet call (batch 2) and one VAE decode; prints seconds as JSON."""
    import numpy as np
    import onnxruntime as ort

    from impasto.engine.providers import cpu_choice
    from impasto.engine.sessions import session_options

    options = session_options(cpu_choice())  # as the worker opens it, without the cache
    options.intra_op_num_threads = 2
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((2, 4, height // 8, width // 8), dtype=np.float32)
    unet = ort.InferenceSession(str(folder / "unet" / "model.onnx"), options)
    feeds = {}
    for spec in unet.get_inputs():
        if spec.name == "sample":
            feeds[spec.name] = latents
        elif spec.name == "encoder_hidden_states":
            feeds[spec.name] = rng.standard_normal((2, 77, spec.shape[2]), dtype=np.float32)
        elif spec.name == "timestep":
            kind = np.int64 if "int64" in spec.type else np.float32
            feeds[spec.name] = np.full([2] if spec.shape else [], 500, dtype=kind)
    started = time.perf_counter()
    unet.run(None, feeds)
    unet_s = time.perf_counter() - started
    del unet
    decoder = ort.InferenceSession(str(folder / "vae_decoder" / "model.onnx"), options)
    started = time.perf_counter()
    decoder.run(None, {decoder.get_inputs()[0].name: latents[:1]})
    vae_s = time.perf_counter() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"unet_s": unet_s, "vae_s": vae_s, "rss_mib": rss_mib}))


def measure(folder: Path, width: int, height: int) -> dict[str, float]:
    """Run ``child`` in a fresh process; its seconds and peak RSS in MiB."""
    command = [sys.executable, "-P", __file__, "--child", str(folder), f"{width}x{height}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{folder} at {width}x{height} failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.splitlines()[-1]))


def unfused_estimate_gb(folder: Path, width: int, height: int) -> float:
    """The score matrix of the UNet's outermost self-attention, for both images and every
    head, as the exported graph holds it (a lower bound: Softmax writes a second one)."""
    config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    heads = config.get("attention_head_dim", 8)
    heads = heads[0] if isinstance(heads, list) else heads
    tokens = (width // 8) * (height // 8)
    return 2 * heads * tokens * tokens * 4 / 1024**3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tiny" / "sd-tiny")
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--limit-gb", type=float, default=12.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), *_size(args.child[1]))
        return 0
    from impasto.services.optimize import fuse_folder

    sizes = [_size(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        fused = Path(scratch) / "fused"
        shutil.copytree(args.model, fused)
        print(f"{args.model}: fused {fuse_folder(fused)}")
        print("| size | exported MiB | fused MiB | fused/exported | exported s | fused s |")
        print("|---|---:|---:|---:|---:|---:|")
        for width, height in sizes:
            estimate = unfused_estimate_gb(args.model, width, height)
            got = measure(fused, width, height)
            fused_s = got["unet_s"] + got["vae_s"]
            if estimate > args.limit_gb:
                print(
                    f"| {width}x{height} | not run (needs over {estimate:.1f} GB) | "
                    f"{got['rss_mib']:.0f} | | | {fused_s:.2f} |"
                )
                continue
            base = measure(args.model, width, height)
            print(
                f"| {width}x{height} | {base['rss_mib']:.0f} | {got['rss_mib']:.0f} | "
                f"{got['rss_mib'] / base['rss_mib']:.3f} | "
                f"{base['unet_s'] + base['vae_s']:.2f} | {fused_s:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
