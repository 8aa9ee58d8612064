"""Stage 3b of train_shapes.py: sharpen the VAE decoder on whole scenes, the encoder frozen.

The VAE stages train on 64x64 crops, and their decoder drifts colours (red towards orange,
black towards green on small shapes) and smears the outermost pixels. This stage trains only
the decoder (and post_quant_conv) on whole 128x128 scenes from the latents the UNet learns
(the encoder's posterior means, slightly noised so the decoder forgives the UNet's small
errors). The encoder is untouched, so latents.pt and the UNet trained on it stay valid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

# Noise added to the (unscaled) latents while training, as a fraction of their std.
LATENT_NOISE = 0.05


def train_decoder(
    out: Path,
    vae: AutoencoderKL,
    latents: torch.Tensor,
    images: torch.Tensor,
    steps: int,
    batch: int,
    seed: int,
    log: Callable[[Path, str], None],
) -> AutoencoderKL:
    """Fine-tune ``vae``'s decoder on (latent, scene) pairs; checkpointed in out/vae-decoder.

    ``images`` are the uint8 scenes [N, 3, H, W] that ``latents`` were encoded from.
    """
    folder = out / "vae-decoder"
    if (folder / "done").exists():
        return AutoencoderKL.from_pretrained(folder)
    torch.manual_seed(seed)
    trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    peak = 3e-4
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
        loss = F.l1_loss(vae.decode(noisy).sample, pixels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps:
            log(
                out,
                f"vae-decoder {step}/{steps} loss {loss.item():.5f} "
                f"{time.monotonic() - started:.0f}s",
            )
    for parameter in vae.parameters():
        parameter.requires_grad_(True)
    vae.eval()
    vae.save_pretrained(folder)
    (folder / "done").write_text("ok\n")
    return vae
