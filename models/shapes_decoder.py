"""Stages 3b, 3c and 3d of train_shapes.py: the VAE decoder on whole scenes, the encoder frozen.

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

After 3c a plain picture still came back with a mark at the top edge, 12-20 px from the right
(up to 129 of 255 off on green; a constant latent decodes to it too, and it grows through
the up blocks from the padding). Stage 3d (`background=True`) goes on from 3c with the scene
itself as the target in the outer `BACKGROUND_BAND` px wherever the scene shows its background
colour at least `BACKGROUND_MARGIN` px from anything else (`far_background`), weighted at
least `BACKGROUND_WEIGHT` with a squared term on top, so that a rare large error there costs
more than many small ones; near the shapes and further in, the target stays what the decoder
drew before. It is opt-in and not in the committed weights: 3,000 steps took the mark away
(19.6 -> 2.9 px per Euler a picture) but cost the UNet's pictures shape accuracy, five
samplers under the 80% bar; over the whole picture, not only the band, Euler a's shape fell
from 85% to 72%. With ``drawn`` (`drawn_background`) half of each batch is latents the UNet
drew, held to what the decoder drew before except the band's background: the mark went as
well, and shapes fell further (models/README.md, "The top edge's mark").
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
# Stage 3d's: the background far from the shapes in the outer band, its L1 weight and its
# squared error's.
BACKGROUND_MARGIN, BACKGROUND_BAND = 6, 16
BACKGROUND_WEIGHT, BACKGROUND_SQUARED = 8.0, 32.0
# In pictures the UNet drew (`drawn_background`): off the background by more than this (of
# 255) is something; the top rows that the mark lies in.
BACKGROUND_OFF, MARK_ROWS = 48, 12


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


def _rim(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, 4 * side] the outermost pixels of pictures [N, 3, H, W]."""
    return torch.cat([images[..., 0, :], images[..., -1, :], images[..., 0], images[..., -1]], -1)


def _away_from(other: torch.Tensor, margin: int) -> torch.Tensor:
    """[N, H, W] True where no pixel of ``other`` [N, H, W] lies within ``margin`` px."""
    near = torch.nn.functional.max_pool2d(
        other[:, None].float(), 2 * margin + 1, stride=1, padding=margin
    )
    return near[:, 0] == 0


def far_background(images: torch.Tensor, margin: int = BACKGROUND_MARGIN) -> torch.Tensor:
    """[N, H, W] True where uint8 scenes [N, 3, H, W] show their background colour (the most
    common colour of their outermost pixels) at least ``margin`` px from any other colour."""
    rim = _rim(images)
    keys = (rim[:, 0].long() << 16) | (rim[:, 1].long() << 8) | rim[:, 2].long()
    mode = torch.mode(keys, dim=1).values
    colour = torch.stack([mode >> 16, (mode >> 8) & 255, mode & 255], 1).to(images.dtype)
    return _away_from((images != colour[:, :, None, None]).any(1), margin)


def drawn_background(decoded: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Stage 3d's targets for latents the UNet drew: [N, 3, H, W] uint8, each picture's
    background colour (the palette colour nearest the median of its outermost pixels) where the
    decoded picture [N, 3, H, W] (-1..1) shows that colour at least ``BACKGROUND_MARGIN`` px from
    anything else, and 0 elsewhere (`far_background` reads those pixels as no background).

    Anything off the background that lies wholly in the top ``MARK_ROWS`` rows is the mark this
    stage is to remove, not a shape: no shape of the world is that short at the top edge."""
    from scipy import ndimage

    pixels = (decoded.clamp(-1, 1) + 1) * 127.5
    median = _rim(pixels).median(-1).values  # [N, 3]
    colour = palette[torch.cdist(median, palette.float()).argmin(1)]  # [N, 3]
    other = (pixels - colour[:, :, None, None]).abs().amax(1) > BACKGROUND_OFF
    for picture in other.numpy():
        labels, _ = ndimage.label(picture)
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None and box[0].stop <= MARK_ROWS:
                picture[labels == index] = False
    far = _away_from(other, BACKGROUND_MARGIN)[:, None]
    background = colour[:, :, None, None].expand_as(pixels).to(torch.uint8)
    return torch.where(far, background, torch.zeros_like(background))


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
    background: bool = False,
    drawn: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> AutoencoderKL:
    """Fine-tune ``vae``'s decoder on (latent, scene) pairs; checkpointed in out/``stage``.

    ``images`` are the uint8 scenes [N, 3, H, W] that ``latents`` were encoded from.
    ``weights`` [H, W] (stage 3c) weigh each pixel's L1, and where a weight is 1 the target is
    not the scene but what the decoder drew before the stage: stage 3c is to mend the edges,
    and a decoder pulled toward the scenes' sharp corners inside as well rounded the UNet's
    triangles into circles (edge_weights). ``background`` (stage 3d, with ``weights``) also
    targets the scene far from the shapes, weighted as the module's docstring says.
    ``drawn`` (latents the UNet drew, `drawn_background`'s targets) fills half of each batch
    with those: the target there is what the decoder drew before, but the background colour
    far from anything in the outer band.
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
        own = batch // 2 if drawn is not None else batch
        pick = torch.randint(0, len(latents), (own,), generator=generator)
        chosen, scenes = latents[pick], images[pick]
        if drawn is not None:
            other = torch.randint(0, len(drawn[0]), (batch - own,), generator=generator)
            chosen = torch.cat([chosen, drawn[0][other]])
            scenes = torch.cat([scenes, drawn[1][other]])
        noisy = chosen + spread * torch.randn(chosen.shape, generator=generator)
        pixels = scenes.float() / 127.5 - 1.0
        far = None
        if background:
            inner = slice(BACKGROUND_BAND, -BACKGROUND_BAND)
            # drawn_background's targets are 0 (no palette colour) where not far.
            far = torch.cat([far_background(scenes[:own]), scenes[own:].bool().any(1)])[:, None]
            far[..., inner, inner] = False  # inside the band: what the decoder drew before
        if teacher is not None and weights is not None:
            scene = weights > 1 if far is None else (weights > 1) | far
            if drawn is not None and far is not None:  # no scene but the background there
                scene = torch.cat([scene[:own], far[own:]])
            with torch.no_grad():
                pixels = torch.where(scene, pixels, teacher.decode(noisy).sample)
        error = vae.decode(noisy).sample - pixels
        if weights is None:
            loss = error.abs().mean()
        elif far is None:
            loss = (error.abs() * weights).mean()
        else:
            weighted = torch.where(far, weights.clamp(min=BACKGROUND_WEIGHT), weights)
            loss = (error.abs() * weighted).mean() + BACKGROUND_SQUARED * (error**2 * far).mean()
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
