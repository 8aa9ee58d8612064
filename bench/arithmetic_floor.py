"""How close a UNet call comes to the CPU's fp32 arithmetic limit, ours and diffusers', in one run.

    .venv/bin/python -P bench/arithmetic_floor.py                 # SD 1.5 shape, 512x512, CFG
    .venv/bin/python -P bench/arithmetic_floor.py --size 256 --runs 3

The work of one UNet call is counted from the graph itself: every Conv, MatMul and Gemm of the
SD 1.5-shaped export (``models/build_tiny.py --shape sd15``), its shapes found by ONNX Runtime's
symbolic shape inference at batch 2 (a classifier-free-guidance step) and ``--size``, at two
floating-point operations per multiply-add. The machine's fp32 rate is the best of several
4096 x 4096 MatMuls in ONNX Runtime on ``--threads`` threads (the kernels every convolution and
projection ends in). Their quotient is the floor: the time a call cannot beat in fp32 without
doing less arithmetic. Then one call of the fused UNet as installs write it (ONNX Runtime, the
production session options) and one of diffusers' torch UNet on the same weights, each in a
fresh process, the median of ``--runs`` after a warm-up.

Prints the count, the rate, the floor, both calls, each over the floor, and the rate a call
would need to meet a given ours/diffusers ratio (issue 15's 0.55).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SD15 = Path("~/.cache/impasto/bench/sd15").expanduser()
HERE = Path(__file__).resolve().parent
MATMUL_SIDE = 4096


def _without_weights(path: Path) -> Any:
    """The graph with its weights left out: each initializer stored outside the file becomes an
    input of its shape (shape inference needs no values), each constant an attribute holds
    outside is read in. (onnx refuses to load the bench export's hard-linked weights file.)"""
    import onnx
    from onnx import helper

    model = onnx.load(path, load_external_data=False)
    graph = model.graph

    def external(tensor: Any) -> dict[str, str] | None:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return None
        return {entry.key: entry.value for entry in tensor.external_data}

    kept = []
    for init in graph.initializer:
        if external(init) is None:
            kept.append(init)
        else:
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for node in graph.node:
        for attr in node.attribute:
            where = external(attr.t) if attr.HasField("t") else None
            if where is None:
                continue
            with open(path.parent / where["location"], "rb") as handle:
                handle.seek(int(where.get("offset", 0)))
                attr.t.raw_data = handle.read(int(where["length"]))
            del attr.t.external_data[:]
            attr.t.data_location = onnx.TensorProto.DEFAULT
    return model


def count_flops(path: Path, size: int, batch: int = 2) -> dict[str, float]:
    """Floating-point operations of one call, by operator (Conv, MatMul, Gemm)."""
    import numpy as np
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = _without_weights(path)
    fixed = {"sample": [batch, 4, size // 8, size // 8], "encoder_hidden_states": [batch, 77, 768]}
    for value in model.graph.input:
        sides = fixed.get(value.name)
        for dim, side in zip(value.type.tensor_type.shape.dim, sides or [], strict=bool(sides)):
            dim.ClearField("dim_param")
            dim.dim_value = side
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    graph = inferred.graph
    shapes = {
        info.name: [
            d.dim_value if d.HasField("dim_value") else None
            for d in info.type.tensor_type.shape.dim
        ]
        for info in [*graph.value_info, *graph.input, *graph.output]
    }
    shapes |= {init.name: list(init.dims) for init in graph.initializer}
    flops: dict[str, float] = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        out, first = shapes.get(node.output[0]), shapes.get(node.input[0])
        if not out or None in out or not first or None in first:
            raise SystemExit(f"no shape for {node.op_type} {node.name}: {first} -> {out}")
        if node.op_type == "Conv":
            per_output = int(np.prod(shapes[node.input[1]][1:]))  # in channels x kernel
        else:
            per_output = first[-1]  # Gemm here never transposes A
        flops[node.op_type] = flops.get(node.op_type, 0.0) + 2.0 * float(np.prod(out)) * per_output
    return flops


def matmul_rate(threads: int, runs: int = 7) -> float:
    """The best fp32 GFLOP/s of a square MatMul in ONNX Runtime on ``threads`` threads."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    side = MATMUL_SIDE
    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [side, side]) for n in "abc"]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", value[:2], value[2:]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((side, side)).astype(np.float32) for n in "ab"}
    session.run(None, feeds)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - start)
    return 2.0 * side**3 / best / 1e9


def child_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from diffusers import UNet2DConditionModel

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    unet = UNet2DConditionModel.from_pretrained(SD15 / "diffusers" / "unet").eval()
    rng = np.random.default_rng(0)
    side = args.size // 8
    sample = torch.from_numpy(rng.standard_normal((2, 4, side, side)).astype(np.float32))
    hidden = torch.from_numpy(rng.standard_normal((2, 77, 768)).astype(np.float32))
    times = []
    with torch.inference_mode():
        unet(sample, 500, hidden)
        for _ in range(args.runs):
            start = time.perf_counter()
            unet(sample, 500, hidden)
            times.append(time.perf_counter() - start)
    return {"times": times}


def _ours(args: argparse.Namespace, fused: Path) -> list[float]:
    """One fused UNet call timed by bench/fusion.py's child (production session options)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-P", str(HERE / "fusion.py"), "--child", "--component", "unet"]
        command += ["--model", str(fused), "--output", f"{tmp}/out.npy", "--size", str(args.size)]
        command += ["--runs", str(args.runs), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"our UNet call failed:\n{done.stderr[-2000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1])["times"])


def _diffusers(args: argparse.Namespace) -> list[float]:
    command = [sys.executable, "-P", __file__, "--child", "--size", str(args.size)]
    command += ["--runs", str(args.runs), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"diffusers' UNet call failed:\n{done.stderr[-2000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1])["times"])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.55, help="an ours/diffusers ratio")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_diffusers(args)))
        return 0
    from impasto.formats.onnx_model import OnnxModel
    from impasto.services.fusion import fuse_attention

    source = SD15 / "onnx" / "unet" / "model.onnx"
    flops = count_flops(source, args.size)
    total = sum(flops.values())
    rate = matmul_rate(args.threads)
    floor = total / 1e9 / rate
    fused = source.with_name(f"model.floor-bench-{time.time_ns()}.onnx")
    model = OnnxModel.load(source)
    fuse_attention(model)
    model.save(fused)
    try:
        ours = statistics.median(_ours(args, fused))
    finally:
        fused.unlink()
    theirs = statistics.median(_diffusers(args))
    parts = ", ".join(f"{op} {value / 1e9:.1f}" for op, value in sorted(flops.items()))
    print(f"\nUNet call, batch 2, {args.size}x{args.size}, {args.threads} threads")
    print(f"work: {total / 1e9:.1f} GFLOP ({parts})")
    print(f"fp32 MatMul rate ({MATMUL_SIDE}^2, ONNX Runtime, best of 7): {rate:.1f} GFLOP/s")
    print("\n| | seconds | / floor | GFLOP/s |\n|---|---:|---:|---:|")
    print(f"| floor (work / rate) | {floor:.2f} | 1.000 | {rate:.1f} |")
    for name, seconds in (("ours (fused, ONNX Runtime)", ours), ("diffusers (torch)", theirs)):
        print(f"| {name} | {seconds:.2f} | {seconds / floor:.3f} | {total / 1e9 / seconds:.1f} |")
    needed = args.target * theirs
    print(
        f"\nours/diffusers {ours / theirs:.3f}. At {args.target} a call would take {needed:.2f} s: "
        f"{total / 1e9 / needed:.1f} GFLOP/s, {floor / needed:.2f} x the MatMul rate."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
