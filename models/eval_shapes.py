"""Score a train_shapes.py checkpoint with the tests' analyser, in torch (no daemon needed).

    python models/eval_shapes.py --out /tmp/shapes --count 40 --steps 20 --cfg 5

Prints the fraction of pictures with the right background, colour, shape and position, and
saves a contact sheet as out/eval.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import shapes_world as world
import train_shapes as training


def load_pipeline(out: Path, stage4: str = "offset") -> StableDiffusionPipeline:
    """The EMA weights of out/settle.pt (stage 5) or else out/checkpoint.pt (stage 4, trained
    on the ``stage4`` recipe, train_shapes.py's ``--recipe``) with its last VAE, on DDIM with the
    noise schedule the stage trained."""
    tokenizer = training.train_tokenizer(out)
    settled = (out / "settle.pt").exists()
    recipe = training.SETTLED if settled or stage4 == "settled" else training.PRETRAIN
    stage = "settle" if settled else "unet"
    trainer = training.Trainer(out, tokenizer, steps=1, lr=0.0, recipe=recipe, stage=stage)
    # The last decoder stage's VAE (--from-onnx writes vae-decoder) or else the one before it.
    stages = [
        out / name for name in ("vae-drawn", "vae-background", "vae-edges", "vae-decoder", "vae-l1")
    ]
    vae = AutoencoderKL.from_pretrained(next(path for path in stages if path.exists()))
    latents = torch.load(out / "latents.pt")["latents"]
    vae.register_to_config(scaling_factor=round(1.0 / float(latents.std()), 5))
    scheduler = DDIMScheduler.from_config(training.sampling_scheduler(recipe).config)
    return training.diffusers_pipeline(vae, tokenizer, (trainer.ema[0], trainer.ema[1]), scheduler)


def main() -> int:
    """Command-line entry point."""
    from tests.semantic.analyser import analyse

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--recipe", choices=("offset", "settled"), default="offset", help="stage 4's --recipe"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = load_pipeline(args.out, args.recipe)
    prompts = world.test_prompts(args.count, seed=1234)
    generator = torch.Generator().manual_seed(0)
    images = []
    for start in range(0, len(prompts), 8):
        batch = prompts[start : start + 8]
        images += pipeline(
            batch,
            num_inference_steps=args.steps,
            guidance_scale=args.cfg,
            generator=generator,
            height=128,
            width=128,
        ).images
    totals = {"background": 0, "colour": 0, "shape": 0, "position": 0}
    for prompt, image in zip(prompts, images, strict=True):
        verdict = analyse(image).matches(world.parse(prompt))
        for key, ok in verdict.items():
            totals[key] += ok
    print(" ".join(f"{k} {v / len(prompts):.2f}" for k, v in totals.items()), flush=True)
    sheet = Image.new("RGB", (128 * 8, 128 * ((len(images) + 7) // 8)))
    for i, image in enumerate(images):
        sheet.paste(image, ((i % 8) * 128, (i // 8) * 128))
    sheet.save(args.out / "eval.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
