"""A model folder damaged after its install is listed with a `problem` naming the file, by the
engine's own checks, and the listing notices the damage although it caches descriptions."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from impasto.services.models import ModelCatalog

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"


def _remove(part: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        target = folder / part
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    return damage


def _truncate(part: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        target = folder / part
        target.write_bytes(target.read_bytes()[:1000])

    return damage


def _garble(part: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / part).write_text("{not json", encoding="utf-8")

    return damage


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (_remove("tokenizer"), "tokenizer/vocab.json: missing"),
        (_remove("tokenizer/merges.txt"), "tokenizer/merges.txt: missing"),
        (_remove("scheduler"), "scheduler/scheduler_config.json: missing"),
        (_garble("scheduler/scheduler_config.json"), "scheduler/scheduler_config.json: not"),
        (_remove("text_encoder"), "text_encoder/model.onnx: missing"),
        (_remove("vae_decoder/model.onnx"), "vae_decoder/model.onnx: missing"),
        (_truncate("text_encoder/model.onnx"), "text_encoder/model.onnx is not a readable"),
        (_truncate("unet/model.onnx"), "unet/model.onnx is not a readable"),
    ],
)
def test_a_folder_damaged_after_listing_gets_a_problem_naming_the_file(
    tmp_path: Path, damage: Callable[[Path], None], named: str
) -> None:
    models = tmp_path / "models"
    folder = models / "mine"
    shutil.copytree(TINY / "sd-tiny", folder)
    catalog = ModelCatalog(models, bundled_dir=tmp_path / "none", store=None)
    assert catalog.find("mine") is not None and catalog.find("mine").problem == ""  # type: ignore[union-attr]
    assert [m.id for m in catalog.list()] == ["mine"]

    damage(folder)

    found = catalog.find("mine")
    assert found is not None
    assert found.problem.startswith(f"unusable: {named}"), found.problem
    assert str(tmp_path) not in found.problem  # named within the folder, no local path
    assert [m.id for m in catalog.list_all()] == ["mine"]  # still listed, so it can be removed
    assert catalog.list() == []  # but no job can pick it
    assert catalog.get("mine") is None


def test_a_refiner_is_checked_as_a_refiner(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(TINY / "sdxl-tiny-refiner", models / "refiner")
    catalog = ModelCatalog(models, bundled_dir=tmp_path / "none", store=None)
    assert catalog.find("refiner").problem == ""  # type: ignore[union-attr]
    shutil.rmtree(models / "refiner" / "tokenizer_2")
    problem = catalog.find("refiner").problem  # type: ignore[union-attr]
    assert problem.startswith("unusable: tokenizer_2/vocab.json: missing"), problem


def test_a_repaired_folder_is_usable_again(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(TINY / "sd-tiny", models / "mine")
    catalog = ModelCatalog(models, bundled_dir=tmp_path / "none", store=None)
    shutil.rmtree(models / "mine" / "tokenizer")
    assert catalog.find("mine").problem  # type: ignore[union-attr]
    shutil.copytree(TINY / "sd-tiny" / "tokenizer", models / "mine" / "tokenizer")
    assert catalog.find("mine").problem == ""  # type: ignore[union-attr]
    assert [m.id for m in catalog.list()] == ["mine"]


def test_a_folder_removed_while_it_is_described_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import impasto.services.model_entry as model_entry

    root = tmp_path / "models"
    shutil.copytree(TINY / "sd-tiny", root / "going")
    shutil.copytree(TINY / "sd-tiny", root / "staying")
    real_detect = model_entry.detect_folder

    def detect_then_vanish(folder: Path) -> object:
        found = real_detect(folder)
        if folder.name == "going":
            shutil.rmtree(folder)  # another removal (or a hand) takes it meanwhile
        return found

    monkeypatch.setattr(model_entry, "detect_folder", detect_then_vanish)
    catalog = ModelCatalog(root, bundled_dir=tmp_path / "none", store=None)
    assert [m.id for m in catalog.list_all()] == ["staying"]
    assert catalog.find("going") is None


def test_a_lora_removed_while_the_list_is_made_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import impasto.services.models as models

    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    (loras / "gone.safetensors").write_bytes(b"x")
    (loras / "kept.safetensors").write_bytes(b"y")
    real = models.installed_adapters

    def listed_then_gone(models_dir: Path) -> list[tuple[str, str, Path]]:
        found = real(models_dir)
        (loras / "gone.safetensors").unlink(missing_ok=True)
        return found

    monkeypatch.setattr(models, "installed_adapters", listed_then_gone)
    catalog = ModelCatalog(tmp_path / "models", bundled_dir=tmp_path / "none", store=None)
    assert [m.id for m in catalog.list_all()] == ["kept"]
