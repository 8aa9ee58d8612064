"""DeepCache: the ONNX split equals the UNet, and a run equals a torch reference of the algorithm.

The reference runs diffusers' UNet blocks by hand (the seeded torch UNet the committed tiny
ONNX model was exported from): on full steps the whole UNet, remembering the hidden state that
enters the last up block's last resnet; between them only conv_in, the time embedding, that
resnet (fed the remembered state and the fresh conv_in output), the rest of the block and the
output head. Sampler: diffusers' Euler, against ours.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from diffusers import EulerDiscreteScheduler

from impasto.engine import load_pipeline
from impasto.engine.deepcache import DeepCacheError, split_unet
from impasto.engine.providers import cpu_choice
from impasto.engine.types import EngineError

from .conftest import SD_TINY, TINY, small
from .families_oracle import latents_close, noise, torch_pipeline

STEPS, INTERVAL, CFG = 6, 3, 7.0


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    """sd-tiny in a scratch folder: the split is written beside the UNet."""
    return Path(shutil.copytree(SD_TINY, tmp_path / "sd-tiny"))


def _feeds(session: ort.InferenceSession, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        shape = [2 if not isinstance(d, int) else d for d in spec.shape]
        if spec.name == "sample":
            shape = [2, shape[1], 8, 8]
        elif spec.name == "encoder_hidden_states":
            shape = [2, 77, shape[2]]
        dtype = np.float16 if "float16" in spec.type else np.float32
        feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        if spec.name == "timestep":
            feeds[spec.name] = np.full(shape, 500.0, dtype=dtype)
    return feeds


@pytest.mark.parametrize("name", ["sd-tiny", "sd-tiny-v", "sdxl-tiny", "sd-tiny-fp16"])
def test_the_split_graphs_give_the_unet_output(name: str, tmp_path: Path) -> None:
    """Full graph: same output plus the feature; shallow graph fed that feature: same output."""
    folder = Path(shutil.copytree(TINY / name, tmp_path / name))
    split = split_unet(folder / "unet" / "model.onnx")
    plain = ort.InferenceSession(str(folder / "unet" / "model.onnx"))
    full = ort.InferenceSession(str(split.full))
    shallow = ort.InferenceSession(str(split.shallow))
    feeds = _feeds(plain, np.random.default_rng(0))
    (expected,) = plain.run(None, feeds)
    out, feature = full.run(None, feeds)
    np.testing.assert_array_equal(out, expected)
    wanted = {i.name for i in shallow.get_inputs()}
    shallow_feeds = {k: v for k, v in feeds.items() if k in wanted} | {split.feature: feature}
    (again,) = shallow.run(None, shallow_feeds)
    np.testing.assert_allclose(again, expected, atol=1e-3 if name.endswith("fp16") else 1e-5)
    # The shallow pass is a small part of the UNet: a fraction of its weights.
    assert split.shallow.stat().st_size < 0.5 * (folder / "unet" / "model.onnx").stat().st_size


def test_a_split_is_reused_until_the_unet_changes(tiny_copy: Path) -> None:
    model = tiny_copy / "unet" / "model.onnx"
    first = split_unet(model)
    written = first.full.stat().st_mtime_ns
    assert split_unet(model).full.stat().st_mtime_ns == written
    model.touch()
    assert split_unet(model).full.stat().st_mtime_ns != written


def test_a_graph_without_the_cut_is_refused(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(SD_TINY / "vae_decoder", tmp_path / "vae_decoder"))
    with pytest.raises(DeepCacheError, match="sample"):
        split_unet(folder / "model.onnx")


@pytest.mark.parametrize("kept", [0.001, 0.5, 0.999])
def test_a_truncated_unet_is_refused_as_truncated(tmp_path: Path, kept: float) -> None:
    # A cut file was an IndexError out of the graph's reader: the split names the file and why.
    data = (SD_TINY / "unet" / "model.onnx").read_bytes()
    model = tmp_path / "unet" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(DeepCacheError, match=r"model\.onnx: not a readable ONNX model .*truncated"):
        split_unet(model)


def _reference_unet() -> Any:
    return torch_pipeline("sd-tiny").unet.eval()


def _full(unet: Any, x: torch.Tensor, t: torch.Tensor, hidden: torch.Tensor) -> tuple[Any, Any]:
    """The whole UNet, and the state entering the last up block's last resnet (without skip)."""
    seen: dict[str, torch.Tensor] = {}

    def remember(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["input"] = args[0] if args else kwargs["input_tensor"]

    hook = unet.up_blocks[-1].resnets[-1].register_forward_pre_hook(remember, with_kwargs=True)
    try:
        out = unet(x, t, hidden).sample
    finally:
        hook.remove()
    skip_channels = unet.conv_in.out_channels
    return out, seen["input"][:, :-skip_channels]


def _shallow(
    unet: Any, x: torch.Tensor, t: torch.Tensor, hidden: torch.Tensor, feature: torch.Tensor
) -> Any:
    """conv_in, time embedding, the last resnet (and its attention), the output head."""
    emb = unet.time_embedding(unet.get_time_embed(sample=x, timestep=t))
    skip = unet.conv_in(x)
    block = unet.up_blocks[-1]
    h = block.resnets[-1](torch.cat([feature, skip], dim=1), emb)
    if getattr(block, "attentions", None):
        h = block.attentions[-1](h, encoder_hidden_states=hidden).sample
    return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))


def _reference_run(hidden: np.ndarray, interval: int) -> np.ndarray:
    unet = _reference_unet()
    config = EulerDiscreteScheduler.load_config(SD_TINY / "scheduler")
    scheduler = EulerDiscreteScheduler.from_config(config)
    scheduler.set_timesteps(STEPS)
    latents = torch.from_numpy(noise()) * scheduler.init_noise_sigma
    both = torch.from_numpy(hidden)
    feature = None
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            x = scheduler.scale_model_input(latents, t)
            x2 = torch.cat([x, x])
            t2 = torch.full((2,), float(t))
            if feature is None or i % interval == 0:
                out, feature = _full(unet, x2, t2, both)
            else:
                out = _shallow(unet, x2, t2, both, feature)
            uncond, cond = out.chunk(2)
            guided = uncond + CFG * (cond - uncond)
            latents = scheduler.step(guided, t, latents).prev_sample
    return latents.numpy()


def test_deepcache_equals_the_torch_reference(tiny_copy: Path) -> None:
    pipe = load_pipeline(tiny_copy, cpu_choice())
    params = small(steps=STEPS, cfg_scale=CFG, sampler="euler", cache_interval=INTERVAL)
    cond, uncond = pipe.prompts.encode_pair(params.prompt, params.negative_prompt, 1)
    assert uncond is not None
    hidden = np.concatenate([uncond, cond]).astype(np.float32)

    ours = pipe.denoise(params, latents=noise()).latents
    assert latents_close(ours, _reference_run(hidden, INTERVAL))
    assert pipe.unet.shallow is not None and pipe.unet.shallow.run_seconds > 0
    # The cache changes the result: without it, the reference run is another one.
    plain = pipe.denoise(small(steps=STEPS, cfg_scale=CFG, sampler="euler"), latents=noise())
    assert not np.allclose(plain.latents, ours, atol=1e-4)
    assert latents_close(plain.latents, _reference_run(hidden, 1))


def test_deepcache_runs_the_full_unet_every_interval(tiny_copy: Path) -> None:
    pipe = load_pipeline(tiny_copy, cpu_choice())
    pipe.unet.enable_deep_cache()
    calls: list[str] = []
    for name in ("model", "shallow"):
        session = getattr(pipe.unet, name)
        original = session.run_outputs

        def counted(feeds: Any, outputs: Any, _run: Any = original, _name: str = name) -> Any:
            calls.append(_name)
            return _run(feeds, outputs)

        session.run_outputs = counted
    pipe.generate(small(steps=7, cache_interval=3))
    assert calls == ["model", "shallow", "shallow", "model", "shallow", "shallow", "model"]
    calls.clear()
    pipe.generate(small(steps=3))  # off again: the full graph only
    assert calls == ["model"] * 3


def test_a_model_that_cannot_be_split_fails_naming_the_field(
    tiny_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_model: Path, _fallback: Path | None = None) -> None:
        raise DeepCacheError("no cut here")

    monkeypatch.setattr("impasto.engine.pipelines.base.split_unet", refuse)
    pipe = load_pipeline(tiny_copy, cpu_choice())
    with pytest.raises(EngineError, match=r"cache_interval.*no cut here"):
        pipe.generate(small(cache_interval=2))
    pipe.generate(small())  # without DeepCache the model still runs


def test_deepcache_runs_sdxl_with_its_extra_inputs(tmp_path: Path) -> None:
    """SDXL's text_embeds and time_ids reach the shallow pass (its time embedding needs them)."""
    folder = Path(shutil.copytree(TINY / "sdxl-tiny", tmp_path / "sdxl-tiny"))
    pipe = load_pipeline(folder, cpu_choice())
    plain = pipe.generate(small(steps=4))[0].image
    cached = pipe.generate(small(steps=4, cache_interval=2))[0].image
    assert pipe.unet.shallow is not None and "time_ids" in pipe.unet.shallow.inputs
    assert np.asarray(plain).shape == np.asarray(cached).shape


def test_deepcache_keeps_a_lora_applied(tiny_copy: Path) -> None:
    """A LoRA's replaced weights reach the split graphs: one full step equals the plain run."""
    lora = [(TINY / "adapters" / "loras" / "tiny-peft.safetensors", 1.0)]
    pipe = load_pipeline(tiny_copy, cpu_choice())
    with_lora = pipe.generate(small(steps=1, loras=lora))[0].image
    cached = pipe.generate(small(steps=1, loras=lora, cache_interval=2))[0].image
    without = pipe.generate(small(steps=1, cache_interval=2))[0].image
    np.testing.assert_array_equal(np.asarray(cached), np.asarray(with_lora))
    assert np.abs(np.asarray(cached, np.int32) - np.asarray(without, np.int32)).max() > 0
    pipe.generate(small(steps=3, loras=lora, cache_interval=2))  # the shallow pass opens too


def test_a_read_only_bundled_model_splits_into_the_cache(
    tiny_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model folder that cannot be written (bundled) gets its split in the cache folder."""
    import impasto.engine.onnx_rewrite as rewrite

    unet_dir = tiny_copy / "unet"
    real_replace = rewrite.os.replace

    def read_only(source: Any, target: Any) -> None:
        if Path(target).parent == unet_dir:
            raise PermissionError(13, "read-only", str(target))
        real_replace(source, target)

    monkeypatch.setattr(rewrite.os, "replace", read_only)
    monkeypatch.setattr(rewrite.os, "access", lambda path, mode: Path(path) != unet_dir)
    with pytest.raises(DeepCacheError, match="cannot write"):
        split_unet(unet_dir / "model.onnx")
    split = split_unet(unet_dir / "model.onnx", tmp_path / "cache")
    assert split.full.is_relative_to(tmp_path / "cache") and split.shallow.is_file()
    assert not (unet_dir / "deepcache-full.onnx").exists()
