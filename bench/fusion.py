"""Fused attention and int8 against the exported graphs, component by component, same inputs.

    .venv/bin/python bench/fusion.py                          # SD 1.5 shape, UNet + VAE decoder
    .venv/bin/python bench/fusion.py --size 512 --runs 2 --rounds 2
    .venv/bin/python bench/fusion.py --components unet --int8  # also the dynamic-int8 UNet
    .venv/bin/python bench/fusion.py --components unet --int8 --int8-ort  # and ORT's quantiser's

For each component of the SD 1.5-shaped model (``models/build_tiny.py --shape sd15``) it
writes the fused graph beside the exported one for the run (ORT wants external weights in the
graph's own folder), and with ``--int8`` the quantised UNet in a scratch folder, then times
calls of each variant in a fresh process: the UNet at batch 2 (classifier-free guidance), the
VAE decoder at batch 1, on ``--threads`` threads at the CPU provider's level. Prints ms per
call (median, and the fastest run: on a loaded machine other work only ever adds time),
fused/exported and int8/exported ratios, and the largest absolute difference of each
variant's output from the exported graph's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SD15 = Path("~/.cache/impasto/bench/sd15/onnx").expanduser()
# Written beside each graph for the run and removed after; one name per run.
FUSED = f"model.fused-bench-{os.getpid()}.onnx"


def _feeds(component: str, size: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    side = size // 8
    if component == "unet":
        return {
            "sample": rng.standard_normal((2, 4, side, side)).astype(np.float32),
            "timestep": np.array([500.0], np.float32),
            "encoder_hidden_states": rng.standard_normal((2, 77, 768)).astype(np.float32),
        }
    return {"latent_sample": rng.standard_normal((1, 4, side, side)).astype(np.float32)}


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Open one graph and time ``--runs`` calls after a warm-up; save its output."""
    import numpy as np
    import onnxruntime as ort

    from impasto.engine.providers import cpu_choice
    from impasto.engine.sessions import session_options

    choice = cpu_choice()
    options = session_options(choice)
    options.intra_op_num_threads = args.threads
    start = time.perf_counter()
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    opened = time.perf_counter() - start
    feeds = _feeds(args.component, args.size)
    if "timestep" in feeds and session.get_inputs()[1].shape == []:
        feeds["timestep"] = feeds["timestep"].reshape(())
    out = session.run(None, feeds)[0]
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    np.save(args.output, out)
    return {"open": opened, "times": times}


def _ort_quantised(source: Path, fused: Path, scratch: Path) -> Path:
    """The fused UNet quantised by ONNX Runtime's own ``quantize_dynamic``, with the options
    Impasto used before it wrote its own int8 graphs (services/int8.py)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from impasto.engine.onnx_external import read_external_data_locations

    # onnx refuses linked weights (a "hardlink attack"): the quantiser gets real copies.
    source_dir = scratch / "fused-copy"
    source_dir.mkdir(parents=True)
    shutil.copyfile(fused, source_dir / "model.onnx")
    for name in set(read_external_data_locations(fused)):
        shutil.copyfile(source.parent / name, source_dir / name)
    target = scratch / "int8-ort" / "model.onnx"
    target.parent.mkdir(parents=True)
    start = time.perf_counter()
    quantize_dynamic(
        source_dir / "model.onnx",
        target,
        op_types_to_quantize=["MatMul", "Gemm"],
        weight_type=QuantType.QInt8,
        reduce_range=True,
        use_external_data_format=True,
        extra_options={"MatMulConstBOnly": True},
    )
    print(f"unet: quantised by onnxruntime in {time.perf_counter() - start:.1f} s", flush=True)
    shutil.rmtree(source_dir)
    return target


def prepare(
    scratch: Path, components: list[str], int8: bool, int8_ort: bool = False
) -> dict[str, dict[str, Path]]:
    """The exported, fused (and int8) graph of each component, weights linked, not copied."""
    from impasto.formats.onnx_model import OnnxModel
    from impasto.services.fusion import fuse_attention
    from impasto.services.optimize import quantize_unet

    paths: dict[str, dict[str, Path]] = {}
    for component in components:
        source = SD15 / component / "model.onnx"
        # Beside the original: ORT refuses external data outside the graph's folder, links too.
        fused = source.with_name(FUSED)
        model = OnnxModel.load(source)
        count = fuse_attention(model)
        model.save(fused)
        print(f"{component}: {count} attention blocks fused", flush=True)
        paths[component] = {"exported": source, "fused": fused}
        if int8 and component == "unet":
            int8_dir = scratch / component / "int8"
            start = time.perf_counter()
            quantize_unet(fused, int8_dir / "model.onnx")  # reads the weights where they are
            print(f"unet: quantised in {time.perf_counter() - start:.1f} s", flush=True)
            paths[component]["int8"] = int8_dir / "model.onnx"
        if int8_ort and component == "unet":
            paths[component]["int8-ort"] = _ort_quantised(source, fused, scratch / component)
    return paths


def run_child(args: argparse.Namespace, component: str, model: Path, output: Path) -> Any:
    command = [sys.executable, __file__, "--child", "--component", component, "--model", str(model)]
    command += ["--output", str(output), "--size", str(args.size), "--runs", str(args.runs)]
    command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{component} {model} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="variants take turns N times")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--components", default="unet,vae_decoder")
    parser.add_argument("--int8", action="store_true", help="also a dynamic-int8 UNet")
    parser.add_argument(
        "--int8-ort",
        action="store_true",
        help="also the UNet quantised by onnxruntime's quantize_dynamic (needs onnx)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--component", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if not (SD15 / "unet" / "model.onnx").is_file():
        print(f"{SD15} is missing: run python models/build_tiny.py --shape sd15")
        return 1
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    with tempfile.TemporaryDirectory(prefix="impasto-fusion-bench-") as tmp:
        try:
            report(args, Path(tmp))
        finally:
            for graph in SD15.glob(f"*/{FUSED}"):
                graph.unlink()
    return 0


def report(args: argparse.Namespace, scratch: Path) -> None:
    """Prepare the variants, time them in turns, print the table of each component."""
    import numpy as np

    paths = prepare(scratch, args.components.split(","), args.int8, args.int8_ort)
    for component, variants in paths.items():
        times: dict[str, list[float]] = {name: [] for name in variants}
        opens: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, model in variants.items():
                result = run_child(args, component, model, scratch / f"{component}-{name}.npy")
                times[name] += result["times"]
                opens[name].append(result["open"])
        reference = np.load(scratch / f"{component}-exported.npy")
        base = statistics.median(times["exported"])
        print(f"\n{component} at {args.size}x{args.size}, {args.threads} threads")
        print(
            f"{'variant':10} {'ms/call':>9} {'ratio':>7} {'min ms':>9} {'ratio':>7} {'open s':>7} "
            f"{'max |diff|':>11}  runs"
        )
        for name in variants:
            output = np.load(scratch / f"{component}-{name}.npy")
            diff = float(np.abs(output - reference).max())
            median, least = statistics.median(times[name]), min(times[name])
            runs = ", ".join(f"{t * 1000:.0f}" for t in times[name])
            print(
                f"{name:10} {median * 1000:9.0f} {median / base:7.3f} {least * 1000:9.0f} "
                f"{least / min(times['exported']):7.3f} "
                f"{statistics.median(opens[name]):7.1f} {diff:11.2e}  {runs}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
