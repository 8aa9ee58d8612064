"""What the fast decoder costs in quality, on the bundled prompt-following model.

    nice .venv/bin/python -P bench/fast_decoder_quality.py [--count 40] [--train-seconds 420]

There is no published TAESD for impasto-shapes' own VAE, so this distils one the way TAESD
was made: an AutoencoderTiny decoder (narrower than TAESD: 32 channels) trained, for a fixed
time budget, to reproduce the VAE decoder's pictures from the VAE's latents of rendered scenes
(models/shapes_world.py). It is exported with the installer's own export function, then the
semantic tests' prompts and seeds are drawn with ``decoder: "fast"`` and with the VAE (the
baseline), read by the analyser, and compared by PSNR. The distilled decoder is a stand-in for
TAESD: the figures bound what a tiny decoder costs on this model, not TAESD on SD's VAE.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))

from shapes_world import render, sample_scene  # noqa: E402

from tests.semantic.analyser import world  # noqa: E402
from tests.semantic.jobs import PROMPT_SEED, RECOMMENDED, score  # noqa: E402

SHAPES = ROOT / "models" / "tiny" / "impasto-shapes"
COLUMNS = ("background", "colour", "shape", "position", "all")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def training_pairs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """UNet-space latents of rendered scenes and the VAE decoder's pictures of them."""
    import onnxruntime as ort

    from impasto.engine.model_folder import open_model_folder
    from impasto.engine.vae import image_to_array

    folder = open_model_folder(SHAPES)
    assert folder.vae_encoder is not None
    encoder = ort.InferenceSession(str(folder.vae_encoder))
    decoder = ort.InferenceSession(str(folder.vae_decoder))
    rng = random.Random(seed)
    latents, pictures = [], []
    for _ in range(count):
        image = image_to_array(render(sample_scene(rng), rng))
        moments = encoder.run(None, {"sample": image})[0]
        mean = moments[:, :4]
        latents.append(mean * folder.vae_scaling_factor)
        pictures.append(decoder.run(None, {"latent_sample": mean})[0])
    return np.concatenate(latents), np.concatenate(pictures)


def distil(seconds: float, seed: int) -> object:
    """An AutoencoderTiny whose decoder imitates impasto-shapes' VAE decoder."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    latents, pictures = (torch.from_numpy(a) for a in training_pairs(384, seed))
    vae = AutoencoderTiny(
        decoder_block_out_channels=(32, 32, 32, 32), num_decoder_blocks=(2, 2, 2, 1)
    )
    optimiser = torch.optim.Adam(vae.decoder.parameters(), lr=2e-3)
    deadline, step = time.monotonic() + seconds, 0
    side = latents.shape[-1]
    while time.monotonic() < deadline:
        # Random 8x8-latent (64x64-pixel) crops: a quarter of the work of a whole picture.
        index = torch.randint(0, len(latents), (16,))
        y, x = (int(v) for v in torch.randint(0, side - 8 + 1, (2,)))
        crop = latents[index, :, y : y + 8, x : x + 8]
        target = pictures[index, :, 8 * y : 8 * y + 64, 8 * x : 8 * x + 64]
        loss = (vae.decoder(crop) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step}: L1 {loss.item():.4f}", flush=True)
    print(f"distilled for {step} steps, last L1 {loss.item():.4f}", flush=True)
    return vae


def main() -> int:
    """Command-line entry point."""
    from impasto.engine import GenerationParams, load_pipeline
    from impasto.engine.providers import cpu_choice
    from impasto.services.convert import export_fast_decoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--train-seconds", type=float, default=420)
    args = parser.parse_args()
    prompts = world.test_prompts(args.count, seed=PROMPT_SEED)
    settings = {k: v for k, v in RECOMMENDED.items() if k != "model"}
    with tempfile.TemporaryDirectory(prefix="impasto-fast-quality-") as tmp:
        decoder = Path(tmp) / "taesd-shapes"
        export_fast_decoder(distil(args.train_seconds, 0), decoder)
        folder = shutil.copytree(SHAPES, Path(tmp) / "m")
        pipe = load_pipeline(Path(folder), cpu_choice())

        def draw(kind: str) -> list:
            return [
                pipe.generate(
                    GenerationParams(
                        prompt=p, seed=i, decoder=kind, fast_decoder=decoder, **settings
                    )
                )[0].image
                for i, p in enumerate(prompts)
            ]

        baseline, fast = draw("full"), draw("fast")
    values = [psnr(np.asarray(a), np.asarray(b)) for a, b in zip(fast, baseline, strict=True)]
    rows = [("VAE (baseline)", score(prompts, baseline), "-")]
    rows.append(("fast decoder (distilled)", score(prompts, fast), f"{np.mean(values):.1f} dB"))
    print(f"\n{args.count} prompts, euler_a, 20 steps, CFG 5, 128x128\n")
    print("| decoder | " + " | ".join(COLUMNS) + " | PSNR vs baseline |")
    print("|---|" + "---:|" * (len(COLUMNS) + 1))
    for name, result, shown in rows:
        print(f"| {name} | " + " | ".join(f"{result[c]:.0%}" for c in COLUMNS) + f" | {shown} |")
    assert all(math.isfinite(v) for v in values)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
