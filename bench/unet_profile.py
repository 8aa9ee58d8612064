"""Where a UNet call's time goes inside ONNX Runtime: kernel time per operator type.

    python bench/unet_profile.py                       # the fused SD 1.5-shaped UNet, 512x512
    python bench/unet_profile.py --folder ~/.cache/impasto/bench/sd15/onnx --size 256

Opens ``FOLDER/unet/model.onnx`` on the CPU provider as the engine does (level ``all``, the
given threads), runs it ``--runs`` times on random inputs at batch 2 (a CFG step) with ONNX
Runtime's profiler on, and prints each operator type's kernel time per call and its share.
The fused folder is bench/fused_pipeline.py's (``models/build_tiny.py --shape sd15`` first).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=engine.SD15 / "onnx-fused")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    path = args.folder / "unet" / "model.onnx"
    if not path.is_file():
        print(f"{path} is missing: run models/build_tiny.py --shape sd15, bench/fused_pipeline.py")
        return 1
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "unet")
    started = time.perf_counter()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    print(f"session opened in {time.perf_counter() - started:.1f} s")
    rng = np.random.default_rng(0)
    inputs = {i.name: i for i in session.get_inputs()}
    width = inputs["encoder_hidden_states"].shape[-1]
    timestep_type = np.int64 if "int64" in inputs["timestep"].type else np.float32
    latent = args.size // 8
    feeds = {
        "sample": rng.standard_normal((2, 4, latent, latent)).astype(np.float32),
        "timestep": np.array(500, dtype=timestep_type),
        "encoder_hidden_states": rng.standard_normal((2, 77, width)).astype(np.float32),
    }
    for _ in range(args.runs):
        started = time.perf_counter()
        session.run(None, feeds)
        print(f"call: {time.perf_counter() - started:.2f} s")
    events = json.loads(Path(session.end_profiling()).read_text())
    seconds: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            seconds[op] += event["dur"] / 1e6 / args.runs
            count[op] += 1
    total = sum(seconds.values())
    print("\n| operator | s per call | share | nodes |\n|---|---:|---:|---:|")
    for op, value in seconds.most_common(args.top):
        print(f"| {op} | {value:.3f} | {100 * value / total:.1f}% | {count[op] // args.runs} |")
    print(f"| all | {total:.3f} | 100% | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
