"""How often impasto-shapes draws what the prompt says, per sampler and per CFG scale.

    python bench/shapes_accuracy.py [--count 40] [--samplers euler_a,ddim] [--misses]
    python bench/shapes_accuracy.py --samplers lms,pndm --steps lms=50,pndm=50 --cfgs ""
    python bench/shapes_accuracy.py --samplers lms,unipc --schedules default,karras,exponential
    python bench/shapes_accuracy.py --vae [--folder models/tiny/impasto-shapes]

Runs the real daemon on the bundled model and reads every picture with the semantic tests'
analyser (tests/semantic/analyser.py). Prompts come from shapes_world.test_prompts with the
tests' seed, so the numbers are the ones tests/semantic/test_prompt_following.py checks.
Accuracy, not speed: the table goes to docs/benchmarks.md as printed.

`--vae` scores what the VAE alone costs: each test prompt's scene drawn by shapes_world,
encoded and decoded by the bundled model's ONNX VAE, read by the analyser (no UNet, no daemon),
and how far the decoded pixels are from the drawn ones inside, at the edges and in the corners,
and on a plain picture of each palette colour.

Each run through the daemon also counts the pixels of the top-right mark (`print_marks`): the
top edge's right third, where the committed decoder leaves a mark even on a plain picture
(models/README.md, "The top edge's mark").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PIL import Image

from impasto.engine.schedulers import SAMPLER_SPECS
from tests.harness import Daemon
from tests.semantic.analyser import analyse, world
from tests.semantic.jobs import MODEL, PROMPT_SEED, SAMPLER_STEPS, generate, score

COLUMNS = ("background", "colour", "shape", "position", "all")
MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "tiny" / MODEL


class VaeRoundTrip:
    """The ONNX VAE encoder and decoder of a model folder, one thread each."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.encoder, self.decoder = (
            ort.InferenceSession(str(folder / part / "model.onnx"), options)
            for part in ("vae_encoder", "vae_decoder")
        )

    def __call__(self, pixels: Any) -> Any:
        """[1, 3, H, W] pixels in [-1, 1], encoded (the posterior mean) and decoded: [3, H, W]."""
        moments = self.encoder.run(None, {self.encoder.get_inputs()[0].name: pixels})[0]
        return self.decoder.run(None, {self.decoder.get_inputs()[0].name: moments[:, :4]})[0][0]


def vae_round_trip(prompts: list[str], trip: VaeRoundTrip) -> list[tuple[str, list[Image.Image]]]:
    """The clean scene of each prompt, and the same after ``trip``."""
    import random

    import numpy as np

    rng = random.Random(5)
    clean, decoded = [], []
    for prompt in prompts:
        scene = world.render(world.parse(prompt), rng).convert("RGB")
        pixels = (np.asarray(scene, np.float32) / 127.5 - 1).transpose(2, 0, 1)[None]
        out = trip(pixels)
        rgb = ((np.clip(out.transpose(1, 2, 0), -1, 1) + 1) * 127.5).round().astype(np.uint8)
        clean.append(scene)
        decoded.append(Image.fromarray(rgb))
    return [("scenes as drawn", clean), ("scenes after the VAE round trip", decoded)]


def print_edge_errors(clean: list[Image.Image], decoded: list[Image.Image]) -> None:
    """Mean error (of 255, the worst channel) inside, on the outer 4 pixels, and the pixels of
    the corners' 8x8 squares off by more than 64, per picture."""
    import numpy as np

    drawn = np.stack([np.asarray(image, np.float32) for image in clean])
    error = np.abs(np.stack([np.asarray(image, np.float32) for image in decoded]) - drawn).max(-1)
    band = np.zeros(error.shape[1:], bool)
    band[:4], band[-4:], band[:, :4], band[:, -4:] = True, True, True, True
    corners = {
        "top left": error[:, :8, :8],
        "top right": error[:, :8, -8:],
        "bottom left": error[:, -8:, :8],
        "bottom right": error[:, -8:, -8:],
    }
    print(
        f"mean error inside {error[:, ~band].mean():.2f}, outer 4 px {error[:, band].mean():.2f}; "
        "corner pixels off by more than 64, per picture: "
        + ", ".join(f"{name} {(c > 64).sum((1, 2)).mean():.2f}" for name, c in corners.items()),
        flush=True,
    )


def plain_errors(trip: VaeRoundTrip) -> None:
    """Each palette colour as a whole picture through ``trip``: its pixels off by more than
    64, per picture, in the corners' 8x8 squares and elsewhere."""
    import numpy as np

    corner = np.zeros((128, 128), bool)
    corner[:8, :8] = corner[:8, -8:] = corner[-8:, :8] = corner[-8:, -8:] = True
    off = []
    for rgb in world.COLOURS.values():
        pixels = np.full((1, 3, 128, 128), np.array(rgb, np.float32)[None, :, None, None])
        out = trip(pixels / 127.5 - 1)
        off.append(np.abs((np.clip(out, -1, 1) + 1) * 127.5 - pixels[0]).max(0) > 64)
    wrong = np.stack(off)
    print(
        "plain pictures of the 8 colours, pixels off by more than 64, per picture: "
        f"corners {wrong[:, corner].sum() / len(off):.2f}, "
        f"elsewhere {wrong[:, ~corner].sum() / len(off):.2f}",
        flush=True,
    )


# The top edge's right third, where the committed decoder leaves a mark (models/README.md).
MARK = (slice(0, 12), slice(86, 128))


def print_marks(images: list[Image.Image]) -> None:
    """Pixels in ``MARK`` off by more than 48 from the picture's background (the median of
    its outermost pixels), per picture."""
    import numpy as np

    counts = []
    for image in images:
        pixels = np.asarray(image.convert("RGB"), np.float32)
        rim = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        off = np.abs(pixels - np.median(rim, axis=0)).max(-1) > 48
        counts.append(int(off[MARK].sum()))
    print(f"  top-right mark: {np.mean(counts):.1f} px per picture", flush=True)


def print_misses(prompts: list[str], images: list[Image.Image]) -> None:
    """Each prompt whose background, colour or shape the analyser read wrong, and the reading."""
    for index, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
        reading = analyse(image)
        verdict = reading.matches(world.parse(prompt))
        wrong = [k for k in ("background", "colour", "shape") if not verdict[k]]
        if wrong:
            print(
                f"  seed {index}: {prompt!r}: wrong {', '.join(wrong)}; read "
                f"{reading.colour} {reading.shape} on {reading.background}",
                flush=True,
            )


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--samplers", default=",".join(SAMPLER_STEPS))
    parser.add_argument(
        "--steps", default="", help="steps other than the recommended ones: lms=50,pndm=50"
    )
    parser.add_argument(
        "--schedules",
        default="recommended",
        help="each sampler on each of these (recommended: its own, as the tests run it)",
    )
    parser.add_argument("--cfgs", default="1,3,7", help="extra euler_a rows at these CFG scales")
    parser.add_argument("--sheet", type=Path, help="also save the first sampler's first 8 pictures")
    parser.add_argument("--misses", action="store_true", help="list each picture read wrong")
    parser.add_argument("--vae", action="store_true", help="score the VAE round trip instead")
    parser.add_argument(
        "--folder", type=Path, default=MODEL_DIR, help="with --vae: the model folder whose VAE"
    )
    args = parser.parse_args()
    prompts = world.test_prompts(args.count, seed=PROMPT_SEED)
    rows = []
    if args.vae:
        vae = VaeRoundTrip(args.folder)
        trip = vae_round_trip(prompts, vae)
        for name, images in trip:
            rows.append((name, score(prompts, images)))
            print(rows[-1][0], rows[-1][1], flush=True)
            if args.misses:
                print_misses(prompts, images)
        print_table(rows)
        print_edge_errors(trip[0][1], trip[1][1])
        plain_errors(vae)
        return 0
    with tempfile.TemporaryDirectory(prefix="impasto-shapes-bench-") as tmp:
        daemon = Daemon(Path(tmp)).start()
        try:
            daemon.wait_worker_ready()
            chosen = dict(_pair(item) for item in args.steps.split(",") if item)
            # Any registered sampler, at the registry's recommended steps and schedule.
            steps_of = {k: spec.recommended_steps for k, spec in SAMPLER_SPECS.items()} | chosen
            runs = [
                (
                    s,
                    steps_of[s],
                    5.0,
                    SAMPLER_SPECS[s].recommended_schedule if w == "recommended" else w,
                )
                for s in args.samplers.split(",")
                for w in args.schedules.split(",")
            ]
            runs += [("euler_a", 20, float(c), "default") for c in args.cfgs.split(",") if c]
            for sampler, steps, cfg, schedule in runs:
                bodies = [
                    {
                        "prompt": p,
                        "seed": i,
                        "sampler": sampler,
                        "schedule": schedule,
                        "steps": steps,
                        "cfg_scale": cfg,
                    }
                    for i, p in enumerate(prompts)
                ]
                images = generate(daemon, bodies)
                result = score(prompts, images)
                if args.sheet and not rows:
                    sheet = Image.new("RGB", (128 * 4, 128 * 2))
                    for i, image in enumerate(images[:8]):
                        sheet.paste(image, ((i % 4) * 128, (i // 4) * 128))
                    sheet.save(args.sheet)
                    print("sheet prompts:", "; ".join(prompts[:8]), flush=True)
                on = "" if schedule == "default" else f", {schedule}"
                rows.append((f"{sampler}{on}, {steps} steps, cfg {cfg:g}", result))
                print(rows[-1][0], result, flush=True)
                print_marks(images)
                if args.misses:
                    print_misses(prompts, images)
        finally:
            daemon.stop()
    print_table(rows)
    return 0


def _pair(item: str) -> tuple[str, int]:
    name, _, steps = item.partition("=")
    return name, int(steps)


def print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    """The rows as the Markdown table docs/benchmarks.md holds."""
    print()
    print("| run | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, result in rows:
        print(f"| {name} | " + " | ".join(f"{result[c]:.0%}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
