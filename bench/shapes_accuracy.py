"""How often impasto-shapes draws what the prompt says, per sampler and per CFG scale.

    python bench/shapes_accuracy.py [--count 40] [--samplers euler_a,ddim]

Runs the real daemon on the bundled model and reads every picture with the semantic tests'
analyser (tests/semantic/analyser.py). Prompts come from shapes_world.test_prompts with the
tests' seed, so the numbers are the ones tests/semantic/test_prompt_following.py checks.
Accuracy, not speed: the table goes to docs/benchmarks.md as printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PIL import Image

from tests.harness import Daemon
from tests.semantic.analyser import world
from tests.semantic.jobs import PROMPT_SEED, SAMPLER_STEPS, generate, score

COLUMNS = ("background", "colour", "shape", "position", "all")


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--samplers", default=",".join(SAMPLER_STEPS))
    parser.add_argument("--cfgs", default="1,3,7", help="extra euler_a rows at these CFG scales")
    parser.add_argument("--sheet", type=Path, help="also save the first sampler's first 8 pictures")
    args = parser.parse_args()
    prompts = world.test_prompts(args.count, seed=PROMPT_SEED)
    rows = []
    with tempfile.TemporaryDirectory(prefix="impasto-shapes-bench-") as tmp:
        daemon = Daemon(Path(tmp)).start()
        try:
            daemon.wait_worker_ready()
            runs = [(s, SAMPLER_STEPS[s], 5.0) for s in args.samplers.split(",")]
            runs += [("euler_a", 20, float(c)) for c in args.cfgs.split(",") if c]
            for sampler, steps, cfg in runs:
                bodies = [
                    {"prompt": p, "seed": i, "sampler": sampler, "steps": steps, "cfg_scale": cfg}
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
                rows.append((f"{sampler}, {steps} steps, cfg {cfg:g}", result))
                print(rows[-1][0], result, flush=True)
        finally:
            daemon.stop()
    print()
    print("| sampler | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, result in rows:
        print(f"| {name} | " + " | ".join(f"{result[c]:.0%}" for c in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
