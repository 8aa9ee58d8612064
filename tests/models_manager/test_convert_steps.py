"""Converter steps: the pipeline picked for a single file; fp16 with ONNX external data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from safetensors.numpy import save_file

from impasto.engine.onnx_external import read_external_data_locations
from impasto.services import convert
from impasto.services.install_checks import conversion_precision
from tests.models_manager.conftest import TINY, unet_output


@pytest.mark.parametrize("threshold", [0, 1 << 40], ids=["stays-external", "inlined"])
def test_fp16_rewrites_external_data_and_drops_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int
) -> None:
    folder = tmp_path / "m"
    shutil.copytree(TINY / "sd-tiny", folder)
    unet = folder / "unet" / "model.onnx"
    model = onnx.load(str(unet))
    onnx.save_model(model, str(unet), save_as_external_data=True, location="weights.pb")
    reference = unet_output(folder)
    monkeypatch.setattr(convert, "EXTERNAL_DATA_ABOVE", threshold)

    convert._fp16(folder)

    assert not (unet.parent / "weights.pb").exists()
    assert (unet.parent / "model.onnx_data").exists() == (threshold == 0)
    assert set(read_external_data_locations(unet)) == (
        {"model.onnx_data"} if threshold == 0 else set()
    )
    np.testing.assert_allclose(unet_output(folder), reference, atol=0.05)


@pytest.mark.parametrize(
    ("keys", "channels", "expected"),
    [
        (["cond_stage_model.transformer.x"], 4, "StableDiffusionPipeline"),
        (["cond_stage_model.transformer.x"], 9, "StableDiffusionInpaintPipeline"),
        (["conditioner.embedders.1.model.x"], 4, "StableDiffusionXLPipeline"),
        (["conditioner.embedders.1.model.x"], 9, "StableDiffusionXLInpaintPipeline"),
    ],
)
def test_a_single_file_gets_the_pipeline_its_tensors_call_for(
    tmp_path: Path, keys: list[str], channels: int, expected: str
) -> None:
    tensors = {key: np.zeros(1, np.float32) for key in keys}
    tensors["model.diffusion_model.input_blocks.0.0.weight"] = np.zeros(
        (2, channels, 1, 1), np.float32
    )
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    assert convert.single_file_pipeline(path) == expected


@pytest.mark.parametrize(
    ("requested", "provider", "expected"),
    [
        ("", "CUDAExecutionProvider", "fp16"),
        ("", "TensorrtExecutionProvider", "fp16"),
        ("", "DmlExecutionProvider", "fp16"),
        ("", "CPUExecutionProvider", "fp32"),
        ("", "CoreMLExecutionProvider", "fp32"),
        ("", "", "fp32"),  # no worker has started yet
        ("fp32", "CUDAExecutionProvider", "fp32"),
        ("fp16", "CPUExecutionProvider", "fp16"),
    ],
)
def test_conversions_default_to_fp16_on_gpu_providers_only(
    requested: str, provider: str, expected: str
) -> None:
    assert conversion_precision(requested, provider) == expected
