"""Detection on the tiny models and every refusal, each with a crafted file."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from impasto.services import convert
from impasto.services.archives import extract_archive
from impasto.services.detect import detect_file, detect_folder
from impasto.services.safety import (
    UnsafeContentError,
    check_file,
    check_id,
    check_tree,
)
from impasto.services.stage_job import InstallError, StageJob
from impasto.services.staging import prepare
from tests.models_manager.conftest import TINY

FAMILIES = {
    "sd-tiny": ("sd1", "fp32", False),
    "sd-tiny-fp16": ("sd1", "fp16", False),
    "sd-tiny-inpaint": ("inpaint", "fp32", True),
    "sd-tiny-v": ("sd2-v", "fp32", False),
    "sd-tiny-lcm": ("lcm", "fp32", False),
    "sd-tiny-turbo": ("sd-turbo", "fp32", False),
    "sdxl-tiny": ("sdxl", "fp32", False),
    "sdxl-tiny-turbo": ("sdxl-turbo", "fp32", False),
}
MB = 1024 * 1024


@pytest.mark.parametrize("name", sorted(p.name for p in TINY.iterdir() if p.name in FAMILIES))
def test_family_of_each_tiny_model(name: str) -> None:
    found = detect_folder(TINY / name)
    assert (found.family, found.precision, found.inpaint) == FAMILIES[name]
    assert found.layout == "onnx" and found.type == "checkpoint"


def safetensors(path: Path, keys: list[str]) -> Path:
    header = {k: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for k in keys}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0\0\0")
    return path


@pytest.mark.parametrize(
    ("keys", "kind"),
    [
        (["lora_unet_down_blocks_0.lora_down.weight"], "lora"),
        (["emb_params"], "embedding"),
        (["decoder.conv_in.weight", "encoder.conv_in.weight"], "vae"),
        (["model.diffusion_model.input_blocks.0.0.weight"], "checkpoint"),
    ],
)
def test_single_file_type(tmp_path: Path, keys: list[str], kind: str) -> None:
    assert detect_file(safetensors(tmp_path / "x.safetensors", keys)).type == kind


def test_pickles_are_refused_by_content_not_name(tmp_path: Path) -> None:
    import pickle

    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    torch_zip = tmp_path / "model.ckpt"
    with zipfile.ZipFile(torch_zip, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
    for path in (disguised, torch_zip):
        with pytest.raises(UnsafeContentError, match="pickle"):
            check_file(path, 10 * MB)
    good = safetensors(tmp_path / "ok.safetensors", ["emb_params"])
    check_file(good, 10 * MB)


def test_a_pickle_inside_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(TINY / "sd-tiny", folder)
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(UnsafeContentError, match="pickle"):
        check_tree(folder, 10 * MB)


def test_oversize_files_are_refused(tmp_path: Path) -> None:
    big = safetensors(tmp_path / "big.safetensors", ["emb_params"])
    with pytest.raises(UnsafeContentError, match="max_file_size"):
        check_file(big, 10)


def test_zip_slip_is_refused_and_writes_nothing_outside(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model/model_index.json", "{}")
        zf.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(UnsafeContentError, match="outside"):
        extract_archive(archive, tmp_path / "out" / "deep", MB, MB)
    assert not list(tmp_path.rglob("escaped.txt"))


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for member in members:
            data = b"x" * member.size
            tf.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def test_tar_links_and_traversal_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model/unet/model.onnx")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("model/vocab.json")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    up = tarfile.TarInfo("../up.txt")
    up.size = 3
    absolute = tarfile.TarInfo("/tmp/abs.txt")
    absolute.size = 3
    for i, member in enumerate((link, hard, up, absolute)):
        archive = _tar(tmp_path / f"a{i}.tar.gz", [member])
        with pytest.raises(UnsafeContentError):
            extract_archive(archive, tmp_path / f"out{i}", MB, MB)
    assert not (tmp_path / "up.txt").exists()


def test_archive_members_over_the_limit_are_refused(tmp_path: Path) -> None:
    member = tarfile.TarInfo("model/unet/model.onnx")
    member.size = 5000
    archive = _tar(tmp_path / "big.tar.gz", [member])
    with pytest.raises(UnsafeContentError, match="size limit"):
        extract_archive(archive, tmp_path / "out", 1000, 10_000)


@pytest.mark.parametrize("bad", ["../x", ".hidden", "a/b", "", "x" * 81, "a\\b", "..", "é"])
def test_unsafe_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid model id"):
        check_id(bad)


def _graph_with_external_data(path: Path, location: str) -> None:
    """A one-node graph at ``path`` whose weight lives in the file ``location`` names."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], b"\0\0\0\0", raw=True)
    onnx.external_data_helper.set_external_data(weight, location=location)
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [weight],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_the_external_data_a_graph_names_is_accepted_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    shutil.copytree(TINY / "sd-tiny", folder)
    _graph_with_external_data(folder / "vae_decoder" / "model.onnx", "weights/w.bin")
    (folder / "vae_decoder" / "weights").mkdir()
    (folder / "vae_decoder" / "weights" / "w.bin").write_bytes(bytes(4))
    assert check_tree(folder, 10 * MB) > 0  # named by the graph: weights, not a pickle
    (folder / "vae_decoder" / "weights" / "other.bin").write_bytes(bytes(4))
    with pytest.raises(UnsafeContentError, match=r"vae_decoder/weights/other\.bin: not a model"):
        check_tree(folder, 10 * MB)


def test_external_data_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    shutil.copytree(TINY / "sd-tiny", folder)
    _graph_with_external_data(folder / "vae_decoder" / "model.onnx", "../../secret.bin")
    (tmp_path / "secret.bin").write_bytes(b"\0\0\0\0")
    job = StageJob(
        install_id="t",
        model_id="evil",
        source={"kind": "path", "path": str(folder)},
        options={},
        staging=tmp_path / "staging",
        models_dir=tmp_path / "models",
        max_file_size=100 * MB,
        hub_endpoint="http://127.0.0.1:9",
        hub_token=None,
    )
    with pytest.raises(InstallError, match="external data"):
        prepare(job)
    assert not (tmp_path / "models").exists()


def test_conversion_without_the_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(convert, "CONVERT_MODULES", ("impasto_no_such_module",))
    message = convert.missing_converter()
    # The tests run from the checkout: make run's .venv takes the extra by make convert.
    assert message is not None and message.endswith(
        "install the converter: in the Impasto checkout run make convert "
        "(pip install -e '.[convert]' into .venv)"
    )
    import threading

    with pytest.raises(convert.ConversionError, match="make convert"):
        convert.convert(tmp_path, tmp_path / "out", cancel=threading.Event(), log=tmp_path / "l")
    with pytest.raises(convert.ConversionError, match="make convert"):
        convert.optimize_fp16(tmp_path, cancel=threading.Event(), log=tmp_path / "l")


@pytest.mark.parametrize(
    ("binary", "checkout", "says"),
    [
        (True, False, "the single binary cannot convert; install a model's ONNX build instead"),
        (False, True, "in the Impasto checkout run make convert"),
        (False, False, "pip install 'impasto[convert]' (into the daemon's Python environment)"),
    ],
)
def test_the_converter_hint_fits_how_impasto_was_installed(
    monkeypatch: pytest.MonkeyPatch, binary: bool, checkout: bool, says: str
) -> None:
    monkeypatch.setattr(convert, "compiled", lambda: binary)
    monkeypatch.setattr(convert, "source_checkout", lambda: checkout)
    assert convert.converter_hint().startswith(says)


def test_make_convert_installs_the_extra_into_make_runs_venv() -> None:
    """The hint's command exists: `make convert` installs the `convert` extra into .venv."""
    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(
        ["make", "-n", "convert", "VENV=.venv-that-is-not-made"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv-that-is-not-made/bin/python -m pip install -q -e '.[convert]'" in dry.stdout


@pytest.mark.parametrize(
    ("component", "other", "missing"),
    [("unet", "vae_decoder", "sample"), ("text_encoder", "unet", "input_ids")],
)
def test_a_graph_under_another_components_name_is_refused(
    tmp_path: Path, component: str, other: str, missing: str
) -> None:
    """A folder whose unet/model.onnx is really the VAE decoder read as usable before, and
    failed its first job (`has no input 'sample'`)."""
    folder = tmp_path / "mixed-up"
    shutil.copytree(TINY / "sd-tiny", folder)
    shutil.copy(folder / other / "model.onnx", folder / component / "model.onnx")
    with pytest.raises(ValueError, match=f"not a {component} graph: it has no input '{missing}'"):
        detect_folder(folder)
