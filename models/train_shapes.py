"""Train `impasto-shapes`, a small SD-1.x-shaped model that draws the scenes of shapes_world.py.

    python models/train_shapes.py --out /tmp/shapes --install  # the full run (2 CPU cores, ~1.5 h)
    python models/train_shapes.py --out /tmp/shapes --quick    # a few hundred steps, ~2 min

Stages, each checkpointed under --out so a run can stop and resume:
  1. tokenizer: a CLIP-format BPE trained on captions + the tiny models' prompt corpus;
  2. vae: an AutoencoderKL (factor 8, 4 latent channels) trained on 64x64 crops of scenes,
     MSE then L1;
  3. latents: the training scenes encoded once (posterior means), scaling factor = 1/std;
  4. unet: a UNet2DConditionModel and a CLIPTextModel trained together (epsilon
     prediction, SD 1.5's noise schedule, 10% empty captions for classifier-free guidance,
     an EMA copy of both that is what gets exported);
  5. export: the diffusers pipeline saved and exported with optimum, as models/build_tiny.py does.
Everything is seeded; on the same torch build and thread count a rerun gives the same weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes_world as world
from clip_bpe import clip_vocab, learn_merges, prompt_corpus
from shapes_decoder import train_decoder

SEED = 17
NAME = "impasto-shapes"
# The strength of the offset noise (Trainer.train_step): 0.3 hides the latent's mean at every
# timestep that sampling starts from.
OFFSET_NOISE = 0.3
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}


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
def encode_latents(out: Path, vae: AutoencoderKL, count: int) -> tuple[torch.Tensor, list[str]]:
    """Encode `count` scenes once; save latents (unscaled means) and captions."""
    path = out / "latents.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["latents"], saved["captions"]
    images, captions = images_tensor(count, SEED + 2)
    vae.eval()
    chunks = [vae.encode(to_unit(images[i : i + 64])).latent_dist.mean for i in range(0, count, 64)]
    latents = torch.cat(chunks)
    torch.save({"latents": latents, "captions": captions}, path)
    log(out, f"encoded {count} scenes, latent std {latents.std().item():.4f}")
    return latents, captions


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


class Trainer:
    """The joint UNet + text-encoder loop, with EMA copies and resumable checkpoints."""

    def __init__(
        self,
        out: Path,
        tokenizer: CLIPTokenizer,
        steps: int,
        lr: float,
        offset_noise: float = OFFSET_NOISE,
    ) -> None:
        torch.manual_seed(SEED + 3)
        self.out, self.steps, self.lr = out, steps, lr
        self.offset_noise = offset_noise
        self.text_encoder = make_text_encoder(tokenizer)
        self.unet = make_unet()
        self.ema = [copy.deepcopy(self.text_encoder), copy.deepcopy(self.unet)]
        params = [*self.text_encoder.parameters(), *self.unet.parameters()]
        self.optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        self.noise = DDPMScheduler(**SCHEDULE)
        self.step = 0
        self.generator = torch.Generator().manual_seed(SEED + 4)
        checkpoint = out / "checkpoint.pt"
        if checkpoint.exists():
            state = torch.load(checkpoint, weights_only=False)
            self.text_encoder.load_state_dict(state["text_encoder"])
            self.unet.load_state_dict(state["unet"])
            self.ema[0].load_state_dict(state["ema_text_encoder"])
            self.ema[1].load_state_dict(state["ema_unet"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.generator.set_state(state["generator"])
            self.step = state["step"]

    def save(self) -> None:
        """Write checkpoint.pt atomically (a killed run keeps the previous one)."""
        state = {
            "text_encoder": self.text_encoder.state_dict(),
            "unet": self.unet.state_dict(),
            "ema_text_encoder": self.ema[0].state_dict(),
            "ema_unet": self.ema[1].state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
        }
        torch.save(state, self.out / "checkpoint.tmp")
        (self.out / "checkpoint.tmp").replace(self.out / "checkpoint.pt")

    def learning_rate(self) -> float:
        """Linear warm-up over 200 steps, then cosine down to a tenth."""
        warm = min(1.0, self.step / 200)
        cosine = 0.1 + 0.9 * (1 + math.cos(math.pi * min(1.0, self.step / self.steps))) / 2
        return self.lr * warm * cosine

    def train_step(self, latents: torch.Tensor, ids: torch.Tensor) -> float:
        """One denoising step on a batch; returns the loss."""
        noise = torch.randn(latents.shape, generator=self.generator)
        if self.offset_noise:
            # Offset noise: a random per-channel constant in the noise. At 16x16 latents the
            # mean of plain noise is so small (std 1/16) that the background's colour still
            # shows through at t=999, so the UNet learns to read the background from the
            # noisy latent instead of from the prompt, and at sampling time copies it from the
            # random start. With the offset the noisy latent's mean says nothing; the prompt
            # must.
            offsets = torch.randn((*latents.shape[:2], 1, 1), generator=self.generator)
            noise = noise + self.offset_noise * offsets
        t = torch.randint(0, 1000, (len(latents),), generator=self.generator)
        noisy = self.noise.add_noise(latents, noise, t)
        context = self.text_encoder(ids).last_hidden_state
        predicted = self.unet(noisy, t, context).sample
        # Min-SNR-5 weighting: converges faster than the plain epsilon loss.
        snr = self.noise.alphas_cumprod[t] / (1 - self.noise.alphas_cumprod[t])
        weight = torch.clamp(snr, max=5.0) / snr
        loss = (weight * ((predicted - noise) ** 2).mean(dim=(1, 2, 3))).mean()
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
            for e, p in zip(ema.parameters(), live.parameters(), strict=True):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)

    def run(
        self, latents: torch.Tensor, ids: torch.Tensor, empty: torch.Tensor, batch: int, stop: int
    ) -> None:
        """Train to step `stop` of a `steps`-long schedule, checkpointing every 250 steps."""
        started, recent = time.monotonic(), []
        while self.step < min(stop, self.steps):
            pick = torch.randint(0, len(latents), (batch,), generator=self.generator)
            batch_ids = ids[pick].clone()
            dropped = torch.rand(batch, generator=self.generator) < 0.1
            batch_ids[dropped] = empty
            self.step += 1
            recent.append(self.train_step(latents[pick], batch_ids))
            if self.step % 50 == 0 or self.step == self.steps:
                rate = (time.monotonic() - started) / len(recent)
                log(
                    self.out,
                    f"unet {self.step}/{self.steps} loss {np.mean(recent):.4f} "
                    f"lr {self.learning_rate():.2e} {rate:.2f}s/step",
                )
                started, recent = time.monotonic(), []
            if self.step % 250 == 0 or self.step in (self.steps, stop):
                self.save()


# --- 5. export -------------------------------------------------------------------------


def export(out: Path, vae: AutoencoderKL, tokenizer: CLIPTokenizer, trainer: Trainer) -> Path:
    """Save the EMA weights as a diffusers pipeline and export it to ONNX in out/onnx."""
    from build_tiny import export_onnx, scrub_source_paths
    from diffusers import StableDiffusionPipeline

    scheduler = PNDMScheduler(
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        timestep_spacing="leading",
        **SCHEDULE,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=trainer.ema[0],
        tokenizer=tokenizer,
        unet=trainer.ema[1],
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
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
    """Copy the export to `target` with impasto.json and a MANIFEST.json of sha256 hashes."""
    import platform
    import shutil

    import diffusers
    import transformers

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(onnx_dir, target)
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
    parser.add_argument("--quick", action="store_true", help="a few hundred steps, to test")
    parser.add_argument("--steps", type=int, help="UNet steps (default 7000, quick 150)")
    parser.add_argument("--vae-steps", type=int, help="VAE steps (default 800, quick 60)")
    parser.add_argument(
        "--stop-at", type=int, help="stop (and export) at this step of the --steps schedule"
    )
    parser.add_argument(
        "--decoder-steps",
        type=int,
        help="steps of the decoder-only stage on whole scenes (default 1500, quick 20; 0: none)",
    )
    parser.add_argument("--batch", type=int, help="UNet batch (default 32, quick 16)")
    parser.add_argument("--lr", type=float, default=6e-4, help="UNet peak learning rate")
    parser.add_argument(
        "--offset-noise", type=float, default=OFFSET_NOISE, help="offset noise strength (0: off)"
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
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    vae_steps = args.vae_steps or (60 if quick else 800)
    steps = args.steps or (150 if quick else 7000)
    decoder_steps = args.decoder_steps if args.decoder_steps is not None else 20 if quick else 1500
    batch = args.batch or (16 if quick else 32)
    tokenizer = train_tokenizer(out)
    vae = train_both_vae_stages(out, vae_steps, batch=8 if quick else 16)
    latents, captions = encode_latents(out, vae, 512 if quick else 10000)
    if decoder_steps:
        # The first scenes of the ones latents.pt holds (the dataset is prefix-stable).
        count = min(len(latents), 4000)
        scenes, _ = images_tensor(count, SEED + 2)
        vae = train_decoder(
            out, vae, latents[:count], scenes, decoder_steps, 8, seed=SEED + 6, log=log
        )
    scale = 1.0 / float(latents.std())
    vae.register_to_config(scaling_factor=round(scale, 5))
    ids = tokenize(tokenizer, captions)
    empty = tokenize(tokenizer, [""])[0]
    trainer = Trainer(out, tokenizer, steps, lr=args.lr, offset_noise=args.offset_noise)
    stop = args.stop_at or steps
    trainer.run(latents * vae.config.scaling_factor, ids, empty, batch=batch, stop=stop)
    if not args.no_export:
        onnx_dir = export(out, vae, tokenizer, trainer)
        log(out, f"exported {onnx_dir}")
        if args.install:
            command = "python models/train_shapes.py " + " ".join(argv or sys.argv[1:])
            install(onnx_dir, INSTALL, command)
            log(out, f"installed {INSTALL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
