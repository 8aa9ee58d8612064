"""Validate and describe a Stable Diffusion ONNX folder in the layout optimum exports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impasto.engine.onnx_external import ProtobufError, read_external_data_locations
from impasto.engine.schedulers.base import SchedulerConfig
from impasto.engine.types import ModelFolderError

DEFAULT_VAE_SCALING = 0.18215
TOKENIZER_FILES = ("vocab.json", "merges.txt")


@dataclass(frozen=True)
class ModelFolder:
    """The files of one model folder, found by folder name, and the configs read from them."""

    root: Path
    text_encoder: Path
    unet: Path
    vae_decoder: Path
    vae_encoder: Path | None
    taesd_decoder: Path | None
    tokenizer_dir: Path
    scheduler: SchedulerConfig
    vae_scaling_factor: float
    unet_config: dict[str, Any]
    pad_token: str | None
    text_encoder_2: Path | None = None  # SDXL's second (pooled) text encoder
    tokenizer_2_dir: Path | None = None
    pad_token_2: str | None = None
    model_index: dict[str, Any] = field(default_factory=dict)
    scheduler_class: str = ""
    text_config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The folder's name, which is how users refer to the model."""
        return self.root.name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFolderError(str(path), "missing; re-export the model with optimum") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(str(path), f"not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFolderError(str(path), "expected a JSON object")
    return data


def _optional_json(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.exists() else {}


def check_external_data(model: Path, root: Path) -> None:
    """Refuse an ONNX file whose external-data locations leave ``root`` or are missing."""
    try:
        locations = read_external_data_locations(model)
    except (ProtobufError, OSError, ValueError) as exc:
        raise ModelFolderError(str(model), f"not a readable ONNX model ({exc})") from exc
    real_root = root.resolve()
    for location in sorted(set(locations)):
        # ONNX Runtime joins the location to the model's directory; reject anything that
        # could name a file elsewhere, including through a symlink inside the folder.
        if not location or Path(location).is_absolute() or location.startswith(("/", "\\")):
            raise ModelFolderError(str(model), f"external data path {location!r} is absolute")
        if ".." in Path(location.replace("\\", "/")).parts or ":" in location:
            raise ModelFolderError(str(model), f"external data path {location!r} leaves the folder")
        target = model.parent / location
        if target.is_symlink() or not target.resolve().is_relative_to(real_root):
            raise ModelFolderError(
                str(model), f"external data path {location!r} is a symlink or leads elsewhere"
            )
        if not target.is_file():
            raise ModelFolderError(str(target), "external data file is missing")


def _component(root: Path, folder: str, *, required: bool) -> Path | None:
    path = root / folder / "model.onnx"
    if not path.is_file():
        if required:
            raise ModelFolderError(str(path), "missing; this folder is not a complete SD export")
        return None
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        raise ModelFolderError(str(path), "is a symlink out of the model folder")
    check_external_data(path, root)
    return path


def _pad_token(tokenizer_dir: Path) -> str | None:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        token = _optional_json(tokenizer_dir / name).get("pad_token")
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str):
            return token
    return None


def open_model_folder(root: Path) -> ModelFolder:
    """Check every file a generation needs and read the configs; raise ModelFolderError."""
    root = Path(root)
    if not root.is_dir():
        raise ModelFolderError(str(root), "is not a directory")
    model_index = _read_json(root / "model_index.json")
    text_encoder = _component(root, "text_encoder", required=True)
    unet = _component(root, "unet", required=True)
    vae_decoder = _component(root, "vae_decoder", required=True)
    vae_encoder = _component(root, "vae_encoder", required=False)
    taesd_decoder = _component(root, "taesd_decoder", required=False)
    assert text_encoder and unet and vae_decoder  # required=True raised otherwise
    text_encoder_2 = _component(root, "text_encoder_2", required=False)
    tokenizer_2_dir = root / "tokenizer_2" if text_encoder_2 else None

    tokenizer_dir = root / "tokenizer"
    for name in TOKENIZER_FILES:
        if not (tokenizer_dir / name).is_file():
            raise ModelFolderError(
                str(tokenizer_dir / name), "missing; the CLIP tokenizer needs it"
            )

    if tokenizer_2_dir is not None:
        for name in TOKENIZER_FILES:
            if not (tokenizer_2_dir / name).is_file():
                raise ModelFolderError(
                    str(tokenizer_2_dir / name), "missing; SDXL's second tokenizer needs it"
                )
    scheduler_data = _read_json(root / "scheduler" / "scheduler_config.json")
    try:
        scheduler = SchedulerConfig.from_dict(scheduler_data)
    except TypeError as exc:
        raise ModelFolderError(str(root / "scheduler" / "scheduler_config.json"), str(exc)) from exc
    if scheduler.prediction_type not in ("epsilon", "v_prediction"):
        raise ModelFolderError(
            str(root / "scheduler" / "scheduler_config.json"),
            f"prediction_type {scheduler.prediction_type!r} is not epsilon or v_prediction",
        )

    vae_config = _optional_json(root / "vae_decoder" / "config.json")
    scaling = vae_config.get("scaling_factor", DEFAULT_VAE_SCALING)
    if not isinstance(scaling, (int, float)) or scaling <= 0:
        raise ModelFolderError(str(root / "vae_decoder" / "config.json"), "bad scaling_factor")

    return ModelFolder(
        root=root,
        text_encoder=text_encoder,
        unet=unet,
        vae_decoder=vae_decoder,
        vae_encoder=vae_encoder,
        taesd_decoder=taesd_decoder,
        tokenizer_dir=tokenizer_dir,
        scheduler=scheduler,
        vae_scaling_factor=float(scaling),
        unet_config=_optional_json(root / "unet" / "config.json"),
        pad_token=_pad_token(tokenizer_dir),
        text_encoder_2=text_encoder_2,
        tokenizer_2_dir=tokenizer_2_dir,
        pad_token_2=_pad_token(tokenizer_2_dir) if tokenizer_2_dir else None,
        model_index=model_index,
        scheduler_class=str(scheduler_data.get("_class_name", "")),
        text_config=_optional_json(root / "text_encoder" / "config.json"),
    )


@dataclass(frozen=True)
class VaeFolder:
    """An installed VAE: ``vae_decoder/`` (and optionally ``vae_encoder/``) in optimum's layout."""

    root: Path
    decoder: Path
    encoder: Path | None
    scaling_factor: float


def open_vae_folder(root: Path) -> VaeFolder:
    """Check a VAE folder for a per-request swap; raise ModelFolderError naming the bad file."""
    root = Path(root)
    if not root.is_dir():
        raise ModelFolderError(str(root), "is not a directory")
    decoder = _component(root, "vae_decoder", required=True)
    assert decoder is not None
    config = _optional_json(root / "vae_decoder" / "config.json")
    scaling = config.get("scaling_factor", DEFAULT_VAE_SCALING)
    if not isinstance(scaling, (int, float)) or scaling <= 0:
        raise ModelFolderError(str(root / "vae_decoder" / "config.json"), "bad scaling_factor")
    encoder = _component(root, "vae_encoder", required=False)
    return VaeFolder(root, decoder, encoder, float(scaling))


@dataclass(frozen=True)
class RefinerFolder:
    """An SDXL refiner: only the second text encoder, and a UNet conditioned on aesthetic score."""

    root: Path
    text_encoder_2: Path
    tokenizer_2_dir: Path
    pad_token_2: str | None
    unet: Path
    vae_decoder: Path
    scheduler: SchedulerConfig
    vae_scaling_factor: float
    model_index: dict[str, Any]


def is_refiner_folder(root: Path) -> bool:
    """Whether ``root`` holds an SDXL refiner export (``requires_aesthetics_score``)."""
    index = _optional_json(Path(root) / "model_index.json")
    return index.get("requires_aesthetics_score") is True


def open_refiner_folder(root: Path) -> RefinerFolder:
    """Check an SDXL refiner folder (optimum's image-to-image export); raise ModelFolderError."""
    root = Path(root)
    if not root.is_dir():
        raise ModelFolderError(str(root), "is not a directory")
    if not is_refiner_folder(root):
        raise ModelFolderError(
            str(root / "model_index.json"), "not an SDXL refiner (no requires_aesthetics_score)"
        )
    text_encoder_2 = _component(root, "text_encoder_2", required=True)
    unet = _component(root, "unet", required=True)
    vae_decoder = _component(root, "vae_decoder", required=True)
    assert text_encoder_2 and unet and vae_decoder  # required=True raised otherwise
    tokenizer_2_dir = root / "tokenizer_2"
    for name in TOKENIZER_FILES:
        if not (tokenizer_2_dir / name).is_file():
            raise ModelFolderError(str(tokenizer_2_dir / name), "missing; the refiner needs it")
    scheduler_file = root / "scheduler" / "scheduler_config.json"
    try:
        scheduler = SchedulerConfig.from_dict(_read_json(scheduler_file))
    except TypeError as exc:
        raise ModelFolderError(str(scheduler_file), str(exc)) from exc
    scaling = _optional_json(root / "vae_decoder" / "config.json").get(
        "scaling_factor", DEFAULT_VAE_SCALING
    )
    if not isinstance(scaling, (int, float)) or scaling <= 0:
        raise ModelFolderError(str(root / "vae_decoder" / "config.json"), "bad scaling_factor")
    return RefinerFolder(
        root=root,
        text_encoder_2=text_encoder_2,
        tokenizer_2_dir=tokenizer_2_dir,
        pad_token_2=_pad_token(tokenizer_2_dir),
        unet=unet,
        vae_decoder=vae_decoder,
        scheduler=scheduler,
        vae_scaling_factor=float(scaling),
        model_index=_read_json(root / "model_index.json"),
    )
