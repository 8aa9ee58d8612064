"""The engine's public API: the worker process and the daemon import only these names."""

from impasto.engine.model_folder import ModelFolder, open_model_folder
from impasto.engine.pipeline import ModelInfo, StableDiffusion, load_pipeline
from impasto.engine.providers import ProviderChoice, select_providers
from impasto.engine.types import (
    AppliedLora,
    CancelToken,
    EngineError,
    GeneratedImage,
    GenerationCancelled,
    GenerationParams,
    InvalidRequestError,
    ModelFolderError,
    Progress,
)
from impasto.engine.validation import validate_params

__all__ = [
    "AppliedLora",
    "CancelToken",
    "EngineError",
    "GeneratedImage",
    "GenerationCancelled",
    "GenerationParams",
    "InvalidRequestError",
    "ModelFolder",
    "ModelFolderError",
    "ModelInfo",
    "Progress",
    "ProviderChoice",
    "StableDiffusion",
    "load_pipeline",
    "open_model_folder",
    "select_providers",
    "validate_params",
]
