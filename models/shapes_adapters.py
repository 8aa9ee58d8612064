"""Train a LoRA and a textual-inversion embedding on top of `impasto-shapes`.

    python models/shapes_adapters.py --out /tmp/shapes --install   # after train_shapes.py
    python models/shapes_adapters.py --out /tmp/shapes --quick     # a few steps, to test

Both teach the base model something its training never showed it (shapes_world.py):
- the LoRA `shapes-dotted` (kohya format, UNet attention and feed-forward layers, rank 4), a
  style LoRA with no trigger word, like most published ones: at weight 1 every shape gets a
  grid of dark dots, a texture the base model never drew. (A new trigger word does not work
  here: the base model's text encoder never trained the word's token pieces, and they throw
  its reading of the rest of the prompt off even at weight 0.);
- the embedding `shapes-violet` (AUTOMATIC1111 format, `emb_params`, named by the file stem):
  a new word learned from pictures alone (purple shapes whose captions say `shapes-violet`
  instead of `purple`), started from the mean of two other colours' embeddings. (A colour
  outside the palette cannot be taught: the VAE, trained on the eight colours only, turns
  teal into blue on the way through.)
They read the export train_shapes.py leaves in out/diffusers, and are written to
out/adapters/{loras,embeddings}; --install copies them to models/tiny/shapes-adapters/, the
layout of a models folder, which the semantic tests use.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes_world as world
import train_shapes as base

LORA = "shapes-dotted"
EMBEDDING = "shapes-violet"
# What the embedding means, and the colours whose embeddings it starts from.
EMBEDDING_COLOUR = "purple"
START_FROM = ("red</w>", "blue</w>")
RANK = 4
INSTALL = Path(__file__).resolve().parent / "tiny" / "shapes-adapters"
# The UNet layers the LoRA adapts (all Linear): attention projections and feed-forward.
TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")


class LoraLinear(torch.nn.Module):
    """A frozen Linear plus a trainable low-rank update, scaled by alpha / rank (alpha = rank)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.down = torch.nn.Linear(linear.in_features, RANK, bias=False)
        self.up = torch.nn.Linear(RANK, linear.out_features, bias=False)
        torch.nn.init.normal_(self.down.weight, std=1.0 / RANK)
        torch.nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.up(self.down(x))


def add_lora(unet: UNet2DConditionModel) -> dict[str, LoraLinear]:
    """Wrap every target Linear of the UNet's transformer blocks; returns them by module path."""
    wrapped = {}
    for name, module in list(unet.named_modules()):
        if ".transformer_blocks." not in name or not name.endswith(TARGETS):
            continue
        if not isinstance(module, torch.nn.Linear):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = unet.get_submodule(parent_name)
        lora = LoraLinear(module)
        setattr(parent, child, lora)
        wrapped[name] = lora
    return wrapped


def kohya_tensors(wrapped: dict[str, LoraLinear]) -> dict[str, torch.Tensor]:
    """The kohya names: lora_unet_<module path, dots as underscores>.lora_down/up/alpha."""
    tensors = {}
    for name, lora in wrapped.items():
        key = "lora_unet_" + name.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = lora.down.weight.detach().clone().contiguous()
        tensors[f"{key}.lora_up.weight"] = lora.up.weight.detach().clone().contiguous()
        tensors[f"{key}.alpha"] = torch.tensor(float(RANK))
    return tensors


def scenes(count: int, seed: int, make: str) -> tuple[torch.Tensor, list[str]]:
    """`count` scenes for one adapter, as uint8 [N, 3, 128, 128], and their captions.

    "lora": single dotted shapes, captioned as if plain;
    "embedding": single purple shapes on any other background, `purple` replaced by the token.
    """
    rng = random.Random(seed)
    images, captions = [], []
    for _ in range(count):
        scene = world.sample_scene(rng)
        thing = replace(scene.things[0], style=None)
        if make == "lora":
            said = replace(scene, things=(thing,), said_colour=True)
            drawn = replace(said, things=(replace(thing, style=world.LORA_STYLE),))
            text = world.caption(said)
        else:
            thing = replace(thing, colour=EMBEDDING_COLOUR, position=None)
            background = rng.choice([c for c in world.COLOURS if c != EMBEDDING_COLOUR])
            drawn = world.Scene((thing,), background)
            text = world.caption(drawn).replace(EMBEDDING_COLOUR, EMBEDDING)
        images.append(np.asarray(world.render(drawn, rng)))
        captions.append(text)
    array = np.stack(images).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array)), captions


class Parts:
    """The exported pipeline's parts, frozen, and what a training step needs."""

    def __init__(self, out: Path) -> None:
        folder = out / "diffusers"
        self.tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
        self.unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        self.vae = AutoencoderKL.from_pretrained(folder / "vae")
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        settled = scheduler.get("prediction_type") == "v_prediction"
        self.recipe = base.SETTLED if settled else base.PRETRAIN
        for model in (self.text_encoder, self.unet, self.vae):
            model.requires_grad_(False)

    @torch.no_grad()
    def latents(self, images: torch.Tensor) -> torch.Tensor:
        chunks = [
            self.vae.encode(base.to_unit(images[i : i + 64])).latent_dist.mean
            for i in range(0, len(images), 64)
        ]
        return torch.cat(chunks) * self.vae.config.scaling_factor

    def loss(self, latents: torch.Tensor, ids: torch.Tensor, generator: torch.Generator):
        """The loss the base model was last trained with (its exported scheduler says which)."""
        return base.denoising_loss(
            self.unet, self.text_encoder, ids, latents, generator, self.recipe
        )


def train(
    out: Path,
    parts: Parts,
    params: list[torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    lr: float,
    tag: str,
) -> None:
    """AdamW on `params` over (latents, ids) batches of 16; logs like train_shapes.py."""
    latents, ids = data
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(base.SEED + 11)
    started, recent = time.monotonic(), []
    for step in range(1, steps + 1):
        pick = torch.randint(0, len(latents), (16,), generator=generator)
        loss = parts.loss(latents[pick], ids[pick], generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        recent.append(loss.item())
        if step % 50 == 0 or step == steps:
            rate = (time.monotonic() - started) / len(recent)
            base.log(out, f"{tag} {step}/{steps} loss {np.mean(recent):.4f} {rate:.2f}s/step")
            started, recent = time.monotonic(), []


def train_lora(out: Path, steps: int, count: int, lr: float) -> Path:
    """The `dotted` LoRA; returns its file."""
    torch.manual_seed(base.SEED + 12)
    parts = Parts(out)
    images, captions = scenes(count, base.SEED + 13, "lora")
    data = (parts.latents(images), base.tokenize(parts.tokenizer, captions))
    wrapped = add_lora(parts.unet)
    params = [p for lora in wrapped.values() for p in (lora.down.weight, lora.up.weight)]
    train(out, parts, params, data, steps, lr=lr, tag="lora")
    target = out / "adapters" / "loras" / f"{LORA}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"ss_network_dim": str(RANK), "ss_network_alpha": str(RANK)}
    save_file(kohya_tensors(wrapped), str(target), metadata=metadata)
    return target


def train_embedding(out: Path, steps: int, count: int) -> Path:
    """The `shapes-violet` embedding; returns its file."""
    torch.manual_seed(base.SEED + 14)
    parts = Parts(out)
    parts.tokenizer.add_tokens([EMBEDDING])
    new_id = parts.tokenizer.convert_tokens_to_ids(EMBEDDING)
    table = parts.text_encoder.resize_token_embeddings(len(parts.tokenizer)).weight
    with torch.no_grad():  # start from neither the answer nor nothing
        first, second = parts.tokenizer.convert_tokens_to_ids(list(START_FROM))
        table[new_id] = (table[first] + table[second]) / 2
    table.requires_grad_(True)
    only_new = torch.zeros(len(table), 1)
    only_new[new_id] = 1.0
    table.register_hook(lambda grad: grad * only_new)
    images, captions = scenes(count, base.SEED + 15, "embedding")
    data = (parts.latents(images), base.tokenize(parts.tokenizer, captions))
    train(out, parts, [table], data, steps, lr=5e-3, tag="embedding")
    target = out / "adapters" / "embeddings" / f"{EMBEDDING}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    vector = table[new_id : new_id + 1].detach().clone().contiguous()
    save_file({"emb_params": vector}, str(target))
    return target


def install(out: Path, command: str) -> None:
    """Copy out/adapters to models/tiny/shapes-adapters with a MANIFEST.json."""
    if INSTALL.exists():
        shutil.rmtree(INSTALL)
    shutil.copytree(out / "adapters", INSTALL)
    files = list(INSTALL.rglob("*.safetensors"))
    base.write_manifest(INSTALL, files, {"command": command, "seed": base.SEED})


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="train_shapes.py's --out")
    parser.add_argument("--quick", action="store_true", help="a few steps, to test")
    parser.add_argument("--lora-steps", type=int, help="LoRA steps (default 1600, quick 5)")
    parser.add_argument("--lora-lr", type=float, default=1e-3, help="LoRA learning rate")
    parser.add_argument("--embedding-steps", type=int, help="embedding steps (default 300)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--install", action="store_true", help=f"copy the files to {INSTALL}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    count = 64 if args.quick else 2000
    lora = train_lora(args.out, args.lora_steps or (5 if args.quick else 1600), count, args.lora_lr)
    base.log(args.out, f"wrote {lora}")
    steps = args.embedding_steps or (5 if args.quick else 300)
    embedding = train_embedding(args.out, steps, count)
    base.log(args.out, f"wrote {embedding}")
    if args.install:
        install(args.out, "python models/shapes_adapters.py " + " ".join(argv or sys.argv[1:]))
        base.log(args.out, f"installed {INSTALL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
