"""Stages 3b and 3c of train_shapes.py: the VAE decoder on whole scenes, the encoder frozen.

The VAE stages train on 64x64 crops, and their decoder drifts colours (red towards orange,
black towards green on small shapes) and smears the outermost pixels. Stage 3b trains only
the decoder (and post_quant_conv) on whole 128x128 scenes from the latents the UNet learns
(the encoder's posterior means, slightly noised so the decoder forgives the UNet's small
errors). The encoder is untouched, so latents.pt and the UNet trained on it stay valid.

After 3b the picture's corners were still wrong: a zero-padded decoder sees a corner only
through the padding, and four pixels of 16,384 weigh nothing in a plain L1. On the test scenes
a quarter of the bottom-left corner's 8x8 pixels were off by more than 64 of 255, a dark speck
on every picture. Stage 3c goes on with the same loss weighted toward the edges
(`edge_weights`) at a lower learning rate, inside the edges toward what 3b drew.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKL

# Noise added to the (unscaled) latents while training, as a fraction of their std.
LATENT_NOISE = 0.05
# Stage 3c's loss weights: the outer band of pixels, and each corner's square.
EDGE_BAND, EDGE_WEIGHT = 4, 2.0
CORNER, CORNER_WEIGHT = 8, 64.0


def edge_weights(size: int) -> torch.Tensor:
    """Stage 3c's per-pixel L1 weights for a ``size`` x ``size`` picture (mean about 2.1)."""
    weights = torch.ones(size, size)
    band, corner = slice(0, EDGE_BAND), slice(0, CORNER)
    far_band, far_corner = slice(size - EDGE_BAND, size), slice(size - CORNER, size)
    for rows in (band, far_band):
        weights[rows, :] = EDGE_WEIGHT
        weights[:, rows] = EDGE_WEIGHT
    for rows in (corner, far_corner):
        for columns in (corner, far_corner):
            weights[rows, columns] = CORNER_WEIGHT
    return weights


def train_decoder(
    out: Path,
    vae: AutoencoderKL,
    latents: torch.Tensor,
    images: torch.Tensor,
    steps: int,
    batch: int,
    seed: int,
    log: Callable[[Path, str], None],
    stage: str = "vae-decoder",
    peak: float = 3e-4,
    weights: torch.Tensor | None = None,
) -> AutoencoderKL:
    """Fine-tune ``vae``'s decoder on (latent, scene) pairs; checkpointed in out/``stage``.

    ``images`` are the uint8 scenes [N, 3, H, W] that ``latents`` were encoded from.
    ``weights`` [H, W] (stage 3c) weigh each pixel's L1, and where a weight is 1 the target is
    not the scene but what the decoder drew before the stage: stage 3c is to mend the edges,
    and a decoder pulled toward the scenes' sharp corners inside as well rounded the UNet's
    triangles into circles (edge_weights).
    """
    folder = out / stage
    if (folder / "done").exists():
        return AutoencoderKL.from_pretrained(folder)
    torch.manual_seed(seed)
    trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    teacher = copy.deepcopy(vae).eval() if weights is not None else None
    optimiser = torch.optim.AdamW(trained, lr=peak, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    spread = float(latents.std()) * LATENT_NOISE
    vae.train()
    started = time.monotonic()
    for step in range(1, steps + 1):
        cosine = 0.1 + 0.9 * (1 + math.cos(math.pi * step / steps)) / 2
        for group in optimiser.param_groups:
            group["lr"] = peak * min(1.0, step / 50) * cosine
        pick = torch.randint(0, len(latents), (batch,), generator=generator)
        noisy = latents[pick] + spread * torch.randn(latents[pick].shape, generator=generator)
        pixels = images[pick].float() / 127.5 - 1.0
        if teacher is not None and weights is not None:
            with torch.no_grad():
                pixels = torch.where(weights > 1, pixels, teacher.decode(noisy).sample)
        error = (vae.decode(noisy).sample - pixels).abs()
        loss = error.mean() if weights is None else (error * weights).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps:
            log(
                out,
                f"{stage} {step}/{steps} loss {loss.item():.5f} {time.monotonic() - started:.0f}s",
            )
    for parameter in vae.parameters():
        parameter.requires_grad_(True)
    vae.eval()
    vae.save_pretrained(folder)
    (folder / "done").write_text("ok\n")
    return vae
