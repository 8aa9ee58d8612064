"""Train `impasto-shapes`, a small SD-1.x-shaped model that draws the scenes of shapes_world.py.

    python models/train_shapes.py --out /tmp/shapes --install  # the full run (2 CPU cores, ~1.5 h)
    python models/train_shapes.py --out /tmp/shapes --quick    # a few dozen steps, to test

Stages, each checkpointed under --out so a run can stop and resume:
  1. tokenizer: a CLIP-format BPE trained on captions + the tiny models' prompt corpus;
  2. vae: an AutoencoderKL (factor 8, 4 latent channels) trained on 64x64 crops of scenes,
     MSE then L1;
  3. latents: the training scenes encoded once (posterior means), scaling factor = 1/std;
     3b: the decoder alone on whole scenes from those latents, the encoder frozen; 3c: the
     same weighted toward the picture's edges, where 3b leaves specks in the corners; 3d
     (opt-in, `--background-steps N`; not part of the committed weights): the same with the
     background of the outer band weighted too, where 3c leaves a mark at the top edge
     (models/shapes_decoder.py; `--from-onnx FOLDER --edge-steps N --background-steps M`
     runs 3c and/or 3d alone on an earlier export's decoder and exports it with that
     export's UNet and text encoder; `--drawn K` there also trains 3d on K latents that
     export's UNet draws);
  4. unet: a UNet2DConditionModel and a CLIPTextModel trained together (epsilon
     prediction with offset noise, SD 1.5's noise schedule, 10% empty captions for
     classifier-free guidance, an EMA copy of both);
  5. settle (opt-in, `--settle-steps N`; the committed weights had a GENTLE one): both go on from
     stage 4's EMA weights on the SETTLED recipe (the same betas rescaled to zero terminal
     SNR, v-prediction, no offset noise, wrong captions for some scenes at low noise); its
     EMA copy is then what gets exported. `--from-onnx FOLDER` runs this stage alone on an
     earlier export's weights (models/README.md has what one such run measured);
     `--recipe settled` trains stage 4 itself on SETTLED instead (with `--from-onnx` and
     no settle steps: stage 4 alone, from fresh weights, on that export's tokenizer and VAE);
  6. export: the diffusers pipeline saved and exported with optimum, as models/build_tiny.py does.
Everything is seeded; on the same torch build and thread count a rerun gives the same weights.

On a GPU (`--device cuda`: stages 4 and 5, and the encoding with `--from-onnx`; every random
draw still comes from the CPU generator), `--time-budget SECONDS` fixes both stages' step
counts from the rate measured early in stage 4 and logs them as `--steps N --settle-steps M`
for a rerun; each run leaves its EMA weights in out/weights.safetensors, which `--weights
FILE --from-onnx FOLDER` exports (and installs) on another machine. models/README.md has what
one such run measured.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes_world as world
from clip_bpe import clip_vocab, learn_merges, prompt_corpus
from shapes_decoder import drawn_background, edge_weights, train_decoder

SEED = 17
NAME = "impasto-shapes"
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}
# Below MISMATCH_RAMP[0] the settle stage gives a caption from elsewhere in the batch to a
# share of the scenes, fading to none at MISMATCH_RAMP[1] (Recipe.mismatch).
MISMATCH_RAMP = (350, 550)
SETTLE_LR = 2e-4
WARM_UP = 200


@dataclass(frozen=True)
class Recipe:
    """What one denoising step trains on: the noise, the prediction target and the captions."""

    # A random per-channel constant added to the noise, times this (0: none).
    offset_noise: float = 0.0
    # Predict v (sqrt(a) * noise - sqrt(1 - a) * x0) instead of the noise.
    v_prediction: bool = False
    # The betas rescaled so that t=999 is pure noise (diffusers' rescale_betas_zero_snr).
    zero_snr: bool = False
    # The share of scenes trained with a wrong caption at low timesteps (MISMATCH_RAMP).
    mismatch: float = 0.0
    # Offset noise only above these timesteps: none up to the first, full from the second.
    offset_fade: tuple[int, int] | None = None
    # The share of two-object scenes trained with a caption of one of their objects and its
    # side (`a red circle on the left`): scenes hold things their prompt does not name.
    partial: float = 0.0

    @property
    def prediction_type(self) -> str:
        """The target as diffusers' schedulers name it."""
        return "v_prediction" if self.v_prediction else "epsilon"


# Stage 4. Offset noise: at 16x16 latents the mean of plain noise is so small (std 1/16) that
# the background's colour still shows through at t=999, so without it the UNet learns to read
# the background from the noisy latent instead of from the prompt, and at sampling time copies
# it from the random start. With the offset (0.3) the noisy latent's mean says nothing.
PRETRAIN = Recipe(offset_noise=0.3)
# Stage 5, opt-in. What it is for (models/README.md, "Toward img2img at low strength"): trained
# to treat a shift of the whole picture's colour as noise at every noise level, the stage-4
# model re-decides an img2img source's background from the prompt; and because every caption
# said exactly what its scene showed, it trusts the caption over the picture even at low
# noise, so at CFG 5 an img2img prompt that differs from its source wrecks the picture at
# strength 0.1. A zero-terminal-SNR schedule hides the start's mean without offset noise
# (t=999 is pure noise; it needs v-prediction, the noise is not a usable target there), and
# a wrong caption for half the scenes below t=350 teaches that at low noise the picture
# decides.
SETTLED = Recipe(v_prediction=True, zero_snr=True, mismatch=0.5)
# Stage 5 on SD 1.5's own schedule and target (so Karras and exponential sigma schedules keep
# working): offset noise only above t=600, so that a shift of the whole picture's colour at low
# noise is the picture's and not noise; wrong captions for half the scenes below t=350; and
# two-object scenes captioned by one of their objects, so that a prompt for one new object
# does not deny what else a picture holds (whole-picture inpainting).
GENTLE = Recipe(offset_noise=0.3, offset_fade=(300, 600), mismatch=0.5, partial=0.3)
RECIPES = {"offset": PRETRAIN, "settled": SETTLED, "gentle": GENTLE}


@functools.cache
def noise_schedule(recipe: Recipe) -> DDPMScheduler:
    """The training noise schedule of `recipe`."""
    return DDPMScheduler(
        **SCHEDULE,
        rescale_betas_zero_snr=recipe.zero_snr,
        prediction_type=recipe.prediction_type,
    )


def ramp_down(t: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """1 up to timestep `low`, falling linearly to 0 at `high`."""
    return ((high - t.float()) / (high - low)).clamp(0.0, 1.0)


def log(out: Path, message: str) -> None:
    """Print and append to out/train.log."""
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with (out / "train.log").open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def images_tensor(count: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """`count` scenes as uint8 [N, 3, 128, 128] and their captions."""
    pairs = world.dataset(count, seed)
    array = np.stack([np.asarray(image) for image, _ in pairs]).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array)), [text for _, text in pairs]


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to floats in [-1, 1]."""
    return images.float() / 127.5 - 1.0


# --- 1. tokenizer ----------------------------------------------------------------------


def train_tokenizer(out: Path) -> CLIPTokenizer:
    """CLIP-format vocab.json + merges.txt where every vocabulary word is one token."""
    folder = out / "tokenizer"
    if not (folder / "vocab.json").exists():
        rng = random.Random(SEED)
        captions = [world.caption(world.sample_scene(rng)) for _ in range(4000)]
        vocab, merges = clip_vocab(learn_merges(captions * 3 + prompt_corpus(SEED)))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
        lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
        (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


# --- 2. vae ----------------------------------------------------------------------------


def make_vae() -> AutoencoderKL:
    """Four blocks (so the real factor 8), 4 latent channels, narrow."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=128,
        scaling_factor=1.0,
    )


def train_vae(
    out: Path, steps: int, batch: int, stage: str = "vae", start: AutoencoderKL | None = None
) -> AutoencoderKL:
    """Train on random 64x64 crops of scenes; checkpoint every 200 steps.

    Stage "vae" starts from scratch: MSE on a sampled latent + a little KL. Stage "vae-l1"
    continues from it with L1 at half the rate, which brings the flat colours closer.
    """
    folder = out / stage
    if (folder / "done").exists():
        return AutoencoderKL.from_pretrained(folder)
    torch.manual_seed(SEED)
    vae = start if start is not None else make_vae()
    peak = 1e-3 if stage == "vae" else 5e-4
    images, _ = images_tensor(max(steps * batch // 8, 256), SEED + (1 if stage == "vae" else 5))
    optimiser = torch.optim.AdamW(vae.parameters(), lr=peak, weight_decay=0.0)
    generator = torch.Generator().manual_seed(SEED)
    started = time.monotonic()
    for step in range(1, steps + 1):
        cosine = 0.1 + 0.9 * (1 + math.cos(math.pi * step / steps)) / 2
        for group in optimiser.param_groups:
            group["lr"] = peak * min(1.0, step / 50) * cosine
        pick = torch.randint(0, len(images), (batch,), generator=generator)
        y, x = torch.randint(0, 65, (2,), generator=generator).tolist()
        pixels = to_unit(images[pick, :, y : y + 64, x : x + 64])
        posterior = vae.encode(pixels).latent_dist
        decoded = vae.decode(posterior.sample(generator)).sample
        error = F.mse_loss(decoded, pixels) if stage == "vae" else F.l1_loss(decoded, pixels)
        loss = error + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps:
            log(
                out,
                f"{stage} {step}/{steps} loss {loss.item():.5f} {time.monotonic() - started:.0f}s",
            )
        if step % 200 == 0 or step == steps:
            vae.save_pretrained(folder)
    (folder / "done").write_text("ok\n")
    return vae


def train_both_vae_stages(out: Path, steps: int, batch: int) -> AutoencoderKL:
    """Stage "vae" for `steps`, then "vae-l1" for three quarters of that."""
    if (out / "vae-l1" / "done").exists():
        return AutoencoderKL.from_pretrained(out / "vae-l1")
    vae = train_vae(out, steps, batch)
    return train_vae(out, steps * 3 // 4, batch, stage="vae-l1", start=vae)


# --- 3. latents ------------------------------------------------------------------------


@torch.no_grad()
def encode_latents(
    out: Path, vae: AutoencoderKL, count: int, device: str = "cpu"
) -> tuple[torch.Tensor, list[str]]:
    """Encode `count` scenes once; save latents (unscaled means, on the CPU) and captions."""
    path = out / "latents.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["latents"], saved["captions"]
    images, captions = images_tensor(count, SEED + 2)
    vae.eval().to(device)
    chunks = [
        vae.encode(to_unit(images[i : i + 64]).to(device)).latent_dist.mean.cpu()
        for i in range(0, count, 64)
    ]
    vae.cpu()
    latents = torch.cat(chunks)
    torch.save({"latents": latents, "captions": captions}, path)
    log(out, f"encoded {count} scenes, latent std {latents.std().item():.4f}")
    return latents, captions


# The decoder stages' scenes: the first of the ones latents.pt holds (the dataset is
# prefix-stable, so images_tensor(count, SEED + 2) draws them again).
DECODER_SCENES = 4000
EDGE_STEPS = 3000
# How draw_latents samples: the shipped model's recommended steps and CFG (impasto.json).
DRAW_STEPS, DRAW_CFG = 20, 5.0


def decoder_pairs(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (latents, uint8 scenes) the decoder stages 3b, 3c and 3d train on."""
    count = min(len(latents), DECODER_SCENES)
    scenes, _ = images_tensor(count, SEED + 2)
    return latents[:count], scenes


def train_edges(
    out: Path,
    vae: AutoencoderKL,
    pairs: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    background: bool = False,
    drawn: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> AutoencoderKL:
    """Stage 3c: the decoder on whole scenes, its L1 weighted toward the edges (checkpointed
    in out/vae-edges); with ``background``, stage 3d: the same with the background of the
    outer band weighted too (out/vae-background, or out/vae-drawn with ``drawn``: half of
    each batch the UNet's own latents, draw_latents)."""
    latents, scenes = pairs
    stage, seed = ("vae-background", SEED + 11) if background else ("vae-edges", SEED + 9)
    if drawn is not None:
        stage = "vae-drawn"
    weights = edge_weights(scenes.shape[-1])
    return train_decoder(
        out, vae, latents, scenes, steps, 8, seed, log, stage, 1e-4, weights, background, drawn
    )


@torch.no_grad()
def draw_latents(
    out: Path,
    vae: AutoencoderKL,
    tokenizer: CLIPTokenizer,
    models: tuple[CLIPTextModel, UNet2DConditionModel],
    recipe: Recipe,
    count: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` latents (unscaled) the UNet draws for training captions at the shipped steps and
    CFG, half on DDIM and half on ancestral DDIM (eta 1), with their `drawn_background` targets
    (saved in out/drawn.pt)."""
    path = out / "drawn.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["latents"], saved["targets"]
    _, captions = images_tensor(count, SEED + 12)
    ddim = DDIMScheduler.from_config(sampling_scheduler(recipe).config, clip_sample=False)
    pipeline = diffusers_pipeline(vae.eval(), tokenizer, models, ddim)
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(SEED + 12)
    chunks = []
    for start in range(0, count, 32):
        chunk = pipeline(
            captions[start : start + 32],
            num_inference_steps=DRAW_STEPS,
            guidance_scale=DRAW_CFG,
            eta=float(start // 32 % 2),
            generator=generator,
            height=world.SIZE,
            width=world.SIZE,
            output_type="latent",
        ).images
        chunks.append(chunk / vae.config.scaling_factor)
    latents = torch.cat(chunks)
    palette = torch.tensor(list(world.COLOURS.values()), dtype=torch.uint8)
    decoded = torch.cat([vae.decode(latents[i : i + 64]).sample for i in range(0, count, 64)])
    targets = drawn_background(decoded, palette)
    torch.save({"latents": latents, "targets": targets}, path)
    log(out, f"drew {count} latents with the UNet")
    return latents, targets


# --- 4. unet + text encoder ------------------------------------------------------------


def make_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A 3-layer, 64-wide CLIP text tower over the small vocabulary."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        projection_dim=64,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def make_unet() -> UNet2DConditionModel:
    """Three levels (16, 8, 4 latent pixels), cross-attention on the first two and the middle."""
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        # diffusers reads `attention_head_dim` as the number of heads here: 2 heads of 16 and
        # 32 channels. 8 heads of 4 and 8 made training 1.45x slower (the CPU's flash attention
        # pays per head) with nothing to show for it at this size.
        attention_head_dim=2,
        norm_num_groups=16,
    )


def tokenize(tokenizer: CLIPTokenizer, texts: list[str]) -> torch.Tensor:
    """Ids padded to 77 with end-of-text, as the engine pads prompts."""
    return tokenizer(
        texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids


def denoising_loss(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    ids: torch.Tensor,
    latents: torch.Tensor,
    generator: torch.Generator,
    recipe: Recipe,
) -> torch.Tensor:
    """The min-SNR-5 weighted loss of one denoising step on a batch, as `recipe` says.

    Every random draw comes from `generator` on the CPU, so a run on a GPU draws the same
    noise, timesteps and captions as one on the CPU."""
    device = latents.device
    noise = torch.randn(latents.shape, generator=generator)
    offsets = None
    if recipe.offset_noise:
        offsets = torch.randn((*latents.shape[:2], 1, 1), generator=generator)
    t = torch.randint(0, 1000, (len(latents),), generator=generator)
    if offsets is not None:
        strength = torch.full((len(t),), recipe.offset_noise)
        if recipe.offset_fade:
            strength = strength * (1 - ramp_down(t, *recipe.offset_fade))
        noise = noise + strength[:, None, None, None] * offsets
    if recipe.mismatch:
        share = recipe.mismatch * ramp_down(t, *MISMATCH_RAMP)
        wrong = torch.rand(len(t), generator=generator) < share
        others = ids[torch.randperm(len(ids), generator=generator).to(device)]
        ids = torch.where(wrong.to(device)[:, None], others, ids)
    schedule = noise_schedule(recipe)
    noise, t_device = noise.to(device), t.to(device)
    noisy = schedule.add_noise(latents, noise, t_device)
    predicted = unet(noisy, t_device, text_encoder(ids).last_hidden_state).sample
    snr = schedule.alphas_cumprod[t] / (1 - schedule.alphas_cumprod[t])
    if recipe.v_prediction:
        # Min-SNR-5 in v terms, floored at 1 so that the pure-noise end (SNR 0) still trains:
        # the x0 error weighted by SNR clamped to [1, 5].
        target = schedule.get_velocity(latents, noise, t_device)
        weight = torch.clamp(snr, 1.0, 5.0) / (snr + 1)
    else:
        # Min-SNR-5 weighting: converges faster than the plain epsilon loss.
        target = noise
        weight = torch.clamp(snr, max=5.0) / snr
    errors = ((predicted - target) ** 2).mean(dim=(1, 2, 3))
    return (weight.to(device) * errors).mean()


def partial_captions(captions: list[str]) -> tuple[list[str], list[str], list[bool]]:
    """For each two-object caption, one caption for each object with its side (the first is
    drawn on the left): `a red circle and a blue square on a white background` gives `a red
    circle on the left on a white background` and `a blue square on the right on ...`."""
    left, right, pairs = [], [], []
    for text in captions:
        head, sep, tail = text.partition(" on a ")
        things = head.split(" and ")
        pair = len(things) == 2
        left.append(f"{things[0]} on the left{sep}{tail}" if pair else text)
        right.append(f"{things[1]} on the right{sep}{tail}" if pair else text)
        pairs.append(pair)
    return left, right, pairs


@dataclass
class Budget:
    """A wall-clock budget for stage 4 and the settle stage together: at CALIBRATE steps into
    stage 4 their step counts are fixed from the measured rate (before warm-up ends, so the
    run follows the same schedule as a rerun given those counts), and `share` of the steps
    go to the settle stage. Past `deadline` + `grace` a stage stops where it is."""

    deadline: float
    share: float
    settle_steps: int = 0
    grace: float = 30.0
    # The steps between which the rate is measured (past the first steps' start-up costs).
    calibrate: tuple[int, int] = (50, 150)


class Trainer:
    """The joint UNet + text-encoder loop, with EMA copies and resumable checkpoints."""

    def __init__(
        self,
        out: Path,
        tokenizer: CLIPTokenizer,
        steps: int,
        lr: float,
        recipe: Recipe = PRETRAIN,
        *,
        start: tuple[CLIPTextModel, UNet2DConditionModel] | None = None,
        stage: str = "unet",
        device: str = "cpu",
        budget: Budget | None = None,
    ) -> None:
        """`start`: the stage's first weights (for the settle stage); `stage` names its log
        lines and its checkpoint file."""
        seeds = {"unet": (SEED + 3, SEED + 4), "settle": (SEED + 7, SEED + 8)}[stage]
        torch.manual_seed(seeds[0])
        self.out, self.steps, self.lr, self.stage = out, steps, lr, stage
        self.recipe, self.budget = recipe, budget
        text_encoder = make_text_encoder(tokenizer) if start is None else start[0]
        self.text_encoder = text_encoder.to(device)
        self.unet = (make_unet() if start is None else start[1]).to(device)
        self.text_encoder.train()
        self.unet.train()
        self.ema = [copy.deepcopy(self.text_encoder), copy.deepcopy(self.unet)]
        params = [*self.text_encoder.parameters(), *self.unet.parameters()]
        self.optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        self.step = 0
        self.generator = torch.Generator().manual_seed(seeds[1])
        checkpoint = self.checkpoint_path()
        if checkpoint.exists():
            state = torch.load(checkpoint, weights_only=False, map_location=device)
            self.text_encoder.load_state_dict(state["text_encoder"])
            self.unet.load_state_dict(state["unet"])
            self.ema[0].load_state_dict(state["ema_text_encoder"])
            self.ema[1].load_state_dict(state["ema_unet"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.generator.set_state(state["generator"].cpu())
            self.step = state["step"]

    def checkpoint_path(self) -> Path:
        return self.out / ("checkpoint.pt" if self.stage == "unet" else f"{self.stage}.pt")

    def save(self) -> None:
        """Write the checkpoint atomically (a killed run keeps the previous one)."""
        state = {
            "text_encoder": self.text_encoder.state_dict(),
            "unet": self.unet.state_dict(),
            "ema_text_encoder": self.ema[0].state_dict(),
            "ema_unet": self.ema[1].state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
        }
        temporary = self.checkpoint_path().with_suffix(".tmp")
        torch.save(state, temporary)
        temporary.replace(self.checkpoint_path())

    def learning_rate(self) -> float:
        """Linear warm-up over 200 steps, then cosine down to a tenth by the last step."""
        warm = min(1.0, self.step / WARM_UP)
        progress = max(0, self.step - WARM_UP) / max(1, self.steps - WARM_UP)
        cosine = 0.1 + 0.9 * (1 + math.cos(math.pi * min(1.0, progress))) / 2
        return self.lr * warm * cosine

    def train_step(self, latents: torch.Tensor, ids: torch.Tensor) -> float:
        """One denoising step on a batch; returns the loss."""
        loss = denoising_loss(
            self.unet, self.text_encoder, ids, latents, self.generator, self.recipe
        )
        for group in self.optimiser.param_groups:
            group["lr"] = self.learning_rate()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        params = [*self.text_encoder.parameters(), *self.unet.parameters()]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimiser.step()
        self.update_ema()
        return float(loss.item())

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = min(0.999, (1 + self.step) / (10 + self.step))
        for ema, live in zip(self.ema, (self.text_encoder, self.unet), strict=True):
            averages = list(ema.parameters())
            torch._foreach_mul_(averages, decay)
            torch._foreach_add_(averages, [p.detach() for p in live.parameters()], alpha=1 - decay)

    def calibrate(self, timer: dict[int, float]) -> bool:
        """Keep the budget: fix the step counts at calibration; True when time is up."""
        if self.budget is None:
            return False
        now = time.monotonic()
        first, last = self.budget.calibrate
        if self.stage == "unet" and self.step in (first, last):
            timer[self.step] = now
        if self.stage == "unet" and self.step == last:
            rate = (now - timer[first]) / (last - first)
            available = last + (self.budget.deadline - now) / rate
            self.steps = min(self.steps, round(available * (1 - self.budget.share)))
            self.budget.settle_steps = round(available * self.budget.share)
            log(
                self.out,
                f"budget: {rate:.3f}s/step, --steps {self.steps} "
                f"--settle-steps {self.budget.settle_steps}",
            )
        if now > self.budget.deadline + self.budget.grace:
            log(self.out, f"{self.stage} stopped by the budget at step {self.step}/{self.steps}")
            return True
        return False

    def run(
        self,
        latents: torch.Tensor,
        ids: torch.Tensor,
        empty: torch.Tensor,
        batch: int,
        stop: int,
        partial: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """Train to step `stop` of a `steps`-long schedule, checkpointing every 250 steps.

        `partial`: each scene's left-object and right-object caption ids and whether it holds
        two objects (partial_captions), for a recipe with `partial`."""
        started, recent, timer = time.monotonic(), [], {}
        device = latents.device
        while self.step < min(stop, self.steps):
            pick = torch.randint(0, len(latents), (batch,), generator=self.generator)
            batch_ids = ids[pick].clone()
            dropped = torch.rand(batch, generator=self.generator) < 0.1
            batch_ids[dropped] = empty
            if self.recipe.partial and partial is not None:
                left, right, pairs = partial
                swap = (torch.rand(batch, generator=self.generator) < self.recipe.partial) & pairs[
                    pick
                ]
                side = torch.rand(batch, generator=self.generator) < 0.5
                one = torch.where(side[:, None], left[pick], right[pick])
                batch_ids = torch.where((swap & ~dropped)[:, None], one, batch_ids)
            self.step += 1
            pick = pick.to(device)
            recent.append(self.train_step(latents[pick], batch_ids.to(device)))
            if self.step % 50 == 0 or self.step == self.steps:
                rate = (time.monotonic() - started) / len(recent)
                log(
                    self.out,
                    f"{self.stage} {self.step}/{self.steps} loss {np.mean(recent):.4f} "
                    f"lr {self.learning_rate():.2e} {rate:.2f}s/step",
                )
                started, recent = time.monotonic(), []
            over = self.calibrate(timer)
            if self.step % 250 == 0 or self.step in (self.steps, stop) or over:
                self.save()
            if over:
                break

    def save_weights(self, path: Path) -> None:
        """The EMA text encoder and UNet as one safetensors file (prefixes `text_encoder.`
        and `unet.`), what `--weights` exports."""
        from safetensors.torch import save_file

        tensors = {
            f"{name}.{key}": value.detach().cpu().contiguous()
            for name, model in zip(("text_encoder", "unet"), self.ema, strict=True)
            for key, value in model.state_dict().items()
        }
        save_file(tensors, str(path))


def load_weights(
    path: Path, tokenizer: CLIPTokenizer
) -> tuple[CLIPTextModel, UNet2DConditionModel]:
    """A text encoder and UNet from a `save_weights` file."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    models = (make_text_encoder(tokenizer), make_unet())
    for name, model in zip(("text_encoder", "unet"), models, strict=True):
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        model.load_state_dict(state, strict=True)
    return models


def from_onnx(
    out: Path, folder: Path
) -> tuple[CLIPTokenizer, AutoencoderKL, tuple[CLIPTextModel, UNet2DConditionModel]]:
    """The tokenizer, VAE, text encoder and UNet of an earlier export, for the settle stage."""
    import shutil

    import shapes_from_onnx

    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(folder / "tokenizer" / name, out / "tokenizer" / name)
    tokenizer = train_tokenizer(out)
    vae = shapes_from_onnx.vae(folder)
    vae.save_pretrained(out / "vae-decoder")  # where a full run keeps its final VAE
    start = (shapes_from_onnx.text_encoder(folder), shapes_from_onnx.unet(folder))
    log(out, f"read the weights of {folder} (checked against its ONNX graphs)")
    return tokenizer, vae, start


# --- 6. export -------------------------------------------------------------------------


def sampling_scheduler(recipe: Recipe) -> DDIMScheduler | PNDMScheduler:
    """The scheduler config shipped with weights trained on `recipe`: SD 1.5's PNDM for the
    epsilon stage, DDIM on trailing timesteps (so sampling starts at t=999, the pure noise the
    model learned) for the zero-terminal-SNR v-prediction one."""
    if recipe.zero_snr:
        return DDIMScheduler(
            set_alpha_to_one=False,
            clip_sample=False,
            prediction_type=recipe.prediction_type,
            rescale_betas_zero_snr=True,
            timestep_spacing="trailing",
            **SCHEDULE,
        )
    return PNDMScheduler(
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        timestep_spacing="leading",
        **SCHEDULE,
    )


def diffusers_pipeline(
    vae: AutoencoderKL,
    tokenizer: CLIPTokenizer,
    models: tuple[CLIPTextModel, UNet2DConditionModel],
    scheduler: DDIMScheduler | PNDMScheduler,
) -> StableDiffusionPipeline:
    """The parts as a diffusers pipeline on the CPU (no safety checker), the models in eval
    mode: what export saves, draw_latents and models/eval_shapes.py sample with."""
    text_encoder, unet = (model.cpu().eval() for model in models)
    return StableDiffusionPipeline(
        vae=vae.cpu(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def recipe_of(folder: Path) -> Recipe:
    """A recipe whose scheduler (sampling_scheduler) is the one the export in `folder` ships."""
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    return SETTLED if config.get("rescale_betas_zero_snr") else PRETRAIN


def export(
    out: Path,
    vae: AutoencoderKL,
    tokenizer: CLIPTokenizer,
    models: tuple[CLIPTextModel, UNet2DConditionModel],
    recipe: Recipe,
) -> Path:
    """Save the weights as a diffusers pipeline and export it to ONNX in out/onnx."""
    from build_tiny import export_onnx, scrub_source_paths

    scheduler = sampling_scheduler(recipe)
    pipeline = diffusers_pipeline(vae, tokenizer, models, scheduler)
    pipeline.save_pretrained(out / "diffusers")
    export_onnx(out / "diffusers", out / "onnx", "text-to-image", validate=True)
    scrub_source_paths(out / "onnx", NAME)
    return out / "onnx"


INSTALL = Path(__file__).resolve().parent / "tiny" / NAME
CARD = {
    "description": (
        "impasto-shapes: an 18 MB demo model trained here on flat shapes "
        "(circle, square, triangle, star, ring in 8 colours on plain backgrounds). "
        "Try: a red circle on a blue background."
    ),
    "defaults": {"width": 128, "height": 128, "steps": 20, "cfg_scale": 5.0, "sampler": "euler_a"},
}


def write_manifest(target: Path, files: list[Path], fields: dict[str, object]) -> None:
    """target/MANIFEST.json: `fields`, then each file's sha256 (by path under target)."""
    import hashlib

    manifest = {
        **fields,
        "sha256": {
            p.relative_to(target).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(files)
        },
    }
    (target / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def install(onnx_dir: Path, target: Path, command: str) -> None:
    """Copy the export to `target`, its attention fused as an install fuses it, with
    impasto.json and a MANIFEST.json of sha256 hashes."""
    import platform
    import shutil

    import diffusers
    import transformers

    from impasto.services.optimize import fuse_folder

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(onnx_dir, target)
    # The bundled model is never installed through the daemon, so it gets here what every
    # install gets: ONNX Runtime's fused attention, which never holds a whole attention matrix
    # (at 1792x1024 the exported graph needs over 24 GB; fused, under 1 GB) and matches the
    # exported graph within float rounding (fuse_folder checks each graph's outputs).
    fused = fuse_folder(target)
    graphs = {path.parent.name for path in target.glob("*/model.onnx")}
    if set(fused) != graphs:
        raise SystemExit(f"attention fusion left graphs as exported: fused only {fused}")
    (target / "impasto.json").write_text(json.dumps(CARD, indent=2) + "\n", encoding="utf-8")
    files = [p for p in target.rglob("*") if p.is_file() and p.name != "MANIFEST.json"]
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }
    size = sum(p.stat().st_size for p in files)
    fields = {"command": command, "seed": SEED, "versions": versions, "bytes": size}
    write_manifest(target, files, fields)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work and output folder")
    parser.add_argument("--quick", action="store_true", help="a few dozen steps, to test")
    parser.add_argument("--steps", type=int, help="UNet steps (default 7000, quick 24)")
    parser.add_argument("--vae-steps", type=int, help="VAE steps (default 800, quick 12)")
    parser.add_argument(
        "--stop-at", type=int, help="stop (and export) at this step of the --steps schedule"
    )
    parser.add_argument(
        "--decoder-steps",
        type=int,
        help="steps of the decoder-only stage on whole scenes (default 1500, quick 6; 0: none)",
    )
    parser.add_argument(
        "--edge-steps",
        type=int,
        help=f"steps of the decoder's edge stage 3c (default {EDGE_STEPS}, quick 4; 0: none); "
        "with --from-onnx (and no UNet stage) run only that stage, on the export's decoder",
    )
    parser.add_argument(
        "--background-steps",
        type=int,
        help="steps of the decoder's background stage 3d (default 0: none; 3000 in the run "
        "models/README.md reports); with --from-onnx as --edge-steps (both given: 3c, then 3d)",
    )
    parser.add_argument(
        "--drawn",
        type=int,
        help="with --from-onnx and --background-steps: the UNet of that export draws this many "
        "latents, and half of each batch of stage 3d is those (models/shapes_decoder.py)",
    )
    parser.add_argument("--batch", type=int, help="UNet batch (default 32, quick 16)")
    parser.add_argument("--lr", type=float, default=6e-4, help="UNet peak learning rate")
    parser.add_argument(
        "--offset-noise",
        type=float,
        default=PRETRAIN.offset_noise,
        help="offset noise strength of stage 4 (0: off)",
    )
    parser.add_argument(
        "--recipe",
        choices=("offset", "settled"),
        default="offset",
        help="stage 4's recipe: offset noise and epsilon (default, the committed weights), or "
        "the settle stage's SETTLED from the first step",
    )
    parser.add_argument(
        "--settle-steps",
        type=int,
        help="steps of the settle stage (default 0: none; 3000 in the run models/README.md "
        "reports)",
    )
    parser.add_argument(
        "--from-onnx",
        type=Path,
        help="take stages 1-3 (tokenizer, VAE) from this ONNX export (for example "
        "models/tiny/impasto-shapes); with --settle-steps (and no --time-budget) run only the "
        "settle stage, on its UNet and text encoder",
    )
    parser.add_argument(
        "--settle-recipe",
        choices=("settled", "gentle"),
        default="settled",
        help="the settle stage's recipe: SETTLED (zero terminal SNR, v-prediction) or GENTLE "
        "(SD 1.5's schedule and target, offset noise only at high noise, partial captions)",
    )
    parser.add_argument(
        "--settle-mismatch", type=float, help="the settle recipe's share of wrong captions"
    )
    parser.add_argument(
        "--settle-partial",
        type=float,
        help="the settle recipe's share of two-object scenes captioned by one object",
    )
    parser.add_argument("--scenes", type=int, help="training scenes (default 10000, quick 128)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument(
        "--time-budget",
        type=float,
        help="seconds for stage 4 and the settle stage together: their step counts (at most "
        "--steps) are fixed from the rate measured early in stage 4, and logged",
    )
    parser.add_argument(
        "--settle-share",
        type=float,
        default=0.3,
        help="with --time-budget and --settle-recipe, the settle stage's share of the steps",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="export (and --install) these trained weights (a weights.safetensors a run "
        "wrote; with --from-onnx for the tokenizer and VAE) instead of training",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-export", action="store_true", help="stop after training")
    parser.add_argument(
        "--install", action="store_true", help=f"copy the export to {INSTALL} (the bundled model)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Tiny Adam moments turn denormal late in training, and CPUs are slow on denormals.
    torch.set_flush_denormal(True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    vae_steps = args.vae_steps or (12 if quick else 800)
    steps = args.steps or (24 if quick else 7000)
    decoder_steps = args.decoder_steps if args.decoder_steps is not None else 6 if quick else 1500
    edge_steps = args.edge_steps if args.edge_steps is not None else 4 if quick else EDGE_STEPS
    background_steps = args.background_steps or 0
    batch = args.batch or (16 if quick else 32)
    scenes = args.scenes or (128 if quick else 10000)
    settle_steps = args.settle_steps or 0
    settle_recipe = RECIPES[args.settle_recipe]
    if args.settle_mismatch is not None:
        settle_recipe = replace(settle_recipe, mismatch=args.settle_mismatch)
    if args.settle_partial is not None:
        settle_recipe = replace(settle_recipe, partial=args.settle_partial)
    if args.weights:
        if not args.from_onnx:
            parser.error("--weights needs --from-onnx (the tokenizer and VAE)")
        tokenizer, vae, _ = from_onnx(out, args.from_onnx)
        recipe = settle_recipe if settle_steps else RECIPES[args.recipe]
        models = load_weights(args.weights, tokenizer)
        return export_and_install(args, argv, out, vae, tokenizer, models, recipe)
    budget = None
    if args.time_budget:
        share = args.settle_share if settle_steps else 0.0
        budget = Budget(time.monotonic() + args.time_budget, share)
        if quick:
            budget.calibrate = (5, 15)
    if args.drawn and not (args.from_onnx and args.background_steps):
        parser.error("--drawn needs --from-onnx (the UNet that draws) and --background-steps")
    if args.from_onnx and (args.edge_steps or args.background_steps):
        if settle_steps or args.steps or args.recipe != "offset" or budget:
            parser.error("--from-onnx with --edge-steps or --background-steps runs only those")
        tokenizer, vae, start = from_onnx(out, args.from_onnx)
        latents, _ = encode_latents(out, vae, scenes, args.device)
        pairs = decoder_pairs(latents)
        if args.edge_steps:
            vae = train_edges(out, vae, pairs, args.edge_steps)
        recipe = recipe_of(args.from_onnx)
        if args.background_steps:
            drawn = None
            if args.drawn:
                drawn = draw_latents(out, vae, tokenizer, start, recipe, args.drawn)
            vae = train_edges(out, vae, pairs, args.background_steps, True, drawn)
        return export_and_install(args, argv, out, vae, tokenizer, start, recipe)
    if args.from_onnx:
        tokenizer, vae, start = from_onnx(out, args.from_onnx)
        latents, captions = encode_latents(out, vae, scenes, args.device)
    else:
        tokenizer = train_tokenizer(out)
        vae = train_both_vae_stages(out, vae_steps, batch=8 if quick else 16)
        latents, captions = encode_latents(out, vae, scenes, args.device)
        if decoder_steps or edge_steps or background_steps:
            pairs = decoder_pairs(latents)  # drawn once for the decoder stages
        if decoder_steps:
            vae = train_decoder(out, vae, *pairs, decoder_steps, 8, seed=SEED + 6, log=log)
        if edge_steps:
            vae = train_edges(out, vae, pairs, edge_steps)
        if background_steps:
            vae = train_edges(out, vae, pairs, background_steps, background=True)
        scale = 1.0 / float(latents.std())
        vae.register_to_config(scaling_factor=round(scale, 5))
    device = torch.device(args.device)
    ids = tokenize(tokenizer, captions)
    empty = tokenize(tokenizer, [""])[0]
    left, right, pairs = partial_captions(captions)
    partial = (tokenize(tokenizer, left), tokenize(tokenizer, right), torch.tensor(pairs))
    scaled = (latents * vae.config.scaling_factor).to(device)
    if not (args.from_onnx and settle_steps and not budget):
        pretrain = replace(PRETRAIN, offset_noise=args.offset_noise)
        recipe = pretrain if args.recipe == "offset" else RECIPES[args.recipe]
        trainer = Trainer(
            out, tokenizer, steps, lr=args.lr, recipe=recipe, device=args.device, budget=budget
        )
        trainer.run(scaled, ids, empty, batch=batch, stop=args.stop_at or steps, partial=partial)
        start = (trainer.ema[0], trainer.ema[1])
        if budget:
            settle_steps = budget.settle_steps if settle_steps else 0
    # The settle stage follows a finished stage 4 (--stop-at exports stage 4 where it stopped).
    if settle_steps and (args.from_onnx or trainer.step == trainer.steps):
        trainer = Trainer(
            out,
            tokenizer,
            settle_steps,
            lr=SETTLE_LR,
            recipe=settle_recipe,
            start=start,
            stage="settle",
            device=args.device,
            budget=budget,
        )
        trainer.run(scaled, ids, empty, batch=batch, stop=settle_steps, partial=partial)
    trainer.save_weights(out / "weights.safetensors")
    if args.no_export:
        return 0
    models = (trainer.ema[0], trainer.ema[1])
    return export_and_install(args, argv, out, vae, tokenizer, models, trainer.recipe)


def export_and_install(
    args: argparse.Namespace,
    argv: list[str] | None,
    out: Path,
    vae: AutoencoderKL,
    tokenizer: CLIPTokenizer,
    models: tuple[CLIPTextModel, UNet2DConditionModel],
    recipe: Recipe,
) -> int:
    """Export the weights; with --install copy them to the bundled model's folder."""
    onnx_dir = export(out, vae, tokenizer, models, recipe)
    log(out, f"exported {onnx_dir}")
    if args.install:
        command = "python models/train_shapes.py " + " ".join(argv or sys.argv[1:])
        install(onnx_dir, INSTALL, command)
        log(out, f"installed {INSTALL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
