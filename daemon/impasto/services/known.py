"""The built-in list of known-good public models (models/catalog.toml), by short name."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class KnownModel:
    """One catalog entry: a hub repo, revision and subfolder, plus what we know of it."""

    name: str
    repo: str
    revision: str = "main"
    subfolder: str = ""
    family: str = ""
    license: str = ""
    size: int = 0
    sha256: str = ""
    description: str = ""


def catalog_file() -> Path:
    """The catalog a wheel or binary carries inside the package, else the checkout's."""
    inside = Path(str(resources.files("impasto"))) / "model_catalog.toml"
    return inside if inside.is_file() else _REPO / "models" / "catalog.toml"


def known_models(path: Path | None = None) -> dict[str, KnownModel]:
    """Every catalog entry by short name (empty when the file is missing)."""
    path = path or catalog_file()
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {name: KnownModel(name=name, **entry) for name, entry in data.items()}
