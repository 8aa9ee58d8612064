"""The committed tiny ONNX Stable Diffusion models: layout, tokenizer, shapes, and that they run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from transformers import CLIPTokenizer, CLIPTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "tiny"
FP32 = ["sd-tiny", "sd-tiny-inpaint", "sd-tiny-v"]
ALL = [*FP32, "sd-tiny-fp16"]
TXT2IMG = ["sd-tiny", "sd-tiny-v", "sd-tiny-fp16"]
REQUIRED = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    *(
        f"{part}/{file}"
        for part in ("text_encoder", "unet", "vae_decoder", "vae_encoder")
        for file in ("model.onnx", "config.json")
    ),
]
# No CJK here: without ftfy the slow tokenizer splits CJK per character and the fast one
# does not, for every CLIP vocab including OpenAI's, so that difference is not ours.
PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "(red:1.3) castle, [blue] sky, ((masterpiece)), best quality!!!",
    "portrait of a woman, 35mm, f/1.8, 1024x768, seed=42; 3.14159 + 2 = 5?",
    "Zyxquorble flibbertigibbet UNSEENWORD qwertyuiop",
    "it's the dog's bone, we'll see, they're here, I'd've",
    "café naïve façade — “curly quotes” and an emoji 🎨",
    "  lots   of\twhitespace\nand newlines  ",
    "",
    ", ".join(["a very long prompt with many repeated words"] * 12),
]


def session(name: str, part: str) -> ort.InferenceSession:
    """Open one component graph on the CPU provider."""
    path = TINY / name / part / "model.onnx"
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def float_type(name: str) -> type[np.floating]:
    """The float dtype the graphs of a folder take and return."""
    return np.float16 if name.endswith("fp16") else np.float32


@pytest.mark.parametrize("name", ALL)
def test_folder_has_optimum_layout(name: str) -> None:
    folder = TINY / name
    missing = [f for f in REQUIRED if not (folder / f).is_file() or not (folder / f).stat().st_size]
    assert missing == []
    index = json.loads((folder / "model_index.json").read_text())
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    # Weights must be inline: an external-data file would not be committed with the folder.
    assert (
        sorted(p.name for p in folder.rglob("*") if p.is_file() and "onnx" in p.suffix)
        == ["model.onnx"] * 4
    )


def files_tokenizer(folder: Path, specials: list[str]) -> Tokenizer:
    """A `tokenizers` BPE read straight from vocab.json and merges.txt, set up as CLIP's."""
    bpe = BPE.from_file(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        unk_token="<|endoftext|>",
        continuing_subword_prefix="",
        end_of_word_suffix="</w>",
        fuse_unk=False,
    )
    tokenizer = Tokenizer(bpe)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    split = Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(split, behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # transformers matches special tokens (SD 2.x's pad "!" included) before BPE.
    tokenizer.add_special_tokens(specials)
    return tokenizer


@pytest.mark.parametrize("name", ALL)
def test_slow_and_fast_clip_tokenizers_agree(name: str) -> None:
    slow = CLIPTokenizer.from_pretrained(TINY / name / "tokenizer")
    fast = CLIPTokenizerFast.from_pretrained(TINY / name / "tokenizer")
    # The fast one is converted from the slow one's ranks; reading the files independently
    # also catches a merges.txt the slow reader misparses (it drops the first line).
    plain = files_tokenizer(TINY / name / "tokenizer", slow.all_special_tokens)
    for prompt in PROMPTS:
        assert slow(prompt).input_ids == fast(prompt).input_ids, prompt
        assert slow(prompt).input_ids[1:-1] == plain.encode(prompt).ids, prompt
    padded = {"padding": "max_length", "truncation": True, "max_length": 77}
    assert slow(PROMPTS, **padded).input_ids == fast(PROMPTS, **padded).input_ids
    # SD 2.x pads with "!" (id 0), SD 1.x with the end-of-text token.
    assert slow.pad_token == ("!" if name == "sd-tiny-v" else "<|endoftext|>")
    # CLIP's layout: BOS and EOS are the two highest ids; unknown words fall back to pieces.
    assert (slow.bos_token_id, slow.eos_token_id) == (len(slow) - 2, len(slow) - 1)
    unknown = slow("flibbertigibbet").input_ids[1:-1]
    assert len(unknown) > 1 and slow.eos_token_id not in unknown


@pytest.mark.parametrize("name", ALL)
def test_text_encoder_vocab_matches_tokenizer(name: str) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(TINY / name / "tokenizer")
    config = json.loads((TINY / name / "text_encoder" / "config.json").read_text())
    assert config["vocab_size"] == len(tokenizer)
    assert (config["bos_token_id"], config["eos_token_id"]) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    graph = onnx.load(str(TINY / name / "text_encoder" / "model.onnx")).graph
    table = next(i for i in graph.initializer if i.name.endswith("token_embedding.weight"))
    assert list(table.dims) == [len(tokenizer), config["hidden_size"]]

    ids = tokenizer(["a cat", "x"], padding="max_length", max_length=77, return_tensors="np")
    hidden, pooled = session(name, "text_encoder").run(None, {"input_ids": ids.input_ids})
    assert hidden.shape == (2, 77, 32) and pooled.shape == (2, 32)
    assert hidden.dtype == float_type(name) and np.isfinite(hidden).all()


@pytest.mark.parametrize("name", ALL)
def test_vae_keeps_sd_scale_factor_and_dynamic_sizes(name: str) -> None:
    config = json.loads((TINY / name / "vae_decoder" / "config.json").read_text())
    assert config["scaling_factor"] == 0.18215
    assert 2 ** (len(config["block_out_channels"]) - 1) == 8
    dtype = float_type(name)
    latents = np.random.default_rng(0).standard_normal((2, 4, 16, 12)).astype(dtype)
    (image,) = session(name, "vae_decoder").run(None, {"latent_sample": latents})
    assert image.shape == (2, 3, 128, 96)
    (moments,) = session(name, "vae_encoder").run(None, {"sample": image})
    assert moments.shape == (2, 8, 16, 12)  # mean and log-variance of 4 latent channels


@pytest.mark.parametrize("name", ALL)
def test_scheduler_config_is_sd_shaped(name: str) -> None:
    config = json.loads((TINY / name / "scheduler" / "scheduler_config.json").read_text())
    assert (config["beta_start"], config["beta_end"]) == (0.00085, 0.012)
    assert config["beta_schedule"] == "scaled_linear"
    assert (config["steps_offset"], config["timestep_spacing"]) == (1, "leading")
    v = name == "sd-tiny-v"
    assert config["prediction_type"] == ("v_prediction" if v else "epsilon")
    assert config["_class_name"] == ("DDIMScheduler" if v else "PNDMScheduler")


@pytest.mark.parametrize("name", TXT2IMG)
def test_optimum_txt2img_pipeline_runs(name: str) -> None:
    from optimum.onnxruntime import ORTStableDiffusionPipeline

    pipe = ORTStableDiffusionPipeline.from_pretrained(TINY / name)
    # guidance_scale > 1 runs the UNet at batch 2, which the engine also relies on.
    result = pipe("a red (cat:1.2)", num_inference_steps=2, guidance_scale=7.5, output_type="np")
    pixels = result.images[0]
    assert pixels.shape == (64, 64, 3) and np.isfinite(pixels).all() and pixels.std() > 0
    wide = pipe("a cat", num_inference_steps=2, height=128, width=96).images[0]
    assert wide.size == (96, 128)


def test_optimum_inpaint_pipeline_runs() -> None:
    from optimum.onnxruntime import ORTStableDiffusionInpaintPipeline

    assert session("sd-tiny-inpaint", "unet").get_inputs()[0].shape[1] == 9
    pipe = ORTStableDiffusionInpaintPipeline.from_pretrained(TINY / "sd-tiny-inpaint")
    image = Image.new("RGB", (64, 64), (120, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = pipe("a cat", image=image, mask_image=mask, num_inference_steps=2, output_type="np")
    pixels = result.images[0]
    assert pixels.shape == (64, 64, 3) and np.isfinite(pixels).all() and pixels.std() > 0


def unet_feeds(dtype: type[np.floating]) -> dict[str, np.ndarray]:
    """A classifier-free-guidance-shaped UNet input (batch 2, 16x12 latents)."""
    rng = np.random.default_rng(1)
    return {
        "sample": rng.standard_normal((2, 4, 16, 12)).astype(dtype),
        "timestep": np.array(500, dtype=dtype),
        "encoder_hidden_states": rng.standard_normal((2, 77, 32)).astype(dtype),
    }


def test_fp16_unet_matches_fp32() -> None:
    (fp32,) = session("sd-tiny", "unet").run(None, unet_feeds(np.float32))
    (fp16,) = session("sd-tiny-fp16", "unet").run(None, unet_feeds(np.float16))
    assert fp16.dtype == np.float16
    assert np.abs(fp16.astype(np.float32) - fp32).max() < 0.02 * np.abs(fp32).max()


@pytest.mark.slow
def test_rebuild_is_byte_identical_and_matches_torch(tmp_path: Path) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    subprocess.run(
        [
            sys.executable,
            str(ROOT / "models" / "build_tiny.py"),
            "--only",
            "sd-tiny",
            "--out",
            str(tmp_path / "onnx"),
            "--keep-diffusers",
            str(tmp_path / "diffusers"),
        ],
        check=True,
        capture_output=True,
    )
    rebuilt = tmp_path / "onnx" / "sd-tiny"
    files = sorted(p.relative_to(rebuilt) for p in rebuilt.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(TINY / "sd-tiny") for p in (TINY / "sd-tiny").rglob("*") if p.is_file()
    )
    changed = [
        f for f in files if (rebuilt / f).read_bytes() != (TINY / "sd-tiny" / f).read_bytes()
    ]
    assert changed == []

    unet = UNet2DConditionModel.from_pretrained(tmp_path / "diffusers" / "sd-tiny" / "unet")
    feeds = unet_feeds(np.float32)
    with torch.no_grad():
        expected = unet(
            torch.from_numpy(feeds["sample"]),
            torch.tensor(500.0),
            torch.from_numpy(feeds["encoder_hidden_states"]),
        ).sample.numpy()
    (actual,) = session("sd-tiny", "unet").run(None, feeds)
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-3)


def test_padded_vocab_keeps_clip_special_ids(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "models"))
    from clip_bpe import write_clip_files

    vocab_file, merges_file = write_clip_files(tmp_path, seed=0, vocab_size=49408)
    slow = CLIPTokenizer(str(vocab_file), str(merges_file))
    fast = CLIPTokenizerFast.from_pretrained(tmp_path)
    assert len(slow) == len(fast) == 49408
    assert (slow.bos_token_id, slow.eos_token_id) == (49406, 49407)
    # The filler entries must be unreachable from text, even text that spells them out.
    ids = slow("<|unused_0|> a cat").input_ids
    assert ids == fast("<|unused_0|> a cat").input_ids
    assert not any(t.startswith("<|unused") for t in slow.convert_ids_to_tokens(ids))
