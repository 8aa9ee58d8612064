"""Build random-weight Stable Diffusion pipelines offline and export them to ONNX.

    python models/build_tiny.py                  # rebuild every folder under models/tiny/
    python models/build_tiny.py --only sd-tiny-v
    python models/build_tiny.py --shape sd15 --out ~/.cache/impasto/bench/sd15

Nothing is downloaded: the tokenizer is trained here on a generated corpus and every
weight comes from a seeded torch initialisation, so a rebuild gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    PNDMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_bpe import write_clip_files
from fp16 import convert_folder_to_fp16
from tiny_adapters import ADAPTERS_ROOT, build_adapters
from tiny_families import FAMILIES, FamilyVariant, build_sd, build_sdxl

SEED = 0
TINY_ROOT = Path(__file__).resolve().parent / "tiny"
SD15_CACHE = Path("~/.cache/impasto/bench/sd15").expanduser()
CLIP_VOCAB_SIZE = 49408


@dataclass(frozen=True)
class Variant:
    """One pipeline flavour: what differs between SD 1.x, inpainting and SD 2.x (v)."""

    name: str
    in_channels: int = 4
    prediction_type: str = "epsilon"
    # SD 2.x pads prompts with "!" (id 0), SD 1.x with the end-of-text token.
    pad_token: str = "<|endoftext|>"
    hidden_act: str = "quick_gelu"
    use_linear_projection: bool = False

    @property
    def inpaint(self) -> bool:
        """True for the 9-channel (latents + mask + masked image) UNet."""
        return self.in_channels == 9

    @property
    def task(self) -> str:
        """The optimum export task for this pipeline."""
        return "inpainting" if self.inpaint else "text-to-image"


TINY = {
    v.name: v
    for v in (
        Variant("sd-tiny"),
        Variant("sd-tiny-inpaint", in_channels=9),
        Variant(
            "sd-tiny-v",
            prediction_type="v_prediction",
            pad_token="!",
            hidden_act="gelu",
            use_linear_projection=True,
        ),
    )
}


def make_scheduler(variant: Variant) -> PNDMScheduler | DDIMScheduler:
    """SD 1.5's PNDM schedule, or SD 2.1's DDIM v-prediction schedule."""
    common = {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "prediction_type": variant.prediction_type,
        # SD 2.1's config leaves this unset, which means "leading" for DDIM too.
        "timestep_spacing": "leading",
    }
    if variant.prediction_type == "v_prediction":
        return DDIMScheduler(clip_sample=False, **common)
    return PNDMScheduler(skip_prk_steps=True, **common)


def make_tokenizer(variant: Variant, folder: Path, vocab_size: int | None) -> CLIPTokenizer:
    """Train the BPE files into `folder` and load them as a slow CLIP tokenizer."""
    vocab_file, merges_file = write_clip_files(folder, SEED, vocab_size)
    return CLIPTokenizer(
        str(vocab_file), str(merges_file), pad_token=variant.pad_token, model_max_length=77
    )


def text_config(variant: Variant, tokenizer: CLIPTokenizer, full: bool) -> CLIPTextConfig:
    """CLIP ViT-L/14's text tower for SD 1.5, or a 2-layer, 32-wide one."""
    sizes = (
        {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
        | {"num_attention_heads": 12, "projection_dim": 768}
        if full
        else {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
        | {"num_attention_heads": 4, "projection_dim": 32}
    )
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        hidden_act=variant.hidden_act,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )


def make_unet(variant: Variant, cross_dim: int, full: bool) -> UNet2DConditionModel:
    """SD 1.5's UNet, or two 32-channel blocks (one cross-attention) at 8x8 latents."""
    if full:
        return UNet2DConditionModel(
            sample_size=64,
            in_channels=variant.in_channels,
            cross_attention_dim=cross_dim,
            use_linear_projection=variant.use_linear_projection,
        )
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=variant.in_channels,
        out_channels=4,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_dim,
        attention_head_dim=8,
        # Groups of 4 channels: with one channel per group (32), GroupNorm would cancel the
        # per-channel time embedding, and a wrong timestep would go unseen end to end.
        norm_num_groups=8,
        use_linear_projection=variant.use_linear_projection,
    )


def make_vae(full: bool) -> AutoencoderKL:
    """SD's VAE, or a narrow one that keeps the real 8x downsampling (four blocks)."""
    channels = (128, 256, 512, 512) if full else (8, 16, 16, 16)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=channels,
        layers_per_block=2 if full else 1,
        latent_channels=4,
        norm_num_groups=32 if full else 8,
        sample_size=512 if full else 64,
        scaling_factor=0.18215,
    )


TAESD_TINY = "taesd-tiny"


def make_taesd(full: bool) -> AutoencoderTiny:
    """TAESD's architecture (diffusers' defaults), or an 8-channel one with one block a level.

    Seeded here, so a rebuild (and the tests' torch reference) gives the same weights.
    """
    torch.manual_seed(SEED + 3)
    if full:
        return AutoencoderTiny()
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    )


def build_taesd(out: Path, full: bool = False) -> Path:
    """Export a seeded AutoencoderTiny's decoder as an installed fast decoder folder."""
    from impasto.services.convert import export_fast_decoder

    if out.exists():
        shutil.rmtree(out)
    export_fast_decoder(make_taesd(full), out)
    return out


# Returns Any: mypy resolves diffusers' lazy exports to dummy classes without save_pretrained.
def build_pipeline(variant: Variant, work: Path, full: bool) -> Any:
    """Assemble a seeded random-weight pipeline; `work` receives the tokenizer files."""
    tokenizer = make_tokenizer(variant, work / "bpe", CLIP_VOCAB_SIZE if full else None)
    config = text_config(variant, tokenizer, full)
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(SEED + 1)
    unet = make_unet(variant, config.hidden_size, full)
    torch.manual_seed(SEED + 2)
    vae = make_vae(full)
    pipeline_class = StableDiffusionInpaintPipeline if variant.inpaint else StableDiffusionPipeline
    return pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=make_scheduler(variant),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def export_onnx(diffusers_dir: Path, onnx_dir: Path, task: str, validate: bool) -> None:
    """Export a saved diffusers folder with optimum, in optimum's usual layout."""
    from optimum.exporters.onnx import main_export

    if onnx_dir.exists():
        shutil.rmtree(onnx_dir)
    main_export(
        str(diffusers_dir),
        output=onnx_dir,
        task=task,
        library_name="diffusers",
        local_files_only=True,
        do_validation=validate,
    )


def scrub_source_paths(folder: Path, name: str) -> None:
    """Replace the temporary source path optimum records in each config with a stable name."""
    for config_file in folder.rglob("*.json"):
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if isinstance(config, dict) and "_name_or_path" in config:
            config["_name_or_path"] = f"impasto/{name}"
            config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


TEST_MODEL_NOTE = "random-weight test model: listed only with show_test_models (models/README.md)\n"


def scrub_and_mark(folder: Path, name: str) -> None:
    """Stable config paths, and the marker that keeps this test model out of users' lists."""
    scrub_source_paths(folder, name)
    (folder / "impasto-test-model").write_text(TEST_MODEL_NOTE, encoding="utf-8")


def build_tiny(variant: Variant, out_root: Path, keep_diffusers: Path | None) -> Path:
    """Build one tiny variant into `out_root/NAME`; return that folder."""
    with tempfile.TemporaryDirectory(prefix="impasto-tiny-") as tmp:
        work = Path(tmp)
        diffusers_dir = (keep_diffusers or work) / variant.name
        build_pipeline(variant, work, full=False).save_pretrained(diffusers_dir)
        export_onnx(diffusers_dir, out_root / variant.name, variant.task, validate=True)
    scrub_and_mark(out_root / variant.name, variant.name)
    return out_root / variant.name


def build_family_pipeline(variant: FamilyVariant, work: Path) -> Any:
    """A seeded tiny pipeline of another family (see tiny_families.py)."""

    def tokenizer(pad: str, folder: Path) -> CLIPTokenizer:
        return make_tokenizer(Variant(variant.name, pad_token=pad), folder, None)

    def config(act: str, tok: CLIPTokenizer) -> CLIPTextConfig:
        return text_config(Variant(variant.name, hidden_act=act), tok, full=False)

    builder = build_sdxl if variant.kind.startswith("sdxl") else build_sd
    return builder(variant.kind, tokenizer, lambda: make_vae(False), config, work)


def build_family(variant: FamilyVariant, out_root: Path, keep_diffusers: Path | None) -> Path:
    """Build and export one tiny folder of another family into `out_root/NAME`."""
    with tempfile.TemporaryDirectory(prefix="impasto-tiny-") as tmp:
        work = Path(tmp)
        diffusers_dir = (keep_diffusers or work) / variant.name
        build_family_pipeline(variant, work).save_pretrained(diffusers_dir)
        export_onnx(diffusers_dir, out_root / variant.name, variant.task, validate=True)
    scrub_and_mark(out_root / variant.name, variant.name)
    return out_root / variant.name


def build_sd15(out: Path) -> None:
    """Build full-size SD-1.5-shaped weights as `out/diffusers` and `out/onnx`."""
    variant = Variant("sd15")
    with tempfile.TemporaryDirectory(prefix="impasto-sd15-") as tmp:
        pipeline = build_pipeline(variant, Path(tmp), full=True)
    if (out / "diffusers").exists():
        shutil.rmtree(out / "diffusers")
    pipeline.save_pretrained(out / "diffusers", safe_serialization=True)
    del pipeline
    # Validation would run the 860M-parameter UNet twice more on CPU for no new information.
    export_onnx(out / "diffusers", out / "onnx", variant.task, validate=False)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=[*TINY, "sd-tiny-fp16", *FAMILIES, "adapters", TAESD_TINY],
        help="build one",
    )
    parser.add_argument("--shape", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--out", type=Path, help="output folder (default: models/tiny or cache)")
    parser.add_argument("--keep-diffusers", type=Path, help="also keep tiny diffusers folders")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.shape == "sd15":
        build_sd15((args.out or SD15_CACHE).expanduser())
        build_taesd((args.out or SD15_CACHE).expanduser() / "taesd", full=True)
    else:
        out_root = args.out or TINY_ROOT
        every = [*TINY, "sd-tiny-fp16", *FAMILIES, "adapters", TAESD_TINY]
        names = [args.only] if args.only else every
        for name in names:
            if name == TAESD_TINY:
                build_taesd(out_root / name)
            elif name == "adapters":
                build_adapters(out_root / ADAPTERS_ROOT, build_pipeline, TINY["sd-tiny"])
            elif name in FAMILIES:
                build_family(FAMILIES[name], out_root, args.keep_diffusers)
            elif name == "sd-tiny-fp16":
                source = out_root / "sd-tiny"
                if not source.exists():
                    build_tiny(TINY["sd-tiny"], out_root, args.keep_diffusers)
                convert_folder_to_fp16(source, out_root / name)
                scrub_and_mark(out_root / name, name)
            else:
                build_tiny(TINY[name], out_root, args.keep_diffusers)
            print(f"built {out_root / name}")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
