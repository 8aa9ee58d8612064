"""Which models exist: the bundled demo models plus ONNX folders in the models dir."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impasto.resources import bundled_models_dir

DEFAULT_SETTINGS = {
    "width": 512,
    "height": 512,
    "steps": 20,
    "cfg_scale": 7.0,
    "sampler": "euler_a",
}


@dataclass(frozen=True)
class ModelEntry:
    """One installed checkpoint folder as the API lists it."""

    id: str
    name: str
    path: Path
    family: str
    read_only: bool
    inpaint: bool
    prediction_type: str
    size: int
    defaults: dict[str, Any] = field(default_factory=dict)
    type: str = "checkpoint"


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _describe(folder: Path, *, read_only: bool) -> ModelEntry | None:
    if not (folder / "model_index.json").is_file() or not (folder / "unet").is_dir():
        return None
    sched: dict[str, Any] = {}
    sched_file = folder / "scheduler" / "scheduler_config.json"
    if sched_file.is_file():
        sched = json.loads(sched_file.read_text())
    unet_cfg_file = folder / "unet" / "config.json"
    unet_cfg = json.loads(unet_cfg_file.read_text()) if unet_cfg_file.is_file() else {}
    inpaint = unet_cfg.get("in_channels") == 9
    prediction = sched.get("prediction_type", "epsilon")
    family = "inpaint" if inpaint else ("sd2-v" if prediction == "v_prediction" else "sd1")
    sample = int(unet_cfg.get("sample_size", 64)) * 8
    defaults = dict(DEFAULT_SETTINGS)
    if read_only:
        # The demo models are tiny random networks: small images keep them instant.
        defaults.update(width=256, height=256, steps=12)
    elif sample > 0:
        defaults.update(width=sample, height=sample)
    return ModelEntry(
        id=folder.name,
        name=folder.name,
        path=folder,
        family=family,
        read_only=read_only,
        inpaint=inpaint,
        prediction_type=prediction,
        size=_folder_size(folder),
        defaults=defaults,
    )


class ModelCatalog:
    """Lists and resolves checkpoints; the models dir wins over a bundled model of the same id."""

    def __init__(self, models_dir: Path, bundled_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        self.bundled_dir = bundled_dir or bundled_models_dir()

    def list(self) -> list[ModelEntry]:
        found: dict[str, ModelEntry] = {}
        for root, read_only in ((self.bundled_dir, True), (self.models_dir, False)):
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                entry = _describe(folder, read_only=read_only)
                if entry:
                    found[entry.id] = entry
        return list(found.values())

    def get(self, model_id: str) -> ModelEntry | None:
        for root, read_only in ((self.models_dir, False), (self.bundled_dir, True)):
            folder = root / model_id
            # Ids are folder names: anything with a separator or dots could leave the folder.
            if "/" in model_id or "\\" in model_id or model_id in {"", ".", ".."}:
                return None
            if folder.is_dir():
                entry = _describe(folder, read_only=read_only)
                if entry:
                    return entry
        return None
