"""Model folder validation: missing files named, external data kept inside the folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

from impasto.engine import ModelFolderError, load_pipeline, open_model_folder
from impasto.engine.model_folder import check_external_data
from impasto.engine.onnx_external import external_data_locations
from impasto.engine.providers import cpu_choice

from .conftest import SD_TINY, SD_TINY_INPAINT, SD_TINY_V, small


def _copy(tmp_path: Path, source: Path = SD_TINY) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def test_describes_the_tiny_folders() -> None:
    folder = open_model_folder(SD_TINY)
    assert folder.unet == SD_TINY / "unet" / "model.onnx"
    assert folder.vae_encoder is not None and folder.taesd_decoder is None
    assert folder.scheduler.timestep_spacing == "leading" and folder.scheduler.steps_offset == 1
    assert folder.vae_scaling_factor == pytest.approx(0.18215)
    assert open_model_folder(SD_TINY_V).scheduler.prediction_type == "v_prediction"


def test_model_info(pipe, pipe_v, pipe_inpaint) -> None:  # type: ignore[no-untyped-def]
    assert (pipe.info.name, pipe.info.dtype, pipe.info.is_inpaint) == ("sd-tiny", "fp32", False)
    assert pipe.info.default_size == 64 and pipe.info.prediction_type == "epsilon"
    assert pipe_v.info.prediction_type == "v_prediction"
    assert pipe_inpaint.info.is_inpaint


@pytest.mark.parametrize(
    "relative",
    [
        "unet/model.onnx",
        "text_encoder/model.onnx",
        "vae_decoder/model.onnx",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
        "model_index.json",
    ],
)
def test_missing_file_is_named(tmp_path: Path, relative: str) -> None:
    folder = _copy(tmp_path)
    (folder / relative).unlink()
    with pytest.raises(ModelFolderError) as info:
        open_model_folder(folder)
    assert info.value.path == str(folder / relative)
    assert "missing" in info.value.message


def test_bad_json_and_bad_onnx_are_named(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "scheduler" / "scheduler_config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match=r"scheduler_config\.json: not readable JSON"):
        open_model_folder(folder)
    folder = _copy(tmp_path / "b")
    (folder / "unet" / "model.onnx").write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(ModelFolderError, match=r"unet/model.onnx: not a readable ONNX model"):
        open_model_folder(folder)


def test_unknown_prediction_type_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps(config | {"prediction_type": "sample"}))
    with pytest.raises(ModelFolderError, match="prediction_type"):
        open_model_folder(folder)


def _external_model(directory: Path) -> Path:
    """y = x @ W + Constant(c), with W and the Constant's tensor stored as external data."""
    directory.mkdir(parents=True, exist_ok=True)
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "W")
    constant = helper.make_node(
        "Constant", [], ["c"], value=numpy_helper.from_array(np.ones(4, np.float32), "c_value")
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            constant,
            helper.make_node("Add", ["xw", "c"], ["y"]),
        ],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = directory / "model.onnx"
    convert_model_to_external_data(
        model, location="weights.bin", size_threshold=0, convert_attribute=True
    )
    onnx.save(model, path)
    return path


def _point_at(path: Path, location: str) -> None:
    model = onnx.load(path, load_external_data=False)
    tensors = [model.graph.initializer[0], model.graph.node[1].attribute[0].t]
    for tensor in tensors:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())


def test_reader_finds_initializers_and_attribute_tensors(tmp_path: Path) -> None:
    path = _external_model(tmp_path / "m")
    assert external_data_locations(path.read_bytes()) == ["weights.bin", "weights.bin"]
    check_external_data(path, tmp_path)  # inside the folder: accepted


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "missing"])
def test_external_data_leaving_the_folder_is_refused(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "model"
    path = _external_model(root / "unet")
    outside = tmp_path / "secret.bin"
    shutil.copy(root / "unet" / "weights.bin", outside)
    if kind == "dotdot":
        _point_at(path, "../../secret.bin")
    elif kind == "absolute":
        _point_at(path, str(outside))
    elif kind == "symlink":
        os.symlink(outside, root / "unet" / "link.bin")
        _point_at(path, "link.bin")
    else:
        _point_at(path, "nowhere.bin")
    with pytest.raises(ModelFolderError) as info:
        check_external_data(path, root)
    expected = {
        "dotdot": "leaves",
        "absolute": "absolute",
        "symlink": "symlink",
        "missing": "missing",
    }
    assert expected[kind] in info.value.message


def test_folder_with_an_escaping_unet_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    unet = onnx.load(folder / "unet" / "model.onnx")
    onnx.save(unet, folder / "unet" / "model.onnx", save_as_external_data=True, location="w.bin")
    _move_location(folder / "unet" / "model.onnx", "../../w.bin")
    with pytest.raises(ModelFolderError, match="leaves the folder") as info:
        open_model_folder(folder)
    assert info.value.path == str(folder / "unet" / "model.onnx")


def _move_location(path: Path, location: str) -> None:
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())


def test_unet_with_external_data_generates_the_same_image(tmp_path: Path, pipe) -> None:  # type: ignore[no-untyped-def]
    folder = _copy(tmp_path, SD_TINY)
    unet = onnx.load(folder / "unet" / "model.onnx")
    onnx.save(unet, folder / "unet" / "model.onnx", save_as_external_data=True, location="unet.bin")
    assert "unet.bin" in external_data_locations((folder / "unet" / "model.onnx").read_bytes())
    external = load_pipeline(folder, cpu_choice())
    ours = np.asarray(external.generate(small(steps=2))[0].image)
    external.close()
    assert np.array_equal(ours, np.asarray(pipe.generate(small(steps=2))[0].image))


def test_reader_agrees_with_onnx_on_the_tiny_models() -> None:
    for folder in (SD_TINY, SD_TINY_INPAINT):
        for part in ("unet", "text_encoder", "vae_decoder", "vae_encoder"):
            path = folder / part / "model.onnx"
            model = onnx.load(path, load_external_data=False)
            expected = [
                e.value
                for t in model.graph.initializer
                if t.data_location == TensorProto.EXTERNAL
                for e in t.external_data
                if e.key == "location"
            ]
            assert external_data_locations(path.read_bytes()) == expected
