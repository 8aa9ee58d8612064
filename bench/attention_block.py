"""One SD 1.5 attention as exported and as fused, alternating calls in one process.

    python bench/attention_block.py [--tokens 4096] [--calls 15] [--threads 2]

Exports diffusers' ``Attention`` at the shape of SD 1.5's outer blocks (320 channels, 8 heads,
4096 tokens for a 512x512 image; cross-attention over 77 text tokens of 768) with torch's
ONNX exporter, the way optimum exports the UNet, fuses it with the install's matcher
(impasto/services/fusion.py) and times both graphs in ONNX Runtime, calls alternating so a
load that drifts lands on both. Small enough to measure on a busy machine: prints the median
and the fastest call of each, the ratios and the largest output difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/queue.py would shadow the standard library's queue, which torch imports.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def export(path: Path, tokens: int, cross: bool) -> None:
    import torch
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    block = Attention(320, cross_attention_dim=768 if cross else None, heads=8, dim_head=40)
    hidden = torch.randn(2, tokens, 320)
    inputs: tuple[torch.Tensor, ...] = (hidden,)
    names = ["hidden_states"]
    if cross:
        inputs += (torch.randn(2, 77, 768),)
        names.append("encoder_hidden_states")
    torch.onnx.export(
        block.eval(),
        inputs,
        str(path),
        input_names=names,
        output_names=["out"],
        opset_version=17,
        dynamo=False,
        dynamic_axes={n: {0: "batch", 1: f"{n}_len"} for n in names},
    )


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import onnxruntime as ort

    from impasto.formats.onnx_model import OnnxModel
    from impasto.services.fusion import fuse_attention

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"| attention, {args.tokens} tokens, {args.threads} threads | exported ms | fused ms "
          "| fused/exported (median) | (fastest) | max abs diff |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for cross in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            exported = Path(tmp) / "attn.onnx"
            export(exported, args.tokens, cross)
            model = OnnxModel.load(exported)
            assert fuse_attention(model) == 1
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            sessions = {
                "exported": ort.InferenceSession(str(exported), options),
                "fused": ort.InferenceSession(model.encode(), options),
            }
            rng = np.random.default_rng(0)
            feeds = {"hidden_states": rng.standard_normal((2, args.tokens, 320), np.float32)}
            if cross:
                feeds["encoder_hidden_states"] = rng.standard_normal((2, 77, 768), np.float32)
            outputs = {k: s.run(None, feeds)[0] for k, s in sessions.items()}  # warm-up
            times: dict[str, list[float]] = {k: [] for k in sessions}
            for _ in range(args.calls):
                for name, session in sessions.items():
                    start = time.perf_counter()
                    session.run(None, feeds)
                    times[name].append(time.perf_counter() - start)
        e, f = (statistics.median(times[k]) for k in ("exported", "fused"))
        e_min, f_min = min(times["exported"]), min(times["fused"])
        diff = float(np.abs(outputs["exported"] - outputs["fused"]).max())
        kind = "cross (77 keys)" if cross else "self"
        print(f"| {kind} | {e * 1000:.0f} | {f * 1000:.0f} | {f / e:.3f} | {f_min / e_min:.3f} "
              f"| {diff:.1e} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
