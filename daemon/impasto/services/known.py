"""The built-in list of known-good public models (models/catalog.toml), by short name.

An entry may offer several builds ("variants") of one model: one optimised for CUDA, one for
DirectML or CoreML, and a portable one (plain ONNX, or converted from the diffusers weights)
that every provider runs. :func:`resolve_variant` picks the build for this machine's provider.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from impasto.engine.runs_on import short_name
from impasto.services.convert import converter_hint

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[3]
# The variant key each provider prefers, before "portable" and a plain entry's "default".
PROVIDER_VARIANT = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "tensorrt",
    "DmlExecutionProvider": "directml",
    "CoreMLExecutionProvider": "coreml",
    "ROCMExecutionProvider": "rocm",
    "MIGraphXExecutionProvider": "migraphx",
    "OpenVINOExecutionProvider": "openvino",
    "CPUExecutionProvider": "cpu",
}
VARIANT_KEYS = frozenset(PROVIDER_VARIANT.values()) | {"portable", "default"}


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the entry and field."""


class NoVariantError(LookupError):
    """No build of a catalog model suits this machine; the message names the alternatives."""


@dataclass(frozen=True)
class Variant:
    """One build of a catalog model: where it lives and what it is."""

    key: str
    repo: str
    revision: str = "main"
    subfolder: str = ""
    precision: str = ""
    size: int = 0  # approximate download in bytes
    sha256: str = ""  # of model_index.json where pinned
    convert: bool = False  # diffusers weights, converted to ONNX here (the convert extra)
    convert_minutes: int = 0  # rough conversion time on a desktop CPU
    note: str = ""

    def describe(self) -> str:
        """'cuda: onnxruntime/sd-turbo (fp16, 2.6 GB)'."""
        size = f", {self.size / 1e9:.1f} GB" if self.size else ""
        how = ", converted here" if self.convert else ""
        return f"{self.key}: {self.repo} ({self.precision or 'precision unknown'}{size}{how})"


@dataclass(frozen=True)
class KnownModel:
    """One catalog entry: what the model is, its license, and its builds by variant key."""

    name: str
    family: str = ""
    license: str = ""
    description: str = ""
    checked: str = ""  # what of the published layout was checked, and when
    no_portable: str = ""  # why there is no portable build, when there is none
    variants: dict[str, Variant] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The portable (else first) build's download size."""
        chosen = self.variants.get("portable") or next(iter(self.variants.values()), None)
        return chosen.size if chosen else 0


_VARIANT_FIELDS = {f.name for f in fields(Variant)} - {"key"}
_ENTRY_FIELDS = {"family", "license", "description", "checked", "no_portable"}


def _variant(name: str, key: str, data: dict[str, Any]) -> Variant:
    unknown = set(data) - _VARIANT_FIELDS
    if unknown:
        raise CatalogError(f"{name}.variants.{key}: unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(data.get("repo"), str) or "/" not in data["repo"]:
        raise CatalogError(f"{name}.variants.{key}: repo must be a hub repo id (owner/name)")
    return Variant(key=key, **data)


def parse_entry(name: str, data: dict[str, Any]) -> KnownModel:
    """One table of the catalog; a plain entry (repo at the top) is one "default" build."""
    data = dict(data)
    variants_data = data.pop("variants", None)
    top = {k: data.pop(k) for k in list(data) if k in _ENTRY_FIELDS}
    if variants_data is None and not data:  # nothing to install; no_portable says why
        variants: dict[str, Variant] = {}
    elif variants_data is None:  # the plain form: the whole entry is one build
        variants = {"default": _variant(name, "default", data)}
    else:
        if data:
            raise CatalogError(f"{name}: unknown field(s) {', '.join(sorted(data))}")
        if not isinstance(variants_data, dict) or not variants_data:
            raise CatalogError(f"{name}: variants must be a table of builds")
        bad = set(variants_data) - VARIANT_KEYS
        if bad:
            allowed = ", ".join(sorted(VARIANT_KEYS))
            raise CatalogError(
                f"{name}: unknown variant(s) {', '.join(sorted(bad))}; use {allowed}"
            )
        variants = {key: _variant(name, key, value) for key, value in variants_data.items()}
    entry = KnownModel(name=name, variants=variants, **top)
    if not any(k in variants for k in ("portable", "default")) and not entry.no_portable:
        raise CatalogError(f"{name}: has no portable build and no no_portable reason")
    return entry


def catalog_file() -> Path:
    """The catalog a wheel or binary carries inside the package, else the checkout's."""
    inside = Path(str(resources.files("impasto"))) / "model_catalog.toml"
    return inside if inside.is_file() else _REPO / "models" / "catalog.toml"


def known_models(path: Path | None = None) -> dict[str, KnownModel]:
    """Every catalog entry by short name (empty when the file is missing).

    CatalogError naming the file when it is not TOML or an entry is wrong.
    """
    path = path or catalog_file()
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return {name: parse_entry(name, entry) for name, entry in data.items()}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read: {exc.strerror or exc}") from None


class CatalogSource:
    """The catalog file, read again when it changes. An edit that breaks it keeps the last
    catalog that read well, with a warning, so installs never fail on a typo in it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or catalog_file()
        self._signature: tuple[int, int] | None = None
        self._entries: dict[str, KnownModel] = {}

    def check(self) -> dict[str, KnownModel]:
        """Read it now; CatalogError when it cannot be used (what the daemon's start runs)."""
        self._entries = known_models(self.path)
        self._signature = self._stat()
        return self._entries

    def entries(self) -> dict[str, KnownModel]:
        """The current catalog (blocking: it may read the file)."""
        signature = self._stat()
        if signature != self._signature:
            self._signature = signature
            try:
                self._entries = known_models(self.path)
            except CatalogError as exc:
                log.warning("%s; the catalog as last read is kept", exc)
        return self._entries

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)


def variant_order(provider: str) -> tuple[str, ...]:
    """The variant keys ``provider`` takes, best first."""
    own = PROVIDER_VARIANT.get(provider, "cpu")
    return (own, "portable", "default")


def made_from(precision: str) -> tuple[str, ...]:
    """The build precisions an install asked for ``precision`` is made from, best first: fp32
    from fp32 weights (fp16 ones are never widened); int8 from an int8 build, else fp32 weights
    (it quantises an fp32 UNet); fp16 from fp16 weights, else fp32 ones converted."""
    return {"fp32": ("fp32",), "int8": ("int8", "fp32"), "fp16": ("fp16", "fp32")}.get(
        precision, ()
    )


def resolve_variant(
    entry: KnownModel, provider: str, wanted: str = "", precision: str = ""
) -> Variant:
    """The build of ``entry`` for ``provider`` (or the one ``wanted`` by key).

    With a ``precision`` asked, the first build in the provider's order that it can be made
    from wins over the provider's own build (fp32 asked on CUDA takes the portable fp32 build,
    not the fp16 CUDA one); when none can, the provider's pick stands.
    """
    if wanted:
        if wanted in entry.variants:
            return entry.variants[wanted]
        raise NoVariantError(
            f"{entry.name} has no {wanted!r} build; it has: {', '.join(entry.variants)}"
        )
    builds = [entry.variants[key] for key in variant_order(provider) if key in entry.variants]
    for source in made_from(precision):
        for build in builds:
            if build.precision == source:
                return build
    if builds:
        return builds[0]
    if not entry.variants:
        raise NoVariantError(
            f"{entry.name} has no build `impasto pull` can install: {entry.no_portable}"
        )
    others = "; ".join(v.describe() for v in entry.variants.values())
    why = f" There is no portable build: {entry.no_portable}." if entry.no_portable else ""
    raise NoVariantError(
        f"{entry.name} has no build for {short_name(provider)}: its builds are {others}.{why} "
        "To fetch one anyway (for another machine), name it with --variant KEY and add --force."
    )


def variant_summary(variant: Variant, provider: str, *, hint: bool = True) -> str:
    """What `impasto pull` says about the build it picked (``hint``: with how to get the
    converter a build converted here needs)."""
    # Before a worker or a probe named the provider, the portable build is the safe pick.
    who = short_name(provider) if provider else "this machine (provider not known yet)"
    base = f"{who} gets the {variant.key} build"
    if variant.key == "default":
        base = "its one build"
    what = f"{variant.repo}" + (f"/{variant.subfolder}" if variant.subfolder else "")
    size = f", about {variant.size / 1e9:.1f} GB" if variant.size else ""
    text = f"{base}: {what} ({variant.precision or 'precision unknown'}{size})"
    if variant.convert:
        minutes = f" in about {variant.convert_minutes} min" if variant.convert_minutes else ""
        text += f", converted to ONNX here{minutes}"
        text += f" (needs the converter: {converter_hint()})" if hint else ""
    return text


@dataclass(frozen=True)
class CatalogRow:
    """One catalog entry as `impasto pull --list` and the install panel show it."""

    entry: KnownModel
    chosen: Variant | None  # the build this machine would get
    summary: str  # what it would get, or why nothing


def catalog_rows(
    known: dict[str, KnownModel], provider: str, converter_problem: str | None
) -> list[CatalogRow]:
    """Every entry with the build ``provider`` gets (or why none), by name."""
    rows = []
    for name in sorted(known):
        entry = known[name]
        try:
            chosen: Variant | None = resolve_variant(entry, provider)
        except NoVariantError as exc:
            rows.append(CatalogRow(entry, None, str(exc)))
            continue
        assert chosen is not None
        summary = variant_summary(chosen, provider)
        if chosen.convert and converter_problem:
            summary += "; the converter is not installed here"
        rows.append(CatalogRow(entry, chosen, summary))
    return rows
