"""Where an installed model, adapter or upload lives: names in, paths out, where files open.

Plans, job records and PNG metadata carry ids and names only; the services check a name here
when a request arrives, the worker looks the path up here right before it opens the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from impasto.fsnames import plain_name

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_PREFIX = "upload:"
_LABELS = {"loras": "LoRA", "vae": "VAE", "embeddings": "embedding"}
# Pickle files, as older LoRAs and textual-inversion embeddings come (A1111 loads them): listed
# with why they cannot be used, never opened.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
ADAPTER_FOLDERS = {"lora": "loras", "embedding": "embeddings", "vae": "vae"}
"""The models folder's folder for each adapter type: where requests find them by name, where
installs put them, and what the model list shows."""


class NotInstalledError(LookupError):
    """A name that matches nothing installed; ``field`` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Roots:
    """The folders names are looked up in: installed models first, then the bundled ones."""

    models_dir: Path
    bundled_dir: Path | None = None
    uploads_dir: Path | None = None


def model_folder(roots: Roots, model_id: str) -> Path | None:
    """The folder of model ``model_id`` (models dir before bundled), or None."""
    if not plain_name(model_id):
        return None
    for root in (roots.models_dir, roots.bundled_dir):
        if root is not None and (root / model_id).is_dir():
            return root / model_id
    return None


def adapter_path(models_dir: Path, kind: str, name: str) -> Path:
    """``<models_dir>/<kind>/<name>`` (a ``.safetensors`` file, or a folder for a VAE)."""
    folder = models_dir / kind
    field = "loras" if kind == "loras" else kind
    label = _LABELS.get(kind, kind)
    if not plain_name(name):
        raise NotInstalledError(field, f"{label} {name!r} is not a plain name")
    suffixes = ("", ".safetensors", *(PICKLE_SUFFIXES if kind != "vae" else ()))
    for candidate in (folder / f"{name}{suffix}" for suffix in suffixes):
        if (
            plain_name(candidate.name)
            and candidate.exists()
            and candidate.resolve().is_relative_to(folder.resolve())
        ):
            return candidate
    # What a request could name instead: not a pickle, not a VAE that is a single file.
    found = sorted(
        found_name
        for found_kind, found_name, path in installed_adapters(models_dir)
        if ADAPTER_FOLDERS[found_kind] == kind and path.suffix.lower() not in PICKLE_SUFFIXES
    )
    raise NotInstalledError(
        field,
        f"{label} {name!r} is not installed in the models folder's {kind}/; "
        f"installed: {', '.join(found) or 'none'}",
    )


def installed_adapters(models_dir: Path) -> list[tuple[str, str, Path]]:
    """(type, name, path) of each adapter a request can name: the ``.safetensors`` files in
    the models folder's loras/ and embeddings/ (and the pickles there, which check_adapter
    refuses saying why), and the VAE folders in vae/ (blocking)."""
    found = []
    for kind, folder_name in ADAPTER_FOLDERS.items():
        folder = models_dir / folder_name
        try:
            paths = sorted(folder.iterdir())
        except OSError:  # none, or removed while the list is made
            continue
        for path in paths:
            file_types = (".safetensors", *PICKLE_SUFFIXES)
            usable = path.is_dir() if kind == "vae" else path.suffix.lower() in file_types
            name = path.name if kind == "vae" else path.stem
            if usable and plain_name(path.name) and not path.name.startswith("."):
                found.append((kind, name, path))
    return found


def check_adapter(path: Path, kind: str, name: str, field: str) -> None:
    """NotInstalledError naming ``field`` when the installed adapter at ``path`` cannot be
    used: a VAE that is not an ONNX folder with its decoder, a LoRA or embedding that is not a
    ``.safetensors`` file whose header reads, a LoRA whose tensors are not a LoRA's or only of
    kinds that cannot be applied (OFT, (IA)^3). Cheap (a header, a stat), so a request is
    refused before it queues a job that would fail."""
    from impasto.formats.safetensors import SafetensorsError, holds_lora, read_header

    label = _LABELS.get(kind, kind)
    if kind == "vae":
        if not path.is_dir():
            raise NotInstalledError(
                field,
                f"VAE {name!r} is a single file: a VAE runs here as an ONNX folder "
                f"(vae/{name}/vae_decoder/model.onnx)",
            )
        if not (path / "vae_decoder" / "model.onnx").is_file():
            raise NotInstalledError(
                field, f"VAE {name!r} is incomplete: its folder has no vae_decoder/model.onnx"
            )
        return
    if path.is_dir():
        raise NotInstalledError(field, f"{label} {name!r} is a folder, not a .safetensors file")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise NotInstalledError(
            field,
            f"{label} {name!r} is a pickle ({path.name}), which Impasto never loads: a pickle "
            "can run any code when opened. Use its .safetensors release, or convert it on a "
            "machine you trust (docs/models.md, 'Pickled LoRAs and embeddings')",
        )
    try:
        header = read_header(path)
    except (SafetensorsError, OSError) as exc:
        reason = exc if isinstance(exc, SafetensorsError) else exc.strerror
        raise NotInstalledError(field, f"{label} {name!r} cannot be read: {reason}") from None
    if kind == "loras" and not holds_lora(header):
        raise NotInstalledError(
            field, f"LoRA {name!r} holds no LoRA weights (an embedding or another model's file?)"
        )
    if kind == "loras":
        from impasto.engine.lora import refusal_of

        refused = refusal_of(path.name, header)  # only kinds that cannot be applied (OFT, ...)
        if refused is not None:
            raise NotInstalledError(field, refused)


def embeddings_in(models_dir: Path, text: str) -> list[str]:
    """Names of the installed embeddings whose file stem or token the prompt text uses, as a
    word of its own (``red`` is not in ``redhead``). An unreadable file is left out, as
    AUTOMATIC1111 skips it: its name stays plain text rather than failing the job."""
    found = []
    folder = models_dir / "embeddings"
    paths = sorted(folder.glob("*.safetensors"))
    listed = set(paths)
    for gone in [p for p in _TOKENS if p.parent == folder and p not in listed]:
        del _TOKENS[gone]  # removed since: its entry would stay for the daemon's lifetime
    for path in paths:
        try:
            token = _embedding_token(path)
        except OSError:  # removed or unreadable since the listing
            continue
        if token is not None and (_mentions(text, path.stem) or _mentions(text, token)):
            found.append(path.stem)
    return found


# Each embedding file's token (None: unreadable) by path, with the size and modification time
# it was read at: a prompt is checked against every installed embedding, and reading each
# file's tensors on every request would grow with the folder.
_TOKENS: dict[Path, tuple[tuple[int, int], str | None]] = {}


def _embedding_token(path: Path) -> str | None:
    """The token of the embedding in ``path``, read again only when the file changed."""
    from impasto.engine.embeddings import EmbeddingError, load_embedding

    info = path.stat()
    key = (info.st_size, info.st_mtime_ns)
    cached = _TOKENS.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        token: str | None = load_embedding(path).token
    except EmbeddingError:
        token = None
    _TOKENS[path] = (key, token)
    return token


def _mentions(text: str, name: str) -> bool:
    """``name`` in ``text`` with no letter, digit, ``_`` or ``-`` right before or after it."""
    return bool(name) and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def upload_path(uploads_dir: Path, value: str) -> Path:
    """The file of an ``upload:<id>`` reference."""
    upload_id = value.removeprefix(UPLOAD_PREFIX)
    if not UPLOAD_ID.match(upload_id):
        raise NotInstalledError("init_image", f"{value!r} is not an upload:<id> reference")
    return uploads_dir / f"{upload_id}.png"


UPSCALERS_FOLDER = "upscalers"
"""Where ONNX super-resolution models are installed: ``<models_dir>/upscalers/<name>.onnx``."""


def upscaler_models(models_dir: Path) -> dict[str, Path]:
    """Installed super-resolution models by name (the file stem), in name order."""
    folder = models_dir / UPSCALERS_FOLDER
    if not folder.is_dir():
        return {}
    found = sorted(folder.glob("*.onnx"), key=lambda p: p.stem.lower())
    return {p.stem: p for p in found if plain_name(p.stem) and p.is_file()}


def upscaler_path(models_dir: Path, name: str, field: str = "upscaler") -> Path:
    """The file of the installed super-resolution model ``name`` (case-insensitive)."""
    installed = upscaler_models(models_dir)
    for stem, path in installed.items():
        if stem.lower() == name.lower():
            return path
    raise NotInstalledError(
        field,
        f"upscaler {name!r} is not installed in the models folder's {UPSCALERS_FOLDER}/; "
        f"installed: {', '.join(installed) or 'none'}",
    )


def upscaler_file(models_dir: Path, upscaler: str) -> Path | None:
    """The model file an upscaler name stands for; None for a built-in (latent or PIL) one."""
    from impasto.engine.image_upscale import BUILTIN
    from impasto.engine.upscale_latents import UPSCALERS

    if upscaler in UPSCALERS or upscaler in BUILTIN:
        return None
    return upscaler_path(models_dir, upscaler)
