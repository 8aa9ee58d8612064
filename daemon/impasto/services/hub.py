"""Hugging Face Hub sources: list a repo revision's files and pick the ones a model needs."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import httpx

from impasto.services.downloads import RemoteFile, network_problem

DEFAULT_ENDPOINT = "https://huggingface.co"
COMPONENTS = frozenset(
    {
        "text_encoder",
        "text_encoder_2",
        "unet",
        "vae_decoder",
        "vae_encoder",
        "vae",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    }
)
ONNX_SUFFIXES = frozenset({".onnx", ".onnx_data", ".data", ".pb", ".json", ".txt"})
DIFFUSERS_SUFFIXES = frozenset({".safetensors", ".json", ".txt"})


class HubError(Exception):
    """The repo, revision or subfolder cannot be used; the message says why."""


@dataclass(frozen=True)
class HubListing:
    """The files to fetch from one repo revision, pinned to its commit."""

    commit: str
    layout: str
    files: list[RemoteFile]


def hub_endpoint(setting: str) -> str:
    """The hub to talk to: the hf_endpoint setting, else HF_ENDPOINT, else huggingface.co."""
    return (setting or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token(setting: str) -> str | None:
    """The token for private or gated repos: the hf_token setting, else HF_TOKEN."""
    return setting or os.environ.get("HF_TOKEN") or None


def _wanted(rel: PurePosixPath, suffixes: frozenset[str]) -> bool:
    if rel.parts == ("model_index.json",):
        return True
    if len(rel.parts) < 2 or rel.parts[0] not in COMPONENTS or rel.suffix not in suffixes:
        return False
    # Diffusers folders carry fp16 and non-ema variants beside the main weights; take the main.
    return rel.name.count(".") <= 1 or rel.suffix != ".safetensors"


def list_hub_files(
    repo_id: str, revision: str | None, subfolder: str, *, endpoint: str, token: str | None
) -> HubListing:
    """Ask the hub for ``repo_id`` at ``revision`` and choose the files of the model layout."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import build_hf_headers

    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except RevisionNotFoundError as exc:
        raise HubError(f"revision {revision!r} does not exist in {repo_id}") from exc
    except RepositoryNotFoundError as exc:
        raise HubError(f"{repo_id} was not found on {endpoint} (or it is private)") from exc
    except HfHubHTTPError as exc:
        raise HubError(f"{endpoint} did not answer for {repo_id}: {exc}") from exc
    except (OSError, httpx.TransportError) as exc:  # requests' and httpx's connection errors
        raise HubError(network_problem(endpoint, exc)) from None
    commit = info.sha or revision or "main"
    prefix = PurePosixPath(subfolder.strip("/")) if subfolder.strip("/") else None
    entries: dict[PurePosixPath, Any] = {}
    for sibling in info.siblings or []:
        path = PurePosixPath(sibling.rfilename)
        if prefix is not None:
            if path.parts[: len(prefix.parts)] != prefix.parts:
                continue
            path = PurePosixPath(*path.parts[len(prefix.parts) :])
        entries[path] = sibling
    tiny = {PurePosixPath(n) for n in ("config.json", "diffusion_pytorch_model.safetensors")}
    if PurePosixPath("model_index.json") not in entries and tiny <= set(entries):
        # A lone diffusers model such as TAESD (AutoencoderTiny): its config and weights.
        layout, suffixes = "diffusers-model", DIFFUSERS_SUFFIXES
        entries = {path: entries[path] for path in tiny}
    elif PurePosixPath("model_index.json") not in entries:
        where = f"{repo_id}/{subfolder}" if subfolder else repo_id
        raise HubError(f"{where} has no model_index.json: not a Stable Diffusion pipeline")
    elif PurePosixPath("unet/model.onnx") in entries:
        layout, suffixes = "onnx", ONNX_SUFFIXES
    elif any(p.parts[0] == "unet" and p.suffix == ".safetensors" for p in entries):
        layout, suffixes = "diffusers", DIFFUSERS_SUFFIXES
    else:
        raise HubError(f"{repo_id} has neither unet/model.onnx nor diffusers .safetensors weights")
    headers = build_hf_headers(token=token or False, library_name="impasto")
    files = []
    for rel, sibling in sorted(entries.items()):
        if layout != "diffusers-model" and not _wanted(rel, suffixes):
            continue
        name = sibling.rfilename
        lfs = sibling.lfs
        url = hf_hub_url(repo_id, name, revision=commit, endpoint=endpoint)
        size = sibling.size
        files.append(RemoteFile(url, str(rel), size, lfs.sha256 if lfs else None, dict(headers)))
    # One HEAD through the resolve endpoint proves the files are reachable before we stage.
    try:
        get_hf_file_metadata(files[0].url, token=token or False)
    except HfHubHTTPError as exc:
        raise HubError(f"cannot read {files[0].path} from {repo_id}: {exc}") from exc
    except (OSError, httpx.TransportError) as exc:
        raise HubError(network_problem(files[0].url, exc)) from None
    return HubListing(commit, layout, files)


def range_reader(remote: RemoteFile, timeout: float = 60.0) -> Callable[[int, int], bytes]:
    """Read ``length`` bytes at ``offset`` of a hub file with an HTTP Range request."""

    def read(offset: int, length: int) -> bytes:
        headers = {**remote.headers, "Range": f"bytes={offset}-"}
        with httpx.stream(
            "GET", remote.url, headers=headers, follow_redirects=True, timeout=timeout
        ) as response:
            if response.status_code != 206:
                raise HubError(f"{remote.path}: the hub ignored a Range request")
            out = bytearray()
            for chunk in response.iter_bytes():
                out += chunk
                if len(out) >= length:
                    break
        return bytes(out[:length])

    return read
